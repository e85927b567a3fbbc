"""SQLite journal: durable, append-only, WAL mode, safe for several processes."""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from torchnas._util.errors import ConfigError, StorageError
from torchnas.storage._base import Event, Journal

__all__ = ["SQLiteJournal", "fault"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS studies (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    config TEXT NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    study_id INTEGER NOT NULL REFERENCES studies(id),
    trial INTEGER,
    kind TEXT NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_by_study ON events (study_id, seq);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT OR IGNORE INTO meta VALUES ('schema', '1');
"""


def fault(path: str | os.PathLike[str], exc: BaseException) -> str:
    """One line naming storage file ``path`` and what went wrong with it (``exc``)."""
    text = f"{type(exc).__module__}.{type(exc).__name__}: {exc}".removeprefix("builtins.")
    if "malformed" in str(exc):
        cause = (f"the file is damaged ({text}); `torchnas repair {path} NEW.db` copies "
                 f"every event that can still be read into a new file")
    elif "full" in str(exc) or "disk I/O" in str(exc):
        cause = (f"writing it failed ({text}): is the disk full? what was recorded before "
                 f"is kept")
    elif "readonly" in str(exc) or isinstance(exc, PermissionError):
        cause = (f"it cannot be written ({text}): is the file or its folder read-only? what "
                 f"was recorded before is kept")
    else:
        cause = f"{text}; what was recorded before is kept"
    return f"storage {path}: {cause}"


class SQLiteJournal(Journal):
    """A journal in one SQLite file.

    WAL journaling with ``synchronous=NORMAL``: a committed event survives the process being
    killed at any moment (``kill -9``); readers never block the writer. ``exclusive()`` is a
    ``BEGIN IMMEDIATE`` transaction, so read-check-append is atomic across processes.

    Args:
        path: the database file (created with its parent folder when missing).
        timeout: seconds to wait for another process's write lock before failing.
        read_only: open an existing torchnas database for reading only (what the CLI's
            reading commands do): nothing is created or changed, writes fail, and a file
            that is not a torchnas database is refused (``ValueError``).

    A fault of the file (a full disk, a folder made read-only, a damaged file) raises
    :class:`~torchnas.StorageError` naming the file and the cause; a write to a journal
    opened ``read_only`` fails with SQLite's own ``OperationalError`` (``readonly``).
    """

    def __init__(self, path: str | os.PathLike[str], timeout: float = 120.0,
                 read_only: bool = False) -> None:
        self.path = Path(path)
        self.read_only = read_only
        self._lock = threading.RLock()
        self._depth = 0
        if read_only:
            if not self.path.is_file():
                raise ValueError(f"no such storage file: {self.path}")
            self._conn = sqlite3.connect(
                f"{self.path.resolve().as_uri()}?mode=ro", uri=True, timeout=timeout,
                isolation_level=None, check_same_thread=False)
            self._conn.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
            try:
                tables = {r[0] for r in self._conn.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'table'")}
            except sqlite3.DatabaseError as exc:
                if "malformed" in str(exc):
                    raise StorageError(fault(self.path, exc)) from None
                raise ValueError(f"{self.path}: not a torchnas SQLite storage ({exc})") from None
            if not {"studies", "events"} <= tables:
                raise ValueError(f"{self.path}: not a torchnas SQLite storage (it has no "
                                 f"studies and events tables)")
            return
        try:
            self._open(timeout)
        except (OSError, sqlite3.DatabaseError) as exc:  # a folder, a foreign file, no access
            if "malformed" in str(exc) or "full" in str(exc):
                raise StorageError(fault(self.path, exc)) from None
            raise ConfigError(f"storage {self.path}: cannot use it as a torchnas SQLite file "
                              f"({type(exc).__name__}: {exc})") from None

    def _open(self, timeout: float) -> None:
        """Opens (creating when missing) the database for writing, in WAL mode."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(
            str(self.path), timeout=timeout, isolation_level=None, check_same_thread=False
        )
        self._conn.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
        mode = self._conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise OSError(f"SQLite refused WAL journaling (got {mode!r})")
        self._conn.execute("PRAGMA synchronous = NORMAL")
        self._conn.execute("PRAGMA foreign_keys = ON")
        with self.exclusive():
            for stmt in _SCHEMA.split(";"):
                if stmt.strip():
                    self._conn.execute(stmt)

    @contextlib.contextmanager
    def _faults(self) -> Iterator[None]:
        """SQLite's errors as :class:`StorageError` (but a write refused by ``read_only``)."""
        try:
            yield
        except sqlite3.Error as exc:
            if self.read_only and "readonly" in str(exc):
                raise
            raise StorageError(fault(self.path, exc)) from exc

    def _rollback(self) -> None:
        with contextlib.suppress(sqlite3.Error):  # none open, or the file failed: keep the cause
            self._conn.execute("ROLLBACK")

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        with self._lock:
            if self._depth:
                self._depth += 1
                try:
                    yield
                finally:
                    self._depth -= 1
                return
            with self._faults():
                self._conn.execute("BEGIN IMMEDIATE")
            self._depth = 1
            try:
                yield
            except BaseException:
                self._depth = 0
                self._rollback()
                raise
            self._depth = 0
            try:
                with self._faults():
                    self._conn.execute("COMMIT")
            except BaseException:
                self._rollback()
                raise

    def create_study(self, name: str, config: dict[str, Any]) -> int:
        with self.exclusive():
            if self.find_study(name) is not None:
                raise ValueError(f"study {name!r} already exists in {self.path}")
            with self._faults():
                cur = self._conn.execute(
                    "INSERT INTO studies (name, config, created) VALUES (?, ?, ?)",
                    (name, json.dumps(config), time.time()),
                )
            return int(cur.lastrowid or 0)

    def find_study(self, name: str) -> tuple[int, dict[str, Any]] | None:
        with self._lock, self._faults():
            row = self._conn.execute(
                "SELECT id, config FROM studies WHERE name = ?", (name,)
            ).fetchone()
        return (int(row[0]), json.loads(row[1])) if row else None

    def study_names(self) -> list[str]:
        with self._lock, self._faults():
            rows = self._conn.execute("SELECT name FROM studies ORDER BY id").fetchall()
        return [r[0] for r in rows]

    def _missing(self, study_id: int) -> bool:
        row = self._conn.execute("SELECT 1 FROM studies WHERE id = ?", (study_id,)).fetchone()
        return row is None

    def append(self, study_id: int, events: list[Event]) -> None:
        rows = [(study_id, e.get("trial"), e["kind"], json.dumps(e)) for e in events]
        with self.exclusive():
            with self._faults():
                missing = self._missing(study_id)
                if not missing:
                    self._conn.executemany(
                        "INSERT INTO events (study_id, trial, kind, data) VALUES (?, ?, ?, ?)",
                        rows)
            if missing:
                raise KeyError(f"no study with id {study_id} in {self.path}")

    def read(self, study_id: int, after: int = 0) -> list[tuple[int, Event]]:
        with self._lock:
            with self._faults():
                rows = self._conn.execute(
                    "SELECT seq, data FROM events WHERE study_id = ? AND seq > ? ORDER BY seq",
                    (study_id, after),
                ).fetchall()
                missing = not rows and self._missing(study_id)
            if missing:
                raise KeyError(f"no study with id {study_id} in {self.path}")
        return [(int(seq), json.loads(data)) for seq, data in rows]

    def integrity_check(self) -> str:
        """SQLite's ``PRAGMA integrity_check`` result (``"ok"`` when healthy)."""
        with self._lock:
            return str(self._conn.execute("PRAGMA integrity_check").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __repr__(self) -> str:
        return f"SQLiteJournal({str(self.path)!r})"
