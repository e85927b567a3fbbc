"""Evolution, local search and the RL controller: their own promises.

The contract suite (tests/test_contract_strategies.py) runs on them too; this file checks what
makes each one what it is: aging and tournaments, moves that respect conditional spaces,
de-duplication against finished and running trials, climbing and restarts, a policy that learns,
and replay.
"""

from __future__ import annotations

import itertools
import math
import random
import statistics
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any, TypeVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import torchnas as tn
from torchnas.space import Categorical, Domain, Float, Inputs, Int, arch_key
from torchnas.strategies import (
    AskContext,
    EvolutionStrategy,
    LocalSearchStrategy,
    ReinforceStrategy,
    Strategy,
)
from torchnas.strategies._evolution import rank_keys, score
from torchnas.strategies._mutation import ArchIndex, neighbours, perturb

S = TypeVar("S", bound=Strategy)
MAX = {"score": "max"}
GRID = {"a": Int(0, 9), "b": Int(0, 9)}


def ready(strategy: S, seed: int = 0, objectives: Mapping[str, str] = MAX) -> S:
    strategy.setup(objectives, seed)
    return strategy


def finished(number: int, arch: Mapping[str, Any], value: float | None,
             domains: Mapping[str, Domain], state: tn.TrialState = tn.TrialState.COMPLETE,
             ) -> tn.FrozenTrial:
    return tn.FrozenTrial(
        number=number, state=state, arch=dict(arch), domains={k: domains[k] for k in arch},
        metrics={} if value is None else {"score": float(value)},
        feasible=True if state is tn.TrialState.COMPLETE else None)


def realize(strategy: Strategy, ctx: AskContext, fixed: Mapping[str, Any],
            domains: Mapping[str, Domain]) -> dict[str, Any]:
    """What a run of a non-conditional space would record: fixed values, else suggestions."""
    return {label: fixed[label] if label in fixed else strategy.suggest(ctx, label, dom)
            for label, dom in domains.items()}


# -- evolution: aging and tournaments -------------------------------------------------------------
@settings(max_examples=40, deadline=None)
@given(scores=st.lists(st.integers(0, 5), min_size=1, max_size=30),
       population=st.integers(1, 8), sample_size=st.integers(1, 10), seed=st.integers(0, 999))
def test_the_parent_wins_a_tournament_among_the_last_finished(
        scores: list[int], population: int, sample_size: int, seed: int) -> None:
    domains = {"a": Int(0, 999), "b": Int(0, 999)}
    evo = ready(EvolutionStrategy(population=population, sample_size=sample_size, startup=0),
                seed)
    trials = [finished(i, {"a": i, "b": i}, s, domains) for i, s in enumerate(scores)]
    for t in trials:
        evo.tell(t)
    members = trials[-population:]
    assert evo.members == members  # aging: the oldest died, however good
    ctx = AskContext(number=len(trials), seed=seed)
    (parent,) = evo.parents(ctx)
    assert parent in members
    better = sum(m.value("score") > parent.value("score") for m in members)
    assert better <= len(members) - min(sample_size, len(members))
    child = evo.ask(ctx)
    assert sum(child[k] != parent.arch[k] for k in child) == 1  # mutations=1
    assert all(domains[k].contains(v) for k, v in child.items())


def test_the_best_ages_out_and_failures_rank_worst() -> None:
    evo = ready(EvolutionStrategy(population=5, sample_size=5, startup=0))
    evo.tell(finished(0, {"a": 0, "b": 0}, 100.0, GRID))  # the best ever, soon too old
    for i in range(1, 6):
        evo.tell(finished(i, {"a": i, "b": i}, float(i), GRID))
    evo.tell(finished(6, {"a": 6, "b": 6}, None, GRID, tn.TrialState.FAILED))
    evo.tell(finished(7, {"a": 7, "b": 7}, None, GRID, tn.TrialState.PRUNED))  # no objective
    assert [t.number for t in evo.members] == [2, 3, 4, 5, 6]
    assert {evo.parents(AskContext(number=n, seed=0))[0].number for n in range(8, 40)} == {5}


