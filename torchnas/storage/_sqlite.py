"""SQLite journal: durable, append-only, WAL mode, safe for several processes."""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from torchnas._util.errors import ConfigError, StorageError
from torchnas._util.process import owner_alive, owner_token
from torchnas.storage._base import Event, Journal
from torchnas.storage._reader import Reader

__all__ = ["SQLiteJournal", "fault"]

T = TypeVar("T")

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


#: Seconds between checkpoints of the WAL into the database file while events are appended.
CHECKPOINT_EVERY = 2.0


def _lost_its_wal(path: Path) -> bool:
    """Whether ``path`` is an SQLite file in WAL mode without its ``-wal`` file beside it (all
    its content may have been there; the caller checks it has no tables)."""
    try:
        with open(path, "rb") as fh:
            header = fh.read(20)
    except OSError:
        return False
    wal = path.with_name(path.name + "-wal")
    return (header.startswith(b"SQLite format 3\x00") and header[18:20] == b"\x02\x02"
            and not wal.exists())


def _writable(path: Path) -> bool:
    """Whether ``path`` (or, when missing, its folder) may be written, read-only mounts
    included."""
    return os.access(path if path.exists() else path.parent, os.W_OK) and os.access(
        path.parent, os.W_OK)


def _dead_writers(conn: sqlite3.Connection) -> list[str]:
    """The processes of this host registered as writers of the file that no longer run."""
    rows = conn.execute("SELECT key FROM meta WHERE key LIKE 'writer:%'").fetchall()
    return [k for (k,) in rows if owner_alive(k.removeprefix("writer:")) is False]


