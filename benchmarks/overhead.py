"""Per-trial overhead of the study loop, torchnas against Optuna, same run, no training.

A 10-parameter space (4 floats, 2 log floats, 2 ints, 2 categoricals) and an objective that
only does arithmetic, so what is timed is the framework: asking, sampling, recording. Both use
random sampling. Each framework runs 1,000 trials in memory and with SQLite (WAL for torchnas,
Optuna's RDB storage on SQLite), and we report the mean time per trial, the first 100 trials
against the last 100 (growth), and torchnas/Optuna ratios.

    python benchmarks/overhead.py [--trials 1000]
"""

from __future__ import annotations

import argparse
import itertools
import logging
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torchnas as tn


def space_value(get: Any) -> float:
    """The shared objective: ``get(kind, name, *args)`` draws a value; the sum is returned."""
    total = 0.0
    for i in range(4):
        total += (get("float", f"x{i}", -5.0, 5.0, False) - 1.0) ** 2
    for i in range(2):
        total += get("float", f"lr{i}", 1e-5, 1e-1, True)
    for i in range(2):
        total += abs(get("int", f"n{i}", 1, 64) - 16)
    total += {"relu": 0.0, "gelu": 0.5, "tanh": 1.0}[get("cat", "act", ["relu", "gelu", "tanh"])]
    total += {16: 1.0, 32: 0.0, 64: 0.5}[get("cat", "width", [16, 32, 64])]
    return total


def run_torchnas(storage: str | None, trials: int) -> list[float]:
    study = tn.Study(name="overhead", storage=storage, objectives={"value": "min"},
                     strategy="random", seed=0)

    def objective(hp: tn.HP) -> float:
        def get(kind: str, name: str, *args: Any) -> Any:
            if kind == "float":
                return hp.float(name, args[0], args[1], log=args[2])
            if kind == "int":
                return hp.int(name, args[0], args[1])
            return hp.choice(name, args[0])
        return space_value(get)

    stamps = [time.perf_counter()]
    study.optimize(objective, trials=trials,
                   callbacks=[lambda s, t: stamps.append(time.perf_counter())])
    return [b - a for a, b in itertools.pairwise(stamps)]


def run_optuna(storage: str | None, trials: int) -> list[float]:
    import optuna

    optuna.logging.set_verbosity(logging.WARNING)
    study = optuna.create_study(storage=storage, sampler=optuna.samplers.RandomSampler(seed=0),
                                study_name="overhead", direction="minimize")

    def objective(trial: Any) -> float:
        def get(kind: str, name: str, *args: Any) -> Any:
            if kind == "float":
                return trial.suggest_float(name, args[0], args[1], log=args[2])
            if kind == "int":
                return trial.suggest_int(name, args[0], args[1])
            return trial.suggest_categorical(name, args[0])
        return space_value(get)

    stamps = [time.perf_counter()]
    study.optimize(objective, n_trials=trials,
                   callbacks=[lambda s, t: stamps.append(time.perf_counter())])
    return [b - a for a, b in itertools.pairwise(stamps)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=1000)
    args = parser.parse_args()
    results: dict[tuple[str, str], list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for backend in ("memory", "sqlite"):
            for name, runner in (("torchnas", run_torchnas), ("optuna", run_optuna)):
                db = Path(tmp) / f"{name}.db"
                url = None if backend == "memory" else (
                    str(db) if name == "torchnas" else f"sqlite:///{db}")
                results[(name, backend)] = runner(url, args.trials)
    k = min(100, args.trials // 2)
    print(f"Per-trial time, {args.trials} trials, 10 parameters, random sampling (ms)")
    print(f"{'framework':<10} {'storage':<8} {'mean':>8} {'first ' + str(k):>10} "
          f"{'last ' + str(k):>10} {'last/first':>11}")
    for (name, backend), times in results.items():
        first, last = statistics.mean(times[:k]) * 1e3, statistics.mean(times[-k:]) * 1e3
        print(f"{name:<10} {backend:<8} {statistics.mean(times) * 1e3:8.3f} {first:10.3f} "
              f"{last:10.3f} {last / first:11.2f}")
    for backend in ("memory", "sqlite"):
        ratio = statistics.mean(results[("torchnas", backend)]) / statistics.mean(
            results[("optuna", backend)])
        print(f"torchnas / optuna time per trial, {backend}: {ratio:.3f} "
              f"(optuna is {1 / ratio:.1f}x slower)")


if __name__ == "__main__":
    main()
