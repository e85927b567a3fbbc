"""The registry of built-in spaces: ``register``, ``create(name, **kw)``, ``list()``."""

from __future__ import annotations

import builtins
import difflib
from collections.abc import Callable
from typing import Any, TypeVar

from torchnas._errors import ConfigError

__all__ = ["create", "get", "list", "register"]

T = TypeVar("T", bound=type)
_SPACES: dict[str, type] = {}


def register(name: str) -> Callable[[T], T]:
    """Class decorator: registers a space class under ``name`` (and sets ``cls.name``)."""

    def wrap(cls: T) -> T:
        if name in _SPACES:
            raise ValueError(f"space {name!r} is already registered")
        cls.name = name  # type: ignore[attr-defined]
        _SPACES[name] = cls
        return cls

    return wrap


def list() -> builtins.list[str]:
    """Names of the built-in spaces."""
    return sorted(_SPACES)


def get(name: str) -> type:
    """The class registered as ``name``; :class:`ConfigError` with suggestions when unknown."""
    cls = _SPACES.get(name)
    if cls is None:
        near = difflib.get_close_matches(str(name), _SPACES, n=3)
        hint = f"; did you mean {' or '.join(map(repr, near))}?" if near else ""
        raise ConfigError(f"unknown space {name!r}{hint} (built-in: {', '.join(list())})")
    return cls


def create(name: str, **kwargs: Any) -> Any:
    """An instance of the space ``name``: a callable ``space(hp) -> nn.Module``.

    Built-in spaces take ``input_shape`` (channels first, no batch) and ``num_classes``.
    """
    cls = get(name)
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"space {name!r}: {exc}") from exc