def test_startup_trials_are_random_search() -> None:
    def wide(hp: tn.HP) -> float:
        return sum(hp.int(f"x{i}", 0, 99) for i in range(4)) + hp.float("lr", 1e-4, 1e-1, log=True)

    studies = [tn.Study(objectives=MAX, strategy=s, seed=3)
               for s in ("random", EvolutionStrategy(population=12))]
    for s in studies:
        s.optimize(wide, trials=20)
    archs = [[t.arch for t in s.trials] for s in studies]
    assert archs[0][:12] == archs[1][:12] and archs[0][12:] != archs[1][12:]


class Recording(EvolutionStrategy):
    """Evolution that remembers the decisions it fixed for each trial."""

    def setup(self, objectives: Mapping[str, str], seed: int) -> None:
        super().setup(objectives, seed)
        self.asked: dict[int, dict[str, Any]] = {}

    def ask(self, ctx: AskContext) -> dict[str, Any]:
        self.asked[ctx.number] = super().ask(ctx)
        return self.asked[ctx.number]


def layered(hp: tn.HP) -> float:
    return float(sum(hp.choice(f"w{i}", [8, 16, 32]) for i in range(hp.int("layers", 1, 3))))


def test_children_respect_domains_and_conditional_labels() -> None:
    seen: set[str] = set()
    for seed in range(40):
        evo = Recording(population=5, startup=1)
        s = tn.Study(objectives=MAX, strategy=evo, seed=seed)
        parent = s.ask(fixed={"layers": 2, "w0": 8, "w1": 16})
        s.tell(parent, layered(parent.hp))
        s.optimize(layered, trials=1)
        child, asked = s.trials[1], evo.asked[1]
        for label, value in child.arch.items():
            assert child.domains[label].contains(value)
        parent = {"layers": 2, "w0": 8, "w1": 16}
        assert set(asked) == set(parent) and sum(asked[k] != parent[k] for k in parent) == 1
        if child.arch["layers"] == 3:  # the third layer's labels were suggested
            seen.add("grew")
            assert "w2" not in asked and "w2" in child.arch
            assert (child.arch["w0"], child.arch["w1"]) == (8, 16)
        elif child.arch["layers"] == 1:  # w1 was fixed but never met: it is not recorded
            seen.add("shrank")
            assert child.arch == {"layers": 1, "w0": 8}
        else:
            seen.add("same depth")
            assert child.arch == asked
    assert seen == {"grew", "shrank", "same depth"}


def test_crossover_mixes_two_parents() -> None:
    labels = [f"x{i}" for i in range(8)]
    domains: dict[str, Domain] = {k: Categorical(("a", "b")) for k in labels}
    evo = ready(EvolutionStrategy(population=2, sample_size=1, crossover=1.0, mutations=0,
                                  startup=0))
    evo.tell(finished(0, dict.fromkeys(labels, "a"), 1.0, domains))
    evo.tell(finished(1, dict.fromkeys(labels, "b"), 1.0, domains))
    mixed = 0
    for n in range(2, 22):
        ctx = AskContext(number=n, seed=0)
        assert sorted(p.number for p in evo.parents(ctx)) == [0, 1]
        child = evo.ask(ctx)
        assert list(child) == labels
        mixed += len(set(child.values())) == 2
    assert mixed >= 18


# -- de-duplication ------------------------------------------------------------------------------
def small(hp: tn.HP) -> float:
    """4 * 4 * (1 + 3) = 64 architectures, some conditional."""
    value = hp.choice("a", [0, 1, 2, 3]) + hp.int("b", 0, 3)
    if hp.bool("deep"):
        value += len(hp.choice("extra", ["x", "yy", "zzz"]))
    return float(value)


SEARCHERS = ["evolution", {"name": "evolution", "population": 8, "crossover": 0.5},
             "local", {"name": "local", "startup": 3}]


@pytest.mark.parametrize("spec", SEARCHERS)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_no_duplicates_while_unseen_architectures_remain(spec: Any, seed: int) -> None:
    s = tn.Study(objectives=MAX, strategy=spec, seed=seed)
    s.optimize(small, trials=50)
    assert len({t.key for t in s.trials}) == 50


