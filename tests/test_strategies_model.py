"""Model-based strategies: the encoding, TPE, BOHB, BANANAS, SMAC and the Optuna bridge.

The contract every strategy meets is in ``test_contract_strategies.py``; here, what each one
promises beyond it: that the model helps (against random search's median over seeds), that running
trials push proposals apart, that BOHB fits on the right budget, and that the Optuna bridge maps
every kind of decision and resumes exactly.
"""

from __future__ import annotations

import importlib.util
import math
import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import torchnas as tn
from torchnas.space import Bool, Categorical, Float, Inputs, Int, Op
from torchnas.strategies import AskContext, BOHBStrategy, TPEStrategy
from torchnas.surrogate import Encoding

Objective = Callable[[tn.HP], float]


def one_d(hp: tn.HP) -> float:
    return (hp.float("x", -5.0, 5.0) - 1.3) ** 2


def conditional(hp: tn.HP) -> float:
    """The optimum is in the ``a`` branch at xa = 0.8, lr = 1e-3 (value 0)."""
    kind = hp.choice("kind", ["a", "b", "c"])
    if kind == "a":
        value = (hp.float("xa", 0.0, 1.0) - 0.8) ** 2
    elif kind == "b":
        value = 0.2 + (hp.int("nb", 1, 20) - 7) ** 2 / 100
    else:
        value = 0.5
    return value + 0.1 * abs(math.log10(hp.float("lr", 1e-4, 1e-1, log=True)) + 3)


def median_best(strategy: str | dict[str, Any], fn: Objective, trials: int,
                seeds: range = range(5)) -> float:
    bests = []
    for seed in seeds:
        study = tn.Study(objectives={"loss": "min"}, strategy=strategy, seed=seed)
        study.optimize(fn, trials=trials)
        bests.append(study.best_trial.value("loss"))
    return statistics.median(bests)


def told(strategy: tn.strategies.Strategy, archs: list[dict[str, Any]], values: list[float],
         domains: dict[str, Any], extra: dict[int, dict[str, Any]] | None = None) -> None:
    strategy.setup({"loss": "min"}, seed=0)
    for i, (arch, value) in enumerate(zip(archs, values, strict=True)):
        strategy.tell(tn.FrozenTrial(number=i, state=tn.TrialState.COMPLETE, arch=arch,
                                     domains={k: domains[k] for k in arch},
                                     metrics={"loss": value}, **(extra or {}).get(i, {})))


# -- encoding -------------------------------------------------------------------------------
DOMAINS = {"act": Categorical(("relu", "gelu", "silu")), "lr": Float(0.01, 1.0, log=True),
           "n": Int(1, 5), "cell": Inputs(4, 2), "bias": Bool(), "op": Op(("conv", "skip"))}


def test_encoding_layout_widths_and_absent_slots() -> None:
    archs = [{"act": "relu", "lr": 0.1, "n": 1, "cell": [0, 2], "bias": True},
             {"act": "gelu", "n": 5, "cell": [1, 3], "bias": False, "op": "skip"}]
    enc = Encoding.from_archs(archs, DOMAINS)
    assert enc.conditional == {"lr", "op"}
    assert enc.columns == ["act=relu", "act=gelu", "act=silu", "lr", "lr:absent", "n",
                           "cell[0]", "cell[1]", "cell[2]", "cell[3]", "bias=false", "bias=true",
                           "op=conv", "op=skip", "op:absent"]
    assert enc.width == len(enc.columns) == 15
    x = enc.encode_many(archs)
    assert x.shape == (2, 15)
    assert x[0].tolist() == [1, 0, 0, pytest.approx(0.5), 0, 0, 1, 0, 1, 0, 0, 1, 0, 0, 1]
    assert x[1].tolist() == [0, 1, 0, 0, 1, 1, 0, 1, 0, 1, 1, 0, 0, 1, 0]
    assert ((x >= 0) & (x <= 1)).all()


