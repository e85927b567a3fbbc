"""The storage contract: an append-only journal of events, one stream per study."""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from collections.abc import Iterator
from typing import Any

__all__ = ["Event", "Journal"]

Event = dict[str, Any]
"""One journal record: ``{"kind": ..., "trial": number, "time": seconds, ...fields}``."""


class Journal(ABC):
    """Append-only storage of studies' events. Records are never updated or deleted.

    Every reader rebuilds state by replaying events in order (see :class:`TrialLog`), so a
    backend is only: studies by name, ``append`` and ``read`` of events, and an ``exclusive``
    section that makes read-check-append atomic across processes.
    """

    #: Opened only to look at (nothing may be written; see ``SQLiteJournal(read_only=True)``).
    read_only: bool = False

    @abstractmethod
    def create_study(self, name: str, config: dict[str, Any]) -> int:
        """Creates a study and returns its id; raises ``ValueError`` if the name is taken."""

    @abstractmethod
    def find_study(self, name: str) -> tuple[int, dict[str, Any]] | None:
        """The id and config of the study called ``name``, or ``None``."""

    @abstractmethod
    def study_names(self) -> list[str]:
        """Names of all studies, oldest first."""

    @abstractmethod
    def append(self, study_id: int, events: list[Event]) -> None:
        """Appends JSON-able events, atomically and durably (survives the process being killed).

        Raises ``KeyError`` for an unknown study id.
        """

    @abstractmethod
    def read(self, study_id: int, after: int = 0) -> list[tuple[int, Event]]:
        """Events with sequence number greater than ``after``, as ``(seq, event)``, in order.

        Events come back as their JSON round trip (tuples as lists). Sequence numbers grow
        strictly within a study. Raises ``KeyError`` for an unknown study id.
        """

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        """A section in which no other writer appends (read, check, then append atomically)."""
        yield

    def close(self) -> None:  # noqa: B027 - nothing to release by default
        """Releases connections; the journal must not be used afterwards."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"
