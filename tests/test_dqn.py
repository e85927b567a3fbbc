"""The ``dqn`` strategy (MetaQNN's Q-learning): it learns, its epsilon schedule, seeds, resume,
conditional and numeric decisions, and its settings. The strategy contract runs over it too
(tests/test_contract_strategies.py)."""

from __future__ import annotations

import math
import statistics
from pathlib import Path
from typing import Any

import pytest

import torchnas as tn
from torchnas.space import Categorical, Float, Int
from torchnas.strategies import AskContext, DQNStrategy

MAX = {"score": "max"}
OPS = ["conv3", "conv5", "pool", "skip", "none"]
NETWORK = {"name": "dqn", "tabular": 0}  # Q as the network from the first trial
TABLE = {"name": "dqn", "tabular": 10**9}  # Q as a table however large the space
BOTH = pytest.mark.parametrize("spec", [TABLE, NETWORK], ids=["table", "network"])


def one_best(hp: tn.HP) -> float:
    """``op = conv5`` is clearly best; the rest matters little."""
    good = hp.choice("op", OPS) == "conv5"
    hp.int("width", 8, 64, step=8)
    hp.float("lr", 1e-4, 1e-1, log=True)
    return float(good) + 0.1 * hp.int("depth", 1, 3)


def share_of_best(spec: Any, seed: int) -> float:
    s = tn.Study(objectives=MAX, strategy=spec, seed=seed)
    s.optimize(one_best, trials=100)
    return statistics.fmean(t.arch["op"] == "conv5" for t in s.trials[60:])


@pytest.mark.parametrize("spec", ["dqn", NETWORK], ids=["table", "network"])
def test_later_trials_pick_the_best_value_much_more_often_than_random(spec: Any) -> None:
    seeds = range(1, 4)
    dqn = statistics.fmean(share_of_best(spec, seed) for seed in seeds)
    random = statistics.fmean(share_of_best("random", seed) for seed in seeds)
    assert random < 0.3 and dqn > random + 0.4, (dqn, random)


def test_it_learns_to_avoid_failures_and_minimizes() -> None:
    def objective(hp: tn.HP) -> float:
        op = hp.choice("op", ["good", "crash", "ok"])
        if op == "crash":
            raise RuntimeError("out of memory")
        return 0.0 if op == "good" else 1.0  # minimized

    s = tn.Study(objectives={"loss": "min"}, strategy="dqn", seed=0)
    s.optimize(objective, trials=80)
    q = s.strategy.q_values("op", Categorical(("good", "crash", "ok")))
    assert q[0] > q[2] > q[1], q
    assert sum(t.arch["op"] == "good" for t in s.trials[60:]) >= 14


def test_epsilon_is_one_then_falls_linearly_to_its_floor() -> None:
    dqn = DQNStrategy(explore=10, decay=20, epsilon=0.1)
    assert [dqn.exploration(n) for n in (0, 9)] == [1.0, 1.0]
    assert dqn.exploration(10) == pytest.approx(1 - 0.9 / 20)
    assert dqn.exploration(19) == pytest.approx(0.55)
    assert [dqn.exploration(n) for n in (29, 30, 500)] == pytest.approx([0.1] * 3)
    assert dqn.exploration(500, attempt=1) == pytest.approx(1 - 0.9**2)  # a redraw explores more
    assert DQNStrategy(explore=0, decay=0, epsilon=0.0).exploration(0) == 0.0


def test_the_schedule_shows_in_the_trials() -> None:
    """All random at first (a uniform spread), greedy at the end (mostly the best)."""
    s = tn.Study(objectives=MAX, strategy={"name": "dqn", "explore": 30, "decay": 10}, seed=2)
    s.optimize(lambda hp: float(hp.choice("op", OPS) == "pool"), trials=70)
    first = [t.arch["op"] for t in s.trials[:30]]
    assert all(first.count(op) >= 2 for op in OPS), first
    assert sum(t.arch["op"] == "pool" for t in s.trials[40:]) >= 24


@BOTH
def test_greedy_decisions_do_not_complete_a_finished_architecture(spec: Any) -> None:
    """A greedy last decision takes a value that makes the trial new while one is left."""
    s = tn.Study(objectives=MAX, seed=0,
                 strategy={**spec, "explore": 1, "decay": 0, "epsilon": 0.0})  # greedy from 1 on
    s.optimize(lambda hp: hp.choice("a", [0, 1, 2]) + 0.1 * hp.choice("b", [0, 1, 2, 3]),
               trials=30)
    seen: set[str] = set()
    repeats = 0
    for t in s.trials:
        if t.key in seen:  # then every value of the last decision was taken before
            repeats += 1
            assert all(tn.arch_key({**t.arch, "b": b}) in seen for b in range(4)), t.arch
        seen.add(t.key)
    assert repeats and len(seen) >= 4  # at least the four completions of the best a


@BOTH
def test_same_seed_same_trials_another_seed_others(spec: Any) -> None:
    def run(seed: int) -> list[dict[str, Any]]:  # greedy from trial 20 on
        s = tn.Study(objectives=MAX, strategy={**spec, "explore": 10, "decay": 10}, seed=seed)
        s.optimize(conditional, trials=30)
        return [t.arch for t in s.trials]

    assert run(3) == run(3) != run(4)


