"""Storage: append-only journals (in memory, SQLite), the URL that picks one, and the typed
events a study journals (:mod:`events <torchnas.storage._log>`, folded by :class:`TrialLog`)."""

from __future__ import annotations

import os

from torchnas._util.errors import ConfigError
from torchnas.storage import _log as events
from torchnas.storage._base import Event, Journal
from torchnas.storage._log import EventKind, TrialLog
from torchnas.storage._memory import MemoryJournal
from torchnas.storage._repair import Repaired, repair
from torchnas.storage._sqlite import SQLiteJournal

__all__ = ["Event", "EventKind", "Journal", "MemoryJournal", "Repaired", "SQLiteJournal",
           "TrialLog", "check_storage", "events", "get_storage", "repair"]


def get_storage(url: str | os.PathLike[str] | Journal | None,
                read_only: bool = False) -> Journal:
    """The journal a storage argument names.

    ``None`` (or ``":memory:"``) is in memory; a path or ``sqlite:///path`` is an SQLite file
    (``sqlite:////abs/path`` for absolute paths, as SQLAlchemy spells it), opened for reading
    only with ``read_only``; a :class:`Journal` is used as is.
    """
    text = check_storage(url)
    if text is None:
        return url if isinstance(url, Journal) else MemoryJournal()
    return SQLiteJournal(text, read_only=read_only)


def check_storage(url: object) -> str | None:
    """The SQLite file a storage argument names (``None``: in memory, or a :class:`Journal`),
    touching nothing.

    Raises:
        ConfigError: naming ``storage`` when it is none of what :func:`get_storage` takes.
    """
    if url is None or url == ":memory:" or isinstance(url, Journal):
        return None
    if not isinstance(url, (str, os.PathLike)):
        raise ConfigError(f"storage must be None, a path, 'sqlite:///path' or a journal, "
                          f"got {url!r}")
    text = os.fspath(url)
    if not isinstance(text, str) or not text.strip():
        raise ConfigError(f"storage must be None, a path, 'sqlite:///path' or a journal, "
                          f"got {url!r}")
    if "://" in text:
        scheme, _, rest = text.partition("://")
        if scheme != "sqlite":
            raise ConfigError(
                f"storage {text!r}: unknown scheme {scheme!r}; use a path or sqlite:///path"
            )
        text = rest[1:] if rest.startswith("/") else rest
        if not text.strip():
            raise ConfigError(f"storage {url!r}: no file path after sqlite:///")
        if text == ":memory:":
            return None
    return text
