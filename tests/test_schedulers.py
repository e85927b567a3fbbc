"""Schedulers: the median rule, successive halving (ASHA/SHA), Hyperband and curve
extrapolation on synthetic learning curves with known outcomes; the Trainer's budgets (epochs,
data) counted sample by sample; one real search on digits. The contract every registered
scheduler keeps (resume from SQLite, no pruning without reports or below the minimum budget)
runs in ``test_contract_schedulers.py``."""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import pytest
import torch
from helpers import Items
from torch import nn

import torchnas as tn
from torchnas import schedulers
from torchnas.data import from_tensors
from torchnas.schedulers import (
    CurveScheduler,
    HyperbandScheduler,
    MedianScheduler,
    SuccessiveHalvingScheduler,
    fit_power_law,
)
from torchnas.testing.schedulers import curves_objective

COMPLETE, PRUNED = tn.TrialState.COMPLETE, tn.TrialState.PRUNED


def study(scheduler: Any, **kw: Any) -> tn.Study:
    kw.setdefault("strategy", "random")
    return tn.Study(objectives={"acc": "max"}, scheduler=scheduler, **kw)


def outcome(s: tn.Study) -> list[tuple[str, int]]:
    """``(state, last step)`` of every trial."""
    return [(t.state.value, t.intermediate[-1][0] if t.intermediate else 0) for t in s.trials]


def frozen(number: int, values: Mapping[int, float], state: tn.TrialState = COMPLETE,
           ) -> tn.FrozenTrial:
    return tn.FrozenTrial(number=number, state=state,
                          intermediate=tuple((s, {"acc": v}) for s, v in values.items()))


def test_a_trial_that_spent_its_whole_budget_is_never_pruned() -> None:
    # budget="data" over 9 epochs reports steps 12, 23, ..., 89, 100; with min_budget 11 the
    # last rung is 99, between the last two steps: the final report must not be judged there
    sha = SuccessiveHalvingScheduler(min_budget=11, max_budget=100, reduction_factor=3)
    sha.setup({"acc": "max"}, 0)
    steps = [math.ceil(100 * k / 9) for k in range(1, 10)]
    peers = {n: frozen(n, {s: 0.9 for s in steps}) for n in range(2)}
    finished = frozen(2, {89: 0.1, 100: 0.1}, state=tn.TrialState.RUNNING)
    assert not sha.should_prune(finished, {**peers, 2: finished})
    short = frozen(2, {89: 0.1, 99: 0.1}, state=tn.TrialState.RUNNING)  # still has budget
    assert sha.should_prune(short, {**peers, 2: short})
    mo = schedulers.create("mo_asha", min_budget=11, max_budget=100)
    mo.setup({"acc": "max", "loss": "min"}, 0)
    assert not mo.should_prune(finished, {**peers, 2: finished})


# -- registry and settings ----------------------------------------------------------------------
def test_registry_names_types_and_stored_specs() -> None:
    assert {"median", "asha", "sha", "hyperband", "curve"} <= set(schedulers.available())
    assert isinstance(schedulers.create("median"), MedianScheduler)
    asha, sha = schedulers.create("asha"), schedulers.create("sha", reduction_factor=2)
    assert isinstance(asha, SuccessiveHalvingScheduler) and asha.asynchronous is True
    assert isinstance(sha, SuccessiveHalvingScheduler) and sha.asynchronous is False
    assert sha.get_params() == {"min_budget": 1, "max_budget": None, "reduction_factor": 2,
                                "min_early_stopping_rate": 0, "asynchronous": False}
    assert isinstance(schedulers.create("hyperband", max_budget=9), HyperbandScheduler)
    assert isinstance(schedulers.create("curve"), CurveScheduler)
    # an object is stored as its name and parameters, and comes back equal
    _, spec = schedulers.resolve(sha)
    again, _ = schedulers.resolve(spec)
    assert type(again) is SuccessiveHalvingScheduler and again.get_params() == sha.get_params()