@pytest.mark.parametrize("make", [lambda: EvolutionStrategy(population=5, startup=0),
                                  lambda: LocalSearchStrategy(startup=1)])
def test_proposals_avoid_running_architectures(make: Any) -> None:
    strategy = ready(make())
    for n, (a, b) in enumerate([(1, 2), (5, 5), (7, 1), (3, 3), (9, 0)]):
        strategy.tell(finished(n, {"a": a, "b": b}, a + b, GRID))
    first = strategy.ask(AskContext(number=5, seed=0))
    assert set(first) == {"a", "b"}
    assert strategy.ask(AskContext(number=5, seed=0, pending=[{}])) == first  # nothing known
    running = [first]
    for _ in range(5):
        nxt = strategy.ask(AskContext(number=5, seed=0, pending=list(running)))
        nxt = realize(strategy, AskContext(number=5, seed=0), nxt, GRID)
        assert arch_key(nxt) not in {arch_key(r) for r in running}
        running.append(nxt)


# -- better than random --------------------------------------------------------------------------
TARGET = (1, 3, 0, 2, 2, 1, 3, 0)


def matches(hp: tn.HP) -> float:
    """8 decisions of 4 values; the score counts those equal to a hidden target (optimum 8)."""
    return float(sum(hp.choice(f"x{i}", [0, 1, 2, 3]) == t for i, t in enumerate(TARGET)))


@cache
def median_best(spec: str) -> float:
    bests = []
    for seed in range(5):
        s = tn.Study(objectives=MAX, strategy=spec, seed=seed)
        s.optimize(matches, trials=100)
        bests.append(s.best_trial.value("score"))
    return statistics.median(bests)


@pytest.mark.parametrize("spec", ["evolution", "local"])
def test_beats_the_median_of_random_search(spec: str) -> None:
    assert median_best(spec) > median_best("random")
    assert median_best(spec) >= 7


# -- local search --------------------------------------------------------------------------------
def bowl(hp: tn.HP) -> float:
    return -float((hp.int("x", 0, 4) - 2) ** 2 + (hp.int("y", 0, 4) - 2) ** 2)


@pytest.mark.parametrize("seed", [0, 1])
def test_local_search_climbs_by_first_improvement(seed: int) -> None:
    s = tn.Study(objectives=MAX, strategy=LocalSearchStrategy(startup=1), seed=seed)
    start = s.ask(fixed={"x": 0, "y": 0})
    s.tell(start, bowl(start.hp))
    path = [-8.0]  # the incumbent's score, each time it moves
    for _ in range(24):
        before = s.strategy.incumbent
        assert before is not None
        s.optimize(bowl, trials=1)
        trial, after = s.trials[-1], s.strategy.incumbent
        assert sum(trial.arch[k] != v for k, v in before.arch.items()) == 1  # a neighbour
        if trial.value("score") > before.value("score"):
            assert after is trial  # the first improvement is taken
            path.append(trial.value("score"))
        else:
            assert after is before
        if path[-1] == 0:
            break
    assert path[-1] == 0 and path == sorted(set(path)) and len(path) >= 3


def test_local_search_restarts_at_a_local_optimum() -> None:
    domains = {"x": Int(0, 4), "y": Int(0, 4)}
    loc = ready(LocalSearchStrategy(startup=1))
    loc.tell(finished(0, {"x": 2, "y": 2}, 0.0, domains))
    moves = []
    for n in range(1, 9):
        ctx = AskContext(number=n, seed=0)
        move = loc.ask(ctx)
        assert sum(move[k] != 2 for k in ("x", "y")) == 1  # a neighbour of the incumbent
        moves.append(move)
        loc.tell(finished(n, move, -((move["x"] - 2) ** 2 + (move["y"] - 2) ** 2), domains))
        assert loc.incumbent is not None and loc.incumbent.number == 0  # an optimum
    assert len({arch_key(m) for m in moves}) == 8  # each neighbour once, in a seeded order
    ctx = AskContext(number=9, seed=0)
    restart = realize(loc, ctx, loc.ask(ctx), domains)
    assert restart not in [{"x": 2, "y": 2}, *moves]
    loc.tell(finished(9, restart, -100.0, domains))
    assert loc.incumbent is not None and loc.incumbent.number == 9  # worse, but climbed from


