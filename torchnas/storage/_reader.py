"""Reading an SQLite journal without writing a byte: not beside the file, not in it.

SQLite's ``mode=ro`` still creates ``-wal``/``-shm`` files beside a WAL database (and leaves
them), and cannot open one on a read-only mount or for a user who may only read. So a reader
picks, at each read:

- ``immutable``: no ``-wal`` file beside the database, so everything is in the file itself
  (a cleanly closed study): opened without locks, nothing created;
- ``ro``: a writer is at work (its ``-wal`` is there): read through its WAL, creating nothing;
- ``copy``: where neither can open (a read-only folder or mount carrying ``-wal``/``-shm``, a
  file the user may only read), the database and its WAL are copied into a private temporary
  folder, read there, and the copy is removed when the journal closes. Once too where a
  read-only view of a killed writer's WAL failed: SQLite recovers the copy's WAL in full.
"""

from __future__ import annotations

import contextlib
import shutil
import sqlite3
import tempfile
import weakref
from collections.abc import Iterator
from pathlib import Path

__all__ = ["Reader"]

#: SQLite's words for "this way of opening cannot work here" (another way may).
_CANNOT = ("unable to open", "readonly", "read-only", "disk i/o", "locking protocol",
           "attempt to write")


class Reader:
    """Read-only connections to the database at ``path``, one per read (see the module)."""

    def __init__(self, path: Path, timeout: float) -> None:
        self.path = path
        self.timeout = timeout
        self.mode = ""  # how the last read opened: immutable, ro or copy
        self._copy: Path | None = None
        self._copied: tuple[tuple[int, int], ...] | None = None
        self._cleanup: weakref.finalize | None = None

    def _wal(self) -> Path:
        return self.path.with_name(self.path.name + "-wal")

    def _connect(self, path: Path, query: str) -> sqlite3.Connection:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?{query}", uri=True,
                               timeout=self.timeout, isolation_level=None,
                               check_same_thread=False)
        conn.execute(f"PRAGMA busy_timeout = {int(self.timeout * 1000)}")
        return conn

    @contextlib.contextmanager
    def connection(self) -> Iterator[sqlite3.Connection]:
        """A connection for one read, closed after it."""
        conn = self._open()
        try:
            yield conn
        finally:
            conn.close()

    def recover(self) -> None:
        """The next read goes through a private copy, where SQLite recovers the WAL in full (a
        read-only connection cannot: right after a writer was killed its view may fail)."""
        self._copy_next = True

    def _open(self) -> sqlite3.Connection:
        if getattr(self, "_copy_next", False):
            self._copy_next = False
            self._copied = None  # copy afresh
            conn = self._from_copy()
            self.mode = "recovered"  # once: the next read opens the file itself again
            return conn
        if self.mode != "copy":
            query = "mode=ro" if self._wal().exists() else "immutable=1"
            conn = self._connect(self.path, query)
            try:
                conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
                self.mode = query.partition("=")[0].replace("mode", "ro")
                return conn
            except sqlite3.OperationalError as exc:
                conn.close()
                if not any(word in str(exc).lower() for word in _CANNOT):
                    raise
        return self._from_copy()

    def _signature(self) -> tuple[tuple[int, int], ...]:
        out = []
        for p in (self.path, self._wal()):
            try:
                st = p.stat()
                out.append((st.st_size, st.st_mtime_ns))
            except FileNotFoundError:
                out.append((-1, 0))
        return tuple(out)

    def _from_copy(self) -> sqlite3.Connection:
        """A connection to a private copy of the database and its WAL (renewed when they
        change)."""
        self.mode = "copy"
        now = self._signature()
        if self._copy is None:
            folder = Path(tempfile.mkdtemp(prefix="torchnas-read-"))
            self._copy = folder / self.path.name
            self._cleanup = weakref.finalize(self, shutil.rmtree, folder, True)
        if now != self._copied:
            for p in self._copy.parent.iterdir():
                p.unlink()
            shutil.copyfile(self.path, self._copy)
            if self._wal().exists():
                shutil.copyfile(self._wal(), self._copy.with_name(self._copy.name + "-wal"))
            self._copied = now
        conn = sqlite3.connect(str(self._copy), timeout=self.timeout, isolation_level=None,
                               check_same_thread=False)
        conn.execute("PRAGMA query_only = ON")
        return conn

    def close(self) -> None:
        """Removes the private copy, if one was made."""
        if self._cleanup is not None:
            self._cleanup()
