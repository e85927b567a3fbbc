"""Decision importance against a known truth: torchnas against Optuna's fANOVA and PED-ANOVA.

Synthetic objectives over a space with decisions that matter, decisions that do not, and
decisions that exist only under a condition (a label absent from some trials). The truth is
each label's first-order Sobol index of the noise-free objective under the search's own random
sampling (Var(E[f | label]) / Var(f), an absent label a level of its own), estimated from
200 000 samples. Each estimator sees the same random trials (noisy values) and is scored by the
Spearman rank correlation of its importances with the truth over all labels (a label an
estimator leaves out counts as 0).

    python benchmarks/importance.py [--trials 200] [--seeds 5]
"""

from __future__ import annotations

import argparse
import math
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from _common import fmt_mean_se, machine_note, quiet, table, write_result
from scipy.stats import spearmanr

import torchnas as tn
from torchnas.report import importance

Arch = dict[str, Any]


def sample(rng: random.Random) -> Arch:
    """A random architecture: ``act`` decides which of two conditional labels exists."""
    arch: Arch = {"act": rng.choice(["relu", "gelu", "tanh"]),
                  "width": rng.choice([16, 32, 64, 128]),
                  "lr": 10 ** rng.uniform(-4, -1),
                  "depth": rng.randint(1, 6),
                  "dropout": rng.uniform(0.0, 0.5),
                  "bias": rng.choice([True, False])}
    if arch["act"] == "gelu":
        arch["gelu_approx"] = rng.choice(["none", "tanh"])
    if arch["depth"] >= 4:
        arch["skip"] = rng.choice([False, True])
    return arch


def problem_a(a: Arch) -> float:
    """lr and a conditional label matter most; width and depth a little; the rest not."""
    v = -3 * (math.log10(a["lr"]) + 2.5) ** 2 + 0.5 * math.log2(a["width"]) + 0.2 * a["depth"]
    if "skip" in a:
        v += 3.0 if a["skip"] else -2.0
    return v


def problem_b(a: Arch) -> float:
    """The activation and its conditional option dominate; dropout matters a little."""
    v = {"relu": 0.0, "gelu": 1.0, "tanh": -1.0}[a["act"]] * 2 - 2 * a["dropout"]
    if a.get("gelu_approx") == "tanh":
        v += 4.0
    return v


def problem_c(a: Arch) -> float:
    """An interaction: depth helps only with skip; width matters alone."""
    v = 0.8 * math.log2(a["width"])
    if "skip" in a:
        v += 1.5 * a["depth"] * (1 if a["skip"] else -1)
    return v + 0.3 * (a["act"] == "relu")


PROBLEMS: dict[str, Callable[[Arch], float]] = {"a": problem_a, "b": problem_b, "c": problem_c}
LABELS = ["act", "width", "lr", "depth", "dropout", "bias", "gelu_approx", "skip"]


def _key(value: Any) -> Any:
    return round(math.log10(value) * 4) if isinstance(value, float) else value


def truth(f: Callable[[Arch], float], n: int = 200_000) -> dict[str, float]:
    """First-order Sobol index of each label (numeric labels in 12 quantile bins)."""
    rng = random.Random(12345)
    archs = [sample(rng) for _ in range(n)]
    y = np.array([f(a) for a in archs])
    out = {}
    for label in LABELS:
        raw = [a.get(label) for a in archs]
        if isinstance(next(v for v in raw if v is not None), float):
            vals = np.array([np.nan if v is None else v for v in raw])
            edges = np.nanquantile(vals, np.linspace(0, 1, 13)[1:-1])
            keys = [("absent" if v is None else int(np.searchsorted(edges, v))) for v in raw]
        else:
            keys = ["absent" if v is None else repr(v) for v in raw]
        groups: dict[Any, list[float]] = {}
        for k, v in zip(keys, y, strict=True):
            groups.setdefault(k, []).append(v)
        means = np.array([np.mean(g) for g in groups.values()])
        w = np.array([len(g) for g in groups.values()]) / n
        out[label] = float(np.sum(w * (means - y.mean()) ** 2) / y.var())
    return out


