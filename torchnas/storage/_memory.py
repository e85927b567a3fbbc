"""In-memory journal: for quick studies and tests; gone when the process ends."""

from __future__ import annotations

import contextlib
import copy
import threading
from collections.abc import Iterator
from typing import Any

from torchnas.storage._base import Event, Journal

__all__ = ["MemoryJournal"]


class MemoryJournal(Journal):
    """Keeps every study's events in lists, guarded by a lock (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._studies: dict[str, tuple[int, dict[str, Any]]] = {}
        self._events: dict[int, list[tuple[int, Event]]] = {}
        self._seq = 0

    def create_study(self, name: str, config: dict[str, Any]) -> int:
        with self._lock:
            if name in self._studies:
                raise ValueError(f"study {name!r} already exists")
            sid = len(self._studies) + 1
            self._studies[name] = (sid, copy.deepcopy(config))
            self._events[sid] = []
            return sid

    def find_study(self, name: str) -> tuple[int, dict[str, Any]] | None:
        with self._lock:
            found = self._studies.get(name)
            return (found[0], copy.deepcopy(found[1])) if found else None

    def study_names(self) -> list[str]:
        with self._lock:
            return list(self._studies)

    def append(self, study_id: int, events: list[Event]) -> None:
        with self._lock:
            log = self._events[study_id]
            for event in events:
                self._seq += 1
                log.append((self._seq, copy.deepcopy(event)))

    def read(self, study_id: int, after: int = 0) -> list[tuple[int, Event]]:
        with self._lock:
            log = self._events[study_id]
            lo, hi = 0, len(log)
            while lo < hi:  # binary search: reading new events costs O(log n + new)
                mid = (lo + hi) // 2
                if log[mid][0] <= after:
                    lo = mid + 1
                else:
                    hi = mid
            return [(seq, copy.deepcopy(e)) for seq, e in log[lo:]]

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        with self._lock:
            yield
