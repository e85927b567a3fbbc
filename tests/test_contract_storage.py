"""The storage contract (``torchnas.testing.storage``) over the built-in backends, each opened
by its URL: the journal contract in memory, the persistent one on an SQLite file."""

from __future__ import annotations

from pathlib import Path

import pytest

from torchnas.testing.storage import (
    JournalContract,
    OpenJournal,
    PersistentJournalContract,
    by_name,
    registered,
)


class TestTransientJournals(JournalContract):
    @pytest.fixture(params=registered(persistent=False))
    def open_journal(self, request: pytest.FixtureRequest, tmp_path: Path) -> OpenJournal:
        return by_name(request.param, tmp_path)


class TestPersistentJournals(PersistentJournalContract):
    @pytest.fixture(params=registered(persistent=True))
    def open_journal(self, request: pytest.FixtureRequest, tmp_path: Path) -> OpenJournal:
        return by_name(request.param, tmp_path)
