"""The surrogate predictor (``tn.evaluation.Predictor``) and the surrogate models under it."""

from __future__ import annotations

import math
import random
from typing import Any

import numpy as np
import pytest
from scipy.stats import spearmanr

import torchnas as tn
from torchnas.space import Categorical, Float, Inputs, Int
from torchnas.surrogate import Surrogate, acquire, expected_improvement

KINDS = ["forest", "ensemble", "gp"]


def space(hp: tn.HP) -> float:
    """A conditional space whose score is known: deeper, wider and ``gelu`` are better."""
    depth = hp.int("depth", 1, 4)
    score = 0.0
    for i in range(depth):
        score += {8: 0.0, 16: 0.5, 32: 1.0}[hp.choice(f"width_{i}", [8, 16, 32])]
    act = hp.choice("act", ["relu", "gelu"])
    lr = hp.float("lr", 1e-4, 1e-1, log=True)
    return score + depth + (0.5 if act == "gelu" else 0.0) - abs(math.log10(lr) + 2)


def random_archs(n: int, seed: int) -> list[dict[str, Any]]:
    study = tn.Study(objectives={"score": "max"}, strategy="random", seed=seed)
    study.optimize(space, trials=n)
    return [t.arch for t in study.trials]


@pytest.fixture(scope="module")
def trials() -> list[tn.FrozenTrial]:
    study = tn.Study(objectives={"score": "max"}, strategy="random", seed=0)
    study.optimize(space, trials=60)
    return study.trials


@pytest.mark.parametrize("kind", KINDS)
def test_fit_on_trials_predicts_shapes_and_ranks_held_out_archs(
        kind: str, trials: list[tn.FrozenTrial]) -> None:
    predictor = tn.evaluation.Predictor(kind, seed=1).fit(trials)
    held_out = random_archs(40, seed=7)
    mean, std = predictor.predict(held_out)
    assert mean.shape == std.shape == (40,)
    assert np.isfinite(mean).all() and (std >= 0).all()
    truth = [tn.build(space, a) for a in held_out]
    rho = spearmanr(mean, truth).statistic
    assert rho > 0.6, rho  # a known additive function, 60 points: clearly learned


@pytest.mark.parametrize("kind", KINDS)
def test_uncertainty_away_from_the_data(kind: str) -> None:
    dom = {"x": Float(0.0, 1.0), "c": Categorical(("a", "b", "c"))}
    xs = [0.0, 0.1, 0.2, 0.3, 0.6, 0.7]
    archs = [{"x": x, "c": "a" if x < 0.5 else "b"} for x in xs]
    values = [math.sin(6 * x) for x in xs]
    predictor = tn.evaluation.Predictor(kind, seed=0).fit(archs, values, domains=dom)
    _, at_data = predictor.predict([archs[1]])
    _, away = predictor.predict([{"x": 0.45, "c": "c"}, {"x": 0.95, "c": "b"}])
    assert (away > 0).all()
    if kind != "ensemble":  # boosted members on subsamples do not interpolate their data
        assert at_data[0] < away.min()


def test_fit_from_architectures_with_the_space_function() -> None:
    archs = random_archs(30, seed=3)
    values = [tn.build(space, a) for a in archs]
    predictor = tn.evaluation.Predictor("forest").fit(archs, values, space=space)
    assert predictor.encoding is not None
    assert "act=gelu" in predictor.encoding.columns and "width_3:absent" in \
        predictor.encoding.columns
    mean, _ = predictor.predict([{"depth": 4, "width_0": 32, "width_1": 32, "width_2": 32,
                                  "width_3": 32, "act": "gelu", "lr": 1e-2},
                                 {"depth": 1, "width_0": 8, "act": "relu", "lr": 1e-4}])
    assert mean[0] > mean[1] + 2


def test_study_trials_pick_the_metric_and_skip_failed_ones() -> None:
    def objective(hp: tn.HP) -> dict[str, float]:
        x = hp.int("x", 0, 20)
        if x < 3:
            raise RuntimeError("boom")
        return {"acc": x / 20, "params": 100.0 * x}

    study = tn.Study(objectives={"acc": "max"}, seed=0)
    study.optimize(objective, trials=25)
    assert any(t.state is tn.TrialState.FAILED for t in study.trials)
    with pytest.raises(tn.ConfigError, match=r"metric=.*\['acc', 'params'\]"):
        tn.evaluation.Predictor().fit(study.trials)  # two metrics: which one?
    mean, _ = tn.evaluation.Predictor(metric="params").fit(study.trials).predict(
        [{"x": 18}, {"x": 2}])
    assert mean[0] > mean[1]