def test_encoding_is_deterministic_and_tolerates_strange_values() -> None:
    domains = dict(reversed(list(DOMAINS.items())))  # label order of first appearance is kept
    enc = Encoding.from_archs([{}], domains)
    assert enc.columns[:3] == ["op=conv", "op=skip", "op:absent"]
    assert enc == Encoding.from_archs([{}], domains)  # same inputs, same layout
    assert enc.encode({}).sum() == len(domains)  # every label absent
    odd = enc.encode({"act": "tanh", "lr": 100.0, "n": 0, "unknown": 1, "bias": 1})
    assert odd[enc.columns.index("lr")] == 1.0 and odd[enc.columns.index("n")] == 0.0
    assert odd[[enc.columns.index(f"act={a}") for a in ("relu", "gelu", "silu")]].sum() == 0
    assert odd[enc.columns.index("bias=true")] == 0  # 1 is not True in a choice
    with pytest.raises(TypeError, match="cannot encode"):
        Encoding({"x": object()})  # type: ignore[dict-item]


# -- TPE ------------------------------------------------------------------------------------
def test_tpe_concentrates_on_the_good_region() -> None:
    assert median_best("tpe", one_d, 30) < median_best("random", one_d, 30) / 3
    study = tn.Study(objectives={"loss": "min"}, strategy="tpe", seed=0)
    study.optimize(one_d, trials=40)
    late = [abs(t.arch["x"] - 1.3) for t in study.trials[20:]]
    assert statistics.median(late) < 1.6  # seeds 0-5: 0.8-1.3 (Optuna's TPE: 0.8-1.1),
    # random search 1.7-4.1


@pytest.mark.parametrize("multivariate", [False, True])
def test_tpe_on_a_conditional_space_beats_random(multivariate: bool) -> None:
    tpe = {"name": "tpe", "multivariate": multivariate}
    assert median_best(tpe, conditional, 40) < median_best("random", conditional, 40)


def test_tpe_constant_liar_spreads_parallel_trials() -> None:
    dom = Float(0.0, 1.0)
    archs = [{"x": x} for x in np.linspace(0.05, 0.95, 12)]
    for liar in (True, False):
        s = TPEStrategy(startup=5, constant_liar=liar)
        told(s, archs, [abs(a["x"] - 0.5) for a in archs], {"x": dom})
        first = s.suggest(AskContext(number=12, seed=0), "x", dom)
        again = s.suggest(AskContext(number=12, seed=0, pending=[{"x": first}] * 3), "x", dom)
        assert (again != first) is liar
    study = tn.Study(objectives={"loss": "min"}, strategy="tpe", seed=0)
    study.optimize(one_d, trials=12)
    a, b = study.ask(), study.ask()  # both running: the second knows of the first
    one_d(a.hp), one_d(b.hp)
    assert a.arch != b.arch


def test_tpe_counts_failed_trials_as_bad_and_handles_every_domain() -> None:
    def space(hp: tn.HP) -> float:
        x = hp.float("x", 0.0, 1.0, step=0.1) + hp.int("n", 1, 100, log=True) / 100
        x += hp.int("u", 16, 64, step=16) / 64 + len(hp.choice("c", ["ab", "c"]))
        x += len("".join(hp.inputs("in", ["p", "q", "r", "s"], k=2))) if hp.bool("b") else 0
        hp.float("fixed", 2.0, 2.0)
        if hp.choice("op", ["bad", "ok"]) == "bad":
            raise ValueError("a bad op")
        return x

    study = tn.Study(objectives={"loss": "min"}, strategy={"name": "tpe", "startup": 5})
    study.optimize(space, trials=30)
    for t in study.trials:
        assert all(t.domains[k].contains(v) for k, v in t.arch.items()), t.arch
    failed = [t.arch["op"] == "bad" for t in study.trials]
    assert sum(failed[15:]) < sum(failed[:15])