@pytest.mark.parametrize(("spec", "message"), [
    ({"name": "asha", "reduction_factor": 1}, "reduction_factor must be an integer >= 2"),
    ({"name": "asha", "min_budget": 0}, "min_budget must be a number > 0"),
    ({"name": "asha", "min_budget": 9, "max_budget": 3}, "max_budget .3. is below"),
    ({"name": "hyperband", "max_budget": -1}, "max_budget must be a number > 0 or None"),
    ({"name": "median", "compare": "mean"}, "compare must be 'best' or 'current'"),
    ({"name": "median", "interval": 0}, "interval must be an integer >= 1"),
    ({"name": "curve", "min_points": 2}, "min_points must be an integer >= 3"),
    ({"name": "median", "patience": 3}, "unknown setting 'patience'"),
    ({"name": "sha", "min_early_stopping_rate": 10**12},
     r"puts the first rung at min_budget \* 3 \*\* 1000000000000, past any budget"),
    ({"name": "mo_asha", "min_early_stopping_rate": 200}, "past any budget"),
])
def test_bad_settings_fail_before_the_study_is_stored(
        tmp_path: Path, spec: dict[str, Any], message: str) -> None:
    path = tmp_path / "s.db"
    with pytest.raises(tn.ConfigError, match=message):
        study(spec, storage=str(path))
    assert tn.storage.get_storage(str(path)).study_names() == []


# -- median -------------------------------------------------------------------------------------
def test_median_prunes_a_clearly_worse_curve_and_keeps_good_ones() -> None:
    good = [0.5, 0.6, 0.7, 0.8, 0.85]
    tops = {5: 0.1, 6: 1.2, 7: 1.1}  # 5: clearly worse; 6, 7: better; 8: falls late

    def curve(n: int) -> list[float]:
        if n < 5:
            return [v + 0.01 * n for v in good]
        if n == 8:
            return [0.6, 0.7, 0.8, 0.3, 0.3]
        return [tops[n] * v for v in good]

    s = study(MedianScheduler())
    s.optimize(curves_objective(curve), trials=9)
    assert outcome(s) == [("complete", 5)] * 5 + [
        ("pruned", 1), ("complete", 5), ("complete", 5), ("pruned", 4)]


def test_median_startup_warmup_interval_and_compare() -> None:
    def curve(n: int) -> list[float]:
        return [0.9] * 6 if n < 2 else [0.1] * 6

    # no pruning before startup_trials trials have finished
    s = study(MedianScheduler(startup_trials=3))
    s.optimize(curves_objective(curve), trials=4)
    assert outcome(s) == [("complete", 6)] * 3 + [("pruned", 1)]
    # warm-up and interval: judged at steps 2 + 3k only
    s = study(MedianScheduler(startup_trials=2, warmup_steps=2, interval=3))
    s.optimize(curves_objective(curve), trials=3)
    assert outcome(s)[2] == ("pruned", 5)
    # best against current: a curve that peaked early survives with "best" only
    def peaked(n: int) -> list[float]:
        return [0.5, 0.6, 0.7] if n < 2 else [0.9, 0.2, 0.2]

    for compare, expected in (("best", ("complete", 3)), ("current", ("pruned", 2))):
        s = study(MedianScheduler(startup_trials=2, compare=compare))
        s.optimize(curves_objective(peaked), trials=3)
        assert outcome(s)[2] == expected


def test_median_minimizes_losses_and_prunes_nan() -> None:
    s = tn.Study(objectives={"loss": "min"}, strategy="random",
                 scheduler=MedianScheduler(startup_trials=1))
    s.optimize(curves_objective(lambda n: [0.5, 0.6] if n == 0 else [0.2, 0.3]), trials=2)
    assert outcome(s) == [("complete", 2), ("pruned", 1)]  # loss = 1 - acc
    s = study(MedianScheduler(startup_trials=1))
    s.optimize(curves_objective(lambda n: [0.5, 0.6] if n == 0 else [0.9, math.nan]), trials=2)
    assert outcome(s) == [("complete", 2), ("pruned", 2)]


