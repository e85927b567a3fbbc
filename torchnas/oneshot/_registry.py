"""The registry of one-shot methods: ``available()``, ``create(name, **kw)``, ``resolve``.

A method registers where it is defined (``@register("name")`` above its class); importing the
modules below fills the registry.
"""

from __future__ import annotations

from typing import Any

from torchnas.oneshot import _darts, _enas, _gdas, _spos  # noqa: F401 - they register methods
from torchnas.oneshot._base import REGISTRY, OneShot, register

__all__ = ["REGISTRY", "available", "create", "is_method", "register", "resolve"]


def available() -> list[str]:
    """Names of the one-shot methods (``ModelSearch(strategy=name)`` runs them)."""
    return REGISTRY.available()


def create(name: str, **kwargs: Any) -> OneShot:
    """The method ``name`` with its settings checked; :class:`ConfigError` naming the fault."""
    return REGISTRY.create(name, **kwargs)


def is_method(spec: Any) -> bool:
    """Whether a strategy spec (a name, ``{"name": ...}`` or an object) is a one-shot method."""
    if isinstance(spec, OneShot):
        return True
    name = spec.get("name") if isinstance(spec, dict) else spec
    return isinstance(name, str) and name in REGISTRY


def resolve(spec: Any) -> tuple[OneShot, dict[str, Any]]:
    """A method from a name, an object or ``{"name": ..., **settings}`` (checked), and its
    spec."""
    return REGISTRY.resolve(spec), REGISTRY.spec_of(spec)