# -- BOHB -----------------------------------------------------------------------------------
def test_bohb_fits_on_the_largest_budget_with_enough_points() -> None:
    dom = {"x": Float(0.0, 1.0), "c": Categorical(("p", "q"))}
    xs = np.linspace(0.0, 1.0, 12)
    archs = [{"x": float(x), "c": "p"} for x in xs]
    # at step 1 the best is x = 0, at step 3 (6 trials reached it) x = 1, step 9 has 2 trials
    reports = {i: {"intermediate": ((1, {"loss": float(x)}),) + (
        ((3, {"loss": 1.0 - float(x)}),) if i % 2 else ()) + (
        ((9, {"loss": 0.0}),) if i in (1, 3) else ())} for i, x in enumerate(xs)}
    s = BOHBStrategy(random_fraction=0.0, gamma=0.2)
    told(s, archs, [1.0] * 12, dom, reports)
    assert s.model_budget() == 3.0  # min_points = 2 labels + 1
    near = [s.suggest(AskContext(number=n, seed=0), "x", dom["x"]) for n in range(12, 24)]
    assert statistics.median(near) > 0.75  # the good ones at step 3, not at step 1
    assert BOHBStrategy(min_points=2).get_params()["min_points"] == 2
    assert BOHBStrategy.default_scheduler == "hyperband"


def test_bohb_without_reports_uses_final_values() -> None:
    s = BOHBStrategy(random_fraction=0.0)
    assert s.multivariate
    assert median_best("bohb", conditional, 40) < median_best("random", conditional, 40)


# -- BANANAS --------------------------------------------------------------------------------
SMAC_FAST = {"name": "smac", "members": 8, "random_candidates": 32, "starts": 3, "steps": 3}


@pytest.mark.parametrize("spec", [{"name": "bananas", "ensemble": 3, "candidates": 40},
                                  SMAC_FAST], ids=["bananas", "smac"])
def test_model_based_beats_random_and_never_repeats_itself(spec: dict[str, Any]) -> None:
    assert median_best(spec, conditional, 25, range(3)) < median_best(
        "random", conditional, 25, range(3))
    study = tn.Study(objectives={"loss": "min"}, strategy=spec, seed=1)
    study.optimize(conditional, trials=15)
    keys = [t.key for t in study.trials]
    assert len(set(keys)) == len(keys)
    strategy = study.strategy
    first = strategy.ask(AskContext(number=15, seed=1))
    again = strategy.ask(AskContext(number=15, seed=1, pending=[first]))
    assert first and again and first != again  # a running architecture is not proposed again


def test_bananas_rejects_bad_settings() -> None:
    with pytest.raises(tn.ConfigError, match="acquisition"):
        tn.Study(strategy={"name": "bananas", "acquisition": "ei"})
    ucb = tn.Study(objectives={"loss": "min"}, strategy={
        "name": "bananas", "acquisition": "ucb", "startup": 4, "ensemble": 2, "model": "mlp"})
    ucb.optimize(one_d, trials=6)
    assert len({t.key for t in ucb.trials}) == 6


# -- SMAC-like: surrogate + local search on the acquisition --------------------------------

@pytest.mark.parametrize(("surrogate", "acquisition"), [("gp", "ucb"), ("ensemble", "its"),
                                                        ("forest", "mean")])
def test_smac_runs_every_surrogate_and_acquisition(surrogate: str, acquisition: str) -> None:
    spec = {**SMAC_FAST, "startup": 4, "surrogate": surrogate, "acquisition": acquisition,
            "members": 3}
    study = tn.Study(objectives={"loss": "min"}, strategy=spec, seed=0)
    study.optimize(one_d, trials=10)
    assert len({t.key for t in study.trials}) == 10
    assert study.best_trial.value("loss") < 1.0  # (x - 1.3)^2 on [-5, 5]: near the optimum


def test_smac_imputes_failures_as_the_worst_and_climbs_to_the_optimum() -> None:
    def fails_low(hp: tn.HP) -> float:
        x = hp.int("x", 0, 30)
        if x < 10:
            raise ValueError("no model")
        return float(abs(x - 23))

    study = tn.Study(objectives={"loss": "min"}, strategy={**SMAC_FAST, "startup": 5}, seed=0)
    study.optimize(fails_low, trials=20)
    assert study.best_trial.arch == {"x": 23}
    later = [t for t in study.trials[5:] if t.state is tn.TrialState.FAILED]
    assert len(later) <= 2  # learnt that small x fails