# -- successive halving -------------------------------------------------------------------------
# eta = 3, rungs at steps 1 and 3 (max_budget 9). Step-1 values and, for trials that get that
# far, step-3 values; worked out by hand below.
STEP1 = [0.5, 0.6, 0.4, 0.7, 0.3, 0.65, 0.8, 0.2, 0.55]
STEP3 = {0: 0.6, 1: 0.7, 2: 0.1, 3: 0.65, 5: 0.9, 6: 0.85}


def nine(n: int) -> list[float]:
    return [STEP1[n]] * 2 + [STEP3.get(n, 0.0) + 0.01 * k for k in range(7)]


def test_asha_rungs_and_promotion_are_exact() -> None:
    asha = SuccessiveHalvingScheduler(max_budget=9)
    assert asha.rungs() == [1, 3] and asha.budget(5) == 9
    assert SuccessiveHalvingScheduler(max_budget=100, min_early_stopping_rate=1).rungs() == [
        3, 9, 27, 81]
    assert SuccessiveHalvingScheduler(min_budget=2, reduction_factor=2).rungs(up_to=20) == [
        2, 4, 8, 16]
    s = study(asha)
    s.optimize(curves_objective(nine), trials=9)
    # rung 1, keep max(1, n // 3) of the n trials there so far (itself included):
    #   0 (n=1, best) 1 (n=2, best) go; 2 (n=3, third) stops; 3 (n=4, best) goes; 4 (n=5)
    #   stops; 5 (n=6, keep 2, second) and 6 (best) go; 7 (n=8) and 8 (n=9, keep 3, fifth) stop.
    # rung 3: 0, 1 go; 3 (n=3, second of .6 .7 .65) stops; 5 (best) goes; 6 (n=5, second) stops.
    assert outcome(s) == [("complete", 9), ("complete", 9), ("pruned", 1), ("pruned", 3),
                          ("pruned", 1), ("complete", 9), ("pruned", 3), ("pruned", 1),
                          ("pruned", 1)]
    for t in s.trials:  # a pruned trial keeps its last report as its metrics
        assert t.budget == 9
        last = t.intermediate[-1][1] if t.state is PRUNED else {"acc": nine(t.number)[-1]}
        assert t.metrics == last


def test_sha_gives_no_benefit_of_the_doubt() -> None:
    s = study({"name": "sha", "max_budget": 9})
    s.optimize(curves_objective(nine), trials=9)
    # rung 1, keep n // 3: 0, 1 (n < 3) stop; 2 (third of 3) stops; 3 (best of 4) goes; 4
    # stops; 5 (second of 6, keep 2) and 6 go; 7, 8 stop. Rung 3: 3 (n=1), 5 (n=2) stop; 6
    # (n=3, keep 1, behind 5's 0.9) stops.
    assert outcome(s) == [("pruned", 1), ("pruned", 1), ("pruned", 1), ("pruned", 3),
                          ("pruned", 1), ("pruned", 3), ("pruned", 3), ("pruned", 1),
                          ("pruned", 1)]


def test_asha_judges_each_rung_once_at_the_first_report_past_it() -> None:
    asha = SuccessiveHalvingScheduler(reduction_factor=2)
    asha.setup({"acc": "max"}, 0)
    others = {0: frozen(0, {1: 0.9, 2: 0.9, 4: 0.9}), 1: frozen(1, {1: 0.1, 3: 0.8, 5: 0.8})}
    # 2 jumps from step 1 past rungs 2 and 4 at step 5: judged at both with its step-5 value
    # (rung 2 against 0.9 and 0.8: n=3, keep 1, loses)
    trial = frozen(2, {1: 0.95, 5: 0.85}, tn.TrialState.RUNNING)
    assert asha.should_prune(trial, {**others, 2: trial})
    trial = frozen(2, {1: 0.95, 5: 0.95}, tn.TrialState.RUNNING)
    assert not asha.should_prune(trial, {**others, 2: trial})
    # a later report between rungs is not judged again, however bad
    trial = frozen(2, {1: 0.95, 5: 0.95, 6: 0.0}, tn.TrialState.RUNNING)
    assert not asha.should_prune(trial, {**others, 2: trial})
    # a report without the metric is not judged; NaN at a rung is pruned
    lost = tn.FrozenTrial(number=3, intermediate=((1, {"loss": 0.1}),))
    assert not asha.should_prune(lost, {3: lost})
    nan = frozen(3, {1: math.nan}, tn.TrialState.RUNNING)
    assert asha.should_prune(nan, {3: nan})


