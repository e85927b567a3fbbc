"""The contract every executor keeps: faults, retries and interrupts.

Subclass :class:`ExecutorContract` in a test module and give it a ``make`` fixture returning a
function that builds a fresh executor; :func:`registered` lists ``tn.execution.available()``
(as ``pytest.param`` with the marks an executor needs: Ray's are slow, and skipped when Ray is
not installed). The objectives live in :mod:`torchnas.testing._objectives`, which worker
processes import by name.
"""

from __future__ import annotations

import collections
import functools
import importlib.util
import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import torchnas as tn
from torchnas.execution import Executor
from torchnas.testing._objectives import (
    FAULTS,
    KILLS,
    always_fails,
    faulty,
    flaky,
    plain,
    stall,
)

__all__ = ["NEEDS", "SLOW", "ExecutorContract", "MakeExecutor", "by_name", "registered"]

MakeExecutor = Callable[[], Executor]
"""Builds a fresh executor (the fixture ``make`` a subclass of the contract gives)."""

NEEDS = {"ray": "ray"}
"""Executors that need an optional package (name -> module): skipped without it."""
SLOW = {"ray"}
"""Executors whose tests are marked ``slow`` (they start a cluster)."""

COMPLETE, FAILED, INTERRUPTED = (tn.TrialState.COMPLETE, tn.TrialState.FAILED,
                                 tn.TrialState.INTERRUPTED)


def registered() -> list[Any]:
    """``tn.execution.available()`` as ``pytest.param``, marked by :data:`NEEDS` and
    :data:`SLOW`."""
    out = []
    for name in tn.execution.available():
        marks = [pytest.mark.slow] if name in SLOW else []
        module = NEEDS.get(name)
        if module is not None:
            marks.append(pytest.mark.skipif(importlib.util.find_spec(module) is None,
                                            reason=f"{module} is not installed"))
        out.append(pytest.param(name, marks=marks, id=name))
    return out


def by_name(name: str, workers: int = 2) -> MakeExecutor:
    """A ``make`` for the registered executor ``name``: ``workers`` trials at once where it
    runs several, else one."""

    def make() -> Executor:
        try:
            executor = tn.execution.create(name, workers=workers)
            executor.check()
        except tn.ConfigError:
            executor = tn.execution.create(name, workers=1)
        return executor

    return make


def study(**kw: Any) -> tn.Study:
    kw.setdefault("objectives", {"acc": "max"})
    kw.setdefault("strategy", "random")
    kw.setdefault("seed", 3)
    return tn.Study(**kw)


def check_outcomes(trials: list[tn.FrozenTrial],
                   expected: dict[str, tuple[tn.TrialState, str | None]]) -> None:
    for t in trials:
        state, error = expected[t.arch["kind"]]
        assert t.state is state, (t.arch, t.error)
        assert (t.error or "").startswith(error) if error else t.error is None, (t.arch, t.error)