def _release(conn: sqlite3.Connection, lock: threading.RLock, writer: str) -> None:
    """This process writes the file no more (its registration goes, with those of writers that
    died: closing checkpoints what they committed), and its connection closes (also at exit)."""
    with lock, contextlib.suppress(sqlite3.Error):
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany("DELETE FROM meta WHERE key = ?",
                         [(writer,), *[(k,) for k in _dead_writers(conn)]])
        conn.execute("COMMIT")
    with lock:
        conn.close()


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
            self._reader: Reader | None = Reader(self.path, timeout)
            try:
                tables = self._query(lambda conn: {r[0] for r in conn.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'table'")})
            except StorageError:
                raise
            except sqlite3.DatabaseError as exc:
                raise ValueError(f"{self.path}: not a torchnas SQLite storage ({exc})") from None
            if not {"studies", "events"} <= tables:
                raise ValueError(f"{self.path}: not a torchnas SQLite storage (it has no "
                                 f"studies and events tables)")
            return
        self._reader = None
        try:
            self._open(timeout)
        except (OSError, sqlite3.DatabaseError) as exc:  # a folder, a foreign file, no access
            if "malformed" in str(exc) or "full" in str(exc):
                raise StorageError(fault(self.path, exc)) from None
            if not _writable(self.path):
                raise StorageError(
                    f"storage {self.path}: it cannot be written ({type(exc).__name__}: {exc}): "
                    f"the file or its folder is read-only. Reading works: torchnas trials / "
                    f"best / plot, tn.load_study(..., read_only=True)") from None
            raise ConfigError(f"storage {self.path}: cannot use it as a torchnas SQLite file "
                              f"({type(exc).__name__}: {exc})") from None

    def _open(self, timeout: float) -> None:
        """Opens (creating when missing) the database for writing, in WAL mode."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lost = _lost_its_wal(self.path)
        had_wal = self.path.with_name(self.path.name + "-wal").exists()
        self._conn = sqlite3.connect(
            str(self.path), timeout=timeout, isolation_level=None, check_same_thread=False
        )
        self._conn.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
        mode = self._conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise OSError(f"SQLite refused WAL journaling (got {mode!r})")
        self._conn.execute("PRAGMA synchronous = NORMAL")
        self._conn.execute("PRAGMA foreign_keys = ON")
        if lost and not self._conn.execute("SELECT 1 FROM sqlite_master").fetchone():
            self._conn.close()
            raise StorageError(
                f"storage {self.path}: the file was written in WAL mode but holds no tables and "
                f"its {self.path.name}-wal file is gone: its events were lost with that file "
                f"(deleted, or not copied with the database). Nothing was changed; restore the "
                f"-wal file beside it, or delete {self.path} to start a new study there")
        with self.exclusive():
            for stmt in _SCHEMA.split(";"):
                if stmt.strip():
                    self._conn.execute(stmt)
            dead = _dead_writers(self._conn)
            if not (dead and not had_wal):
                self._conn.executemany("DELETE FROM meta WHERE key = ?", [(k,) for k in dead])
                self._writer = f"writer:{owner_token()}"
                self._conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)",
                                   (self._writer, str(time.time())))
        if dead and not had_wal:
            self._conn.close()
            raise StorageError(
                f"storage {self.path}: the process {dead[0].removeprefix('writer:')} was writing "
                f"to it when it died, and the {self.path.name}-wal file it left is gone "
                f"(deleted, or not copied with the database): the events it wrote in its last "
                f"seconds are lost, and with a study made in those seconds, the whole study. "
                f"Nothing was changed. Restore the -wal file beside it; or, to go on with what "
                f"the file holds, `torchnas repair {self.path} NEW.db` and use NEW.db")
        self._timer: threading.Timer | None = None
        self._checkpoint()
        self._release = weakref.finalize(self, _release, self._conn, self._lock, self._writer)

    def _checkpoint(self) -> None:
        """Copies committed events from the WAL into the database file (without waiting for
        readers), so that a lost ``-wal`` file loses at most :data:`CHECKPOINT_EVERY` seconds of
        events, never the study."""
        with self._lock, self._faults():  # one thread at a time on the connection
            self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
            self._checkpointed = time.monotonic()

    @contextlib.contextmanager
    def _faults(self) -> Iterator[None]:
        """SQLite's errors as :class:`StorageError` (but a write refused by ``read_only``)."""
        try:
            yield
        except sqlite3.Error as exc:
            if self.read_only and "readonly" in str(exc):
                raise
            raise StorageError(fault(self.path, exc)) from exc

    def _query(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """``fn(connection)``: with this journal's own connection, or (``read_only``) one for
        this read only, opened so that nothing is written (see :mod:`._reader`); a read of a
        file without its WAL that a writer began to change meanwhile is read again."""
        with self._lock:
            if self._reader is None:
                with self._faults():
                    return fn(self._conn)
            for again in (False, True):
                try:
                    with self._reader.connection() as conn:
                        return fn(conn)
                except sqlite3.DatabaseError as exc:
                    if not again and self._reader.mode == "immutable":
                        continue  # read without locks: a writer may have begun just then
                    if not again and self._reader.mode == "ro" and "malformed" in str(exc):
                        self._reader.recover()  # a killed writer's WAL, read without recovery
                        continue
                    if "malformed" in str(exc):
                        raise StorageError(fault(self.path, exc)) from None
                    if "readonly" in str(exc) or "not a database" in str(exc):
                        raise
                    raise StorageError(fault(self.path, exc)) from exc
            raise AssertionError("unreachable")

    def _rollback(self) -> None:
        with contextlib.suppress(sqlite3.Error):  # none open, or the file failed: keep the cause
            self._conn.execute("ROLLBACK")

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        if self._reader is not None:  # nothing writes, so nothing to exclude
            with self._lock:
                yield
            return
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

    def _refuse_if_read_only(self) -> None:
        if self._reader is not None:
            raise sqlite3.OperationalError(
                f"attempt to write a readonly database: {self.path} was opened read_only")

    def create_study(self, name: str, config: dict[str, Any]) -> int:
        self._refuse_if_read_only()
        with self.exclusive():
            if self.find_study(name) is not None:
                raise ValueError(f"study {name!r} already exists in {self.path}")
            with self._faults():
                cur = self._conn.execute(
                    "INSERT INTO studies (name, config, created) VALUES (?, ?, ?)",
                    (name, json.dumps(config), time.time()),
                )
        if not self._depth:
            self._checkpoint()  # the study itself is in the database file from now on
        return int(cur.lastrowid or 0)

    def find_study(self, name: str) -> tuple[int, dict[str, Any]] | None:
        row = self._query(lambda conn: conn.execute(
            "SELECT id, config FROM studies WHERE name = ?", (name,)).fetchone())
        return (int(row[0]), json.loads(row[1])) if row else None

    def study_names(self) -> list[str]:
        rows = self._query(
            lambda conn: conn.execute("SELECT name FROM studies ORDER BY id").fetchall())
        return [r[0] for r in rows]

    @staticmethod
    def _missing(conn: sqlite3.Connection, study_id: int) -> bool:
        row = conn.execute("SELECT 1 FROM studies WHERE id = ?", (study_id,)).fetchone()
        return row is None

    def append(self, study_id: int, events: list[Event]) -> None:
        self._refuse_if_read_only()
        rows = [(study_id, e.get("trial"), e["kind"], json.dumps(e)) for e in events]
        with self.exclusive():
            with self._faults():
                missing = self._missing(self._conn, study_id)
                if not missing:
                    self._conn.executemany(
                        "INSERT INTO events (study_id, trial, kind, data) VALUES (?, ?, ?, ?)",
                        rows)
            if missing:
                raise KeyError(f"no study with id {study_id} in {self.path}")
        if not self._depth and time.monotonic() - self._checkpointed > CHECKPOINT_EVERY:
            self._checkpoint()
        elif self._timer is None:  # and once the appends pause, what they wrote
            self._timer = threading.Timer(CHECKPOINT_EVERY, self._checkpoint_later)
            self._timer.daemon = True
            self._timer.start()

    def _checkpoint_later(self) -> None:
        with self._lock:
            self._timer = None
            if not self._depth and self._release.alive:
                with contextlib.suppress(sqlite3.Error, StorageError):
                    self._checkpoint()

    def read(self, study_id: int, after: int = 0) -> list[tuple[int, Event]]:
        def query(conn: sqlite3.Connection) -> tuple[list[Any], bool]:
            rows = conn.execute(
                "SELECT seq, data FROM events WHERE study_id = ? AND seq > ? ORDER BY seq",
                (study_id, after)).fetchall()
            return rows, not rows and self._missing(conn, study_id)

        rows, missing = self._query(query)
        if missing:
            raise KeyError(f"no study with id {study_id} in {self.path}")
        return [(int(seq), json.loads(data)) for seq, data in rows]

    def integrity_check(self) -> str:
        """SQLite's ``PRAGMA integrity_check`` result (``"ok"`` when healthy)."""
        return str(self._query(
            lambda conn: conn.execute("PRAGMA integrity_check").fetchone()[0]))

    def close(self) -> None:
        """Closes the file: SQLite copies the WAL into it and removes the ``-wal`` file (when
        no other process has it open), and this process is no longer a writer of it."""
        with self._lock:
            if self._reader is not None:
                self._reader.close()
            else:
                if self._timer is not None:
                    self._timer.cancel()
                self._release()

    def __repr__(self) -> str:
        return f"SQLiteJournal({str(self.path)!r})"