# -- hyperband ----------------------------------------------------------------------------------
def test_hyperband_brackets_are_deterministic_with_the_right_budgets() -> None:
    hb = HyperbandScheduler(max_budget=27)
    assert hb.s_max() == 3
    # Hyperband's n per bracket: ceil((s_max + 1) * eta**s / (s + 1)), s = s_max - bracket
    assert hb.bracket_sizes() == [27, 12, 6, 4]
    assert [hb.rungs(b) for b in range(4)] == [[1, 3, 9], [3, 9], [9], []]
    numbers = range(3 * 49)
    brackets = [hb.bracket(n) for n in numbers]
    assert brackets == [HyperbandScheduler(max_budget=27).bracket(n) for n in numbers]
    for start in (0, 49, 98):  # each cycle of 49 numbers holds each bracket its size's times
        cycle = brackets[start:start + 49]
        assert [cycle.count(b) for b in range(4)] == [27, 12, 6, 4]
    assert set(brackets[:9]) == {0, 1, 2, 3}  # interleaved: the first trials visit every one
    assert all(hb.budget(n) == 27 for n in numbers)
    wide = HyperbandScheduler(min_budget=10, max_budget=100)
    assert wide.bracket_sizes() == [9, 5, 3] and wide.rungs(0) == [10, 30, 90]
    # fractional budgets: rungs at min_budget * eta**k below max_budget (no rounding)
    assert HyperbandScheduler(min_budget=0.1, max_budget=0.9).rungs(0) == [0.1, 0.1 * 3]


def test_hyperband_compares_within_brackets_only() -> None:
    hb = HyperbandScheduler(max_budget=9)  # sizes [9, 5, 3]; rungs [1, 3], [3], []
    brackets = [hb.bracket(n) for n in range(12)]
    assert brackets == [0, 1, 0, 2, 0, 1, 0, 2, 0, 1, 0, 1]

    def curve(n: int) -> list[float]:
        return [1.0 - n / 20] * 9  # every trial worse than all before it

    s = study(hb)
    s.optimize(curves_objective(curve), trials=12)
    # bracket 0 (0, 2, 4, 6, 8, 10) at step 1: each is last of its bracket, and goes on only
    # while it is the best so far (n < 3): 0 goes; 2 (n=2) stops; 4, 6, 8, 10 stop.
    # bracket 1 (1, 5, 9, 11) at step 3: 1 goes, the rest stop; bracket 2 (3, 7): no rung.
    assert outcome(s) == [
        ("complete", 9), ("complete", 9), ("pruned", 1), ("complete", 9), ("pruned", 1),
        ("pruned", 3), ("pruned", 1), ("complete", 9), ("pruned", 1), ("pruned", 3),
        ("pruned", 1), ("pruned", 3)]
    assert all(t.budget == 9 for t in s.trials)


def test_hyperband_by_name_infers_max_budget_from_the_first_complete_trial() -> None:
    s = study("hyperband")
    s.optimize(curves_objective(lambda n: [1.0 - n / 20] * 9), trials=5)
    # trial 0 runs unjudged and sets max_budget 9: then as above
    assert outcome(s) == [("complete", 9), ("complete", 9), ("pruned", 1), ("complete", 9),
                          ("pruned", 1)]
    assert all(t.budget is None for t in s.trials)


