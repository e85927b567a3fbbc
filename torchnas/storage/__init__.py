"""Storage: append-only journals (in memory, SQLite), the URL that picks one, and the typed
events a study journals (:mod:`events <torchnas.storage._log>`, folded by :class:`TrialLog`)."""

from __future__ import annotations

import os

from torchnas.storage import _log as events
from torchnas.storage._base import Event, Journal
from torchnas.storage._log import EventKind, TrialLog
from torchnas.storage._memory import MemoryJournal
from torchnas.storage._sqlite import SQLiteJournal

__all__ = ["Event", "EventKind", "Journal", "MemoryJournal", "SQLiteJournal", "TrialLog", "events",
           "get_storage"]


def get_storage(url: str | os.PathLike[str] | Journal | None,
                read_only: bool = False) -> Journal:
    """The journal a storage argument names.

    ``None`` (or ``":memory:"``) is in memory; a path or ``sqlite:///path`` is an SQLite file
    (``sqlite:////abs/path`` for absolute paths, as SQLAlchemy spells it), opened for reading
    only with ``read_only``; a :class:`Journal` is used as is.
    """
    if url is None or url == ":memory:":
        return MemoryJournal()
    if isinstance(url, Journal):
        return url
    text = os.fspath(url)
    if "://" in text:
        scheme, _, rest = text.partition("://")
        if scheme != "sqlite":
            raise ValueError(
                f"storage {text!r}: unknown scheme {scheme!r}; use a path or sqlite:///path"
            )
        text = rest[1:] if rest.startswith("/") else rest
        if not text:
            raise ValueError(f"storage {url!r}: no file path after sqlite:///")
        if text == ":memory:":
            return MemoryJournal()
    return SQLiteJournal(text, read_only=read_only)
