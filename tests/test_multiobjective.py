"""Several objectives: non-dominated sorting, hypervolume, NSGA-II, MOTPE, "auto", MO-ASHA.

The strategy contract (tests/test_contract_strategies.py) runs on ``nsga2`` and ``motpe`` too
(conditional labels, replay of one and of two objectives); this file checks what makes them
multi-objective.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import math
import statistics
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import torchnas as tn
from torchnas.cli import main
from torchnas.schedulers import ParetoHalvingScheduler
from torchnas.space import Int
from torchnas.strategies import AskContext, MOTPEStrategy, NSGA2Strategy
from torchnas.strategies._motpe import greedy_hypervolume_subset
from torchnas.strategies._nsga2 import crowded_keys
from torchnas.study._hypervolume import contributions, default_reference, hypervolume
from torchnas.study._objectives import crowding_distance, nondominated_fronts, violation

TWO = {"acc": "max", "cost": "min"}


def cells(points: list[tuple[int, ...]], reference: tuple[int, ...]) -> int:
    """Hypervolume by counting the unit cells (of an integer grid) some point dominates."""
    ranges = [range(0, r) for r in reference]
    return sum(any(all(p[i] <= c[i] for i in range(len(c))) for p in points)
               for c in itertools.product(*ranges))


def zdt(hp: tn.HP) -> dict[str, float]:
    """ZDT1 on a grid of 11 values per decision (a known, convex front: f2 = 1 - sqrt(f1))."""
    xs = [hp.choice(f"x{i}", [i / 10 for i in range(11)]) for i in range(5)]
    g = 1 + 9 * sum(xs[1:]) / 4
    return {"f1": xs[0], "f2": g * (1 - math.sqrt(xs[0] / g))}


def zdt_hv(strategy: str, seed: int, trials: int = 80) -> float:
    s = tn.Study(objectives={"f1": "min", "f2": "min"}, strategy=strategy, seed=seed)
    s.optimize(zdt, trials=trials)
    return s.hypervolume([1.1, 11.0])


# -- sorting, crowding, hypervolume -----------------------------------------------------------
points = st.lists(st.tuples(st.integers(0, 5), st.integers(0, 5), st.integers(0, 5)),
                  min_size=0, max_size=9)


@settings(max_examples=60, deadline=None)
@given(pts=points)
def test_fronts_partition_the_rows_and_respect_dominance(pts: list[tuple[int, ...]]) -> None:
    fronts = nondominated_fronts(pts)
    assert sorted(i for f in fronts for i in f) == list(range(len(pts)))
    depth = {i: d for d, f in enumerate(fronts) for i in f}

    def dominates(a: tuple[int, ...], b: tuple[int, ...]) -> bool:
        return all(x >= y for x, y in zip(a, b, strict=True)) and a != b

    for i, j in itertools.permutations(range(len(pts)), 2):
        if dominates(pts[i], pts[j]):
            assert depth[i] < depth[j]
        if depth[i] == depth[j]:
            assert not dominates(pts[i], pts[j])
    for d, front in enumerate(fronts[1:], 1):  # each later row is dominated by the front before
        assert all(any(dominates(pts[k], pts[i]) for k in fronts[d - 1]) for i in front)
    # with a limit: the first fronts, just as many as it takes to sort at least `limit` rows
    limited = nondominated_fronts(pts, limit=2)
    assert limited == fronts[: len(limited)]
    assert sum(map(len, limited)) >= min(2, len(pts)) and sum(map(len, limited[:-1])) < 2


def test_crowding_distance_of_a_known_front() -> None:
    dist = crowding_distance([(0.0, 4.0), (1.0, 3.0), (3.0, 1.0), (4.0, 0.0)])
    assert dist[0] == dist[3] == math.inf
    assert dist[1] == pytest.approx(3 / 4 + 3 / 4) and dist[2] == pytest.approx(3 / 4 + 3 / 4)
    assert crowding_distance([(1.0, 1.0), (2.0, 0.0)]) == [math.inf, math.inf]


@settings(max_examples=60, deadline=None)
@given(pts=points, dims=st.sampled_from([2, 3]))
def test_hypervolume_is_exact_against_counting_cells(pts: list[tuple[int, ...]],
                                                     dims: int) -> None:
    pts = [p[:dims] for p in pts]
    reference = (6, 5, 4)[:dims]
    assert hypervolume(pts, reference) == cells(pts, reference)


def test_hypervolume_in_four_objectives_and_against_optuna() -> None:
    rng = np.random.default_rng(0)
    pts = [tuple(int(v) for v in row) for row in rng.integers(0, 4, size=(12, 4))]
    assert hypervolume(pts, (4, 4, 4, 4)) == cells(pts, (4, 4, 4, 4))
    optuna_hv = pytest.importorskip("optuna._hypervolume").compute_hypervolume
    for m in (2, 3):
        front = rng.random((60, m))
        assert hypervolume(front, np.full(m, 1.1)) == pytest.approx(
            optuna_hv(front, np.full(m, 1.1)), rel=1e-12)


def test_hypervolume_respects_directions_and_ignores_what_misses_the_reference() -> None:
    # acc is maximized, cost minimized: (0.75, 100) and (0.5, 20) against (0.25, 1000)
    assert hypervolume([(0.75, 100), (0.5, 20)], (0.25, 1000), ["max", "min"]) == 470.0
    flipped = hypervolume([(-0.75, 100), (-0.5, 20)], (-0.25, 1000))
    assert flipped == 470.0
    assert hypervolume([(0.1, 10), (0.9, math.nan)], (0.25, 1000), ["max", "min"]) == 0.0
    assert hypervolume([], (1, 1)) == 0.0
    with pytest.raises(tn.ConfigError, match="reference point must be 2"):
        hypervolume([(1, 2)], (3,))
    with pytest.raises(tn.ConfigError, match="directions"):
        hypervolume([(1, 2)], (3, 3), ["max", "up"])


def test_contributions_and_default_reference() -> None:
    assert contributions([(1, 3), (2, 2), (3, 1), (3, 3)], (4, 4)) == [1.0, 1.0, 1.0, 0.0]
    ref = default_reference([(0.9, 100.0), (0.7, 300.0)], ["max", "min"])
    assert ref == pytest.approx([0.68, 320.0])
    assert default_reference([(2.0, 0.0)]) == pytest.approx([2.2, 0.1])


def test_greedy_hypervolume_subset_adds_the_most_hypervolume_first() -> None:
    front = np.array([(0.0, 1.0), (0.1, 0.99), (0.5, 0.5), (0.99, 0.1), (1.0, 0.0)])
    ref = np.array([-0.1, -0.1])
    picked = greedy_hypervolume_subset(front, 3, ref)
    assert picked[0] == 2  # the knee first, then spread out to both sides of it
    assert sorted(picked) == [1, 2, 3]

    def hv(rows: list[int]) -> float:
        return hypervolume(front[rows], ref, ["max", "max"])

    best = max(itertools.combinations(range(5), 3), key=lambda c: hv(list(c)))
    assert hv(picked) == pytest.approx(hv(list(best)))
    assert sorted(greedy_hypervolume_subset(front, 9, ref)) == [0, 1, 2, 3, 4]


def test_violation_adds_relative_gaps() -> None:
    rules = {"params": ("<=", 1000.0), "acc": (">=", 0.5)}
    assert violation({"params": 900, "acc": 0.6}, rules) == 0.0
    assert violation({"params": 1500, "acc": 0.6}, rules) == pytest.approx(0.5)
    assert violation({"params": 1500, "acc": 0.0}, rules) == pytest.approx(1.0)
    assert violation({"acc": 0.6}, rules) == math.inf


# -- Study: hypervolume, summaries, "auto" -----------------------------------------------------
def two(hp: tn.HP) -> dict[str, float]:
    a, b = hp.int("a", 0, 20), hp.int("b", 0, 20)
    return {"acc": a + b, "cost": a * b + a}


def test_study_hypervolume_matches_its_front_and_names_bad_references() -> None:
    s = tn.Study(objectives=TWO, strategy="random", seed=1)
    assert s.hypervolume() == 0.0
    s.optimize(two, trials=30)
    front = [(t.value("acc"), t.value("cost")) for t in s.pareto_front()]
    assert s.hypervolume({"cost": 500, "acc": 0}) == hypervolume(front, (0, 500), ["max", "min"])
    assert s.hypervolume([0, 500]) == s.hypervolume({"acc": 0, "cost": 500})
    assert s.hypervolume() > 0
    with pytest.raises(tn.ConfigError, match="missing \\['cost'\\]"):
        s.hypervolume({"acc": 0})
    with pytest.raises(tn.ConfigError, match="2 values expected"):
        s.hypervolume([0])
    summary = s.results_summary()
    assert f"Pareto front: {len(front)} trials, hypervolume" in summary


@pytest.mark.parametrize(("objectives", "expected"), [
    ({"score": "max"}, tn.strategies.AUTO), (TWO, tn.strategies.AUTO_MULTI)])
def test_auto_resolves_by_the_number_of_objectives_and_is_stored_exactly(
        objectives: dict[str, str], expected: str, tmp_path: Path) -> None:
    s = tn.Study(storage=tmp_path / "a.db", objectives=objectives, strategy="auto")
    assert s.config["strategy"] == {"name": expected} and s.strategy.name == expected
    s.journal.close()
    again = tn.load_study(tmp_path / "a.db")
    assert again.strategy.name == expected
    again.journal.close()
    spec = {"name": "auto", "startup": 3} if expected == "motpe" else {"name": "auto"}
    if expected == "motpe":
        dict_study = tn.Study(objectives=objectives, strategy=spec)
        assert dict_study.config["strategy"] == {"name": "motpe", "startup": 3}
    assert tn.strategies.AUTO_MULTI in tn.strategies.available()


def test_best_command_prints_the_front(tmp_path: Path) -> None:
    s = tn.Study(name="mo", storage=tmp_path / "mo.db", objectives=TWO, strategy="nsga2")
    s.optimize(two, trials=25)
    front = s.pareto_front()
    hv = s.hypervolume()
    s.journal.close()
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["best", str(tmp_path / "mo.db"), "--json"]) == 0
    record = json.loads(out.getvalue())
    assert [r["trial"] for r in record["pareto_front"]] == [t.number for t in front]
    assert record["hypervolume"] == pytest.approx(hv) and hv > 0
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["best", str(tmp_path / "mo.db")]) == 0
    assert f"Pareto front of 'mo': {len(front)} trials" in out.getvalue()


# -- NSGA-II ---------------------------------------------------------------------------------
def record(number: int, state: tn.TrialState = tn.TrialState.COMPLETE,
           feasible: bool | None = True, **metrics: float) -> tn.FrozenTrial:
    return tn.FrozenTrial(number=number, state=state, arch={"a": number},
                          domains={"a": Int(0, 99)}, metrics=metrics, feasible=feasible)


def test_crowded_keys_follow_debs_rules() -> None:
    nsga = NSGA2Strategy(population=4)
    nsga.setup(TWO, 0)
    nsga.set_constraints({"cost": ("<=", 10.0)})
    trials = [record(0, acc=1, cost=1), record(1, acc=2, cost=2), record(2, acc=0, cost=5),
              record(3, feasible=False, acc=9, cost=12), record(4, feasible=False, acc=9, cost=30),
              record(5, tn.TrialState.REJECTED, False, cost=11),
              record(6, tn.TrialState.FAILED, None)]
    members = [nsga.member(t) for t in trials]
    assert nsga.member(record(7, tn.TrialState.PRUNED, None, acc=1)) is None
    keys = crowded_keys([m for m in members if m is not None])
    order = sorted(range(len(keys)), key=lambda i: keys[i], reverse=True)
    # the front (0, 1: extremes), then the dominated one, then by violation, failed last
    assert order[:2] in ([0, 1], [1, 0]) and order[2:] == [2, 5, 3, 4, 6]


def test_parents_are_the_elite_of_the_last_parents_and_their_children() -> None:
    nsga = NSGA2Strategy(population=3)
    nsga.setup(TWO, 0)
    values = [(1, 5), (2, 5), (0, 9), (5, 1), (1, 6), (3, 3), (0, 0), (0, 0), (0, 0)]
    for n in reversed(range(6)):  # finish order does not matter
        nsga.tell(record(n, acc=values[n][0], cost=values[n][1]))
    assert [m.trial.number for m in nsga.parents(0)] == []
    assert sorted(m.trial.number for m in nsga.parents(1)) == [0, 1, 2]  # all of generation 0
    # from trials 0..5: 3 dominates all but 5; 5 dominates all but 3; then 1
    assert [m.trial.number for m in nsga.parents(2)] == [3, 5, 1]
    ctx = AskContext(number=7, seed=0)
    child = nsga.ask(ctx)
    assert child and child["a"] not in range(6)  # bred, then mutated away from the seen ones


def test_nsga2_infeasible_population_moves_toward_feasibility() -> None:
    def objective(hp: tn.HP) -> dict[str, float]:
        a, b = hp.int("a", 0, 30), hp.int("b", 0, 30)
        return {"acc": a + b, "cost": a * b + 100}

    s = tn.Study(objectives=TWO, constraints={"cost": ("<=", 110)}, strategy={
        "name": "nsga2", "population": 8}, seed=3)
    assert s.strategy.constraints == {"cost": ("<=", 110.0)}
    s.optimize(objective, trials=40)
    early = [t.value("cost") for t in s.trials[:8]]
    late = [t.value("cost") for t in s.trials[24:]]
    assert statistics.median(late) < statistics.median(early)
    assert sum(t.feasible for t in s.trials[24:]) > sum(t.feasible for t in s.trials[:8]) / 8 * 16


def test_nsga2_avoids_running_architectures() -> None:
    nsga = NSGA2Strategy(population=2, crossover=0.0)
    nsga.setup(TWO, 0)
    for n in range(2):
        nsga.tell(record(n, acc=n, cost=n))
    for k in range(10):
        ctx = AskContext(number=2 + k, seed=0, pending=[{"a": v} for v in range(2, 60)])
        child = nsga.ask(ctx)  # bred, or left to a random suggestion that is new
        value = child["a"] if "a" in child else nsga.suggest(ctx, "a", Int(0, 99))
        assert value not in range(60)


@pytest.mark.parametrize("name", ["nsga2", "motpe"])
def test_beats_random_search_on_the_hypervolume_of_zdt1(name: str) -> None:
    ours = [zdt_hv(name, seed) for seed in range(3)]
    rand = [zdt_hv("random", seed) for seed in range(3)]
    assert statistics.mean(ours) > statistics.mean(rand) + 0.3, (ours, rand)


# -- MOTPE -------------------------------------------------------------------------------------
def test_motpe_good_trials_are_the_first_fronts() -> None:
    motpe = MOTPEStrategy(startup=1, gamma=0.4)
    motpe.setup({"f1": "min", "f2": "min"}, 0)
    values = [(0, 10), (1, 9), (2, 8), (3, 7), (10, 0), (5, 10), (9, 9), (8, 8), (7, 9), (9, 7)]
    for n, (f1, f2) in enumerate(values):
        motpe.tell(tn.FrozenTrial(number=n, state=tn.TrialState.COMPLETE, arch={"a": n},
                                  domains={"a": Int(0, 99)}, metrics={"f1": f1, "f2": f2},
                                  feasible=True))
    split = motpe._fit_split()
    assert split is not None
    # 4 of the 5 non-dominated trials; the spread is kept: both ends are in
    assert set(np.flatnonzero(split[0])) <= {0, 1, 2, 3, 4}
    assert {0, 4} <= set(np.flatnonzero(split[0])) and split[0].sum() == 4


# -- multi-objective successive halving ------------------------------------------------------------
def test_rungs_rank_by_front_then_crowding() -> None:
    sha = ParetoHalvingScheduler(min_budget=1, max_budget=9, reduction_factor=3)
    sha.setup(TWO, 0)
    others = [(0.9, 50.0), (0.5, 10.0), (0.7, 30.0), (0.2, 5.0), (0.1, 90.0)]
    assert sha.promoted_vector((0.95, 60.0), others)  # on the front, at an end
    assert not sha.promoted_vector((0.4, 40.0), others)  # dominated by (0.7, 30)
    assert not sha.promoted_vector((0.6, 35.0), others)  # dominated by (0.7, 30) too
    single = ParetoHalvingScheduler(min_budget=1, max_budget=9, reduction_factor=2)
    single.setup({"acc": "max"}, 0)
    asha = tn.schedulers.create("asha", min_budget=1, max_budget=9, reduction_factor=2)
    asha.setup({"acc": "max"}, 0)
    rng = np.random.default_rng(0)
    for _ in range(50):
        own, rest = float(rng.random()), [float(v) for v in rng.random(int(rng.integers(0, 7)))]
        assert single.promoted_vector([own], [[v] for v in rest]) == asha.promoted(own, rest)


def test_mo_asha_prunes_dominated_trials_from_reports_of_every_objective() -> None:
    def objective(hp: tn.HP) -> dict[str, float]:
        quality, size = hp.float("quality", 0, 1), hp.int("size", 1, 100)
        assert hp.trial is not None
        hp.trial.report(0, {"cost": size})  # a cost known before training, reported once
        for epoch in range(1, 10):
            hp.trial.report(epoch, {"acc": quality * epoch / 9})
        return {"acc": quality, "cost": size}

    s = tn.Study(objectives=TWO, strategy="random", seed=0,
                 scheduler={"name": "mo_asha", "max_budget": 9})
    s.optimize(objective, trials=40)
    pruned = [t for t in s.trials if t.state is tn.TrialState.PRUNED]
    done = [t for t in s.trials if t.state is tn.TrialState.COMPLETE]
    assert 10 < len(pruned) < 40 and done
    # a trial that dominated every one before it at its first rung (both objectives) went on
    by_number = sorted(s.trials, key=lambda t: t.number)
    for t in by_number:
        q, c = t.arch["quality"], t.arch["size"]
        if all(q >= o.arch["quality"] and c <= o.arch["size"] for o in by_number[:t.number]):
            assert t.state is tn.TrialState.COMPLETE, t.number
    # the cheapest trial (an end of every front) is never pruned at the first rung
    cheapest = min(s.trials, key=lambda t: t.arch["size"])
    assert max(step for step, _ in cheapest.intermediate) >= 3


def test_mo_asha_setting_errors_name_the_setting() -> None:
    with pytest.raises(tn.ConfigError, match="reduction_factor"):
        tn.Study(objectives=TWO, scheduler={"name": "mo_asha", "reduction_factor": 1})

