"""One registry of strategies: ``available()``, ``create(name, **kw)``, ``register``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torchnas._errors import ConfigError
from torchnas._registry import Registry
from torchnas.strategies._bananas import BananasStrategy
from torchnas.strategies._base import Strategy
from torchnas.strategies._evolution import EvolutionStrategy
from torchnas.strategies._grid import GridStrategy
from torchnas.strategies._local import LocalSearchStrategy
from torchnas.strategies._optuna import OptunaStrategy
from torchnas.strategies._random import RandomStrategy
from torchnas.strategies._reinforce import ReinforceStrategy
from torchnas.strategies._tpe import BOHBStrategy, TPEStrategy

__all__ = ["AUTO", "REGISTRY", "available", "create", "register", "resolve"]

AUTO = "random"
"""What ``"auto"`` means today: random search, until a strategy beats it on the benchmarks."""

REGISTRY: Registry[Callable[..., Strategy]] = Registry("strategy")
register = REGISTRY.register


def available() -> list[str]:
    """Names accepted by :func:`create`, ``"auto"`` included."""
    return sorted([*REGISTRY.names(), "auto"])


def create(name: str, **kwargs: Any) -> Strategy:
    """Builds the strategy registered as ``name`` (``"auto"``: the best general choice).

    Raises:
        ConfigError: for an unknown name (naming the closest ones) or bad arguments.
    """
    factory = REGISTRY.get(AUTO if name == "auto" else name, extra=("auto",))
    try:
        return factory(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"strategy {name!r}: {exc}") from exc


def resolve(spec: str | Strategy | dict[str, Any]) -> tuple[Strategy, dict[str, Any]]:
    """A strategy from a name, an object or ``{"name": ..., **kwargs}``, and its stored spec."""
    if isinstance(spec, Strategy):
        return spec, {"name": spec.name or type(spec).__name__, **spec.get_params()}
    if isinstance(spec, str):  # "auto" is stored as what it means now, for exact resumes
        return create(spec), {"name": AUTO if spec == "auto" else spec}
    if isinstance(spec, dict) and isinstance(spec.get("name"), str):
        kwargs = {k: v for k, v in spec.items() if k != "name"}
        return create(spec["name"], **kwargs), dict(spec)
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
