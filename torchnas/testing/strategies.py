"""The contract every strategy keeps, on a toy conditional space with a known optimum.

Subclass :class:`StrategyContract` in a test module and give it a ``make`` fixture returning a
function that builds a fresh strategy; :func:`registered` lists the names of
``tn.strategies.available()`` to run it over (aliases such as ``"auto"`` once, as what they
stand for).
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import torchnas as tn
from torchnas.strategies import Strategy

__all__ = ["MakeStrategy", "StrategyContract", "by_name", "registered", "toy"]

MakeStrategy = Callable[[], Strategy]
"""Builds a fresh strategy (the fixture ``make`` a subclass of the contract gives)."""

OPTIMUM = 1.0
"""Of :func:`toy`: at kind=cnn, depth=3, width=32, lr=1e-2 (a point of the default 5-point log
grid)."""
TRIALS = 80
"""More than the 70 grid points of :func:`toy`. Random search's best over these trials was
>= 0.85 for each of the seeds 0..199, so the bar below leaves a margin."""
BAR = OPTIMUM - 0.2
SINGLE = "optimizes the first objective only"
"""What a strategy of one objective warns, given several (``warn_first_objective``)."""


def toy(hp: tn.HP) -> float:
    """Conditional space: 9 cnn + 4 mlp + 1 none structures, times a log-scaled lr."""
    kind = hp.choice("kind", ["mlp", "cnn", "none"])
    if kind == "cnn":
        depth = hp.int("depth", 1, 3)
        width = hp.choice("width", [8, 16, 32])
        quality = 0.5 + 0.125 * (depth - 1) + 0.25 * {8: 0.0, 16: 0.5, 32: 1.0}[width]
    elif kind == "mlp":
        units = hp.int("units", 16, 64, step=16)
        quality = 0.4 + 0.2 * (units - 16) / 48
    else:
        quality = 0.1
    lr = hp.float("lr", 1e-3, 1e-1, log=True)
    return quality - 0.1 * abs(math.log10(lr) + 2)


def faulty_toy(hp: tn.HP) -> float:
    """:func:`toy`, but trial 3 fails and trial 6, 16, 26, ... is pruned after one report (by
    number: the same trials whatever the strategy proposes; a failure costs a garbage
    collection)."""
    value = toy(hp)
    assert hp.trial is not None
    if hp.trial.number == 3:
        raise RuntimeError("it fails")
    if hp.trial.number % 10 == 6:
        hp.trial.report(1, {"score": value})
        raise tn.TrialPruned("stopped early")
    return value


def two(hp: tn.HP) -> dict[str, float]:
    """Two objectives to minimize; ``y = 0`` dominates."""
    x, y = hp.float("x", 0.0, 1.0), hp.choice("y", [0.0, 0.5, 1.0])
    return {"loss": x + y, "cost": (1 - x) ** 2 + y}


def registered() -> list[str]:
    """The names of ``tn.strategies.available()`` without aliases (a name whose strategy is
    registered under another name, as ``"auto"``): each strategy once."""
    names = tn.strategies.available()
    out = []
    for name in names:
        made = tn.strategies.create(name)
        if made.name != name and made.name in names:
            continue
        out.append(name)
    return out


def by_name(name: str) -> MakeStrategy:
    """A ``make`` for the registered strategy ``name``, with its default settings."""
    return lambda: tn.strategies.create(name)


def _is_registered(strategy: Strategy) -> bool:
    """Whether ``tn.strategies.create(strategy.name)`` builds this strategy's type."""
    name = strategy.name
    return bool(name) and name in tn.strategies.available() and (
        type(tn.strategies.create(name)) is type(strategy))


