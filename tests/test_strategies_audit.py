"""Regressions found by an audit of the strategies and schedulers through the public API:
de-duplication against running trials, BANANAS's de-duplication in conditional spaces, settings
checked up front, a warning where a strategy models only the first of several objectives, and
Hyperband with a long cycle of brackets."""

from __future__ import annotations

import time
import warnings
from typing import Any

import pytest

import torchnas as tn

WHOLE = ["evolution", "local", "nsga2", "smac", "bananas"]
"""Strategies that propose whole architectures and promise never to repeat a finished or
running one (README, Strategies)."""

FAST = {"smac": {"members": 4, "random_candidates": 16}, "bananas": {"ensemble": 2,
                                                                     "candidates": 20}}


def spec(name: str, **kw: Any) -> dict[str, Any]:
    return {"name": name, **FAST.get(name, {}), **kw}


def eight(hp: tn.HP) -> float:
    return float(hp.choice("x", list(range(8))))


def four(hp: tn.HP) -> float:
    """Four architectures, one of them conditional: {a: 1}, {a: 2}, {a: 3, b: 10|20}."""
    a = hp.choice("a", [1, 2, 3])
    return float(a + hp.choice("b", [10, 20])) if a == 3 else float(a)


def ask_running(study: tn.Study, space: Any, k: int) -> list[tuple[Any, float]]:
    """``k`` trials asked and run (decisions made) without telling any of them."""
    out = []
    for _ in range(k):
        trial = study.ask()
        out.append((trial, space(trial.hp)))
    return out


@pytest.mark.parametrize("name", WHOLE)
def test_running_trials_differ_before_anything_finished(name: str) -> None:
    study = tn.Study(objectives={"score": "max"}, strategy=spec(name), seed=5)
    running = ask_running(study, eight, 8)
    assert sorted(t.hp.arch["x"] for t, _ in running) == list(range(8))
    for trial, value in reversed(running):  # told in another order than asked
        study.tell(trial, value)
    assert all(t.state is tn.TrialState.COMPLETE for t in study.trials)


@pytest.mark.parametrize("name", WHOLE)
def test_running_trials_differ_from_each_other_and_the_finished_ones(name: str) -> None:
    study = tn.Study(objectives={"score": "max"}, strategy=spec(name, startup=0)
                     if name != "nsga2" else spec(name), seed=5)
    study.optimize(four, trials=1)
    running = ask_running(study, four, 3)
    archs = [study.trials[0].arch] + [t.hp.arch for t, _ in running]
    assert len({tn.space.arch_key(a) for a in archs}) == 4, archs


def test_bananas_never_repeats_a_finished_architecture_of_a_conditional_space() -> None:
    def space(hp: tn.HP) -> float:  # "small" has 4 architectures, "big" hundreds
        if hp.choice("kind", ["big", "small"]) == "big":
            return hp.int("n", 0, 99) / 100 + hp.choice("w", [0.0, 0.5])
        return 2.0 + len(hp.inputs("node", ["a", "b", "c"], k=2)) * 0.0 + hp.choice(
            "s", [0.0, 0.1]) if hp.bool("deep") else 2.0

    study = tn.Study(objectives={"score": "max"},
                     strategy=spec("bananas", startup=3, parents=3), seed=1)
    study.optimize(space, trials=18)
    keys = [t.key for t in study.trials]
    assert len(set(keys)) == len(keys)
    assert sum(t.arch["kind"] == "small" for t in study.trials) >= 4  # the good part is used up


@pytest.mark.parametrize(("name", "key", "value"), [
    ("tpe", "startup", None), ("tpe", "candidates", 0), ("tpe", "gamma", 1.5),
    ("tpe", "prior_weight", -1), ("tpe", "multivariate", "yes"), ("motpe", "candidates", 1.5),
    ("motpe", "constant_liar", None), ("bohb", "min_points", 1.5),
    ("bohb", "random_fraction", 2.0), ("bohb", "gamma", float("nan")),
    ("bananas", "startup", "x"), ("bananas", "ensemble", 0), ("bananas", "candidates", 1.5),
    ("bananas", "parents", None), ("bananas", "max_train", 1), ("bananas", "refit_every", 0),
    ("bananas", "kappa", "x"), ("grid", "float_points", "x"), ("grid", "shuffle", None),
    ("smac", "random_fraction", "x"), ("smac", "xi", None), ("smac", "startup", True),
    ("evolution", "crossover", None), ("evolution", "population", True),
    ("nsga2", "crossover", None), ("rl", "lr", "x"), ("rl", "entropy", None),
    ("rl", "hidden", True), ("optuna", "sampler", 3), ("optuna", "sampler_kwargs", "x"),
    ("optuna", "sampler", "no_such_module.Sampler"),
])
def test_bad_settings_are_config_errors_naming_the_setting(name: str, key: str,
                                                           value: Any) -> None:
    with pytest.raises(tn.ConfigError, match=f"{name}'?: {key} must|{key}"):
        tn.Study(objectives={"score": "max"}, strategy={"name": name, key: value})


def test_optuna_sampler_kwargs_the_sampler_does_not_take_are_a_config_error() -> None:
    with pytest.raises(tn.ConfigError, match="sampler_kwargs"):
        tn.Study(strategy={"name": "optuna", "sampler": "random",
                           "sampler_kwargs": {"no_such": 1}})


@pytest.mark.parametrize("name", ["bananas", "smac", "rl", "bohb"])
def test_a_strategy_of_one_objective_warns_when_given_several(name: str) -> None:
    with pytest.warns(UserWarning, match=f"'{name}' optimizes the first objective only"):
        tn.Study(objectives={"acc": "max", "cost": "min"}, strategy=name)


@pytest.mark.parametrize("name", ["motpe", "nsga2", "tpe", "evolution", "random", "auto"])
def test_strategies_of_several_objectives_do_not_warn(name: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tn.Study(objectives={"acc": "max", "cost": "min"}, strategy=name)
        tn.Study(objectives={"acc": "max"}, strategy="bananas")


def test_hyperband_with_a_long_cycle_of_brackets_is_quick() -> None:
    small = tn.schedulers.create("hyperband", min_budget=1, max_budget=9)
    assert [small.bracket(n) for n in range(8)] == [0, 1, 0, 2, 0, 1, 0, 2]
    assert [small.bracket(n) for n in range(17, 25)] == [small.bracket(n) for n in range(8)]

    def objective(hp: tn.HP) -> float:
        q = hp.float("q", 0.0, 1.0)
        for step in (1, 3, 9, 27):
            hp.trial.report(step, {"acc": q * step})
        return q

    start = time.perf_counter()  # max_budget / min_budget = 1e6: a cycle of ~1e6 numbers
    study = tn.Study(objectives={"acc": "max"}, strategy="random",
                     scheduler={"name": "hyperband", "max_budget": 10**6})
    study.optimize(objective, trials=12)
    assert time.perf_counter() - start < 1.5
    assert any(t.state is tn.TrialState.PRUNED for t in study.trials)