# -- curve extrapolation ------------------------------------------------------------------------
def test_fit_power_law_recovers_a_curve() -> None:
    steps = [1, 2, 3, 4, 6, 8]
    a, b, c = fit_power_law(steps, [0.7 + 0.4 * s**-1.5 for s in steps])  # a falling loss
    assert (a, b, c) == pytest.approx((0.7, 0.4, 1.5), rel=0.005)


def test_curve_prunes_a_plateau_and_keeps_a_slow_riser() -> None:
    def curve(n: int) -> list[float]:
        s = range(1, 21)
        if n == 0:
            return [0.9 - 0.5 * k**-1.0 for k in s]  # ends at 0.875
        if n == 1:
            return [0.6 - 0.3 * k**-1.0 for k in s]  # levels off at 0.6
        return [0.98 - 0.6 * k**-0.7 for k in s]  # 0.75 at step 4, ends at 0.92

    s = study(CurveScheduler(min_points=4, margin=0.01))
    s.optimize(curves_objective(curve), trials=3)
    assert outcome(s) == [("complete", 20), ("pruned", 4), ("complete", 20)]


@pytest.mark.parametrize(("direction", "bad"), [("max", -math.inf), ("min", math.inf),
                                               ("max", math.nan)])
def test_curve_prunes_a_report_at_the_worst_value(direction: str, bad: float) -> None:
    sign = 1.0 if direction == "max" else -1.0

    def curve(n: int) -> list[float]:
        rising = [sign * (0.9 - 0.5 * k**-1.0) for k in range(1, 11)]
        return rising if n == 0 else [*rising[:5], bad, *rising[6:]]

    s = tn.Study(objectives={"acc": direction}, scheduler=CurveScheduler(min_points=4),
                 strategy="random")
    s.optimize(curves_objective(curve), trials=2)
    assert outcome(s) == [("complete", 10), ("pruned", 6)]


# -- a strategy's default scheduler -------------------------------------------------------------
class WithDefault(tn.strategies.RandomStrategy):
    name = "random_with_default"
    default_scheduler: ClassVar[Any] = {"name": "median", "startup_trials": 1}


def test_a_strategy_names_its_default_scheduler(tmp_path: Path) -> None:
    path = str(tmp_path / "s.db")
    s = study(None, storage=path, strategy=WithDefault())
    assert isinstance(s.scheduler, MedianScheduler) and s.scheduler.startup_trials == 1
    assert isinstance(tn.load_study(path, strategy=WithDefault()).scheduler, MedianScheduler)
    explicit = study("asha", strategy=WithDefault())
    assert isinstance(explicit.scheduler, SuccessiveHalvingScheduler)


