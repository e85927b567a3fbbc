"""One registry of strategies: ``available()``, ``create(name, **kw)``, ``register``."""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import Any, TypeVar

from torchnas._errors import ConfigError
from torchnas.strategies._base import Strategy
from torchnas.strategies._grid import GridStrategy
from torchnas.strategies._random import RandomStrategy

__all__ = ["AUTO", "available", "create", "register", "resolve"]

AUTO = "random"
"""What ``"auto"`` means today: random search, until a strategy beats it on the benchmarks."""

F = TypeVar("F", bound=Callable[..., Strategy])
_REGISTRY: dict[str, Callable[..., Strategy]] = {}


def register(name: str) -> Callable[[F], F]:
    """Decorator registering a strategy class (or factory) under ``name``."""

    def wrap(factory: F) -> F:
        if name in _REGISTRY:
            raise ValueError(f"strategy {name!r} is already registered")
        _REGISTRY[name] = factory
        return factory

    return wrap


def available() -> list[str]:
    """Names accepted by :func:`create`, ``"auto"`` included."""
    return sorted([*_REGISTRY, "auto"])


def create(name: str, **kwargs: Any) -> Strategy:
    """Builds the strategy registered as ``name`` (``"auto"``: the best general choice).

    Raises:
        ConfigError: for an unknown name, naming the closest registered ones.
    """
    key = AUTO if name == "auto" else name
    factory = _REGISTRY.get(key)
    if factory is None:
        near = difflib.get_close_matches(str(name), available(), n=3)
        hint = f"; did you mean {' or '.join(map(repr, near))}?" if near else ""
        raise ConfigError(f"unknown strategy {name!r}{hint} (available: {', '.join(available())})")
    try:
        return factory(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"strategy {name!r}: {exc}") from exc


def resolve(spec: str | Strategy | dict[str, Any]) -> tuple[Strategy, dict[str, Any]]:
    """A strategy from a name, an object or ``{"name": ..., **kwargs}``, and its stored spec."""
    if isinstance(spec, Strategy):
        return spec, {"name": spec.name or type(spec).__name__, **spec.get_params()}
    if isinstance(spec, str):
        return create(spec), {"name": spec}
    if isinstance(spec, dict) and isinstance(spec.get("name"), str):
        kwargs = {k: v for k, v in spec.items() if k != "name"}
        return create(spec["name"], **kwargs), dict(spec)
    raise ConfigError(f"strategy must be a name, a Strategy or {{'name': ...}}, got {spec!r}")


register("random")(RandomStrategy)
register("grid")(GridStrategy)
