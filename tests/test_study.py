"""The study: ask/tell, the optimize loop, results, objectives, and recovery from a real crash."""

from __future__ import annotations

import dataclasses
import math
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

import torchnas as tn
from torchnas.storage import Event, MemoryJournal, SQLiteJournal, events
from torchnas.study._objectives import parse_constraints, parse_objectives
from torchnas.study._process import owner_alive, owner_token
from torchnas.study._trial import report_step

COMPLETE, FAILED, PRUNED = tn.TrialState.COMPLETE, tn.TrialState.FAILED, tn.TrialState.PRUNED
INTERRUPTED, RUNNING = tn.TrialState.INTERRUPTED, tn.TrialState.RUNNING


def make(objectives: Any = "acc", **kw: Any) -> tn.Study:
    kw.setdefault("strategy", "random")
    return tn.Study(objectives=objectives, **kw)


def width_space(hp: tn.HP) -> float:
    return hp.int("width", 1, 100) / 100


# -- ask / tell ---------------------------------------------------------------------------------
def test_ask_and_tell_by_hand() -> None:
    study = make(seed=3)
    trial = study.ask()
    assert trial.number == 0 and trial.arch == {}
    w = trial.hp.int("width", 8, 64)
    act = trial.hp.choice("act", ["relu", "gelu"])
    assert trial.arch == {"width": w, "act": act}
    assert study.trials[0].state is RUNNING
    frozen = study.tell(trial, {"acc": 0.75, "params": 123})
    assert frozen.state is COMPLETE and frozen.number == 0
    assert frozen.arch == {"width": w, "act": act}
    assert frozen.domains == {"width": tn.space.Int(8, 64),
                              "act": tn.space.Categorical(("relu", "gelu"))}
    assert frozen.metrics == {"acc": 0.75, "params": 123.0}
    assert frozen.feasible is True and frozen.error is None and frozen.attempts == 1
    assert frozen.duration is not None and frozen.duration >= 0
    assert study.trials == [frozen]
    with pytest.raises(ValueError, match="not running"):
        study.tell(trial, 0.5)
    second = study.ask()
    assert second.number == 1
    assert study.tell(1, 0.25).metrics == {"acc": 0.25}  # by number


def test_ask_with_fixed_decisions() -> None:
    study = make()
    trial = study.ask(fixed={"width": 42})
    assert width_space(trial.hp) == 0.42
    assert study.tell(trial, 0.42).arch == {"width": 42}


def test_a_float_result_is_the_first_objective() -> None:
    study = make({"val_accuracy": "max"})
    study.optimize(lambda hp: 0.5, trials=1)
    assert study.trials[0].metrics == {"val_accuracy": 0.5}
    both = make({"acc": "max", "params": "min"})
    both.optimize(lambda hp: 0.5, trials=1)
    t = both.trials[0]
    assert t.state is FAILED and t.metrics == {"acc": 0.5}
    assert "'params' is missing" in (t.error or "")


@pytest.mark.parametrize(("result", "reason"), [
    ({"loss": 0.1}, "'acc' is missing"),
    ({"acc": math.nan}, "'acc' is nan"),
    (math.nan, "'acc' is nan"),
    ({"acc": math.inf}, "'acc' is inf"),
    (None, "'acc' is missing"),
])
def test_missing_or_nan_objective_fails_with_the_reason(result: Any, reason: str) -> None:
    study = make()
    study.optimize(lambda hp: result, trials=2)
    assert len(study.trials) == 2
    for t in study.trials:
        assert t.state is FAILED
        assert reason in (t.error or ""), t.error
        assert t.feasible is None
    with pytest.raises(ValueError, match="no complete"):
        _ = study.best_trial


@pytest.mark.parametrize(("result", "words"), [
    ({"acc": "high"}, ["'acc'", "'high'"]),
    ({"acc": [0.5]}, ["'acc'", "[0.5]"]),
    ("high", ["'high'", "number"]),
    ([0.5, 0.6], ["[0.5, 0.6]", "number"]),
])
def test_a_result_that_is_not_a_number_fails_the_trial(result: Any, words: list[str]) -> None:
    study = make()
    study.optimize(lambda hp: result, trials=2)  # and the loop goes on
    assert len(study.trials) == 2
    for t in study.trials:
        assert t.state is FAILED
        assert all(w in (t.error or "") for w in words), t.error