def trials_for(f: Callable[[Arch], float], trials: int, seed: int) -> tn.Study:
    """A torchnas study of ``trials`` random trials of ``f`` plus noise."""
    rng = random.Random(seed)
    noise = np.random.default_rng(seed)

    def objective(hp: tn.HP) -> float:
        a = {"act": hp.choice("act", ["relu", "gelu", "tanh"]),
             "width": hp.choice("width", [16, 32, 64, 128]),
             "lr": hp.float("lr", 1e-4, 1e-1, log=True),
             "depth": hp.int("depth", 1, 6),
             "dropout": hp.float("dropout", 0.0, 0.5),
             "bias": hp.choice("bias", [True, False])}
        if a["act"] == "gelu":
            a["gelu_approx"] = hp.choice("gelu_approx", ["none", "tanh"])
        if a["depth"] >= 4:
            a["skip"] = hp.choice("skip", [False, True])
        return f(a) + float(noise.normal(0, 0.3))

    study = tn.Study(objectives={"score": "max"}, strategy="random", seed=rng.randrange(2**31))
    study.optimize(objective, trials=trials)
    return study


def optuna_importances(study: tn.Study, evaluator: Any) -> dict[str, float]:
    """Optuna's importances of the same trials (params as recorded; absent labels left out)."""
    import optuna
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    def dist(domain: Any) -> Any:
        if isinstance(domain, tn.space.Categorical):
            return CategoricalDistribution(list(domain.choices))
        if isinstance(domain, tn.space.Int):
            return IntDistribution(domain.low, domain.high, log=domain.log)
        return FloatDistribution(domain.low, domain.high, log=domain.log)

    ostudy = optuna.create_study(direction="maximize")
    for t in study.trials:
        if t.state is tn.TrialState.COMPLETE:
            ostudy.add_trial(optuna.trial.create_trial(
                params=dict(t.arch), distributions={k: dist(t.domains[k]) for k in t.arch},
                value=t.metrics["score"]))
    return dict(optuna.importance.get_param_importances(ostudy, evaluator=evaluator))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--out", type=Path,
                        default=Path(__file__).parent / "results" / "importance.json")
    args = parser.parse_args()
    quiet()
    from optuna.importance import FanovaImportanceEvaluator, PedAnovaImportanceEvaluator

    methods: dict[str, Callable[[tn.Study, int], dict[str, float]]] = {
        "torchnas": lambda s, seed: importance(s, seed=seed),
        "optuna fANOVA": lambda s, seed: optuna_importances(
            s, FanovaImportanceEvaluator(seed=seed)),
        "optuna PED-ANOVA": lambda s, seed: optuna_importances(s, PedAnovaImportanceEvaluator()),
    }
    scores: dict[str, dict[str, list[float]]] = {m: {} for m in methods}
    truths = {}
    for name, f in PROBLEMS.items():
        truths[name] = truth(f)
        order = [truths[name][k] for k in LABELS]
        for seed in range(args.seeds):
            study = trials_for(f, args.trials, seed)
            for method, fn in methods.items():
                got = fn(study, seed)
                rho = spearmanr(order, [got.get(k, 0.0) for k in LABELS]).statistic
                scores[method].setdefault(name, []).append(float(rho))
    rows = [[m, *[fmt_mean_se(scores[m][p]) for p in PROBLEMS],
             f"{np.mean([v for p in PROBLEMS for v in scores[m][p]]):.2f}"] for m in methods]
    print(f"Spearman rank correlation with the truth, {args.trials} random trials, "
          f"{args.seeds} seeds; {machine_note()}")
    print(table(["estimator", *[f"problem {p}" for p in PROBLEMS], "mean"], rows))
    write_result(args, {"truth": truths, "spearman": scores})


if __name__ == "__main__":
    main()