@pytest.mark.parametrize(("key", "value"), [("surrogate", "svm"), ("acquisition", "pi"),
                                            ("random_fraction", 2.0), ("members", 0),
                                            ("float_points", 1)])
def test_smac_rejects_bad_settings_naming_the_key(key: str, value: Any) -> None:
    with pytest.raises(tn.ConfigError, match=key):
        tn.Study(strategy={"name": "smac", key: value})


# -- the Optuna bridge ----------------------------------------------------------------------
needs_optuna = pytest.mark.skipif(importlib.util.find_spec("optuna") is None,
                                  reason="optuna is an optional extra")


def every_kind(hp: tn.HP) -> float:
    x = hp.float("lr", 1e-4, 1e-1, log=True) + hp.float("p", 0.0, 0.9, step=0.3)
    x += hp.int("n", 1, 64, log=True) + hp.int("u", 16, 64, step=16)
    if hp.bool("deep"):
        x += hp.float("extra", -1.0, 1.0)
    picked = hp.inputs("cell", ["a", "b", "c", "d"], k=2)
    hp.choice("op", ["conv", "skip"])
    return x + len(hp.choice("act", ["relu", "gelu"])) + len("".join(picked))


@needs_optuna
def test_optuna_distributions_cover_every_domain() -> None:
    import optuna.distributions as od

    from torchnas.strategies._optuna import _rank, _unrank, distribution

    assert distribution(Float(0.0, 1.0, step=0.3)) == od.FloatDistribution(0.0, 0.9, step=0.3)
    assert distribution(Int(1, 64, log=True)) == od.IntDistribution(1, 64, log=True)
    assert distribution(Bool()).choices == (False, True)
    assert distribution(Op(("conv", "skip"))).choices == ("conv", "skip")
    assert distribution(Inputs(4, 2)).choices == tuple(range(6))
    values = Inputs(6, 3).values()
    assert [_unrank(6, 3, i) for i in range(len(values))] == values
    assert [_rank(6, c) for c in values] == list(range(len(values)))


@needs_optuna
@pytest.mark.parametrize("sampler", ["tpe", "random"])
def test_optuna_samplers_run_on_a_conditional_space(sampler: str) -> None:
    spec = {"name": "optuna", "sampler": sampler, "sampler_kwargs": {"n_startup_trials": 5}
            if sampler == "tpe" else None}
    study = tn.Study(objectives={"loss": "min"}, strategy=spec, seed=3)
    study.optimize(every_kind, trials=12)
    for t in study.trials:
        assert t.state is tn.TrialState.COMPLETE, t.error
        assert all(t.domains[k].contains(v) for k, v in t.arch.items()), t.arch
    assert len({t.arch["deep"] for t in study.trials}) == 2
    inner = study.strategy.optuna_study
    assert len(inner.trials) == 12
    assert [t.params.get("extra") for t in inner.trials] == [
        t.arch.get("extra") for t in study.trials]
    assert median_best(spec, conditional, 25, range(3)) < 0.2


@needs_optuna
def test_optuna_maps_states_and_imposed_decisions() -> None:
    def flaky(hp: tn.HP) -> float:
        x = hp.int("x", 0, 9)
        if x == 3:
            raise ValueError("three")
        if hp.trial is not None:
            hp.trial.report(1, {"loss": float(x)})
        return float(x)

    study = tn.Study(objectives={"loss": "min"}, strategy={"name": "optuna",
                                                           "sampler": "random"})
    study.enqueue({"x": 3})  # one failure at least
    study.optimize(flaky, trials=15)
    pruned = study.ask(fixed={"x": 4})
    pruned.report(1, {"loss": float(pruned.hp.int("x", 0, 9))})
    study.tell(pruned, state=tn.TrialState.PRUNED)
    t = study.ask(fixed={"x": 5})
    study.tell(t, flaky(t.hp))
    # imposed decisions leave a void Optuna trial (FAIL, nothing suggested) beside the one run
    ran = [t for t in study.strategy.optuna_study.trials if t.params]
    as_optuna = {"COMPLETE": "COMPLETE", "FAILED": "FAIL", "PRUNED": "PRUNED"}
    assert [t.state.name for t in ran] == [as_optuna[t.state.name] for t in study.trials]
    assert [t.params for t in ran] == [t.arch for t in study.trials]
    assert ran[0].state.name == "FAIL" and ran[-2].state.name == "PRUNED"
    assert ran[-2].intermediate_values == {1: 4.0}  # a pruned trial keeps its reports
    assert ran[-1].params == {"x": 5}