def test_an_objective_that_raises_fails_and_the_loop_goes_on() -> None:
    def objective(hp: tn.HP) -> float:
        w = hp.int("width", 1, 100)
        if w % 2:
            raise ValueError(f"odd width {w}")
        return w / 100

    study = make(seed=1)
    seen: list[tn.FrozenTrial] = []
    study.optimize(objective, trials=20, callbacks=[lambda s, t: seen.append(t)])
    trials = study.trials
    assert len(trials) == 20 and seen == trials
    failed = [t for t in trials if t.state is FAILED]
    assert failed and len(failed) < 20
    for t in failed:
        assert t.arch["width"] % 2 == 1  # the decisions met before the error are kept
        assert t.error == f"ValueError: odd width {t.arch['width']}"
    assert all(t.state is COMPLETE for t in trials if t.arch["width"] % 2 == 0)


def test_max_failures_stops_a_hopeless_loop() -> None:
    def objective(hp: tn.HP) -> float:
        raise RuntimeError("CUDA out of memory")

    study = make()
    with pytest.raises(RuntimeError, match=r"3 trials failed in a row.*out of memory"):
        study.optimize(objective, trials=10, max_failures=3)
    assert len(study.trials) == 3


def test_pruned_trials_keep_their_last_reported_metrics() -> None:
    def objective(hp: tn.HP) -> float:
        hp.int("width", 1, 4)
        assert hp.trial is not None
        hp.trial.report(0, {"acc": 0.1, "loss": 2.0})
        hp.trial.report(1, {"acc": 0.3, "loss": 1.5})
        raise tn.TrialPruned("not promising")

    study = make()
    study.optimize(objective, trials=2)
    for t in study.trials:
        assert t.state is PRUNED
        assert t.metrics == {"acc": 0.3, "loss": 1.5}
        assert t.intermediate == ((0, {"acc": 0.1, "loss": 2.0}), (1, {"acc": 0.3, "loss": 1.5}))
        assert "width" in t.arch
    # pruned by hand without a result: the last report is kept as well
    trial = study.ask()
    trial.report(5, {"acc": 0.9})
    assert study.tell(trial, state=PRUNED).metrics == {"acc": 0.9}


class StopAfter(tn.schedulers.Scheduler):
    """A scheduler: prunes every trial once it has reported ``steps`` times."""

    name = "stop_after"

    def __init__(self, steps: int) -> None:
        self.steps = steps

    def should_prune(self, trial: tn.FrozenTrial, trials: Mapping[int, tn.FrozenTrial]) -> bool:
        return len(trial.intermediate) >= self.steps


def test_a_scheduler_prunes_through_report() -> None:
    def objective(hp: tn.HP) -> float:
        assert hp.trial is not None
        for step in range(10):
            hp.trial.report(step, {"acc": step / 10})
        return 1.0

    study = make(scheduler=StopAfter(3))
    study.optimize(objective, trials=2)
    for t in study.trials:
        assert t.state is PRUNED and len(t.intermediate) == 3 and t.metrics == {"acc": 0.2}


def test_a_space_error_stops_optimize() -> None:
    calls = []

    def objective(hp: tn.HP) -> float:
        calls.append(1)
        hp.int("width", 1, 4)
        hp.choice("act", [])
        return 1.0

    study = make()
    with pytest.raises(tn.SpaceError, match="'act'"):
        study.optimize(objective, trials=10)
    assert len(calls) == 1
    [t] = study.trials
    assert t.state is FAILED and (t.error or "").startswith("SpaceError: ") and "'act'" in t.error


def test_keyboard_interrupt_leaves_the_trial_to_run_again() -> None:
    stop = {"now": True}

    def objective(hp: tn.HP) -> float:
        w = hp.int("width", 1, 100)
        if stop["now"]:
            raise KeyboardInterrupt
        return w / 100

    study = make(seed=9)
    with pytest.raises(KeyboardInterrupt):
        study.optimize(objective, trials=5)
    [t] = study.trials
    assert t.state is INTERRUPTED
    stop["now"] = False
    study.optimize(objective, trials=2)
    trials = study.trials
    assert [t.number for t in trials] == [0, 1]
    assert trials[0].state is COMPLETE and trials[0].attempts == 2
    reference = make(seed=9)
    reference.optimize(objective, trials=2)
    assert [t.arch for t in trials] == [t.arch for t in reference.trials]


