"""One contract for every storage backend (in memory, SQLite, and each way to name them).

Modelled on Optuna's ``optuna/testing/pytest_storages.py``: the same checks run on every
backend, so a new backend is covered by adding one factory to ``BACKENDS``.
"""

from __future__ import annotations

import itertools
import math
import sqlite3
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import torchnas as tn
from torchnas.storage import Journal, MemoryJournal, SQLiteJournal, TrialLog, get_storage


@dataclass
class Backend:
    """A journal under test, and how to open the same storage again (``None``: in memory)."""

    journal: Journal
    reopen: Callable[[], Journal] | None
    path: Path | None = None


def _sqlite_at(path: Path) -> Backend:
    return Backend(SQLiteJournal(path), lambda: SQLiteJournal(path), path)


def _url(url: str, path: Path) -> Backend:
    return Backend(get_storage(url), lambda: get_storage(url), path)


BACKENDS: dict[str, Callable[[Path, pytest.MonkeyPatch], Backend]] = {
    "memory": lambda tmp, mp: Backend(MemoryJournal(), None),
    "sqlite": lambda tmp, mp: _sqlite_at(tmp / "journal.db"),
    "url-none": lambda tmp, mp: Backend(get_storage(None), None),
    "url-memory": lambda tmp, mp: Backend(get_storage(":memory:"), None),
    "url-sqlite-memory": lambda tmp, mp: Backend(get_storage("sqlite:///:memory:"), None),
    "url-path-str": lambda tmp, mp: _url(str(tmp / "sub" / "p.db"), tmp / "sub" / "p.db"),
    "url-pathlib": lambda tmp, mp: Backend(get_storage(tmp / "q.db"),
                                           lambda: get_storage(tmp / "q.db"), tmp / "q.db"),
    "url-sqlite-relative": lambda tmp, mp: (mp.chdir(tmp), _url("sqlite:///rel/r.db",
                                                                 tmp / "rel" / "r.db"))[1],
    "url-sqlite-absolute": lambda tmp, mp: _url(f"sqlite:///{tmp}/abs.db", tmp / "abs.db"),
}


ON_DISK = sorted(name for name in BACKENDS if "sqlite" in name or "path" in name
                 if "memory" not in name)


@pytest.fixture(params=sorted(BACKENDS))
def backend(request: pytest.FixtureRequest, tmp_path: Path,
            monkeypatch: pytest.MonkeyPatch) -> Iterator[Backend]:
    made = BACKENDS[request.param](tmp_path, monkeypatch)
    yield made
    made.journal.close()


@pytest.fixture(params=ON_DISK)
def disk(request: pytest.FixtureRequest, tmp_path: Path,
         monkeypatch: pytest.MonkeyPatch) -> Iterator[Backend]:
    """The backends that keep a file (SQLite), however named."""
    made = BACKENDS[request.param](tmp_path, monkeypatch)
    assert made.path is not None and made.reopen is not None
    yield made
    made.journal.close()


@pytest.fixture
def journal(backend: Backend) -> Journal:
    return backend.journal


