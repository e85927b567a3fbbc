"""The registry of one-shot methods: ``available()``, ``create(name, **kw)``, ``resolve``."""

from __future__ import annotations

from typing import Any

from torchnas._util.errors import ConfigError
from torchnas._util.registry import Registry
from torchnas.oneshot._base import OneShot
from torchnas.oneshot._darts import DARTS, PCDARTS
from torchnas.oneshot._enas import ENAS
from torchnas.oneshot._gdas import GDAS
from torchnas.oneshot._spos import SPOS

__all__ = ["REGISTRY", "available", "create", "is_method", "resolve"]

REGISTRY: Registry[type[OneShot]] = Registry("one-shot method")
for _cls in (DARTS, PCDARTS, GDAS, SPOS, ENAS):
    REGISTRY.add(_cls.name, _cls)


def available() -> list[str]:
    """Names of the one-shot methods (``ModelSearch(strategy=name)`` runs them)."""
    return REGISTRY.names()


def create(name: str, **kwargs: Any) -> OneShot:
    """The method ``name`` with its settings checked; :class:`ConfigError` naming the fault."""
    cls = REGISTRY.get(name)
    REGISTRY.check_settings(name, cls, kwargs)
    try:
        method = cls(**kwargs)
        method.check()
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"one-shot method {name!r}: {exc}") from exc
    return method


def is_method(spec: Any) -> bool:
    """Whether a strategy spec (a name, ``{"name": ...}`` or an object) is a one-shot method."""
    if isinstance(spec, OneShot):
        return True
    name = spec.get("name") if isinstance(spec, dict) else spec
    return isinstance(name, str) and name in REGISTRY


def resolve(spec: Any) -> tuple[OneShot, dict[str, Any]]:
    """A method from a name, an object or ``{"name": ..., **settings}``, and its spec."""
    if isinstance(spec, OneShot):
        spec.check()
        return spec, {"name": spec.name, **spec.get_params()}
    if isinstance(spec, str):
        return create(spec), {"name": spec}
    if isinstance(spec, dict) and isinstance(spec.get("name"), str):
        settings = {k: v for k, v in spec.items() if k != "name"}
        return create(spec["name"], **settings), dict(spec)
    raise ConfigError(f"one-shot method must be a name, a OneShot or {{'name': ...}}, got {spec!r}")
