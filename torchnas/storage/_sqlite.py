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

from torchnas._util.errors import ConfigError
from torchnas.storage._base import Event, Journal

__all__ = ["SQLiteJournal"]

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
                raise ValueError(f"{self.path}: not a torchnas SQLite storage ({exc})") from None
            if not {"studies", "events"} <= tables:
                raise ValueError(f"{self.path}: not a torchnas SQLite storage (it has no "
                                 f"studies and events tables)")
            return
        try:
            self._open(timeout)
        except (OSError, sqlite3.DatabaseError) as exc:  # a folder, a foreign file, no access
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
    def exclusive(self) -> Iterator[None]:
        with self._lock:
            if self._depth:
                self._depth += 1
                try:
                    yield
                finally:
                    self._depth -= 1
                return
            self._conn.execute("BEGIN IMMEDIATE")
            self._depth = 1
            try:
                yield
            except BaseException:
                self._depth = 0
                self._conn.execute("ROLLBACK")
                raise
            self._depth = 0
            self._conn.execute("COMMIT")

    def create_study(self, name: str, config: dict[str, Any]) -> int:
        with self.exclusive():
            if self.find_study(name) is not None:
                raise ValueError(f"study {name!r} already exists in {self.path}")
            cur = self._conn.execute(
                "INSERT INTO studies (name, config, created) VALUES (?, ?, ?)",
                (name, json.dumps(config), time.time()),
            )
            return int(cur.lastrowid or 0)

    def find_study(self, name: str) -> tuple[int, dict[str, Any]] | None:
        with self._lock:
            row = self._conn.execute(
                "SELECT id, config FROM studies WHERE name = ?", (name,)
            ).fetchone()
        return (int(row[0]), json.loads(row[1])) if row else None

    def study_names(self) -> list[str]:
        with self._lock:
            rows = self._conn.execute("SELECT name FROM studies ORDER BY id").fetchall()
        return [r[0] for r in rows]

    def _missing(self, study_id: int) -> bool:
        row = self._conn.execute("SELECT 1 FROM studies WHERE id = ?", (study_id,)).fetchone()
        return row is None

    def append(self, study_id: int, events: list[Event]) -> None:
        rows = [(study_id, e.get("trial"), e["kind"], json.dumps(e)) for e in events]
        with self.exclusive():
            if self._missing(study_id):
                raise KeyError(f"no study with id {study_id} in {self.path}")
            self._conn.executemany(
                "INSERT INTO events (study_id, trial, kind, data) VALUES (?, ?, ?, ?)", rows
            )

    def read(self, study_id: int, after: int = 0) -> list[tuple[int, Event]]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT seq, data FROM events WHERE study_id = ? AND seq > ? ORDER BY seq",
                (study_id, after),
            ).fetchall()
            if not rows and self._missing(study_id):
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
