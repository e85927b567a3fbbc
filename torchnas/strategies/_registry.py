"""The strategies' registry: ``available()``, ``create(name, **kw)``, ``resolve(spec)``.

A strategy registers where it is defined (``@register("name")`` above its class); importing
the modules below fills the registry.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from torchnas.strategies import (  # noqa: F401 - each module registers its strategies
    _bananas,
    _dqn,
    _evolution,
    _grid,
    _local,
    _motpe,
    _nsga2,
    _optuna,
    _random,
    _reinforce,
    _smac,
    _tpe,
)
from torchnas.strategies._base import REGISTRY, Strategy, register

__all__ = ["AUTO", "AUTO_MULTI", "REGISTRY", "add_resolver", "auto_name", "available", "create",
           "register", "resolve"]

AUTO = "bananas"
"""What ``"auto"`` means today: the strategy with the lowest mean regret on the NAS-Bench-Graph
benchmark (``benchmarks/tabular.py``: cora, citeseer, pubmed; see the README)."""

AUTO_MULTI = "motpe"
"""What ``"auto"`` means for a study of several objectives (see ``benchmarks/pareto.py``)."""


def available() -> list[str]:
    """Names accepted by :func:`create`, ``"auto"`` included."""
    return sorted([*REGISTRY.available(), "auto"])


def create(name: str, **kwargs: Any) -> Strategy:
    """Builds the strategy registered as ``name`` (``"auto"``: the best general choice;
    ``"optuna:SAMPLER"``: the Optuna bridge with that sampler, e.g. ``"optuna:nsgaii"``).

    Raises:
        ConfigError: for an unknown name (naming the closest ones) or bad arguments.
    """
    if isinstance(name, str) and name.startswith("optuna:"):
        name, kwargs = "optuna", {"sampler": name.removeprefix("optuna:"), **kwargs}
    if name == "auto":
        name = AUTO
    REGISTRY.get(name, extra=("auto",))  # an unknown name: the message lists "auto" too
    return REGISTRY.create(name, **kwargs)


def auto_name(objectives: Mapping[str, str] | None = None) -> str:
    """The strategy ``"auto"`` stands for: :data:`AUTO` for one objective, :data:`AUTO_MULTI`
    for several."""
    return AUTO_MULTI if objectives is not None and len(objectives) > 1 else AUTO


Resolver = Callable[[Any], "tuple[Strategy, dict[str, Any]] | None"]
_RESOLVERS: list[Resolver] = []


def add_resolver(resolver: Resolver) -> Resolver:
    """Lets a room above the strategies resolve study specs of its own: ``resolver(spec)``
    returns the strategy and stored spec of a spec it owns, else ``None``; :func:`resolve` asks
    every resolver first. The one-shot methods add theirs (a one-shot study stores its method's
    spec and proposes nothing), so this room never imports them."""
    if resolver not in _RESOLVERS:
        _RESOLVERS.append(resolver)
    return resolver


def resolve(spec: str | Strategy | dict[str, Any],
            objectives: Mapping[str, str] | None = None) -> tuple[Strategy, dict[str, Any]]:
    """A strategy from a name, an object or ``{"name": ..., **kwargs}``, and its stored spec.

    ``"auto"`` resolves for the study's ``objectives`` (see :func:`auto_name`) and is stored as
    the name it resolved to, so that a resumed study goes on with the same strategy. A spec
    another room owns (a one-shot method's, see :func:`add_resolver`) is resolved by that room.
    """
    for other in _RESOLVERS:
        found = other(spec)
        if found is not None:
            return found
    if isinstance(spec, str):
        name = auto_name(objectives) if spec == "auto" else spec
        return create(name), {"name": name}
    if isinstance(spec, dict) and isinstance(spec.get("name"), str):
        kwargs = {k: v for k, v in spec.items() if k != "name"}
        name = auto_name(objectives) if spec["name"] == "auto" else spec["name"]
        return create(name, **kwargs), {"name": name, **kwargs}
    return REGISTRY.resolve(spec), REGISTRY.spec_of(spec)  # an object, checked