def test_local_search_visits_neighbours_in_a_seeded_order() -> None:
    def first_moves(seed: int) -> list[dict[str, Any]]:
        loc = ready(LocalSearchStrategy(startup=1), seed)
        loc.tell(finished(0, {"a": 5, "b": 5}, 0.0, GRID))
        out = []
        for n in range(1, 6):
            out.append(loc.ask(AskContext(number=n, seed=seed)))
            loc.tell(finished(n, out[-1], -1.0, GRID))
        return out

    assert first_moves(0) == first_moves(0) != first_moves(1)


# -- the RL controller ---------------------------------------------------------------------------
OPS = ["conv3", "conv5", "pool", "skip", "none"]
OP_DOMAIN = Categorical(tuple(OPS))


@pytest.mark.parametrize(("direction", "seed"), [("max", 0), ("min", 1), ("max", 2)])
def test_the_controller_concentrates_on_a_clearly_best_choice(direction: str, seed: int) -> None:
    def objective(hp: tn.HP) -> float:
        good = hp.choice("op", OPS) == "conv5"
        hp.int("width", 8, 64, step=8)
        hp.float("lr", 1e-4, 1e-1, log=True)
        return float(good) if direction == "max" else float(not good)

    s = tn.Study(objectives={"score": direction}, strategy="rl", seed=seed)
    assert s.strategy.probabilities("op", OP_DOMAIN) == pytest.approx([0.2] * 5)  # uniform
    s.optimize(objective, trials=100)
    assert s.strategy.probabilities("op", OP_DOMAIN)[1] > 0.6


def test_the_controller_learns_to_avoid_failures() -> None:
    def objective(hp: tn.HP) -> float:
        op = hp.choice("op", ["good", "crash", "ok"])
        if op == "crash":
            raise RuntimeError("out of memory")
        return 1.0 if op == "good" else 0.5

    s = tn.Study(objectives=MAX, strategy="rl", seed=0)
    s.optimize(objective, trials=60)
    probs = s.strategy.probabilities("op", Categorical(("good", "crash", "ok")))
    assert probs[1] < 0.1 and probs[0] > 0.5


def conditional(hp: tn.HP) -> float:
    n = hp.int("layers", 1, 3)
    width = sum(hp.int(f"units{i}", 16, 4096, log=True) for i in range(n))
    op = hp.choice("op", OPS)
    if op == "none":
        raise ValueError("no op")
    return width / 4096 * (1 + OPS.index(op)) - abs(math.log10(hp.float("lr", 1e-5, 1.0,
                                                                         log=True)) + 2)


def test_the_controller_resumed_from_sqlite_proposes_what_an_uninterrupted_one_does(
        tmp_path: Path) -> None:
    whole = tn.Study(objectives=MAX, strategy="rl", seed=5)
    whole.optimize(conditional, trials=40)
    part = tn.Study(objectives=MAX, strategy="rl", seed=5, storage=tmp_path / "rl.db")
    part.optimize(conditional, trials=20)
    part.journal.close()
    resumed = tn.load_study(tmp_path / "rl.db")
    resumed.optimize(conditional, trials=20)
    assert [t.arch for t in resumed.trials] == [t.arch for t in whole.trials]
    assert any(t.state is tn.TrialState.FAILED for t in whole.trials)
    probe = {"layers": 2, "units0": 64, "units1": 512}
    assert (resumed.strategy.probabilities("op", OP_DOMAIN, probe)
            == whole.strategy.probabilities("op", OP_DOMAIN, probe))
    resumed.journal.close()


