"""Search spaces: define-by-run decisions, architectures and their keys, exploration."""

from torchnas.space._arch import FixedSource, arch_key, build, canonical_json
from torchnas.space._cover import Coverage, cover_values, sweep
from torchnas.space._domains import (
    Bool,
    Categorical,
    Domain,
    Float,
    Inputs,
    Int,
    Op,
    domain_from_json,
)
from torchnas.space._explore import LabelInfo, SpaceInfo, explore, infer
from torchnas.space._handle import TrialHandle
from torchnas.space._hp import HP, InputChoice, Source

__all__ = [
    "HP",
    "Bool",
    "Categorical",
    "Coverage",
    "Domain",
    "FixedSource",
    "Float",
    "InputChoice",
    "Inputs",
    "Int",
    "LabelInfo",
    "Op",
    "Source",
    "SpaceInfo",
    "TrialHandle",
    "arch_key",
    "build",
    "canonical_json",
    "cover_values",
    "domain_from_json",
    "explore",
    "infer",
    "sweep",
]