def test_the_inline_executor_runs_one_trial_at_a_time() -> None:
    with pytest.raises(tn.ConfigError, match="executor='process' or 'ray'"):
        make().optimize(width_space, trials=1, workers=2, executor="inline")
    with pytest.raises(tn.ConfigError, match="trial_timeout"):
        make().optimize(width_space, trials=1, trial_timeout=5)


def test_timeout_stops_the_loop() -> None:
    def slow(hp: tn.HP) -> float:
        time.sleep(0.05)
        return width_space(hp)

    study = make()
    start = time.monotonic()
    study.optimize(slow, timeout=0.3)
    elapsed = time.monotonic() - start
    assert 2 <= len(study.trials) <= 8
    assert elapsed < 2.0
    assert all(t.state is COMPLETE for t in study.trials)


# -- constraints and results --------------------------------------------------------------------
def test_constraints_set_feasible_and_best_trial_ignores_infeasible() -> None:
    def objective(hp: tn.HP) -> dict[str, float]:
        w = hp.int("width", 1, 100)
        return {"acc": w / 100, "params": w * 10.0}

    study = make(constraints={"params": ("<=", 500)}, seed=4)
    study.optimize(objective, trials=40)
    trials = study.trials
    for t in trials:
        assert t.feasible is (t.metrics["params"] <= 500)
    assert any(not t.feasible for t in trials) and any(t.feasible for t in trials)
    best = study.best_trial
    assert best.feasible
    assert best.value("acc") == max(t.value("acc") for t in trials if t.feasible)
    assert best.value("acc") < max(t.value("acc") for t in trials)  # the best is infeasible


def test_a_missing_constrained_metric_fails_the_trial_with_the_reason() -> None:
    study = make(constraints={"latency": "< 5"})
    study.optimize(lambda hp: 0.5, trials=1)
    trial = study.trials[0]
    assert trial.state is FAILED and trial.feasible is None
    assert trial.error is not None and "constraint metric 'latency' is not among" in trial.error
    with pytest.raises(ValueError, match="no complete feasible"):
        _ = study.best_trial
    # a constrained metric that is there but NaN is measured: the trial is infeasible
    study.optimize(lambda hp: {"acc": 0.5, "latency": math.nan}, trials=1)
    assert study.trials[1].state is COMPLETE and study.trials[1].feasible is False


def brute_front(trials: list[tn.FrozenTrial]) -> set[int]:
    def better(u: tn.FrozenTrial, t: tn.FrozenTrial) -> bool:
        ua, up, ta, tp = u.metrics["acc"], u.metrics["params"], t.metrics["acc"], t.metrics[
            "params"]
        return ua >= ta and up <= tp and (ua > ta or up < tp)

    return {t.number for t in trials if not any(better(u, t) for u in trials)}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_pareto_front_matches_brute_force(seed: int) -> None:
    def objective(hp: tn.HP) -> dict[str, float]:
        a, b = hp.int("a", 0, 6), hp.int("b", 0, 6)  # a coarse grid: ties happen
        if a == 0 and b == 0:
            raise ValueError("failed trials never make the front")
        return {"acc": float(a + b), "params": float(a * b + 3 * b)}

    study = make({"acc": "max", "params": "min"}, constraints={"params": ("<=", 30)}, seed=seed)
    study.optimize(objective, trials=60)
    ok = [t for t in study.trials if t.state is COMPLETE and t.feasible]
    front = study.pareto_front()
    assert {t.number for t in front} == brute_front(ok)
    accs = [t.value("acc") for t in front]
    assert accs == sorted(accs, reverse=True)
    with pytest.raises(ValueError, match="pareto_front"):
        _ = study.best_trial


def test_pareto_front_keeps_ties_and_directions() -> None:
    study = make({"err": "min", "flops": "min"})
    for err, flops in [(0.1, 10.0), (0.1, 10.0), (0.2, 5.0), (0.3, 5.0), (0.05, 20.0), (0.3, 30.0)]:
        t = study.ask()
        study.tell(t, {"err": err, "flops": flops})
    assert [t.number for t in study.pareto_front()] == [4, 0, 1, 2]