@needs_optuna
def test_optuna_takes_a_sampler_object_or_a_class_path(tmp_path: Path) -> None:
    import optuna

    from torchnas.strategies import OptunaStrategy

    strategy = OptunaStrategy(sampler=optuna.samplers.RandomSampler(seed=1))
    assert strategy.get_params()["sampler"].endswith(".RandomSampler")  # stored as JSON
    study = tn.Study(objectives={"loss": "min"}, strategy=strategy, storage=tmp_path / "s.db")
    study.optimize(one_d, trials=3)
    study.journal.close()
    again = tn.load_study(tmp_path / "s.db")  # a fresh sampler of the same class
    again.optimize(one_d, trials=2)
    assert len(again.trials) == 5 and len(again.strategy.optuna_study.trials) == 5
    again.journal.close()
    with pytest.raises(tn.ConfigError, match="unknown sampler"):
        tn.Study(strategy={"name": "optuna", "sampler": "tpee"})
    short = tn.Study(objectives={"loss": "min", "size": "min"}, strategy="optuna:nsgaii",
                     storage=tmp_path / "n.db")
    assert type(short.strategy).__name__ == "OptunaStrategy"
    assert short.strategy.get_params()["sampler"] == "nsgaii"
    short.journal.close()
    assert tn.load_study(tmp_path / "n.db").strategy.get_params()["sampler"] == "nsgaii"
    with pytest.raises(tn.ConfigError, match="unknown sampler"):
        tn.Study(strategy="optuna:tpee")


@needs_optuna
@pytest.mark.parametrize("sampler", ["random", "tpe"])
def test_optuna_resume_proposes_what_an_uninterrupted_run_does(sampler: str,
                                                                tmp_path: Path) -> None:
    spec = {"name": "optuna", "sampler": sampler}
    whole = tn.Study(objectives={"loss": "min"}, strategy=spec, seed=5)
    whole.optimize(every_kind, trials=16)
    part = tn.Study(objectives={"loss": "min"}, strategy=spec, seed=5,
                    storage=tmp_path / "o.db")
    part.optimize(every_kind, trials=11)
    part.journal.close()
    resumed = tn.load_study(tmp_path / "o.db")
    resumed.optimize(every_kind, trials=5)
    assert [t.arch for t in resumed.trials] == [t.arch for t in whole.trials]
    resumed.journal.close()


@pytest.mark.parametrize("name", ["tpe", "bananas", "smac"])
def test_several_objectives(name: str) -> None:
    def two(hp: tn.HP) -> dict[str, float]:
        x, y = hp.float("x", 0.0, 1.0), hp.choice("y", [0.0, 0.5, 1.0])
        return {"loss": x + y, "cost": (1 - x) ** 2 + y}

    extra = {"bananas": {"ensemble": 2}, "smac": {"members": 8}}.get(name, {})
    strategy = {"name": name, "startup": 5, **extra}
    study = tn.Study(objectives={"loss": "min", "cost": "min"}, strategy=strategy, seed=0)
    study.optimize(two, trials=15)
    assert all(t.state is tn.TrialState.COMPLETE for t in study.trials)
    assert sum(t.arch["y"] == 0.0 for t in study.trials[5:]) > 10 / 3  # y = 0 dominates
