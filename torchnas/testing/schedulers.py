"""The contract every scheduler keeps, on synthetic learning curves.

Subclass :class:`SchedulerContract` in a test module and give it a ``make`` fixture returning a
function that builds a fresh scheduler from keyword settings; :func:`registered` lists
``tn.schedulers.available()`` to run it over.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

import torchnas as tn
from torchnas.schedulers import Scheduler

__all__ = ["MIN_BUDGET_SETTINGS", "MakeScheduler", "SchedulerContract", "by_name", "registered"]

MakeScheduler = Callable[..., Scheduler]
"""Builds a fresh scheduler; keyword arguments override its settings (the fixture ``make``)."""

MIN_BUDGET_SETTINGS = ("min_budget", "warmup_steps", "min_points")
"""Settings below which a scheduler judges no trial, in the order looked for: a first rung
(steps), a warm-up (steps), a number of reports (one per step here)."""

Curve = Callable[[int], Sequence[float]]
"""Trial number -> its value at steps 1, 2, ..."""


def registered() -> list[str]:
    """The names of ``tn.schedulers.available()``."""
    return tn.schedulers.available()


def by_name(name: str) -> MakeScheduler:
    """A ``make`` for the registered scheduler ``name``."""
    return lambda **settings: tn.schedulers.create(name, **settings)


def spread(n: int) -> list[float]:
    """Nine slowly rising values whose level depends on the trial (some clearly worse)."""
    return [((n * 7) % 11) / 11 + 0.01 * s for s in range(9)]


def curves_objective(curve: Curve, stop: Callable[[int, int], bool] | None = None,
                     ) -> Callable[[tn.HP], float]:
    """An objective that reports ``curve(number)`` at steps 1, 2, ... and returns its end;
    ``stop(number, step)`` says when to raise ``KeyboardInterrupt`` instead (a Ctrl-C)."""

    def objective(hp: tn.HP) -> float:
        assert hp.trial is not None
        hp.float("x", 0.0, 1.0)
        values = curve(hp.trial.number)
        for step, value in enumerate(values, start=1):
            if stop is not None and stop(hp.trial.number, step):
                raise KeyboardInterrupt
            hp.trial.report(step, {"acc": value, "loss": 1 - value})
        return values[-1]

    return objective


def silent(hp: tn.HP) -> float:
    """An objective that never reports."""
    return hp.float("x", 0.0, 1.0)


def frozen(number: int, values: Mapping[int, float],
           state: tn.TrialState = tn.TrialState.COMPLETE) -> tn.FrozenTrial:
    """A trial record that reported ``{"acc": v}`` at each step ``s`` of ``values`` (a complete
    one ends with its last value)."""
    final = {"acc": list(values.values())[-1]} if values and state.finished else {}
    return tn.FrozenTrial(number=number, state=state, metrics=final,
                          intermediate=tuple((s, {"acc": v}) for s, v in values.items()))


def peers(count: int = 8) -> dict[int, tn.FrozenTrial]:
    """``count`` complete trials that reported 0.9 at steps 1..9."""
    return {n: frozen(n, {s: 0.9 for s in range(1, 10)}) for n in range(count)}


def outcome(s: tn.Study) -> list[tuple[str, float]]:
    """``(state, last step)`` of every trial."""
    return [(t.state.value, t.intermediate[-1][0] if t.intermediate else 0) for t in s.trials]


def _is_registered(scheduler: Scheduler) -> bool:
    name = scheduler.name
    return bool(name) and name in tn.schedulers.available() and (
        type(tn.schedulers.create(name)) is type(scheduler))


class SchedulerContract:
    """What every scheduler promises.

    A subclass provides the fixture ``make``: a function of keyword settings returning a fresh
    scheduler. The checks: a study reopened from SQLite (after a Ctrl-C mid-trial) prunes as an
    uninterrupted one; a trial that reported nothing is never pruned; no trial is judged below
    the scheduler's minimum budget (its first of :data:`MIN_BUDGET_SETTINGS`); the constructor is
    the config.
    """

    @pytest.fixture
    def make(self) -> MakeScheduler:
        raise NotImplementedError("give the contract a `make` fixture: (**settings) -> "
                                  "Scheduler")

    @staticmethod
    def study(scheduler: Scheduler, **kw: Any) -> tn.Study:
        kw.setdefault("strategy", "random")
        return tn.Study(objectives={"acc": "max"}, scheduler=scheduler, **kw)

    def test_a_reopened_study_prunes_as_an_uninterrupted_one(
            self, make: MakeScheduler, tmp_path: Path) -> None:
        whole = self.study(make())
        whole.optimize(curves_objective(spread), trials=14)
        assert any(state == "pruned" for state, _ in outcome(whole)), outcome(whole)
        path = str(tmp_path / "s.db")
        first = self.study(make(), storage=path, name="s")
        first.optimize(curves_objective(spread), trials=5)
        first.journal.close()
        kw: dict[str, Any] = {} if _is_registered(make()) else {"scheduler": make()}
        # the next run dies during trial 6's step 2: it stays INTERRUPTED and runs again first
        dying = tn.load_study(path, **kw)
        with pytest.raises(KeyboardInterrupt):
            dying.optimize(curves_objective(spread, stop=lambda n, step: n == 6 and step == 2),
                           trials=9)
        dying.journal.close()
        resumed = tn.load_study(path, **kw)
        assert resumed.scheduler is not None
        assert resumed.scheduler.get_params() == make().get_params()
        resumed.optimize(curves_objective(spread), trials=14 - 6)
        assert outcome(resumed) == outcome(whole)
        assert resumed.trials[6].attempts == 2
        resumed.journal.close()

    def test_a_trial_that_reported_nothing_is_never_pruned(self, make: MakeScheduler) -> None:
        scheduler = make()
        scheduler.setup({"acc": "max"}, 0)
        others = peers()
        quiet = frozen(len(others), {}, state=tn.TrialState.RUNNING)
        assert not scheduler.should_prune(quiet, {**others, quiet.number: quiet})
        s = self.study(make(), seed=1)
        s.optimize(silent, trials=12)
        assert [t.state for t in s.trials] == [tn.TrialState.COMPLETE] * 12

    def test_no_trial_is_judged_below_the_minimum_budget(self, make: MakeScheduler) -> None:
        params = make().get_params()
        key = next((k for k in MIN_BUDGET_SETTINGS if k in params), None)
        if key is None:
            pytest.skip(f"no minimum budget setting ({', '.join(MIN_BUDGET_SETTINGS)})")
        scheduler = make(**{key: 4})
        scheduler.setup({"acc": "max"}, 0)
        others = peers()
        n = len(others)
        for last in (1, 2, 3):  # far worse than every peer, NaN included, before step 4
            values = {s: 0.0 if s < 3 else float("nan") for s in range(1, last + 1)}
            trial = frozen(n, values, state=tn.TrialState.RUNNING)
            assert not scheduler.should_prune(trial, {**others, n: trial}), (key, values)
        judged = []  # the same trial, going on, is judged (and stopped) from step 4
        for last in range(4, 10):
            trial = frozen(n, {s: 0.0 for s in range(1, last + 1)}, state=tn.TrialState.RUNNING)
            judged.append(scheduler.should_prune(trial, {**others, n: trial}))
        assert any(judged), f"{key}=4: a trial far worse than its peers was never pruned"

    def test_constructor_is_the_config(self, make: MakeScheduler) -> None:
        scheduler = make()
        scheduler.check()
        params = scheduler.get_params()
        json.dumps(params)  # stored with the study
        again = type(scheduler)(**params)
        assert again.get_params() == params
        found, spec = tn.schedulers.resolve(scheduler)
        assert found is scheduler
        json.dumps(spec)
        if _is_registered(scheduler):
            by_spec, _ = tn.schedulers.resolve(spec)
            assert by_spec is not None and type(by_spec) is type(scheduler)
            assert by_spec.get_params() == params