def test_each_suggestion_is_one_step_of_the_controller() -> None:
    rl = ReinforceStrategy()
    steps = 0
    step = rl._step

    def counted(*args: Any) -> Any:
        nonlocal steps
        steps += 1
        return step(*args)

    rl._step = counted  # type: ignore[method-assign]
    s = tn.Study(objectives=MAX, strategy=rl, seed=0)
    s.optimize(lambda hp: float(sum(hp.int(f"x{i}", 0, 3) for i in range(12))), trials=1)
    assert steps == 12  # not 1 + 2 + ... + 12: the hidden state is kept between suggestions
    trial = s.ask(fixed={"x0": 3, "x1": 0})  # imposed decisions are fed, not sampled
    steps = 0
    total = sum(trial.hp.int(f"x{i}", 0, 3) for i in range(12))
    s.tell(trial, total + 100.0)  # better than the first: an update
    assert steps == 12 + 12  # 10 suggestions and 2 catch-up steps; then the 12-step update
    assert s.trials[1].arch["x0"] == 3


numeric_domains = st.one_of(
    st.builds(lambda lo, span, step: Int(lo, lo + span * step, step),
              st.integers(-50, 50), st.integers(0, 10**6), st.integers(1, 7)),
    st.builds(lambda lo, span: Int(lo, lo + span, log=True),
              st.integers(1, 100), st.integers(0, 10**9)),
    st.builds(lambda lo, span, log: Float(lo, lo + span, log=log),
              st.floats(1e-6, 1e3), st.floats(0.0, 1e6), st.booleans()),
    st.builds(lambda lo, n, step: Float(lo, lo + n * step, step=step),
              st.floats(-10, 10), st.integers(0, 500), st.floats(1e-3, 10)),
)


@settings(max_examples=60, deadline=None)
@given(domain=numeric_domains, number=st.integers(0, 10**6))
def test_the_controller_suggests_members_of_any_numeric_domain(domain: Domain,
                                                               number: int) -> None:
    rl = ready(ReinforceStrategy(bins=4))
    ctx = AskContext(number=number, seed=1)
    value = rl.suggest(ctx, "x", domain)
    assert domain.contains(value), (domain, value)
    assert rl.suggest(AskContext(number=number, seed=1), "x", domain) == value
    assert len(rl.probabilities("x", domain)) == (domain.size if (domain.size or 99) <= 4 else 4)


# -- several objectives, fitness, configuration --------------------------------------------------
def test_evolution_and_local_search_run_with_several_objectives() -> None:
    def two(hp: tn.HP) -> dict[str, float]:
        a, b = hp.int("a", 0, 20), hp.int("b", 0, 20)
        if a == b == 0:
            raise ValueError("degenerate")
        return {"acc": a + b, "params": a * b}

    for spec in ("evolution", "local"):
        s = tn.Study(objectives={"acc": "max", "params": "min"}, strategy=spec, seed=0)
        s.optimize(two, trials=40)
        assert len({t.key for t in s.trials}) == 40 and s.pareto_front()


vectors = st.lists(st.tuples(st.integers(0, 4), st.integers(0, 4)), min_size=1, max_size=12)


@settings(max_examples=60, deadline=None)
@given(values=vectors, tiers=st.lists(st.sampled_from([0, 1, 2]), min_size=12, max_size=12))
def test_rank_keys_respect_tiers_and_dominance(values: list[tuple[int, int]],
                                               tiers: list[int]) -> None:
    scores = [(tier, (float(a), float(b))) for tier, (a, b) in zip(tiers, values, strict=False)]
    keys = rank_keys(scores)
    for (ta, va), ka in zip(scores, keys, strict=True):
        for (tb, vb), kb in zip(scores, keys, strict=True):
            if ta > tb or (ta == tb and all(x >= y for x, y in zip(va, vb, strict=True))
                           and va != vb):
                assert ka > kb


def test_score_ranks_failed_below_infeasible_below_the_rest() -> None:
    dom = {"a": Int(0, 9)}
    ok = finished(0, {"a": 1}, -5.0, dom)
    infeasible = tn.FrozenTrial(number=1, state=tn.TrialState.COMPLETE, arch={"a": 2},
                                domains=dom, metrics={"score": 9.0}, feasible=False)
    failed = finished(2, {"a": 3}, None, dom, tn.TrialState.FAILED)
    pruned = finished(3, {"a": 4}, None, dom, tn.TrialState.PRUNED)
    scores = [score(t, MAX) for t in (ok, infeasible, failed)]
    assert [s[0] for s in scores if s] == [2, 1, 0] and score(pruned, MAX) is None
    assert score(ok, {"score": "min"}) == (2, (5.0,))