def test_bad_input_names_the_culprit(trials: list[tn.FrozenTrial]) -> None:
    Predictor = tn.evaluation.Predictor
    with pytest.raises(tn.ConfigError, match="kind"):
        Predictor("svm")
    with pytest.raises(RuntimeError, match="fit"):
        Predictor().predict([{"x": 1}])
    dom = {"x": Int(0, 9)}
    with pytest.raises(tn.ConfigError, match="2 architectures but 1 values"):
        Predictor().fit([{"x": 1}, {"x": 2}], [0.5], domains=dom)
    with pytest.raises(tn.ConfigError, match="domains"):
        Predictor().fit([{"x": 1}, {"x": 2}], [0.5, 0.6])
    with pytest.raises(tn.ConfigError, match=r"no domain for labels \['y'\]"):
        Predictor().fit([{"x": 1}, {"y": 2}], [0.5, 0.6], domains=dom)
    with pytest.raises(tn.ConfigError, match="finite"):
        Predictor().fit([{"x": 1}, {"x": 2}], [0.5, math.nan], domains=dom)
    with pytest.raises(tn.ConfigError, match="at least 2"):
        Predictor().fit(trials[:1])
    with pytest.raises(tn.ConfigError, match="values come from the trials"):
        Predictor().fit(trials, [1.0] * len(trials))
    with pytest.raises(tn.ConfigError, match="mix"):
        Predictor().fit([trials[0], {"x": 1}], [1.0, 2.0], domains=dom)
    fitted = Predictor().fit(trials)
    with pytest.raises(tn.ConfigError, match=r"\{label: value\} dict, got 3"):
        fitted.predict([3])  # type: ignore[list-item]


def test_surrogate_is_seeded_and_inputs_are_encoded() -> None:
    dom = {"cell/in": Inputs(4, 2), "op": Categorical(("conv", "skip"))}
    rng = random.Random(0)
    archs = [{"cell/in": sorted(rng.sample(range(4), 2)), "op": rng.choice(["conv", "skip"])}
             for _ in range(30)]
    values = [float(0 in a["cell/in"]) + (a["op"] == "conv") for a in archs]
    a = tn.evaluation.Predictor(seed=5).fit(archs, values, domains=dom)
    b = tn.evaluation.Predictor(seed=5).fit(archs, values, domains=dom)
    probe = [{"cell/in": [0, 1], "op": "conv"}, {"cell/in": [2, 3], "op": "skip"}]
    assert np.array_equal(a.predict(probe)[0], b.predict(probe)[0])
    assert a.predict(probe)[0][0] > a.predict(probe)[0][1] + 1


def test_surrogate_rejects_bad_settings_and_data() -> None:
    with pytest.raises(tn.ConfigError, match="model"):
        Surrogate("forest", model="mlp")
    with pytest.raises(tn.ConfigError, match="members"):
        Surrogate("ensemble", members=0)
    with pytest.raises(ValueError, match="n >= 2"):
        Surrogate().fit(np.zeros((1, 3)), np.zeros(1))
    with pytest.raises(ValueError, match="finite"):
        Surrogate().fit(np.zeros((3, 2)), np.array([0.0, math.inf, 1.0]))


def test_acquisitions_prefer_what_they_should() -> None:
    mean, std = np.array([1.0, 0.9, 0.0]), np.array([0.0, 0.5, 0.01])
    rng = np.random.default_rng(0)
    ei = expected_improvement(mean, std, best=1.0)
    assert ei[1] > ei[0] > 0 or ei[1] > ei[0] == 0  # spread beats a sure tie
    assert ei[2] < 1e-6
    assert np.argmax(acquire("mean", mean, std, 1.0, rng)) == 0
    assert np.argmax(acquire("ucb", mean, std, 1.0, rng, kappa=1.0)) == 1
    with pytest.raises(tn.ConfigError, match="acquisition"):
        acquire("pi", mean, std, 1.0, rng)


def test_study_predict_uses_the_first_objective() -> None:
    study = tn.Study(objectives={"score": "max", "cost": "min"}, seed=0)
    study.optimize(lambda hp: {"score": hp.int("x", 0, 9) / 9, "cost": 9 - hp.int("x", 0, 9)},
                   trials=12)
    mean, std = study.predict([{"x": 9}, {"x": 0}])
    assert mean.shape == std.shape == (2,)
    assert mean[0] > mean[1]
    cost, _ = study.predict([{"x": 9}, {"x": 0}], metric="cost", kind="forest")
    assert cost[0] < cost[1]
