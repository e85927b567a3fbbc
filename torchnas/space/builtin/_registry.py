"""The registry of built-in spaces: ``register``, ``create(name, **kw)``, ``list()``."""

from __future__ import annotations

import builtins
from collections.abc import Callable
from typing import Any, TypeVar

from torchnas._util.errors import ConfigError
from torchnas._util.registry import Registry

__all__ = ["REGISTRY", "create", "get", "list", "register"]

T = TypeVar("T", bound=type)
REGISTRY: Registry[type] = Registry("space")


def register(name: str) -> Callable[[T], T]:
    """Class decorator: registers a space class under ``name`` (and sets ``cls.name``)."""

    def wrap(cls: T) -> T:
        REGISTRY.add(name, cls)
        cls.name = name  # type: ignore[attr-defined]
        return cls

    return wrap


def list() -> builtins.list[str]:
    """Names of the built-in spaces."""
    return REGISTRY.names()


def get(name: str) -> type:
    """The class registered as ``name``; :class:`ConfigError` with suggestions when unknown."""
    return REGISTRY.get(name)


def create(name: str, **kwargs: Any) -> Any:
    """An instance of the space ``name``: a callable ``space(hp) -> nn.Module``.

    Built-in spaces take ``input_shape`` (channels first, no batch) and ``num_classes``.
    """
    cls = get(name)
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"space {name!r}: {exc}") from exc
