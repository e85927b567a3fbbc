"""Storage URLs, and what only the SQLite journal promises (WAL, rollback, an append-only
events table). The contract every journal keeps runs in ``test_contract_storage.py``, once per
real backend; here each way to spell a storage only has to open the same thing.
"""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import torchnas as tn
from torchnas.storage import MemoryJournal, SQLiteJournal, get_storage


@pytest.fixture
def sqlite(tmp_path: Path) -> Iterator[SQLiteJournal]:
    journal = SQLiteJournal(tmp_path / "journal.db")
    yield journal
    journal.close()


def raw(path: Path) -> sqlite3.Connection:
    """A plain sqlite3 connection to the journal's file, beside the journal's own."""
    return sqlite3.connect(str(path), isolation_level=None, timeout=30)


# -- names and kinds ----------------------------------------------------------------------------
def test_get_storage_picks_the_backend(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert isinstance(get_storage(None), MemoryJournal)
    assert isinstance(get_storage(":memory:"), MemoryJournal)
    mem = MemoryJournal()
    assert get_storage(mem) is mem
    monkeypatch.chdir(tmp_path)
    rel = get_storage("sqlite:///a/rel.db")
    assert isinstance(rel, SQLiteJournal) and rel.path == Path("a/rel.db")
    assert (tmp_path / "a" / "rel.db").exists()
    absolute = get_storage(f"sqlite:///{tmp_path}/b/abs.db")  # sqlite:////tmp/... absolute
    assert f"sqlite:///{tmp_path}".startswith("sqlite:////")
    assert isinstance(absolute, SQLiteJournal) and absolute.path == tmp_path / "b" / "abs.db"
    assert (tmp_path / "b" / "abs.db").exists()
    plain = get_storage("plain.db")
    assert isinstance(plain, SQLiteJournal) and (tmp_path / "plain.db").exists()
    for j in (rel, absolute, plain):
        j.close()


@pytest.mark.parametrize("url", ["postgresql://host/db", "redis://x", "sqlite:///"])
def test_get_storage_rejects_what_it_cannot_open(url: str) -> None:
    with pytest.raises(ValueError, match="storage"):
        get_storage(url)


@pytest.mark.parametrize(("spelling", "where"), [
    (lambda tmp: str(tmp / "sub" / "p.db"), "sub/p.db"),
    (lambda tmp: tmp / "q.db", "q.db"),
    (lambda tmp: "sqlite:///rel/r.db", "rel/r.db"),
    (lambda tmp: f"sqlite:///{tmp}/abs.db", "abs.db"),  # sqlite:////tmp/...: absolute
], ids=["path-str", "pathlib", "sqlite-relative", "sqlite-absolute"])
def test_each_spelling_of_a_file_opens_that_file(spelling: Any, where: str, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    url = spelling(tmp_path)
    journal = get_storage(url)
    assert isinstance(journal, SQLiteJournal)
    sid = journal.create_study("s", {"seed": 1})
    journal.append(sid, [{"kind": "report", "trial": 0}])
    journal.close()
    assert [p.relative_to(tmp_path) for p in tmp_path.rglob("*.db")] == [Path(where)]
    for again in (SQLiteJournal(tmp_path / where, read_only=True),  # the file, by its path
                  get_storage(url, read_only=True)):  # the spelling finds it again
        assert again.read_only and again.find_study("s") == (sid, {"seed": 1})
        assert [e for _, e in again.read(sid)] == [{"kind": "report", "trial": 0}]
        again.close()


@pytest.mark.parametrize("spelling", [None, ":memory:", "sqlite:///:memory:"])
def test_each_spelling_of_memory_opens_a_new_journal(spelling: str | None) -> None:
    a, b = get_storage(spelling), get_storage(spelling)
    assert isinstance(a, MemoryJournal) and isinstance(b, MemoryJournal) and a is not b
    a.create_study("s", {})
    assert b.study_names() == []


# -- what only SQLite promises -----------------------------------------------------------------
def ev(i: int) -> dict[str, Any]:
    return {"kind": "report", "trial": i % 3, "time": 1000.0 + i, "step": i}


def test_sqlite_exclusive_rolls_back_on_error(sqlite: SQLiteJournal) -> None:
    sid = sqlite.create_study("s", {})
    with pytest.raises(RuntimeError), sqlite.exclusive():
        sqlite.append(sid, [ev(0)])
        raise RuntimeError("check failed")
    assert sqlite.read(sid) == []
    sqlite.append(sid, [ev(1)])  # the journal is usable afterwards
    assert len(sqlite.read(sid)) == 1


def test_wal_mode_and_integrity(sqlite: SQLiteJournal) -> None:
    sid = sqlite.create_study("s", {})
    sqlite.append(sid, [ev(i) for i in range(10)])
    with raw(sqlite.path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert sqlite.integrity_check() == "ok"


def space(hp: tn.HP) -> float:
    x = hp.int("x", 0, 20)
    if hp.bool("fail"):
        raise RuntimeError("boom")
    if x > 15:
        hp.trial.report(0, {"acc": x / 20})
        raise tn.TrialPruned()
    return x / 20


def interrupted(hp: tn.HP) -> float:
    hp.int("x", 0, 20)
    raise KeyboardInterrupt


def test_the_events_table_is_append_only(sqlite: SQLiteJournal) -> None:
    """A real study (complete, failed, pruned and interrupted trials, reopened) never updates
    or deletes an event row: triggers would abort it, and earlier rows stay byte-identical."""
    path = sqlite.path
    with raw(path) as conn:
        conn.execute("CREATE TRIGGER no_update BEFORE UPDATE ON events "
                     "BEGIN SELECT RAISE(ABORT, 'events were updated'); END")
        conn.execute("CREATE TRIGGER no_delete BEFORE DELETE ON events "
                     "BEGIN SELECT RAISE(ABORT, 'events were deleted'); END")
    study = tn.Study(name="s", storage=sqlite, objectives={"acc": "max"},
                     strategy="random", seed=1)
    snapshots: list[list[tuple[int, str]]] = []

    def snapshot() -> None:
        with raw(path) as conn:
            snapshots.append(conn.execute("SELECT seq, data FROM events ORDER BY seq").fetchall())

    study.optimize(space, trials=10)
    snapshot()
    with pytest.raises(KeyboardInterrupt):
        study.optimize(interrupted, trials=1)
    snapshot()
    again = tn.load_study(SQLiteJournal(path), name="s")
    again.optimize(space, trials=10)
    snapshot()
    states = {t.state for t in again.trials}
    assert {tn.TrialState.COMPLETE, tn.TrialState.FAILED, tn.TrialState.PRUNED} <= states
    assert any(t.attempts == 2 for t in again.trials)
    for before, after in itertools.pairwise(snapshots):
        assert len(after) > len(before)
        assert after[: len(before)] == before  # old rows unchanged
    seqs = [s for s, _ in snapshots[-1]]
    assert seqs == sorted(set(seqs))
    again.journal.close()

