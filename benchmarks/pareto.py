"""Accuracy against latency on MNIST-1D: the Pareto fronts of torchnas and of Optuna's NSGA-II.

Every tool searches the built-in ``chain_cnn`` space (see ``benchmarks/e2e_mnist1d.py``) for the
two objectives ``val_accuracy`` (max) and ``latency_ms`` (min) with the same trial budget, in
the same process: torchnas's ``nsga2``, ``motpe`` and ``auto`` (which resolves to the best
multi-objective strategy), Optuna 5's ``NSGAIISampler`` run by Optuna itself (its own study and
``trial.suggest_*``, the space's decisions mapped to Optuna distributions as the ``optuna``
bridge maps them) with the same population as ``nsga2`` and with its default of 50, and random
search as the floor.

An architecture is evaluated once per run and remembered: trained for ``--epochs`` epochs on the
3,200 training signals (initial weights and batch order seeded by its key), validated on the 800
validation signals, and its CPU latency measured with ``tn.metrics.latency`` (batch 1, one
thread, median of ``--repeats`` passes). Every tool that proposes it gets the same numbers, so
the noise of timing on a loaded machine is the same for all and the fronts compare fairly (a
proposal repeated by a tool still costs it a trial). Each tool's front is scored by its
hypervolume after normalising both objectives to ``[0, 1]`` over every architecture evaluated
in the run (0 the best seen), against the reference point ``(1.1, 1.1)``. The deterministic
``(val_accuracy, FLOPs)`` hypervolume of the same trials is printed too, as a check that
latency noise does not decide the ranking. Ratios are against Optuna's NSGA-II with the same
population. A PNG shows the seed-0 fronts over every architecture evaluated.

    python benchmarks/pareto.py [--trials 80] [--seeds 3] [--epochs 2] [--population 10]
        [--repeats 50] [--out benchmarks/results/pareto_mnist1d.png] [--quick]
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from _common import fmt_mean_se, machine_note, mean_se, quiet, ratio, table

import torchnas as tn
from torchnas.space import HP, Categorical, Domain, Inputs, Int
from torchnas.strategies import derive_seed
from torchnas.strategies._optuna import _from_optuna, distribution

OBJECTIVES = {"val_accuracy": "max", "latency_ms": "min"}


class Evaluator:
    """``objective(hp)``: builds the architecture, trains and times it once per run."""

    def __init__(self, data: tn.data.Data, epochs: int, repeats: int) -> None:
        self.data = data
        self.space = tn.spaces.create("chain_cnn", input_shape=data.input_shape,
                                      num_classes=data.num_classes)
        self.trainer = tn.Trainer(epochs=epochs, batch_size=128, device="cpu", amp=False)
        self.repeats = repeats
        self.cache: dict[str, dict[str, float]] = {}
        self.seconds = 0.0

    def __call__(self, hp: HP) -> dict[str, float]:
        self.space(hp)  # records the decisions
        key = tn.arch_key(hp.arch)
        if key not in self.cache:
            start = time.perf_counter()
            seed = derive_seed("pareto", key) % 2**31
            torch.manual_seed(seed)
            model = tn.build(self.space, hp.arch)
            fit = self.trainer.fit(model, self.data, params=hp.arch, seed=seed)
            x = torch.zeros(1, *self.data.input_shape)
            self.cache[key] = {
                "val_accuracy": fit["val_accuracy"], "params": float(tn.metrics.params(model)),
                "flops": tn.metrics.flops(model, x),
                "latency_ms": tn.metrics.latency(model, x, batch_size=1, warmup=10,
                                                 repeats=self.repeats, threads=1)}
            self.seconds += time.perf_counter() - start
        return dict(self.cache[key])


class _OptunaSource:
    """An ``hp`` source asking an Optuna trial (``trial.suggest_*``) for each decision."""

    def __init__(self, trial: Any) -> None:
        self.trial = trial

    def value(self, label: str, domain: Domain, met: Any) -> Any:
        dist = distribution(domain)
        if isinstance(domain, (Categorical, Inputs)):
            value = self.trial.suggest_categorical(label, dist.choices)
        elif isinstance(domain, Int):
            value = self.trial.suggest_int(label, dist.low, dist.high, step=dist.step,
                                           log=dist.log)
        else:
            value = self.trial.suggest_float(label, dist.low, dist.high, step=dist.step,
                                             log=dist.log)
        return _from_optuna(domain, value)


Points = list[dict[str, float]]


def run_torchnas(spec: Any, evaluate: Evaluator, trials: int, seed: int) -> Points:
    study = tn.Study(objectives=OBJECTIVES, strategy=spec, seed=seed)
    study.optimize(evaluate, trials=trials)
    return [dict(t.metrics) for t in study.trials if t.state is tn.TrialState.COMPLETE]


def run_optuna(population: int | None, evaluate: Evaluator, trials: int, seed: int) -> Points:
    import optuna

    kwargs = {"seed": seed} if population is None else {"seed": seed,
                                                        "population_size": population}
    study = optuna.create_study(directions=["maximize", "minimize"],
                                sampler=optuna.samplers.NSGAIISampler(**kwargs))
    out: Points = []

    def objective(trial: Any) -> tuple[float, float]:
        metrics = evaluate(HP(_OptunaSource(trial)))
        out.append(metrics)
        return metrics["val_accuracy"], metrics["latency_ms"]

    study.optimize(objective, n_trials=trials)
    return out


def normalised_hv(points: Points, names: tuple[str, str], bounds: dict[str, tuple[float, float]]
                  ) -> float:
    """Hypervolume of ``points`` (both objectives mapped to [0, 1], 0 best) from (1.1, 1.1)."""
    rows = []
    for p in points:
        row = []
        for n in names:
            lo, hi = bounds[n]
            x = (p[n] - lo) / (hi - lo) if hi > lo else 0.0
            row.append(1.0 - x if n == "val_accuracy" else x)
        rows.append(row)
    return tn.hypervolume(rows, (1.1, 1.1))


def front_of(points: Points, x: str) -> list[tuple[float, float]]:
    """The non-dominated (``x`` min, accuracy max) points, by ``x``."""
    out: list[tuple[float, float]] = []
    for p in sorted(points, key=lambda p: (p[x], -p["val_accuracy"])):
        if not out or p["val_accuracy"] > out[-1][1]:
            out.append((p[x], p["val_accuracy"]))
    return out


def plot(path: Path, results: dict[str, list[Points]], everything: Points) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=100)
    ax.scatter([p["latency_ms"] for p in everything], [p["val_accuracy"] for p in everything],
               s=6, c="0.8", label="every architecture evaluated")
    styles = iter(["-", "--", "-.", ":", "-"])
    for name, runs in results.items():
        if name in ("random", "torchnas auto"):  # auto: the same trials as what it resolves to
            continue
        xs, ys = zip(*front_of(runs[0], "latency_ms"), strict=True)
        ax.step(xs, ys, where="post", marker="o", ms=3, lw=1.2, ls=next(styles),
                label=f"{name} (seed 0)")
    ax.set_xscale("log")
    ax.set_xlabel("latency (ms, batch 1, one CPU thread, log scale)")
    ax.set_ylabel("validation accuracy")
    ax.set_title("MNIST-1D, chain_cnn: Pareto fronts of the same budget")
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=80)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--population", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" /
                        "pareto_mnist1d.png")
    parser.add_argument("--quick", action="store_true", help="8 trials, 1 seed, 1 epoch")
    args = parser.parse_args()
    if args.quick:
        args.trials, args.seeds, args.epochs = 8, 1, 1
    quiet()
    torch.set_num_threads(1)
    print(machine_note())
    evaluate = Evaluator(tn.data.load("mnist1d"), args.epochs, args.repeats)
    pop = args.population
    tools: dict[str, Callable[[int], Points]] = {
        "torchnas auto": lambda s: run_torchnas("auto", evaluate, args.trials, s),
        "torchnas motpe": lambda s: run_torchnas("motpe", evaluate, args.trials, s),
        f"torchnas nsga2 (pop {pop})": lambda s: run_torchnas(
            {"name": "nsga2", "population": pop}, evaluate, args.trials, s),
        f"optuna NSGAII (pop {pop})": lambda s: run_optuna(pop, evaluate, args.trials, s),
        "optuna NSGAII (pop 50)": lambda s: run_optuna(None, evaluate, args.trials, s),
        "random": lambda s: run_torchnas("random", evaluate, args.trials, s),
    }
    print(f"auto resolves to {tn.strategies.auto_name(OBJECTIVES)!r} for two objectives; "
          f"{args.trials} trials, {args.seeds} seeds, {args.epochs} epochs")
    results: dict[str, list[Points]] = {name: [] for name in tools}
    start = time.perf_counter()
    for seed in range(args.seeds):
        for name, run in tools.items():
            results[name].append(run(seed))
            print(f"  seed {seed} {name}: done ({len(evaluate.cache)} architectures evaluated, "
                  f"{time.perf_counter() - start:.0f}s)", flush=True)
    everything = list(evaluate.cache.values())
    bounds = {n: (min(p[n] for p in everything), max(p[n] for p in everything))
              for n in ("val_accuracy", "latency_ms", "flops")}
    peer = f"optuna NSGAII (pop {pop})"
    hv = {n: [normalised_hv(r, ("val_accuracy", "latency_ms"), bounds) for r in runs]
          for n, runs in results.items()}
    hv_flops = {n: [normalised_hv(r, ("val_accuracy", "flops"), bounds) for r in runs]
                for n, runs in results.items()}
    rows = [[n, fmt_mean_se(hv[n], 3), ratio(mean_se(hv[n])[0], mean_se(hv[peer])[0]),
             fmt_mean_se(hv_flops[n], 3),
             ratio(mean_se(hv_flops[n])[0], mean_se(hv_flops[peer])[0]),
             f"{sum(len(front_of(r, 'latency_ms')) for r in results[n]) / args.seeds:.1f}",
             f"{max(p['val_accuracy'] for r in results[n] for p in r):.3f}"]
            for n in tools]
    print(f"\nHypervolume of each front (objectives normalised over the {len(everything)} "
          f"architectures evaluated, reference (1.1, 1.1); mean ± se over {args.seeds} seeds)")
    print(table(["tool", "HV acc/latency", f"/ {peer}", "HV acc/FLOPs", "ratio",
                 "front size", "best acc"], rows))
    print(f"\nevaluation {evaluate.seconds:.0f}s of {time.perf_counter() - start:.0f}s; "
          f"{machine_note()}")
    if math.isfinite(bounds["latency_ms"][0]):
        plot(args.out, results, everything)
        print(f"plot: {args.out}")


if __name__ == "__main__":
    main()
