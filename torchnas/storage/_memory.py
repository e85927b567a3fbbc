"""In-memory journal: for quick studies and tests; gone when the process ends."""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from typing import Any

from torchnas.storage._base import Event, Journal

__all__ = ["MemoryJournal"]


class MemoryJournal(Journal):
    """Keeps every study's events as JSON text in lists, guarded by a lock (thread-safe).

    Events and configs are stored as JSON, exactly as the SQLite journal stores them, so both
    hand back the same thing (tuples come back as lists, non-JSON values fail on ``append``).
    """

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._studies: dict[str, tuple[int, str]] = {}
        self._events: dict[int, list[tuple[int, str]]] = {}
        self._seq = 0

    def create_study(self, name: str, config: dict[str, Any]) -> int:
        text = json.dumps(config)
        with self._lock:
            if name in self._studies:
                raise ValueError(f"study {name!r} already exists")
            sid = len(self._studies) + 1
            self._studies[name] = (sid, text)
            self._events[sid] = []
            return sid

    def find_study(self, name: str) -> tuple[int, dict[str, Any]] | None:
        with self._lock:
            found = self._studies.get(name)
        return (found[0], json.loads(found[1])) if found else None

    def study_names(self) -> list[str]:
        with self._lock:
            return list(self._studies)

    def _log(self, study_id: int) -> list[tuple[int, str]]:
        log = self._events.get(study_id)
        if log is None:
            raise KeyError(f"no study with id {study_id}")
        return log

    def append(self, study_id: int, events: list[Event]) -> None:
        texts = [json.dumps(e) for e in events]
        with self._lock:
            log = self._log(study_id)
            for text in texts:
                self._seq += 1
                log.append((self._seq, text))

    def read(self, study_id: int, after: int = 0) -> list[tuple[int, Event]]:
        with self._lock:
            log = self._log(study_id)
            lo, hi = 0, len(log)
            while lo < hi:  # binary search: reading new events costs O(log n + new)
                mid = (lo + hi) // 2
                if log[mid][0] <= after:
                    lo = mid + 1
                else:
                    hi = mid
            new = log[lo:]
        return [(seq, json.loads(text)) for seq, text in new]

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        with self._lock:
            yield