class ExecutorContract:
    """What every executor promises.

    A subclass provides the fixture ``make``: a function returning a fresh executor. The
    checks: the same seed gives the same trials as the inline executor; an objective that
    raises, returns NaN or no number is a FAILED trial with its reason and the search goes on
    (and, for an executor that runs trials in other processes, one that hangs, segfaults or
    exits); failed architectures are queued again as ``retries`` says; a Ctrl-C leaves the
    running trials INTERRUPTED, and they run first when the search resumes.
    """

    @pytest.fixture
    def make(self) -> MakeExecutor:
        raise NotImplementedError("give the contract a `make` fixture: () -> Executor")

    def test_the_same_seed_gives_the_trials_of_the_inline_executor(
            self, make: MakeExecutor) -> None:
        s = study()
        s.optimize(plain, trials=8, executor=make())
        trials = s.trials
        assert [t.number for t in trials] == list(range(8))
        assert all(t.state is COMPLETE and t.attempts == 1 for t in trials), trials
        assert all(list(t.arch) == ["x", "act", "block/lr"] for t in trials)
        assert all(t.intermediate == ((1, {"acc": t.arch["x"] / 2000}),) for t in trials)
        inline = study()
        inline.optimize(plain, trials=8)
        assert [t.arch for t in trials] == [t.arch for t in inline.trials]
        assert [t.metrics["acc"] for t in trials] == [t.metrics["acc"] for t in inline.trials]

    def test_faults_are_failed_trials_with_their_reason_and_the_search_goes_on(
            self, make: MakeExecutor) -> None:
        s = study()
        kinds = [*FAULTS, "ok"]
        for kind in kinds:
            s.enqueue({"kind": kind})
        s.optimize(faulty, trials=len(kinds), executor=make())
        assert [t.arch["kind"] for t in s.trials] == kinds
        check_outcomes(s.trials, FAULTS)

    def test_a_trial_that_kills_or_hangs_its_worker_fails_and_the_search_goes_on(
            self, make: MakeExecutor) -> None:
        s = study()
        kinds = ["ok", *KILLS, "ok"]
        for kind in kinds:
            s.enqueue({"kind": kind})
        start = time.monotonic()
        try:
            s.optimize(faulty, trials=len(kinds), executor=make(), trial_timeout=3)
        except tn.ConfigError as exc:
            if "trial_timeout" not in str(exc):
                raise
            pytest.skip(f"runs trials in the driver's process ({exc})")
        assert time.monotonic() - start < 45  # the sleeping trial was stopped, not waited for
        assert [t.arch["kind"] for t in s.trials] == kinds
        check_outcomes(s.trials, {**FAULTS, **KILLS})

    def test_retries_queue_a_failed_architecture_again(self, make: MakeExecutor,
                                                       tmp_path: Path) -> None:
        s = study()
        s.optimize(functools.partial(flaky, str(tmp_path)), trials=6, executor=make(),
                   retries=2)
        trials = s.trials
        assert len(trials) == 6
        by_arch = collections.defaultdict(list)
        for t in trials:
            by_arch[t.arch["x"]].append(t)
        complete = 0
        for attempts in by_arch.values():  # each fails twice, then completes (if trials remain)
            n = len(attempts)
            assert [t.state for t in attempts] == [FAILED, FAILED, COMPLETE][:n]
            assert [t.error for t in attempts] == ["RuntimeError: transient failure 1",
                                                   "RuntimeError: transient failure 2", None][:n]
            complete += n == 3
        assert complete >= 1
        forever = study()
        with pytest.raises(tn.TooManyFailures):  # retries run out, then failures in a row stop
            forever.optimize(always_fails, trials=10, retries=1, max_failures=4,
                             executor=make())
        first = forever.trials
        failed = [t for t in first if t.state is FAILED]
        assert len(failed) == 4 and {t.state for t in first} <= {FAILED, INTERRUPTED}
        assert max(collections.Counter(t.key for t in first).values()) == 2  # retried, once

    def test_a_ctrl_c_leaves_running_trials_to_run_first_on_resume(
            self, make: MakeExecutor, tmp_path: Path) -> None:
        s = study()
        objective = functools.partial(stall, str(tmp_path))  # waits for the file "go"

        def ctrl_c() -> None:
            deadline = time.monotonic() + 60
            while not any(tmp_path.glob("started-*")) and time.monotonic() < deadline:
                time.sleep(0.01)
            os.kill(os.getpid(), signal.SIGINT)

        previous = signal.signal(signal.SIGINT, signal.default_int_handler)
        try:
            thread = threading.Thread(target=ctrl_c, daemon=True)
            thread.start()
            with pytest.raises(KeyboardInterrupt):
                s.optimize(objective, trials=6, executor=make())
        finally:
            signal.signal(signal.SIGINT, previous)
        thread.join()
        interrupted = [t.number for t in s.trials if t.state is INTERRUPTED]
        assert interrupted and all(t.state in (COMPLETE, INTERRUPTED) for t in s.trials)
        (tmp_path / "go").touch()
        s.optimize(objective, trials=len(interrupted) + 2, executor=make())
        for n in interrupted:
            assert s.trials[n].state is COMPLETE and s.trials[n].attempts == 2, s.trials[n]
        reference = study()
        reference.optimize(objective, trials=len(s.trials))
        assert [t.arch for t in s.trials] == [t.arch for t in reference.trials]
