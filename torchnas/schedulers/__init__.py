"""Early stopping and multi-fidelity schedulers, from trials' intermediate reports."""

from __future__ import annotations

from typing import Any

from torchnas._errors import ConfigError
from torchnas._registry import Registry
from torchnas.schedulers._base import Scheduler

__all__ = ["REGISTRY", "Scheduler", "available", "create", "register", "resolve"]

REGISTRY: Registry[Any] = Registry("scheduler")
register = REGISTRY.register


def available() -> list[str]:
    """Names accepted by :func:`create`."""
    return REGISTRY.names()


def create(name: str, **kwargs: Any) -> Scheduler:
    """Builds the scheduler registered as ``name``."""
    factory = REGISTRY.get(name)
    try:
        scheduler: Scheduler = factory(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"scheduler {name!r}: {exc}") from exc
    return scheduler


def resolve(spec: str | Scheduler | dict[str, Any] | None) -> tuple[Scheduler | None, Any]:
    """A scheduler from ``None``, a name, an object or ``{"name": ..., **kwargs}``, and the
    spec to store."""
    if spec is None:
        return None, None
    if isinstance(spec, Scheduler):
        return spec, {"name": spec.name or type(spec).__name__, **spec.get_params()}
    if isinstance(spec, str):
        return create(spec), {"name": spec}
    if isinstance(spec, dict) and isinstance(spec.get("name"), str):
        return create(spec["name"], **{k: v for k, v in spec.items() if k != "name"}), dict(spec)
    raise ConfigError(f"scheduler must be a name, a Scheduler or {{'name': ...}}, got {spec!r}")
