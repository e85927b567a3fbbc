"""Architectures: the JSON dict of decisions a run met, its stable key, and rebuilding."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from torchnas._util.errors import SpaceError
from torchnas.space._domains import Domain
from torchnas.space._hp import HP

__all__ = ["FixedSource", "arch_key", "build", "canonical_json"]

T = TypeVar("T")


def canonical_json(arch: Mapping[str, Any]) -> str:
    """The architecture as compact JSON with sorted labels (the basis of its key)."""
    return json.dumps(arch, sort_keys=True, separators=(",", ":"), allow_nan=False)


def arch_key(arch: Mapping[str, Any]) -> str:
    """A stable 16-hex-digit key: equal architectures have equal keys, on any machine."""
    return hashlib.blake2b(canonical_json(arch).encode(), digest_size=8).hexdigest()


class FixedSource:
    """Values from a given architecture.

    Args:
        arch: ``{label: value}``.
        missing: what to do with a label the architecture lacks: ``"error"`` (default) or
            ``"default"`` (the domain's default value).
    """

    def __init__(self, arch: Mapping[str, Any], missing: str = "error") -> None:
        if missing not in ("error", "default"):
            raise ValueError(f"missing must be 'error' or 'default', got {missing!r}")
        self.arch = dict(arch)
        self.missing = missing

    def value(self, label: str, domain: Domain, met: Mapping[str, Any]) -> Any:
        if label in self.arch:
            return self.arch[label]
        if self.missing == "default":
            return domain.default
        raise SpaceError(
            f"label {label!r} ({domain.describe()}) is not in the architecture; "
            f"it has {sorted(self.arch)}"
        )


def build(fn: Callable[..., T], arch: Mapping[str, Any], *args: Any, strict: bool = True,
          **kwargs: Any) -> T:
    """Rebuilds exactly the model (or whatever ``fn`` returns) of an architecture.

    Args:
        fn: the space function, called as ``fn(hp, *args, **kwargs)``.
        arch: the architecture dict (``trial.arch``).
        strict: raise when ``arch`` has labels the run did not meet (a sign the architecture
            belongs to another space).

    Example:
        >>> import torchnas as tn
        >>> def space(hp):
        ...     return [hp.int("width", 8, 64)] * hp.int("depth", 1, 3)
        >>> tn.build(space, {"width": 16, "depth": 2})
        [16, 16]
    """
    hp = HP(FixedSource(arch))
    out = fn(hp, *args, **kwargs)
    if strict:
        unused = sorted(set(arch) - set(hp.arch))
        if unused:
            raise SpaceError(f"the architecture has labels this space never met: {unused}")
    return out