# -- Trainer budgets ----------------------------------------------------------------------------
class Recorder(nn.Module):
    """A linear model that records which samples (by the index in feature 0) it trains on."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(3, 2)
        self.batches: list[list[int]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            self.batches.append(x[:, 0].long().tolist())
        return self.linear(x)


def indexed(n: int = 50) -> tn.data.Data:
    x = torch.cat([torch.arange(n, dtype=torch.float32)[:, None], torch.randn(n, 2)], 1)
    y = torch.arange(n) % 2
    return from_tensors((x, y), (x[:10], y[:10]))


def fit_log(trainer: tn.Trainer, data: tn.data.Data, **kw: Any,
            ) -> tuple[list[int], list[list[int]], dict[str, float]]:
    """Steps reported, samples trained on in each epoch, and the result."""
    model, steps, per_epoch = Recorder(), [], []

    def report(step: int, metrics: dict[str, float]) -> None:
        steps.append(step)
        per_epoch.append(sorted(i for b in model.batches for i in b))
        model.batches.clear()

    result = trainer.fit(model, data, report=report, **kw)
    return steps, per_epoch, result


def test_budget_in_epochs_caps_the_epochs() -> None:
    data = indexed()
    trainer = tn.Trainer(epochs=5, batch_size=16)
    steps, per_epoch, result = fit_log(trainer, data, budget=3)
    assert steps == [1, 2, 3] and result["epochs"] == 3
    assert all(e == list(range(50)) for e in per_epoch)
    assert fit_log(trainer, data, budget=12)[0] == [1, 2, 3, 4, 5]
    assert fit_log(trainer, data, budget=2.5)[0] == [1, 2]
    assert fit_log(trainer, data)[0] == [1, 2, 3, 4, 5]
    with pytest.raises(ValueError, match=r"budget must be a finite number in \[1.0"):
        trainer.fit(Recorder(), data, budget=0.5)


@pytest.mark.parametrize("loader", [False, True])
def test_budget_in_data_grows_a_seeded_subset(loader: bool) -> None:
    data = indexed(50)
    if loader:
        data = tn.data.from_datasets(Items(data.train), Items(data.val), num_classes=2)
    trainer = tn.Trainer(epochs=4, batch_size=5, budget="data")  # no batch of one (skipped)
    steps, per_epoch, result = fit_log(trainer, data, budget=50)
    assert steps == [13, 25, 38, 50]  # ceil(50 * k / 4) percent
    assert [len(e) for e in per_epoch] == [7, 13, 19, 25]  # ceil(p * 50 / 100) samples
    assert all(len(set(e)) == len(e) for e in per_epoch)  # no sample twice in an epoch
    assert all(set(a) <= set(b) for a, b in itertools.pairwise(per_epoch))  # nested
    assert result["epochs"] == 4
    again = fit_log(trainer, data, budget=50)[1]
    assert again == per_epoch  # the order is seeded
    assert fit_log(trainer, data, budget=50, seed=5)[1][0] != per_epoch[0]
    steps, per_epoch, _ = fit_log(trainer, data)  # no budget: up to all of it
    assert steps == [25, 50, 75, 100] and [len(e) for e in per_epoch] == [13, 25, 38, 50]
    assert fit_log(trainer, data, budget=300)[0] == [25, 50, 75, 100]
    final = Recorder()
    trainer.fit(final, data, budget=50, final=True)  # retraining ignores the budget
    assert sum(map(len, final.batches)) == 4 * 60


def test_bad_budget_unit_fails_before_training() -> None:
    with pytest.raises(ValueError, match="budget must be one of 'epochs', 'data'"):
        tn.Trainer(budget="steps").check()


# -- searches on digits -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def digits() -> tn.data.Data:
    return tn.data.load("digits")


def test_model_search_with_hyperband_prunes_and_caps_epochs(digits: tn.data.Data) -> None:
    search = tn.ModelSearch(space="mlp", data=digits, trainer=tn.Trainer(epochs=9), trials=6,
                            strategy="random", scheduler="hyperband", progress=False)
    s = search.run()
    hb = s.scheduler
    assert isinstance(hb, HyperbandScheduler)
    pruned = [t for t in s.trials if t.state is PRUNED]
    assert pruned and len(pruned) < len(s.trials)
    for t in s.trials:
        steps = [step for step, _ in t.intermediate]
        assert steps == list(range(1, len(steps) + 1))
        if t.state is PRUNED:  # stopped at a rung of its own bracket
            assert steps[-1] in hb.rungs(hb.bracket(t.number, 9), 9)
            assert t.metrics == t.intermediate[-1][1]
        else:
            assert t.state is COMPLETE and t.metrics["epochs"] == 9 == len(steps)


def test_model_search_with_a_data_budget(digits: tn.data.Data) -> None:
    search = tn.ModelSearch(
        space="mlp", data=digits, trainer=tn.Trainer(epochs=4, budget="data"), trials=4,
        strategy="random", progress=False,
        scheduler={"name": "asha", "min_budget": 25, "max_budget": 100, "reduction_factor": 2})
    s = search.run()
    for t in s.trials:
        assert t.budget == 100
        steps = [step for step, _ in t.intermediate]
        assert steps == [25, 50, 75, 100][: len(steps)]
        assert t.state is COMPLETE or steps[-1] in (25, 50)
    assert any(t.state is PRUNED for t in s.trials)