@pytest.mark.parametrize(("name", "kwargs"), [
    ("evolution", {"population": 0}), ("evolution", {"crossover": 1.5}),
    ("evolution", {"sample_size": 2.5}), ("local", {"startup": -1}),
    ("rl", {"bins": 1}), ("rl", {"baseline_decay": 1.0}), ("rl", {"lr": 0}),
])
def test_bad_settings_are_config_errors_naming_the_key(name: str, kwargs: dict[str, Any]) -> None:
    with pytest.raises(tn.ConfigError, match=f"{name}: {next(iter(kwargs))}"):
        tn.strategies.create(name, **kwargs)


# -- moves and the architecture index -------------------------------------------------------------
def test_the_index_follows_what_a_run_would_meet() -> None:
    domains = {"layers": Int(1, 3), "w0": Int(0, 9), "w1": Int(0, 9), "w2": Int(0, 9)}
    index = ArchIndex()
    index.add({"layers": 1, "w0": 4}, domains)
    index.add({"layers": 2, "w0": 4, "w1": 7}, domains)
    assert index.covers({"layers": 1, "w0": 4, "w1": 3})  # w1 is never met: a repeat
    assert not index.covers({"layers": 2, "w0": 4, "w1": 3})
    assert index.covers({"layers": 2, "w0": 4})  # w1 left open: some value was tried
    assert index.covers({"layers": 2, "w0": 4}, fill=lambda label, dom: 7)
    assert not index.covers({"layers": 2, "w0": 4}, fill=lambda label, dom: 8)
    assert not index.covers({"layers": 3, "w0": 4, "w1": 7})
    assert len(index) == 2


@settings(max_examples=60, deadline=None)
@given(picked=st.sets(st.integers(0, 63), max_size=63), seed=st.integers(0, 999))
def test_sample_unseen_leaves_every_recorded_path(picked: set[int], seed: int) -> None:
    every = [dict(arch) for arch in _small_archs()]
    domains = {"a": Categorical((0, 1, 2, 3)), "b": Int(0, 3), "deep": tn.space.Bool(),
               "extra": Categorical(("x", "yy", "zzz"))}
    index = ArchIndex((every[i] for i in sorted(picked)), domains)
    drawn = index.sample_unseen(random.Random(seed))
    if drawn is not None:
        assert not index.covers(drawn)
        assert any(all(a.get(k) == v for k, v in drawn.items()) for a in every)


def _small_archs() -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for a, b in itertools.product(range(4), range(4)):
        out.append({"a": a, "b": b, "deep": False})
        out.extend({"a": a, "b": b, "deep": True, "extra": e} for e in ("x", "yy", "zzz"))
    assert len(out) == 64
    return out


def test_neighbours_of_large_domains_are_few_and_near() -> None:
    dom = Inputs(40, 20)  # 1.4e11 values: never enumerated; one input is swapped
    value = list(range(20))
    found = neighbours({"in": value}, {"in": dom}, limit=8)
    assert len(found) == 8
    for nb in found:
        assert dom.contains(nb["in"]) and len(set(nb["in"]) - set(value)) == 1
    moved = perturb(value, dom, random.Random(0))
    assert dom.contains(moved) and len(set(moved) - set(value)) == 1
    widths = [nb["w"] for nb in neighbours({"w": 250}, {"w": Int(0, 500)}, limit=8)]
    assert {249, 251, 0, 500} <= set(widths) and len(widths) == len(set(widths)) <= 10
    steps = [nb["p"] for nb in neighbours({"p": 0.5}, {"p": Float(0.0, 1.0, step=0.01)}, limit=8)]
    assert 0.49 in steps and 0.51 in steps and len(steps) <= 10
