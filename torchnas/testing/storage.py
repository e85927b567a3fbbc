"""The contract every storage backend keeps (Optuna's ``pytest_storages``, for journals).

Subclass :class:`JournalContract` (any journal) or :class:`PersistentJournalContract` (a journal
that outlives its connection: files, databases) in a test module and give it an
``open_journal`` fixture: a function ``open_journal(read_only=False)`` connecting to the
storage under test (each call a new connection to the same storage, for a persistent one).
:func:`registered` lists the built-in backends, opened by URL with :func:`by_name`.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import torchnas as tn
from torchnas.storage import Journal, TrialLog, get_storage

__all__ = ["BACKENDS", "JournalContract", "OpenJournal", "PersistentJournalContract", "by_name",
           "registered"]

OpenJournal = Callable[..., Journal]
"""``open_journal(read_only=False)``: a new connection to the storage under test."""

BACKENDS: dict[str, tuple[str, bool]] = {
    "memory": (":memory:", False),
    "sqlite": ("sqlite:///{folder}/journal.db", True),
}
"""The built-in backends: the URL that opens each (``{folder}``: a fresh folder) and whether
it persists (a new connection sees what an earlier one wrote)."""


def registered(persistent: bool) -> list[str]:
    """Names of the built-in backends that persist (or do not)."""
    return [name for name, (_, keeps) in BACKENDS.items() if keeps is persistent]


def by_name(name: str, folder: Path) -> OpenJournal:
    """An ``open_journal`` for the built-in backend ``name``, keeping its files in ``folder``."""
    url = BACKENDS[name][0].format(folder=folder)
    return lambda read_only=False: get_storage(url, read_only=read_only)


def ev(i: int, **extra: Any) -> dict[str, Any]:
    """A report event (distinct for each ``i``)."""
    return {"kind": "report", "trial": i % 3, "time": 1000.0 + i, "step": i, **extra}


def counter_worker(journal: Journal, sid: int, rounds: int, errors: list[BaseException]) -> None:
    """Read the last counter, then append the next one: a race unless exclusive() holds."""
    try:
        for _ in range(rounds):
            with journal.exclusive():
                events = journal.read(sid)
                last = events[-1][1]["n"] if events else -1
                journal.append(sid, [{"kind": "count", "n": last + 1}])
    except BaseException as exc:  # reported by the test
        errors.append(exc)


def race(journals: list[Journal], sid: int, rounds: int) -> None:
    """One thread per journal runs :func:`counter_worker`; no event may be lost or doubled."""
    errors: list[BaseException] = []
    threads = [threading.Thread(target=counter_worker, args=(j, sid, rounds, errors))
               for j in journals]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    values = [e["n"] for _, e in journals[0].read(sid)]
    assert values == list(range(rounds * len(journals))), "two writers read the same last value"


class JournalContract:
    """What every journal promises: studies by name, append and read of JSON events with a
    cursor, per-study isolation, exclusive sections that are atomic across threads and
    re-entrant, and a :class:`TrialLog` that reads only new events.

    A subclass provides the fixture ``open_journal`` (see the module).
    """

    @pytest.fixture
    def open_journal(self) -> OpenJournal:
        raise NotImplementedError("give the contract an `open_journal` fixture: "
                                  "(read_only=False) -> Journal")

    @pytest.fixture
    def connect(self, open_journal: OpenJournal) -> Iterator[OpenJournal]:
        """``open_journal``, closing every connection at the end of the test."""
        opened: list[Journal] = []

        def connect(read_only: bool = False) -> Journal:
            journal = open_journal(read_only=read_only)
            opened.append(journal)
            return journal

        yield connect
        for journal in opened:
            journal.close()

    @pytest.fixture
    def journal(self, connect: OpenJournal) -> Journal:
        return connect()

    # -- studies --------------------------------------------------------------------------------
    def test_create_and_find_studies(self, journal: Journal) -> None:
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

    def test_duplicate_study_name_is_an_error(self, journal: Journal) -> None:
        journal.create_study("dup", {"x": 1})
        with pytest.raises(ValueError, match="'dup'"):
            journal.create_study("dup", {"x": 2})
        found = journal.find_study("dup")
        assert found is not None and found[1] == {"x": 1}
        assert journal.study_names() == ["dup"]

    def test_configs_are_copies(self, journal: Journal) -> None:
        config: dict[str, Any] = {"list": [1]}
        sid = journal.create_study("s", config)
        config["list"].append(2)
        found = journal.find_study("s")
        assert found == (sid, {"list": [1]})
        found[1]["list"].append(3)
        assert journal.find_study("s") == (sid, {"list": [1]})

    # -- events ---------------------------------------------------------------------------------
    def test_append_and_read_with_a_cursor(self, journal: Journal) -> None:
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

    def test_events_come_back_as_json(self, journal: Journal) -> None:
        sid = journal.create_study("s", {})
        arch: dict[str, Any] = {"skip": (0, 2), "act": "relu"}
        event = {"kind": "finish", "trial": 0, "arch": arch,
                 "metrics": {"acc": 0.5, "nan": math.nan}, "error": None, "feasible": True}
        journal.append(sid, [event])
        [(_, back)] = journal.read(sid)
        assert back["arch"] == {"skip": [0, 2], "act": "relu"}  # the tuple comes back a list
        assert math.isnan(back["metrics"]["nan"]) and back["metrics"]["acc"] == 0.5
        assert back["error"] is None and back["feasible"] is True
        back["arch"]["act"] = "gelu"  # what a reader gets is its own copy
        arch["act"] = "tanh"
        assert journal.read(sid)[0][1]["arch"]["act"] == "relu"

    def test_a_batch_with_a_non_json_event_appends_nothing(self, journal: Journal) -> None:
        sid = journal.create_study("s", {})
        journal.append(sid, [ev(0)])
        with pytest.raises(TypeError):
            journal.append(sid, [ev(1), {"kind": "report", "trial": 0, "bad": object()}])
        assert [e for _, e in journal.read(sid)] == [ev(0)]

    def test_events_are_isolated_per_study(self, journal: Journal) -> None:
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

    def test_unknown_study_id(self, journal: Journal) -> None:
        sid = journal.create_study("s", {})
        with pytest.raises(KeyError):
            journal.read(sid + 100)
        with pytest.raises(KeyError):
            journal.append(sid + 100, [ev(0)])
        assert journal.read(sid) == []

    # -- exclusive sections ---------------------------------------------------------------------
    def test_concurrent_writers_in_threads_lose_nothing(self, journal: Journal) -> None:
        sid = journal.create_study("s", {})
        race([journal] * 4, sid, 25)

    def test_exclusive_is_reentrant(self, journal: Journal) -> None:
        sid = journal.create_study("s", {})
        with journal.exclusive():
            journal.append(sid, [ev(0)])
            with journal.exclusive():
                journal.append(sid, [ev(1)])
                assert len(journal.read(sid)) == 2
            journal.append(sid, [ev(2)])
        assert len(journal.read(sid)) == 3

    # -- the reader -----------------------------------------------------------------------------
    def test_trial_log_reads_only_new_events(self, journal: Journal) -> None:
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
        journal.append(sid, [{"kind": "report", "trial": 0, "time": 5.0, "step": 1,
                              "metrics": {}}])
        log.sync()
        assert log.trials[0] == done


class PersistentJournalContract(JournalContract):
    """:class:`JournalContract`, and what a journal that outlives its connection promises:
    a new connection sees everything, writers on several connections lose nothing, an
    exclusive section holds off other connections, and a read-only connection reads (even
    what is written after it opened) but writes nothing."""

    def test_reopening_sees_everything(self, connect: OpenJournal) -> None:
        journal = connect()
        a = journal.create_study("a", {"seed": 1})
        b = journal.create_study("b", {"seed": 2})
        journal.append(a, [ev(i) for i in range(5)])
        journal.append(b, [ev(9)])
        before_a, before_b = journal.read(a), journal.read(b)
        journal.close()
        again = connect()
        assert again.study_names() == ["a", "b"]
        assert again.find_study("a") == (a, {"seed": 1})
        assert again.read(a) == before_a and again.read(b) == before_b
        again.append(a, [ev(5)])
        assert again.read(a)[-1][0] > before_b[-1][0]  # sequence numbers keep growing
        with pytest.raises(ValueError):
            again.create_study("a", {})

    def test_concurrent_writers_on_several_connections_lose_nothing(
            self, connect: OpenJournal) -> None:
        journal = connect()
        sid = journal.create_study("s", {})
        race([journal, *(connect() for _ in range(3))], sid, 20)
        assert len(connect().read(sid)) == 80

    def test_exclusive_blocks_another_connection(self, connect: OpenJournal) -> None:
        journal, other = connect(), connect()
        sid = journal.create_study("s", {})
        entered, done = threading.Event(), threading.Event()

        def writer() -> None:
            entered.wait()
            other.append(sid, [{"kind": "late"}])
            done.set()

        t = threading.Thread(target=writer)
        t.start()
        with journal.exclusive():
            journal.append(sid, [{"kind": "first"}])
            entered.set()
            assert not done.wait(0.3), "another connection wrote inside an exclusive section"
            journal.append(sid, [{"kind": "second"}])
        t.join(10)
        assert done.is_set()
        assert [e["kind"] for _, e in journal.read(sid)] == ["first", "second", "late"]

    def test_a_read_only_connection_reads_and_writes_nothing(self, connect: OpenJournal) -> None:
        journal = connect()
        sid = journal.create_study("s", {"seed": 1})
        journal.append(sid, [ev(0)])
        looker = connect(read_only=True)
        assert looker.read_only and not journal.read_only
        assert looker.study_names() == ["s"] and looker.find_study("s") == (sid, {"seed": 1})
        seen = looker.read(sid)
        assert [e for _, e in seen] == [ev(0)]
        journal.append(sid, [ev(1)])  # the writer goes on; the reader follows
        assert [e for _, e in looker.read(sid, after=seen[-1][0])] == [ev(1)]
        for write in (lambda: looker.append(sid, [ev(2)]),
                      lambda: looker.create_study("t", {})):
            with pytest.raises(Exception):  # noqa: B017 - any error, as long as nothing is written
                write()
        assert journal.study_names() == ["s"]
        assert [e for _, e in journal.read(sid)] == [ev(0), ev(1)]
