"""Saving what a damaged SQLite study file still holds: every readable study and event, copied
into a new file (``torchnas repair DB OUT``)."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

from torchnas._util.errors import StorageError
from torchnas.storage._sqlite import SQLiteJournal, fault

__all__ = ["Repaired", "repair"]

_CHUNK = 256  # events read at once; a chunk that fails is read again one event at a time


@dataclasses.dataclass(frozen=True)
class Repaired:
    """What :func:`repair` saved: the studies by name, events copied and events lost."""

    studies: tuple[str, ...]
    events: int
    lost: int


def _rows(conn: sqlite3.Connection, sql: str, args: tuple[int, ...]) -> list[tuple[object, ...]]:
    return list(conn.execute(sql, args).fetchall())


def _last(conn: sqlite3.Connection, table: str, key: str) -> int:
    """The largest key ``table`` ever had (the AUTOINCREMENT counter, else ``max``)."""
    for sql, args in (("SELECT seq FROM sqlite_sequence WHERE name = ?", (table,)),
                      (f"SELECT max({key}) FROM {table}", ())):
        try:
            row = conn.execute(sql, args).fetchone()
        except sqlite3.DatabaseError:
            continue
        if row and row[0] is not None:
            return int(row[0])
    return 0


def _readable(conn: sqlite3.Connection, sql: str, last: int) -> Iterator[tuple[object, ...]]:
    """The rows ``sql`` (with ``BETWEEN ? AND ?`` on the key, its first column) reads for keys
    1 to ``last``, skipping the ones a damaged page hides. A scan over a damaged page may fail
    or silently skip rows, so each key a chunk lacks is looked up on its own (by equality: a
    range of one key still walks into a damaged neighbour)."""
    one = sql.replace("BETWEEN ? AND ?", "= ?")
    for low in range(1, last + 1, _CHUNK):
        high = min(last, low + _CHUNK - 1)
        try:
            rows = {int(str(row[0])): row for row in _rows(conn, sql, (low, high))}
        except sqlite3.DatabaseError:
            rows = {}
        for key in range(low, high + 1):
            if key not in rows:
                with contextlib.suppress(sqlite3.DatabaseError):
                    rows.update((key, row) for row in _rows(conn, one, (key,)))
            if key in rows:
                yield rows[key]


def repair(source: str | os.PathLike[str], target: str | os.PathLike[str]) -> Repaired:
    """Copies every study and event of SQLite storage ``source`` that can still be read into a
    new file ``target`` (which must not exist), keeping their ids and order.

    Events on damaged pages are lost; the trials they belonged to are then missing, or left
    running (a study opened on the new file marks those interrupted, to run again).

    Raises:
        StorageError: ``source`` cannot be read at all, or ``target`` exists.
    """
    src, out = Path(source), Path(target)
    if not src.is_file():
        raise StorageError(f"no such storage file: {src}")
    if out.exists():
        raise StorageError(f"{out} exists: repair writes a new file")
    try:
        conn = sqlite3.connect(f"{src.resolve().as_uri()}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise StorageError(fault(src, exc)) from None
    try:
        studies = list(_readable(conn, "SELECT id, name, config, created FROM studies WHERE id "
                                       "BETWEEN ? AND ? ORDER BY id", _last(conn, "studies", "id")))
        if not studies:
            raise StorageError(f"storage {src}: no study can be read from it")
        last = _last(conn, "events", "seq")
        sql = ("SELECT seq, study_id, trial, kind, data FROM events WHERE seq BETWEEN ? AND ? "
               "ORDER BY seq")
        ids = {row[0] for row in studies}
        events = [row for row in _readable(conn, sql, last) if row[1] in ids and _json(row[4])]
    finally:
        conn.close()
    SQLiteJournal(out).close()  # the schema
    try:
        with sqlite3.connect(out) as new:
            new.executemany(
                "INSERT INTO studies (id, name, config, created) VALUES (?, ?, ?, ?)", studies)
            new.executemany(
                "INSERT INTO events (seq, study_id, trial, kind, data) VALUES (?, ?, ?, ?, ?)",
                events)
        new.close()
    except sqlite3.Error as exc:
        raise StorageError(fault(out, exc)) from None
    return Repaired(tuple(str(row[1]) for row in studies), len(events), last - len(events))


def _json(text: object) -> bool:
    """Whether a stored event is whole JSON (a damaged page may garble it)."""
    try:
        json.loads(str(text))
    except ValueError:
        return False
    return True
