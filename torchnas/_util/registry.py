"""One registry class for every plug-in kind (strategies, spaces, datasets), as in timm."""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Generic, TypeVar

from torchnas._util.errors import ConfigError

__all__ = ["Registry"]

T = TypeVar("T")


class Registry(Generic[T]):
    """Named plug-ins of one kind.

    Args:
        kind: what the entries are, for messages (``"strategy"``, ``"space"``, ``"dataset"``).
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator adding an entry under ``name`` (a name is registered once)."""

        def wrap(entry: T) -> T:
            self.add(name, entry)
            return entry

        return wrap

    def add(self, name: str, entry: T) -> None:
        """Adds ``entry`` under ``name``; ``ValueError`` when the name is taken."""
        if name in self._entries:
            raise ValueError(f"a {self.kind} named {name!r} is already registered")
        self._entries[name] = entry

    def remove(self, name: str) -> None:
        """Removes an entry (for plug-ins registered temporarily, e.g. in tests)."""
        del self._entries[name]

    def get(self, name: str, extra: tuple[str, ...] = ()) -> T:
        """The entry ``name``; :class:`ConfigError` naming the closest names when unknown.

        ``extra`` are valid names handled by the caller (listed in the message).
        """
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            known = sorted([*self._entries, *extra])
            near = difflib.get_close_matches(str(name), known, n=3)
            hint = f"; did you mean {' or '.join(map(repr, near))}?" if near else ""
            raise ConfigError(
                f"unknown {self.kind} {name!r}{hint} (available: {', '.join(known)})"
            ) from None

    def check_settings(self, name: str, factory: Callable[..., Any],
                       settings: Mapping[str, Any]) -> None:
        """:class:`ConfigError` naming a setting ``factory`` does not take, and the closest
        ones it does (a factory taking ``**kwargs`` accepts anything)."""
        try:
            params = inspect.signature(factory).parameters
        except (TypeError, ValueError):  # pragma: no cover - builtins without a signature
            return
        if any(p.kind is p.VAR_KEYWORD for p in params.values()):
            return
        valid = [k for k, p in params.items() if k != "self" and p.kind in (
            p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
        for key in settings:
            if key not in valid:
                near = difflib.get_close_matches(str(key), valid, n=2)
                hint = f"; did you mean {' or '.join(map(repr, near))}?" if near else ""
                raise ConfigError(f"{self.kind} {name!r}: unknown setting {key!r}{hint} "
                                  f"(valid: {', '.join(valid) or 'none'})")

    def names(self) -> list[str]:
        """Registered names, sorted."""
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
