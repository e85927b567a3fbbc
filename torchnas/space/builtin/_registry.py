"""The registry of built-in spaces: ``register``, ``create(name, **kw)``, ``available()``."""

from __future__ import annotations

import builtins
from typing import Any

from torchnas._util.registry import Registry

__all__ = ["REGISTRY", "available", "create", "get", "list", "register"]

REGISTRY: Registry[Any] = Registry("space")

register = REGISTRY.register
"""``@register("name")`` above a space class: a space of that name (``cls.name``)."""


def available() -> builtins.list[str]:
    """Names of the built-in spaces."""
    return REGISTRY.available()


list = available
"""The same as :func:`available`."""


def get(name: str) -> type:
    """The class registered as ``name``; :class:`ConfigError` with suggestions when unknown."""
    cls: type = REGISTRY.get(name)  # type: ignore[assignment]
    return cls


def create(name: str, **kwargs: Any) -> Any:
    """An instance of the space ``name``: a callable ``space(hp) -> nn.Module``.

    Built-in spaces take ``input_shape`` (channels first, no batch) and ``num_classes``, or
    ``num_outputs`` (a regression's targets) instead.

    Raises:
        ConfigError: for an unknown name or setting (naming the closest ones).
    """
    return REGISTRY.create(name, **kwargs)