class StrategyContract:
    """What every strategy promises (Optuna's ``pytest_samplers``, NNI's strategy sanity test).

    A subclass provides the fixture ``make``: a function returning a fresh strategy. The checks:
    proposals stay inside their domains and conditions; the best of 80 trials of :func:`toy` is
    near its optimum; the same seed gives the same trials; a study reopened from SQLite proposes
    what an uninterrupted one does (resume is replay, failed and pruned trials included); a
    history of failures is no obstacle; the constructor is the config; several objectives are
    either handled (and replayed) or warned about.
    """

    @pytest.fixture
    def make(self) -> MakeStrategy:
        raise NotImplementedError("give the contract a `make` fixture: () -> Strategy")

    @staticmethod
    def study(strategy: Strategy, seed: int = 0, storage: Any = None,
              objectives: dict[str, str] | None = None) -> tn.Study:
        return tn.Study(name="contract", storage=storage, strategy=strategy, seed=seed,
                        objectives=objectives or {"score": "max"})

    @staticmethod
    def reopen(path: Path, make: MakeStrategy) -> tn.Study:
        """The study at ``path`` again: its strategy from storage when registered."""
        made = make()
        if _is_registered(made):
            return tn.load_study(path)
        return tn.load_study(path, strategy=made)

    def test_proposals_are_inside_their_domains_and_respect_conditions(
            self, make: MakeStrategy) -> None:
        s = self.study(make())
        s.optimize(toy, trials=40)
        trials = s.trials
        assert len(trials) == 40
        for t in trials:
            assert t.state is tn.TrialState.COMPLETE, t.error
            assert list(t.arch) == list(t.domains)
            for label, value in t.arch.items():
                assert t.domains[label].contains(value), (label, value)
            expected = {"kind", "lr"} | {"cnn": {"depth", "width"}, "mlp": {"units"},
                                          "none": set()}[t.arch["kind"]]
            assert set(t.arch) == expected, t.arch
            assert tn.build(toy, t.arch) == t.value("score")  # the arch is all it takes
        assert len({t.key for t in trials}) >= 30, "it repeats itself rather than explore"

    def test_finds_a_point_near_the_optimum(self, make: MakeStrategy) -> None:
        s = self.study(make(), seed=0)
        s.optimize(toy, trials=TRIALS)
        best = s.best_trial.value("score")
        assert BAR <= best <= OPTIMUM + 1e-9, best
        assert best == max(t.value("score") for t in s.trials)

    def test_same_seed_same_architectures(self, make: MakeStrategy) -> None:
        first, second = self.study(make(), seed=7), self.study(make(), seed=7)
        first.optimize(toy, trials=25)
        second.optimize(toy, trials=25)
        assert [t.arch for t in first.trials] == [t.arch for t in second.trials]

    def test_resumed_study_proposes_what_an_uninterrupted_one_does(
            self, make: MakeStrategy, tmp_path: Path) -> None:
        whole = self.study(make(), seed=11)
        whole.optimize(faulty_toy, trials=30)
        states = {t.state for t in whole.trials}
        assert {tn.TrialState.FAILED, tn.TrialState.PRUNED} <= states, states
        path = tmp_path / "resume.db"
        part = self.study(make(), seed=11, storage=path)
        part.optimize(faulty_toy, trials=15)
        part.journal.close()
        resumed = self.reopen(path, make)  # the seed (and a registered strategy) from storage
        assert resumed.seed == 11 and resumed.strategy.name == part.strategy.name
        assert resumed.strategy.get_params() == part.strategy.get_params()
        assert len(resumed.trials) == 15
        resumed.optimize(faulty_toy, trials=15)
        assert [t.arch for t in resumed.trials] == [t.arch for t in whole.trials]
        assert [t.state for t in resumed.trials] == [t.state for t in whole.trials]
        assert [t.number for t in resumed.trials] == list(range(30))
        resumed.journal.close()

    def test_goes_on_from_a_history_without_values(self, make: MakeStrategy) -> None:
        def objective(hp: tn.HP) -> float:
            value = toy(hp)
            assert hp.trial is not None
            if hp.trial.number == 0:
                raise RuntimeError("the first trial fails")
            if hp.trial.number < 4:
                raise tn.TrialPruned("stopped before any report")
            return value

        s = self.study(make(), seed=3)
        s.optimize(objective, trials=10)
        trials = s.trials
        assert [t.state for t in trials] == [tn.TrialState.FAILED] + [tn.TrialState.PRUNED] * 3 \
            + [tn.TrialState.COMPLETE] * 6, [t.error for t in trials]
        assert all(t.domains[k].contains(v) for t in trials for k, v in t.arch.items())

    def test_constructor_is_the_config(self, make: MakeStrategy) -> None:
        strategy = make()
        params = strategy.get_params()
        json.dumps(params)  # stored with the study
        again = type(strategy)(**params)
        assert again.get_params() == params and repr(again) == repr(strategy)
        resolved, spec = tn.strategies.resolve(strategy)
        assert resolved is strategy
        json.dumps(spec)
        if _is_registered(strategy):
            by_spec = tn.strategies.resolve(spec)[0]
            assert type(by_spec) is type(strategy) and by_spec.get_params() == params
        assert not strategy.exhausted()

    def test_several_objectives_are_handled_or_warned_about(
            self, make: MakeStrategy, tmp_path: Path) -> None:
        objectives = {"loss": "min", "cost": "min"}
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            whole = self.study(make(), seed=4, objectives=objectives)
        told = [str(w.message) for w in caught if SINGLE in str(w.message)]
        whole.optimize(two, trials=20)
        assert all(t.state is tn.TrialState.COMPLETE for t in whole.trials)
        assert whole.pareto_front()
        if told:  # a strategy of one objective says so, naming itself
            assert f"{whole.strategy.name!r}" in told[0], told
            return
        path = tmp_path / "two.db"
        part = self.study(make(), seed=4, storage=path, objectives=objectives)
        part.optimize(two, trials=12)
        part.journal.close()
        resumed = self.reopen(path, make)
        resumed.optimize(two, trials=len(whole.trials) - 12)
        assert [t.arch for t in resumed.trials] == [t.arch for t in whole.trials]
        resumed.journal.close()
