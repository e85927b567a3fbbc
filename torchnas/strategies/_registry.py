"""One registry of strategies: ``available()``, ``create(name, **kw)``, ``register``."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from torchnas._util.errors import ConfigError
from torchnas._util.registry import Registry
from torchnas.strategies._bananas import BananasStrategy
from torchnas.strategies._base import Strategy
from torchnas.strategies._evolution import EvolutionStrategy
from torchnas.strategies._grid import GridStrategy
from torchnas.strategies._local import LocalSearchStrategy
from torchnas.strategies._motpe import MOTPEStrategy
from torchnas.strategies._nsga2 import NSGA2Strategy
from torchnas.strategies._optuna import OptunaStrategy
from torchnas.strategies._random import RandomStrategy
from torchnas.strategies._reinforce import ReinforceStrategy
from torchnas.strategies._smac import SMACStrategy
from torchnas.strategies._tpe import BOHBStrategy, TPEStrategy

__all__ = ["AUTO", "AUTO_MULTI", "REGISTRY", "auto_name", "available", "create", "register",
           "resolve"]

AUTO = "bananas"
"""What ``"auto"`` means today: the strategy with the lowest mean regret on the NAS-Bench-Graph
benchmark (``benchmarks/tabular.py``: cora, citeseer, pubmed; see the README)."""

AUTO_MULTI = "motpe"
"""What ``"auto"`` means for a study of several objectives (see ``benchmarks/pareto.py``)."""

REGISTRY: Registry[Callable[..., Strategy]] = Registry("strategy")
register = REGISTRY.register


def available() -> list[str]:
    """Names accepted by :func:`create`, ``"auto"`` included."""
    return sorted([*REGISTRY.names(), "auto"])


def create(name: str, **kwargs: Any) -> Strategy:
    """Builds the strategy registered as ``name`` (``"auto"``: the best general choice;
    ``"optuna:SAMPLER"``: the Optuna bridge with that sampler, e.g. ``"optuna:nsgaii"``).

    Raises:
        ConfigError: for an unknown name (naming the closest ones) or bad arguments.
    """
    if isinstance(name, str) and name.startswith("optuna:"):
        name, kwargs = "optuna", {"sampler": name.removeprefix("optuna:"), **kwargs}
    factory = REGISTRY.get(AUTO if name == "auto" else name, extra=("auto",))
    REGISTRY.check_settings(name, factory, kwargs)
    try:
        return factory(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"strategy {name!r}: {exc}") from exc


def auto_name(objectives: Mapping[str, str] | None = None) -> str:
    """The strategy ``"auto"`` stands for: :data:`AUTO` for one objective, :data:`AUTO_MULTI`
    for several."""
    return AUTO_MULTI if objectives is not None and len(objectives) > 1 else AUTO


def resolve(spec: str | Strategy | dict[str, Any],
            objectives: Mapping[str, str] | None = None) -> tuple[Strategy, dict[str, Any]]:
    """A strategy from a name, an object or ``{"name": ..., **kwargs}``, and its stored spec.

    ``"auto"`` resolves for the study's ``objectives`` (see :func:`auto_name`) and is stored as
    the name it resolved to, so that a resumed study goes on with the same strategy.
    """
    if isinstance(spec, Strategy):
        return spec, {"name": spec.name or type(spec).__name__, **spec.get_params()}
    if isinstance(spec, str):
        name = auto_name(objectives) if spec == "auto" else spec
        return create(name), {"name": name}
    if isinstance(spec, dict) and isinstance(spec.get("name"), str):
        kwargs = {k: v for k, v in spec.items() if k != "name"}
        name = auto_name(objectives) if spec["name"] == "auto" else spec["name"]
        return create(name, **kwargs), {"name": name, **kwargs}
    raise ConfigError(f"strategy must be a name, a Strategy or {{'name': ...}}, got {spec!r}")


REGISTRY.add("random", RandomStrategy)
REGISTRY.add("grid", GridStrategy)
REGISTRY.add("evolution", EvolutionStrategy)
REGISTRY.add("local", LocalSearchStrategy)
REGISTRY.add("rl", ReinforceStrategy)
REGISTRY.add("tpe", TPEStrategy)
REGISTRY.add("bohb", BOHBStrategy)
REGISTRY.add("bananas", BananasStrategy)
REGISTRY.add("optuna", OptunaStrategy)
REGISTRY.add("nsga2", NSGA2Strategy)
REGISTRY.add("motpe", MOTPEStrategy)
REGISTRY.add("smac", SMACStrategy)
