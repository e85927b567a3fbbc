"""The study's declared seams: ``hp.trial`` is a TrialHandle wherever the trial runs, executors
and trials use only the study's public driver API, and journal events are typed."""

from __future__ import annotations

import ast
from multiprocessing import Pipe
from pathlib import Path

import pytest

import torchnas as tn
from torchnas.execution._worker import Link, RemoteTrial
from torchnas.space import Categorical, TrialHandle
from torchnas.storage import EventKind, MemoryJournal, TrialLog, events

ROOT = Path(tn.__file__).parent


def test_the_in_process_and_the_remote_trial_are_trial_handles() -> None:
    study = tn.Study(objectives={"acc": "max"}, strategy="random")
    trial = study.ask()
    a, _ = Pipe()
    remote = RemoteTrial(Link(a), 3, 2.0)
    for handle in (trial, remote):
        assert isinstance(handle, TrialHandle)
        assert handle.hp.trial is handle
    assert not isinstance(object(), TrialHandle)


def _private_study_uses(path: Path) -> list[str]:
    """``x.study._name`` or ``study._name`` attribute reads in a module."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Attribute) and node.attr.startswith("_") \
                and not node.attr.startswith("__"):
            owner = node.value
            name = owner.attr if isinstance(owner, ast.Attribute) else getattr(owner, "id", "")
            if name == "study":
                found.append(f"{path.relative_to(ROOT)}:{node.lineno} study.{node.attr}")
    return found


@pytest.mark.parametrize("room", ["execution", "study/_live.py", "search", "oneshot", "report",
                                  "evaluation", "cli.py"])
def test_no_executor_trial_or_facade_touches_a_private_member_of_study(room: str) -> None:
    where = ROOT / room
    paths = [where] if where.is_file() else sorted(where.rglob("*.py"))
    assert paths
    uses = [use for p in paths for use in _private_study_uses(p)]
    assert uses == []


def test_every_event_kind_has_a_constructor_and_the_fold_applies_it() -> None:
    built = [
        events.enqueue("q1", {"units": 16}),
        events.create(0, "me", 3.0, "q1"),
        events.arch(0, "me", {"units": 16}, {"units": Categorical([16, 32]).to_json()}),
        events.report(0, "me", 1, {"acc": 0.5}),
        events.finish(1, tn.TrialState.COMPLETE, {"acc": 0.9}, True, None),
        events.create(1, "me", None, None),
        events.interrupt(1, "stopped"),
        events.restart(1, "you"),
        events.finish(1, tn.TrialState.COMPLETE, {"acc": 0.7}, True, None, owner="you"),
        events.finish(0, tn.TrialState.PRUNED, {"acc": 0.5}, None, "slow", owner="me"),
    ]
    assert {EventKind(e["kind"]) for e in built} == set(EventKind)
    journal = MemoryJournal()
    sid = journal.create_study("s", {})
    journal.append(sid, [*built, {"kind": "from_a_newer_version", "trial": 0}])
    log = TrialLog(journal, sid)
    finished = log.sync()
    assert [t.number for t in finished] == [1, 0]
    first, second = log.trials[0], log.trials[1]
    assert first.state is tn.TrialState.PRUNED and first.budget == 3.0
    assert first.arch == {"units": 16} and first.intermediate == ((1, {"acc": 0.5}),)
    assert second.state is tn.TrialState.COMPLETE and second.metrics == {"acc": 0.7}
    assert second.attempts == 2 and second.owner == "you"
    assert log.queue == {}  # taken by trial 0