def test_every_file_backend_is_covered(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, make in BACKENDS.items():
        (tmp_path / name).mkdir()
        made = make(tmp_path / name, monkeypatch)
        assert (made.path is not None) == (name in ON_DISK), name
        made.journal.close()


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


# -- studies ------------------------------------------------------------------------------------
def test_create_and_find_studies(journal: Journal) -> None:
    assert journal.study_names() == []
    assert journal.find_study("a") is None
    config = {"objectives": {"acc": "max"}, "seed": 3, "nested": {"list": [1, 2.5, None]}}
    a = journal.create_study("a", config)
    b = journal.create_study("b", {})
    assert isinstance(a, int) and isinstance(b, int) and a != b
    assert journal.find_study("a") == (a, config)
    assert journal.find_study("b") == (b, {})
    assert journal.find_study("c") is None
    assert journal.study_names() == ["a", "b"]  # oldest first


def test_duplicate_study_name_is_an_error(journal: Journal) -> None:
    journal.create_study("dup", {"x": 1})
    with pytest.raises(ValueError, match="'dup'"):
        journal.create_study("dup", {"x": 2})
    assert journal.find_study("dup") is not None
    assert journal.find_study("dup")[1] == {"x": 1}  # type: ignore[index]
    assert journal.study_names() == ["dup"]


def test_configs_are_copies(journal: Journal) -> None:
    config: dict[str, Any] = {"list": [1]}
    sid = journal.create_study("s", config)
    config["list"].append(2)
    found = journal.find_study("s")
    assert found == (sid, {"list": [1]})
    found[1]["list"].append(3)  # type: ignore[index]
    assert journal.find_study("s") == (sid, {"list": [1]})


# -- events -------------------------------------------------------------------------------------
def ev(i: int, **extra: Any) -> dict[str, Any]:
    return {"kind": "report", "trial": i % 3, "time": 1000.0 + i, "step": i, **extra}


def test_append_and_read_with_a_cursor(journal: Journal) -> None:
    sid = journal.create_study("s", {})
    assert journal.read(sid) == []
    journal.append(sid, [ev(0), ev(1)])
    journal.append(sid, [])
    journal.append(sid, [ev(2)])
    got = journal.read(sid)
    assert [e for _, e in got] == [ev(0), ev(1), ev(2)]
    seqs = [s for s, _ in got]
    assert all(isinstance(s, int) for s in seqs) and seqs == sorted(set(seqs))
    assert journal.read(sid, after=seqs[0]) == got[1:]
    assert journal.read(sid, after=seqs[-1]) == []
    journal.append(sid, [ev(3)])
    new = journal.read(sid, after=seqs[-1])
    assert [e for _, e in new] == [ev(3)] and new[0][0] > seqs[-1]
    assert journal.read(sid, after=0) == [*got, *new]


def test_events_come_back_as_json(journal: Journal) -> None:
    sid = journal.create_study("s", {})
    event = {"kind": "finish", "trial": 0, "arch": {"skip": (0, 2), "act": "relu"},
             "metrics": {"acc": 0.5, "nan": math.nan}, "error": None, "feasible": True}
    journal.append(sid, [event])
    [(_, back)] = journal.read(sid)
    assert back["arch"] == {"skip": [0, 2], "act": "relu"}  # the tuple comes back as a list
    assert math.isnan(back["metrics"]["nan"]) and back["metrics"]["acc"] == 0.5
    assert back["error"] is None and back["feasible"] is True
    back["arch"]["act"] = "gelu"  # what a reader gets is its own copy
    event["arch"]["act"] = "tanh"
    assert journal.read(sid)[0][1]["arch"]["act"] == "relu"


def test_a_batch_with_a_non_json_event_appends_nothing(journal: Journal) -> None:
    sid = journal.create_study("s", {})
    journal.append(sid, [ev(0)])
    with pytest.raises(TypeError):
        journal.append(sid, [ev(1), {"kind": "report", "trial": 0, "bad": object()}])
    assert [e for _, e in journal.read(sid)] == [ev(0)]


def test_events_are_isolated_per_study(journal: Journal) -> None:
    a = journal.create_study("a", {})
    b = journal.create_study("b", {})
    for i in range(6):
        journal.append(a if i % 2 else b, [ev(i, study="a" if i % 2 else "b")])
    got_a = journal.read(a)
    got_b = journal.read(b)
    assert [e["step"] for _, e in got_a] == [1, 3, 5]
    assert [e["step"] for _, e in got_b] == [0, 2, 4]
    # a cursor from one study never hides or shows events of the other
    assert [e["step"] for _, e in journal.read(a, after=got_b[-1][0])] == [5]


def test_unknown_study_id(journal: Journal) -> None:
    sid = journal.create_study("s", {})
    with pytest.raises(KeyError):
        journal.read(sid + 100)
    with pytest.raises(KeyError):
        journal.append(sid + 100, [ev(0)])
    assert journal.read(sid) == []


# -- exclusive sections -------------------------------------------------------------------------
def counter_worker(journal: Journal, sid: int, rounds: int, errors: list[BaseException]) -> None:
    """Read the last counter, then append the next one: a race unless exclusive() holds."""
    try:
        for _ in range(rounds):
            with journal.exclusive():
                events = journal.read(sid)
                last = events[-1][1]["n"] if events else -1
                journal.append(sid, [{"kind": "count", "n": last + 1}])
    except BaseException as exc:  # pragma: no cover - reported by the test
        errors.append(exc)


def check_counter(journal: Journal, sid: int, total: int) -> None:
    values = [e["n"] for _, e in journal.read(sid)]
    assert values == list(range(total)), "two writers read the same last value"


def test_exclusive_is_atomic_across_threads(journal: Journal) -> None:
    sid = journal.create_study("s", {})
    errors: list[BaseException] = []
    threads = [threading.Thread(target=counter_worker, args=(journal, sid, 25, errors))
               for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    check_counter(journal, sid, 100)


def test_exclusive_is_atomic_across_connections(disk: Backend) -> None:
    backend = disk
    sid = backend.journal.create_study("s", {})
    assert backend.reopen is not None and backend.path is not None
    path = backend.path
    others = [backend.reopen() for _ in range(3)]
    errors: list[BaseException] = []
    threads = [threading.Thread(target=counter_worker, args=(j, sid, 20, errors))
               for j in [backend.journal, *others]]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for j in others:
        j.close()
    assert errors == []
    check_counter(backend.journal, sid, 80)
    with raw(path) as conn:
        assert conn.execute("SELECT COUNT(*) FROM events").fetchone()[0] == 80


def test_exclusive_blocks_another_connection(disk: Backend) -> None:
    backend = disk
    sid = backend.journal.create_study("s", {})
    assert backend.reopen is not None
    other = backend.reopen()
    entered, done = threading.Event(), threading.Event()

    def writer() -> None:
        entered.wait()
        other.append(sid, [{"kind": "late"}])
        done.set()

    t = threading.Thread(target=writer)
    t.start()
    with backend.journal.exclusive():
        backend.journal.append(sid, [{"kind": "first"}])
        entered.set()
        assert not done.wait(0.3), "another connection wrote inside an exclusive section"
        backend.journal.append(sid, [{"kind": "second"}])
    t.join(10)
    assert done.is_set()
    assert [e["kind"] for _, e in backend.journal.read(sid)] == ["first", "second", "late"]
    other.close()


def test_exclusive_is_reentrant(journal: Journal) -> None:
    sid = journal.create_study("s", {})
    with journal.exclusive():
        journal.append(sid, [ev(0)])
        with journal.exclusive():
            journal.append(sid, [ev(1)])
            assert len(journal.read(sid)) == 2
        journal.append(sid, [ev(2)])
    assert len(journal.read(sid)) == 3


def test_sqlite_exclusive_rolls_back_on_error(disk: Backend) -> None:
    backend = disk
    sid = backend.journal.create_study("s", {})
    with pytest.raises(RuntimeError), backend.journal.exclusive():
        backend.journal.append(sid, [ev(0)])
        raise RuntimeError("check failed")
    assert backend.journal.read(sid) == []
    backend.journal.append(sid, [ev(1)])  # the journal is usable afterwards
    assert len(backend.journal.read(sid)) == 1


# -- SQLite files -------------------------------------------------------------------------------
def test_reopening_sees_everything(disk: Backend) -> None:
    backend = disk
    assert backend.reopen is not None
    a = backend.journal.create_study("a", {"seed": 1})
    b = backend.journal.create_study("b", {"seed": 2})
    backend.journal.append(a, [ev(i) for i in range(5)])
    backend.journal.append(b, [ev(9)])
    before_a, before_b = backend.journal.read(a), backend.journal.read(b)
    backend.journal.close()
    again = backend.reopen()
    backend.journal = again
    assert again.study_names() == ["a", "b"]
    assert again.find_study("a") == (a, {"seed": 1})
    assert again.read(a) == before_a and again.read(b) == before_b
    again.append(a, [ev(5)])
    assert again.read(a)[-1][0] > before_b[-1][0]  # sequence numbers keep growing
    with pytest.raises(ValueError):
        again.create_study("a", {})


def test_wal_mode_and_integrity(disk: Backend) -> None:
    backend = disk
    assert backend.path is not None
    path = backend.path
    sid = backend.journal.create_study("s", {})
    backend.journal.append(sid, [ev(i) for i in range(10)])
    with raw(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert isinstance(backend.journal, SQLiteJournal)
    assert backend.journal.integrity_check() == "ok"


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


def test_the_events_table_is_append_only(disk: Backend) -> None:
    """A real study (complete, failed, pruned and interrupted trials, reopened) never updates
    or deletes an event row: triggers would abort it, and earlier rows stay byte-identical."""
    backend = disk
    assert backend.path is not None
    path = backend.path
    with raw(path) as conn:
        conn.execute("CREATE TRIGGER no_update BEFORE UPDATE ON events "
                     "BEGIN SELECT RAISE(ABORT, 'events were updated'); END")
        conn.execute("CREATE TRIGGER no_delete BEFORE DELETE ON events "
                     "BEGIN SELECT RAISE(ABORT, 'events were deleted'); END")
    study = tn.Study(name="s", storage=backend.journal, objectives={"acc": "max"},
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
    assert backend.reopen is not None
    again = tn.load_study(backend.reopen(), name="s")
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


# -- the reader ---------------------------------------------------------------------------------
def test_trial_log_reads_only_new_events(journal: Journal) -> None:
    sid = journal.create_study("s", {})
    log = TrialLog(journal, sid)
    journal.append(sid, [{"kind": "create", "trial": 0, "time": 1.0, "owner": "me"}])
    assert log.sync() == []
    first = log.cursor
    assert first > 0 and log.trials[0].state is tn.TrialState.RUNNING
    journal.append(sid, [
        {"kind": "arch", "trial": 0, "time": 2.0, "arch": {"x": 3},
         "domains": {"x": {"kind": "int", "low": 0, "high": 5, "step": 1, "log": False}}},
        {"kind": "finish", "trial": 0, "time": 3.0, "state": "complete",
         "metrics": {"acc": 0.5}, "feasible": True, "error": None},
        {"kind": "from-a-newer-version", "trial": 0, "time": 4.0},
    ])
    [done] = log.sync()
    assert log.cursor > first
    assert done.number == 0 and done.arch == {"x": 3} and done.metrics == {"acc": 0.5}
    assert done.domains["x"] == tn.space.Int(0, 5)
    assert done.duration == 2.0
    assert log.sync() == [] and journal.read(sid, log.cursor) == []
    # a late event for a finished trial changes nothing
    journal.append(sid, [{"kind": "report", "trial": 0, "time": 5.0, "step": 1, "metrics": {}}])
    log.sync()
    assert log.trials[0] == done