def test_results_summary_lists_the_best_trial_first() -> None:
    def objective(hp: tn.HP) -> dict[str, float]:
        w = hp.int("width", 1, 100)
        if w > 90:
            raise ValueError("too wide")
        return {"acc": w / 100, "params": float(w)}

    study = make(name="summ", constraints={"params": ("<=", 80)}, seed=5)
    study.optimize(objective, trials=30)
    text = study.results_summary(top=3)
    lines = text.splitlines()
    counts = {s: sum(t.state is s for t in study.trials) for s in (COMPLETE, FAILED)}
    assert lines[0].startswith("Study 'summ': ")
    assert f"{counts[COMPLETE]} complete" in lines[0]
    if counts[FAILED]:
        assert f"{counts[FAILED]} failed" in lines[0]
    header = lines[1].split()
    assert header[:4] == ["rank", "trial", "acc", "params"]
    best = study.best_trial
    rows = [line.split() for line in lines[3:]]
    assert len(rows) == 3  # top=3
    assert rows[0][:2] == ["1", str(best.number)]
    assert float(rows[0][2]) == pytest.approx(best.value("acc"), abs=1e-3)
    assert float(rows[0][3]) == pytest.approx(best.value("params"), rel=1e-3)
    assert f"width={best.arch['width']}" in lines[3]
    ranked = sorted((t for t in study.trials if t.state is COMPLETE and t.feasible),
                    key=lambda t: -t.value("acc"))
    assert [r[1] for r in rows] == [str(t.number) for t in ranked[:3]]


# -- objectives and configuration ---------------------------------------------------------------
@pytest.mark.parametrize(("spec", "expected"), [
    ("val_accuracy", {"val_accuracy": "max"}),
    ("params", {"params": "min"}),
    (["val_accuracy", "params"], {"val_accuracy": "max", "params": "min"}),
    (["val_loss", "latency_ms", "f1", "num_params", "top1_error"],
     {"val_loss": "min", "latency_ms": "min", "f1": "max", "num_params": "min",
      "top1_error": "min"}),
    ("layer2_flops", {"layer2_flops": "min"}),  # "r2" inside a word is not the r2 score
    ("valAccuracy", {"valAccuracy": "max"}),
    ({"reward": "MAXIMIZE", "cost": "minimize"}, {"reward": "max", "cost": "min"}),
    (None, {"value": "min"}),
])
def test_objective_directions(spec: Any, expected: dict[str, str]) -> None:
    assert parse_objectives(spec) == expected
    assert list(make(spec).objectives.items()) == list(expected.items())


@pytest.mark.parametrize(("spec", "culprit"), [
    ("widget", "'widget'"),
    (["val_accuracy", "goodness"], "'goodness'"),
    ("accuracy_loss", "'accuracy_loss'"),  # it points both ways
    ({"acc": "up"}, "'acc'"),
    ({}, "at least one"),
    (42, "objectives"),
])
def test_unclear_objectives_are_config_errors(spec: Any, culprit: str) -> None:
    with pytest.raises(tn.ConfigError, match=culprit):
        make(spec)


@pytest.mark.parametrize(("spec", "expected"), [
    ({"params": ("<=", 100)}, {"params": ("<=", 100.0)}),
    ({"params": ["<", "1e5"]}, {"params": ("<", 1e5)}),
    ({"latency": "<= 5.5"}, {"latency": ("<=", 5.5)}),
    (None, {}),
])
def test_constraints(spec: Any, expected: Any) -> None:
    assert parse_constraints(spec) == expected


@pytest.mark.parametrize("spec", [{"p": ("~", 1)}, {"p": ("<=",)}, {"p": ("<=", "big")},
                                  {"p": 5}])
def test_bad_constraints_name_the_metric(spec: Any) -> None:
    with pytest.raises(tn.ConfigError, match="'p'"):
        make(constraints=spec)


