"""The grid's, random search's and the registry's own promises, and the study's replay. The
contract every registered strategy keeps runs in ``test_contract_strategies.py``
(``torchnas.testing.strategies``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import torchnas as tn
from torchnas.space import Domain
from torchnas.strategies import AskContext, GridStrategy, RandomStrategy, Strategy
from torchnas.testing.strategies import toy

STRATEGIES = tn.strategies.available()


def study(strategy: str | Strategy | dict[str, Any], seed: int = 0,
          storage: Any = None, name: str = "toy") -> tn.Study:
    return tn.Study(name=name, storage=storage, objectives={"score": "max"},
                    strategy=strategy, seed=seed)


def archs(s: tn.Study) -> list[dict[str, Any]]:
    return [t.arch for t in s.trials]


# -- replay ---------------------------------------------------------------------------------------
class Recording(RandomStrategy):
    """Random search that remembers what it was told (to check the study's replay)."""

    def __init__(self) -> None:
        self.told: list[int] = []

    def tell(self, trial: tn.FrozenTrial) -> None:
        assert trial.state.finished
        self.told.append(trial.number)


def test_reopened_study_replays_every_finished_trial_once(tmp_path: Path) -> None:
    def objective(hp: tn.HP) -> float:
        x = hp.int("x", 0, 9)
        if x == 3:
            raise ValueError("three")
        return float(x)

    first = Recording()
    s = study(first, seed=2, storage=tmp_path / "r.db")
    s.optimize(objective, trials=12)
    assert first.told == list(range(12))
    s.journal.close()
    second = Recording()
    again = tn.load_study(tmp_path / "r.db", strategy=second)
    assert second.told == list(range(12))  # failed trials too, in journal order
    again.optimize(objective, trials=3)
    assert second.told == list(range(15))
    again.journal.close()


# -- random ---------------------------------------------------------------------------------------
def test_random_depends_on_the_seed_and_not_on_the_order_of_decisions() -> None:
    a, b = study("random", seed=1), study("random", seed=2)
    a.optimize(toy, trials=10)
    b.optimize(toy, trials=10)
    assert archs(a) != archs(b)
    strategy = RandomStrategy()
    strategy.setup({"score": "max"}, seed=5)
    dom = tn.space.Int(0, 10**9)
    one = strategy.suggest(AskContext(number=3, seed=5, params={}), "x", dom)
    two = strategy.suggest(AskContext(number=3, seed=5, params={"other": 1}), "x", dom)
    assert one == two
    assert strategy.suggest(AskContext(number=4, seed=5), "x", dom) != one


# -- grid -----------------------------------------------------------------------------------------
def finite(hp: tn.HP, crash_in: int | None = None) -> float:
    """n = 0: 1, n = 1: 3, n = 2: 3 * 2 structures; times 2 for bias. Size (1 + 3 + 6) * 2 = 20.

    Trial ``crash_in`` commits its first decisions, then is interrupted (Ctrl-C).
    """
    n = hp.int("n", 0, 2)
    for i in range(n):
        hp.choice(f"w{i}", [8, 16, 32] if i == 0 else [1, 2])
        if hp.trial is not None and hp.trial.number == crash_in:
            hp.trial.commit()
            raise KeyboardInterrupt
    hp.bool("bias")
    return float(n)


FINITE_SIZE = (1 + 3 + 3 * 2) * 2


def test_grid_enumerates_a_conditional_space_exactly_once_then_stops() -> None:
    assert tn.explore(finite).size == FINITE_SIZE
    s = study("grid")
    s.optimize(finite)  # no trial count: the grid stops by itself
    keys = [t.key for t in s.trials]
    assert len(keys) == len(set(keys)) == FINITE_SIZE
    assert s.strategy.exhausted()
    s.optimize(finite, trials=5)
    assert len(s.trials) == FINITE_SIZE  # nothing more to do


def test_grid_visits_values_in_order_unless_shuffled() -> None:
    s = study("grid")
    s.optimize(finite, trials=4)
    assert archs(s) == [{"n": 0, "bias": False}, {"n": 0, "bias": True},
                        {"n": 1, "w0": 8, "bias": False}, {"n": 1, "w0": 8, "bias": True}]
    shuffled = [study({"name": "grid", "shuffle": True}, seed=k) for k in (0, 0, 1)]
    for sh in shuffled:
        sh.optimize(finite)
        assert len({t.key for t in sh.trials}) == FINITE_SIZE == len(sh.trials)
    assert archs(shuffled[0]) == archs(shuffled[1])
    assert archs(shuffled[0]) != archs(shuffled[2])


def test_grid_float_points() -> None:
    def space(hp: tn.HP) -> float:
        return hp.float("lr", 1e-4, 1e-1, log=True) + hp.float("p", 0.0, 0.9) + hp.float(
            "q", 0.0, 1.0, step=0.5)

    s = study({"name": "grid", "float_points": 4})
    s.optimize(space)
    assert len(s.trials) == 4 * 4 * 3
    values = {label: sorted({t.arch[label] for t in s.trials}) for label in ("lr", "p", "q")}
    assert values["lr"] == pytest.approx([1e-4, 1e-3, 1e-2, 1e-1])
    assert values["lr"][0] == 1e-4 and values["lr"][-1] == 1e-1  # the bounds exactly
    assert values["p"] == pytest.approx([0.0, 0.3, 0.6, 0.9])
    assert values["q"] == [0.0, 0.5, 1.0]  # a stepped float is enumerated, not sampled


def test_grid_skips_what_was_evaluated_by_hand() -> None:
    s = study("grid")
    t = s.ask(fixed={"n": 2, "w0": 32})
    s.tell(t, finite(t.hp))
    assert s.trials[0].arch == {"n": 2, "w0": 32, "w1": 1, "bias": False}
    s.optimize(finite)
    keys = [t.key for t in s.trials]
    assert len(keys) == len(set(keys)) == FINITE_SIZE


def test_grid_takes_up_an_interrupted_trial(tmp_path: Path) -> None:
    # trial 2 is the first with n = 1: when it is taken up again, no finished trial has walked
    # the branch n = 1 yet, and the grid must still fill in the decisions after its prefix
    path = tmp_path / "grid.db"
    s = study("grid", storage=path)
    with pytest.raises(KeyboardInterrupt):
        s.optimize(lambda hp: finite(hp, crash_in=2))
    interrupted = s.trials[2]
    assert interrupted.state is tn.TrialState.INTERRUPTED
    assert interrupted.arch == {"n": 1, "w0": 8}  # what it committed
    s.journal.close()
    again = tn.load_study(path)
    again.optimize(finite)
    trials = again.trials
    assert trials[2].arch == {"n": 1, "w0": 8, "bias": False} and trials[2].attempts == 2
    keys = [t.key for t in trials]
    assert len(keys) == len(set(keys)) == FINITE_SIZE
    again.journal.close()


def test_grid_rejects_a_space_that_is_not_deterministic() -> None:
    calls = {"n": 0}

    def flaky(hp: tn.HP) -> float:
        calls["n"] += 1
        if calls["n"] % 2:
            hp.int("a", 0, 3)
        else:
            hp.int("b", 0, 3)
        hp.bool("c")
        return 0.0

    s = study("grid")
    with pytest.raises(tn.SpaceError, match="not deterministic"):
        s.optimize(flaky, trials=10)


# -- the registry -------------------------------------------------------------------------------
def test_available_lists_the_built_in_strategies() -> None:
    assert {"random", "grid", "auto"} <= set(STRATEGIES)
    assert sorted(STRATEGIES) == STRATEGIES
    assert isinstance(tn.strategies.create("random"), RandomStrategy)
    assert isinstance(tn.strategies.create("grid", float_points=3), GridStrategy)
    auto = tn.strategies.create("auto")
    assert auto.name == tn.strategies.AUTO and auto.name in STRATEGIES


@pytest.mark.parametrize(("name", "hint"), [("gird", "'grid'"), ("Random", "'random'"),
                                             ("randm", "'random'")])
def test_unknown_name_suggests_the_closest(name: str, hint: str) -> None:
    with pytest.raises(tn.ConfigError, match=f"did you mean {hint}") as info:
        tn.strategies.create(name)
    assert repr(name) in str(info.value)
    with pytest.raises(tn.ConfigError, match="did you mean"):
        study(name)  # fails before the first trial


@pytest.mark.parametrize(("create", "name", "typo", "hint"), [
    (tn.strategies.create, "grid", "float_point", "'float_points'"),
    (tn.schedulers.create, "asha", "max_budgte", "'max_budget'"),
    (tn.oneshot.create, "darts", "arch_rl", "'arch_lr'"),
])
def test_a_misspelled_setting_is_named_with_the_closest(create: Any, name: str, typo: str,
                                                       hint: str) -> None:
    with pytest.raises(tn.ConfigError, match=f"{name}'?: unknown setting '{typo}'; did you "
                                             f"mean {hint}") as info:
        create(name, **{typo: 1})
    assert "(valid: " in str(info.value)


def test_unknown_name_without_a_near_one_lists_what_exists() -> None:
    with pytest.raises(tn.ConfigError) as info:
        tn.strategies.create("bayesian_hyperband_xyz")
    assert "did you mean" not in str(info.value)
    assert all(n in str(info.value) for n in STRATEGIES)


def test_bad_arguments_and_specs_are_config_errors() -> None:
    with pytest.raises(tn.ConfigError, match=r"'grid'.*points"):
        tn.strategies.create("grid", points=3)
    with pytest.raises(tn.ConfigError, match="strategy"):
        tn.strategies.resolve(42)  # type: ignore[arg-type]
    with pytest.raises(tn.ConfigError, match="strategy"):
        tn.strategies.resolve({"float_points": 3})
    strategy, spec = tn.strategies.resolve({"name": "grid", "float_points": 3})
    assert isinstance(strategy, GridStrategy) and strategy.float_points == 3
    assert spec == {"name": "grid", "float_points": 3}


def test_register_refuses_a_taken_name() -> None:
    with pytest.raises(ValueError, match="'random'"):
        tn.strategies.register("random")(RandomStrategy)


def test_a_strategy_object_fits_the_interface() -> None:
    class Fixed(Strategy):
        """Always the smallest value: the tiniest strategy the interface allows."""

        name = "fixed"

        def suggest(self, ctx: AskContext, label: str, domain: Domain) -> Any:
            return domain.values()[0] if domain.size is not None else domain.default

        def ask(self, ctx: AskContext) -> dict[str, Any]:
            return {"kind": "cnn"}

    s = study(Fixed())
    s.optimize(toy, trials=3)
    assert all(a == {"kind": "cnn", "depth": 1, "width": 8, "lr": pytest.approx(1e-2)}
               for a in archs(s))


def test_grid_spreads_points_over_a_huge_int_domain() -> None:
    study = tn.Study(strategy={"name": "grid", "float_points": 4}, objectives={"v": "min"})
    study.optimize(lambda hp: float(hp.int("n", 0, 10**9)), trials=100)
    values = [t.arch["n"] for t in study.trials]
    assert len(values) == 4 and values[0] == 0 and values[-1] == 10**9
    assert study.strategy.exhausted()