def conditional(hp: tn.HP) -> float:
    n = hp.int("layers", 1, 3)
    width = sum(hp.int(f"units{i}", 16, 4096, log=True) for i in range(n))
    op = hp.choice("op", OPS)
    if op == "none":
        raise ValueError("no op")
    return width / 4096 * (1 + OPS.index(op)) - abs(math.log10(hp.float("lr", 1e-5, 1.0,
                                                                         log=True)) + 2)


@BOTH
def test_resumed_from_sqlite_it_proposes_what_an_uninterrupted_one_does(
        spec: Any, tmp_path: Path) -> None:
    spec = {**spec, "explore": 10, "decay": 10}
    whole = tn.Study(objectives=MAX, strategy=spec, seed=5)
    whole.optimize(conditional, trials=40)
    part = tn.Study(objectives=MAX, strategy=spec, seed=5, storage=tmp_path / "dqn.db")
    part.optimize(conditional, trials=20)
    part.journal.close()
    resumed = tn.load_study(tmp_path / "dqn.db")
    assert resumed.strategy.get_params() == part.strategy.get_params()
    resumed.optimize(conditional, trials=20)
    assert [t.arch for t in resumed.trials] == [t.arch for t in whole.trials]
    assert any(t.state is tn.TrialState.FAILED for t in whole.trials)
    probe = {"layers": 2, "units0": 64, "units1": 512}
    assert (resumed.strategy.q_values("op", Categorical(tuple(OPS)), probe)
            == whole.strategy.q_values("op", Categorical(tuple(OPS)), probe))
    assert resumed.strategy.q_function == whole.strategy.q_function == (
        "network" if spec["tabular"] == 0 else "table")
    resumed.journal.close()


def test_a_small_space_is_a_table_a_large_one_a_network() -> None:
    small = tn.Study(objectives=MAX, strategy="dqn", seed=0)
    small.optimize(one_best, trials=5)  # 5 x 8 x 10 bins x 3 = 1,200 architectures
    assert small.strategy.q_function == "table"
    large = tn.Study(objectives=MAX, strategy="dqn", seed=0)
    large.optimize(conditional, trials=5)  # 3 x 10 x 10 x 10 x 5 x 10 bins and more
    assert large.strategy.q_function == "network"
    assert tn.strategies.create("dqn", tabular=0).get_params()["tabular"] == 0


@BOTH
def test_conditional_decisions_and_numeric_domains(spec: Any) -> None:
    s = tn.Study(objectives=MAX, strategy=spec, seed=1)
    s.optimize(conditional, trials=60)
    for t in s.trials:
        assert list(t.arch) == ["layers", *(f"units{i}" for i in range(t.arch["layers"])),
                                "op", *(["lr"] if t.arch["op"] != "none" else [])]
        assert all(t.domains[k].contains(v) for k, v in t.arch.items())
    assert len({t.arch["layers"] for t in s.trials}) == 3
    dqn = s.strategy
    assert len(dqn.q_values("lr", Float(1e-5, 1.0, log=True))) == 10  # bins
    assert len(dqn.q_values("units1", Int(16, 4096, log=True), {"layers": 2})) == 10
    assert len(dqn.q_values("op", Categorical(tuple(OPS)), {"layers": 1, "units0": 99})) == 5
    # a value the space never offered (a domain unseen) still gets an answer inside it
    ctx = AskContext(number=999, seed=1, params={"layers": 1, "units0": 50})
    for domain in (Int(-3, 3), Float(0.5, 0.7), Categorical(("x",)), Int(1, 10**9, log=True)):
        assert domain.contains(dqn.suggest(ctx, "new", domain))


@pytest.mark.parametrize(("key", "value"), [
    ("epsilon", 2), ("epsilon", -0.1), ("explore", -1), ("explore", 2.5), ("decay", None),
    ("gamma", 1.5), ("alpha", 0), ("lr", 0), ("replay", 0), ("hidden", True), ("bins", 1),
    ("tabular", "x"),
])
def test_bad_settings_are_config_errors_naming_the_setting(key: str, value: Any) -> None:
    with pytest.raises(tn.ConfigError, match=f"dqn: {key} must"):
        tn.strategies.create("dqn", **{key: value})
    with pytest.raises(tn.ConfigError, match=f"dqn: {key} must"):
        tn.Study(objectives=MAX, strategy={"name": "dqn", key: value})


def test_several_objectives_warn_that_only_the_first_counts() -> None:
    with pytest.warns(UserWarning, match="'dqn' optimizes the first objective only"):
        tn.Study(objectives={"acc": "max", "cost": "min"}, strategy="dqn")


def test_an_infeasible_trial_ranks_below_every_feasible_one() -> None:
    def objective(hp: tn.HP) -> dict[str, float]:
        op = hp.choice("op", ["big", "small", "tiny"])
        return {"acc": {"big": 1.0, "small": 0.6, "tiny": 0.5}[op],
                "mb": {"big": 9.0, "small": 1.0, "tiny": 1.0}[op]}

    s = tn.Study(objectives={"acc": "max"}, constraints={"mb": ("<=", 4.0)}, strategy="dqn",
                 seed=0)
    s.optimize(objective, trials=60)
    q = s.strategy.q_values("op", Categorical(("big", "small", "tiny")))
    assert q[1] > q[2] > q[0], q