def test_reopening_checks_objectives_and_constraints(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    s = tn.Study("s", storage=path, objectives={"acc": "max", "params": "min"},
                 constraints={"params": ("<=", 10)}, seed=5)
    s.journal.close()
    for bad in ({"acc": "min", "params": "min"}, {"acc": "max"},
                {"params": "min", "acc": "max"}):  # order matters: a float is the first
        with pytest.raises(tn.ConfigError, match="objectives"):
            tn.Study("s", storage=path, objectives=bad)
    with pytest.raises(tn.ConfigError, match="constraints"):
        tn.Study("s", storage=path, constraints={"params": ("<=", 11)})
    with pytest.warns(UserWarning, match="exists with seed 5: it goes on with that seed, not 99"):
        again = tn.Study("s", storage=path, objectives=["acc", "params"], seed=99)
    assert again.objectives == {"acc": "max", "params": "min"}
    assert again.constraints == {"params": ("<=", 10.0)}
    assert again.seed == 5  # the stored seed wins: resume is replay
    again.journal.close()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the same seed, or none, continues quietly
        for seed in (5, None):
            quiet = tn.Study("s", storage=path, seed=seed)
            assert quiet.seed == 5
            quiet.journal.close()


def test_load_study(tmp_path: Path) -> None:
    path = tmp_path / "l.db"
    with pytest.raises(ValueError, match="no such storage file"):
        tn.load_study(path)
    assert not path.exists()  # opening to load never creates an empty database
    tn.Study("one", storage=path, objectives="acc").journal.close()
    assert tn.load_study(path).name == "one"
    tn.Study("two", storage=path, objectives="acc").journal.close()
    with pytest.raises(ValueError, match="name one of"):
        tn.load_study(path)
    with pytest.raises(ValueError, match="'three'"):
        tn.load_study(path, name="three")
    assert tn.load_study(f"sqlite:///{path}", name="two").name == "two"


def test_trial_records_are_frozen() -> None:
    study = make()
    study.optimize(width_space, trials=1)
    t = study.trials[0]
    with pytest.raises(dataclasses.FrozenInstanceError):
        t.state = FAILED  # type: ignore[misc]
    assert [s.finished for s in tn.TrialState] == [False, True, True, True, True, False]
    assert t.key == tn.arch_key(t.arch)
    assert math.isnan(t.value("missing"))


# -- the journal is read incrementally ----------------------------------------------------------
class CountingMemory(MemoryJournal):
    """A memory journal that counts the events its readers were handed."""

    def __init__(self) -> None:
        super().__init__()
        self.handed = 0

    def read(self, study_id: int, after: int = 0) -> list[tuple[int, Event]]:
        got = super().read(study_id, after)
        self.handed += len(got)
        return got


class CountingSQLite(SQLiteJournal):
    """The same for SQLite."""

    handed = 0

    def read(self, study_id: int, after: int = 0) -> list[tuple[int, Event]]:
        got = super().read(study_id, after)
        self.handed += len(got)
        return got


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_each_event_is_read_once_however_long_the_study(kind: str, tmp_path: Path) -> None:
    journal = CountingMemory() if kind == "memory" else CountingSQLite(tmp_path / "c.db")
    study = make(storage=journal)

    def objective(hp: tn.HP) -> float:
        assert hp.trial is not None
        hp.trial.report(0, {"acc": 0.1})
        return width_space(hp)

    def total() -> int:
        before = journal.handed
        count = len(journal.read(study._id))
        journal.handed = before
        return count

    study.optimize(objective, trials=10)
    handed, events = journal.handed, total()
    assert handed == events  # each event handed to the study exactly once
    study.optimize(objective, trials=30)
    _ = study.trials, study.trials, study.best_trial  # reading results costs nothing more
    assert journal.handed - handed == total() - events  # only the new events were read
    assert journal.handed == total()
    journal.close()


# -- crash recovery with a real process ---------------------------------------------------------
SPACE = textwrap.dedent("""
    import time

    def objective(hp, hang_at=None):
        x = hp.int("x", 0, 1000)
        act = hp.choice("act", ["relu", "gelu", "tanh"])
        if hp.trial is not None and hp.trial.number == hang_at:
            hp.trial.commit()      # the decisions are durable now
            time.sleep(300)        # ... and here the process is killed
        lr = hp.float("lr", 1e-4, 1e-1, log=True)
        return {"score": x / 1000 + lr + (act == "gelu")}
""")

WORKER = SPACE + textwrap.dedent("""
    import sys
    import torchnas as tn

    study = tn.Study(name="crash", storage=sys.argv[1], objectives={"score": "max"},
                     strategy="random", seed=4)
    study.optimize(lambda hp: objective(hp, hang_at=3), trials=10)
""")


def _committed(path: Path, trial: int) -> bool:
    if not path.exists():
        return False
    try:
        with sqlite3.connect(str(path), timeout=5) as conn:
            row = conn.execute("SELECT COUNT(*) FROM events WHERE kind = 'arch' AND trial = ?",
                               (trial,)).fetchone()
    except sqlite3.OperationalError:  # the schema is not there yet
        return False
    return bool(row[0])


def _state(pid: int) -> str:
    with open(f"/proc/{pid}/stat") as fh:
        return fh.read().rsplit(")", 1)[1].split()[0]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_killed_process_leaves_its_trial_to_be_taken_up_again(tmp_path: Path) -> None:
    path = tmp_path / "crash.db"
    env = {**os.environ, "PYTHONPATH": str(Path(tn.__file__).parents[1])}
    proc = subprocess.Popen([sys.executable, "-c", WORKER, str(path)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while not _committed(path, 3):
            assert proc.poll() is None, proc.communicate()[0].decode()
            assert time.monotonic() < deadline, "the worker never committed trial 3"
            time.sleep(0.05)
        # while the worker lives, its running trial is left alone
        alive = tn.load_study(path)
        assert alive.trials[3].state is RUNNING and owner_alive(alive.trials[3].owner)
        alive.journal.close()
        os.kill(proc.pid, signal.SIGKILL)
        while _state(proc.pid) != "Z":  # dead, but not reaped yet: a zombie counts as dead
            time.sleep(0.01)
        looked = tn.load_study(path, read_only=True)  # what the CLI's reading commands do
        assert looked.trials[3].state is RUNNING  # shown as stored: nothing is written
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            looked.ask()
        looked.journal.close()
        study = tn.load_study(path)
    finally:
        proc.kill()
        proc.wait()
    namespace: dict[str, Any] = {}
    exec(SPACE, namespace)
    objective = namespace["objective"]

    trials = study.trials
    assert [t.state for t in trials] == [COMPLETE, COMPLETE, COMPLETE, INTERRUPTED]
    crashed = trials[3]
    assert crashed.error == "its process died"
    assert list(crashed.arch) == ["x", "act"]  # what it had committed
    assert crashed.owner != owner_token()

    reference = tn.Study(name="ref", objectives={"score": "max"}, strategy="random", seed=4)
    reference.optimize(objective, trials=6)
    expected = reference.trials
    assert [t.arch for t in trials[:3]] == [t.arch for t in expected[:3]]  # no trial lost
    assert [t.metrics for t in trials[:3]] == [t.metrics for t in expected[:3]]

    trial = study.ask()
    assert trial.number == 3
    assert study.trials[3].state is RUNNING and study.trials[3].owner == owner_token()
    done = study.tell(trial, objective(trial.hp))
    assert done.state is COMPLETE and done.attempts == 2
    assert done.arch == expected[3].arch and done.metrics == expected[3].metrics
    study.optimize(objective, trials=2)
    after = study.trials
    assert [t.number for t in after] == list(range(6))
    assert [t.arch for t in after] == [t.arch for t in expected]
    assert all(t.state is COMPLETE for t in after)
    assert [t.attempts for t in after] == [1, 1, 1, 2, 1, 1]
    study.journal.close()
    with sqlite3.connect(str(path)) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_owner_tokens() -> None:
    me = owner_token()
    assert owner_alive(me) is True
    host, pid, _ = me.split(":")
    assert int(pid) == os.getpid()
    assert owner_alive(f"{host}:{pid}:1") is False  # same pid, another start: pid reused
    assert owner_alive("some-other-host:1:1") is None  # cannot tell
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    assert owner_alive(f"{host}:{proc.pid}:") is False or _pid_reused(proc.pid)


def _pid_reused(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists()


def test_pruned_trial_keeps_the_reason() -> None:
    study = tn.Study(objectives={"acc": "max"})

    def objective(hp: tn.HP) -> float:
        assert hp.trial is not None
        hp.trial.report(1, {"acc": 0.5})
        raise tn.TrialPruned("too slow at epoch 1")

    study.optimize(objective, trials=1)
    trial = study.trials[0]
    assert trial.state is tn.TrialState.PRUNED
    assert trial.error == "too slow at epoch 1"
    assert trial.metrics == {"acc": 0.5}


def test_events_of_a_dead_attempt_are_ignored_after_restart(tmp_path: Path) -> None:
    """A finish written by an attempt that was declared dead must not close the new attempt."""
    path = tmp_path / "late.db"
    study = tn.Study("s", storage=path, objectives={"acc": "max"})
    study.record(events.create(0, "elsewhere:1:1", None, None),
                 events.interrupt(0, "its process died"))
    trial = study.ask()  # takes trial 0 up again, owned by this process
    assert trial.number == 0
    study.record(events.finish(0, tn.TrialState.COMPLETE, {"acc": 0.1}, True, None,
                               owner="elsewhere:1:1"))
    assert study.trials[0].state is tn.TrialState.RUNNING
    done = study.tell(trial, 0.9)
    assert done.state is tn.TrialState.COMPLETE and done.metrics == {"acc": 0.9}
    assert done.attempts == 2
    study.journal.close()


def test_auto_is_stored_as_what_it_means(tmp_path: Path) -> None:
    path = tmp_path / "auto.db"
    tn.Study("s", storage=path, strategy="auto").journal.close()
    again = tn.load_study(path)
    assert again.config["strategy"] == {"name": tn.strategies.AUTO}
    again.journal.close()


def test_enqueued_architectures_run_first_and_survive_a_reopen(tmp_path: Path) -> None:
    path = tmp_path / "queue.db"
    study = tn.Study("q", storage=path, objectives={"v": "max"}, seed=0)
    study.enqueue({"x": 3, "y": "b"})
    study.enqueue({"x": 7})
    study.journal.close()
    again = tn.load_study(path)

    def objective(hp: tn.HP) -> float:
        return hp.int("x", 0, 9) + (1.0 if hp.choice("y", ["a", "b"]) == "b" else 0.0)

    again.optimize(objective, trials=3)
    archs = [t.arch for t in again.trials]
    assert archs[0] == {"x": 3, "y": "b"}
    assert archs[1]["x"] == 7 and archs[1]["y"] in ("a", "b")  # the rest is the strategy's
    assert again.queued == []  # consumed, and durably so
    again.journal.close()
    assert tn.load_study(path).queued == []


def test_a_rejected_trial_is_finished_and_infeasible() -> None:
    study = tn.Study(objectives={"acc": "max"}, constraints={"params": ("<=", 10)})
    trial = study.ask()
    done = study.tell(trial, {"params": 50.0}, state=tn.TrialState.REJECTED,
                      error="params 50 > 10")
    assert done.state.finished and done.feasible is False and done.metrics == {"params": 50.0}
    with pytest.raises(ValueError, match="no complete feasible trial"):
        _ = study.best_trial


def test_a_fixed_value_outside_a_dependent_domain_is_suggested_again() -> None:
    study = tn.Study(objectives={"v": "max"}, strategy="random")
    trial = study.ask(fixed={"n": 2, "x": 7})  # x = 7 was valid while n was larger

    n = trial.hp.int("n", 1, 9)
    x = trial.hp.int("x", 0, n)
    assert n == 2 and 0 <= x <= 2
    study.tell(trial, float(x))


def test_fractional_report_steps_are_kept_and_bad_ones_fail_the_trial() -> None:
    study = make(scheduler={"name": "asha", "min_budget": 0.5, "max_budget": 4.5,
                            "reduction_factor": 3})

    def halves(hp: tn.HP) -> float:
        x = hp.float("x", 0.0, 1.0)
        for step in (0.5, 1.5, 2.5):
            hp.trial.report(step, {"acc": x * step})
        return x

    study.optimize(halves, trials=6)
    reported = [[s for s, _ in t.intermediate] for t in study.trials]
    assert reported[0] == [0.5, 1.5, 2.5]  # the first trial goes on: the best so far
    assert all(r == [0.5, 1.5, 2.5][: len(r)] and r for r in reported)
    assert any(t.state is PRUNED for t in study.trials)  # judged at the rungs 0.5 and 1.5
    assert study.trials[0].intermediate[0][1] == {"acc": 0.5 * study.trials[0].metrics["acc"]}

    def bad(hp: tn.HP) -> float:
        kind = hp.choice("step", ["negative", "nan"])
        hp.trial.report(-1 if kind == "negative" else math.nan, {"acc": 0.0})
        return 0.0

    other = make(strategy="grid")
    other.optimize(bad, trials=2)
    for t in other.trials:
        assert t.state is FAILED and "a report's step must be a finite number >= 0" in t.error
    with pytest.raises(ValueError, match="got True"):
        report_step(True)
    assert report_step(3.0) == 3 and isinstance(report_step(3.0), int)


@pytest.mark.parametrize("settings", [{"strategy": {"name": "evolution", "population": 0}},
                                      {"scheduler": {"name": "asha", "reduction": 1}}])
def test_a_bad_strategy_or_scheduler_fails_before_the_storage_file_exists(
        tmp_path: Path, settings: dict[str, Any]) -> None:
    path = tmp_path / "s.db"
    with pytest.raises(tn.ConfigError):
        tn.Study(storage=path, objectives={"acc": "max"}, **settings)
    assert not path.exists()
