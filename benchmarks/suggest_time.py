"""Suggestion time after a long history: torchnas strategies against Optuna, same run.

A 10-label mixed space (4 uniform floats, 2 log-uniform floats, 2 ints, 2 categoricals) and a
history of ``--history`` finished trials: the same random architectures with the same synthetic
results for every method. Then, ``--repeats`` times, we time one ``study.ask()`` plus the
suggestions of one define-by-run pass over the space (the result is told afterwards, untimed),
and report milliseconds per suggestion (one whole trial's decisions) and the ratio to Optuna's
TPESampler.

torchnas: the history is written through the public ask/tell API (``ask(fixed=arch)`` under the
random strategy), then the study is reopened from its journal with the strategy under test, which
replays the history (``replay s``: what resuming costs that strategy). Optuna: the history is
added with ``study.add_trials(create_trial(...))``; its samplers read it from storage.

    python benchmarks/suggest_time.py [--history 1000] [--repeats 50] [--strategies auto,random]
                                      [--quick]
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import time
from collections.abc import Callable
from typing import Any

from _common import (
    OPTUNA_SAMPLERS,
    auto_means,
    machine_note,
    optuna_sampler,
    quiet,
    ratio,
    strategy_names,
    strategy_spec,
    table,
)

import torchnas as tn

#: (kind, label, arguments): the space, walked in this order by every library.
SPACE: list[tuple[str, str, tuple[Any, ...]]] = [
    *[("float", f"x{i}", (-5.0, 5.0, False)) for i in range(4)],
    *[("float", f"lr{i}", (1e-5, 1e-1, True)) for i in range(2)],
    *[("int", f"n{i}", (1, 64)) for i in range(2)],
    ("cat", "act", (["relu", "gelu", "tanh"],)),
    ("cat", "width", ([16, 32, 64, 128],)),
]


def walk(get: Callable[[str, str, tuple[Any, ...]], Any]) -> float:
    """Draws every label with ``get(kind, label, args)``; returns the synthetic result."""
    values = {label: get(kind, label, args) for kind, label, args in SPACE}
    total = sum((values[f"x{i}"] - 1.0) ** 2 for i in range(4))
    total += sum(values[f"lr{i}"] for i in range(2))
    total += sum(abs(values[f"n{i}"] - 16) for i in range(2)) / 16
    total += {"relu": 0.0, "gelu": 0.5, "tanh": 1.0}[values["act"]]
    return total + {16: 1.0, 32: 0.0, 64: 0.5, 128: 0.8}[values["width"]]


def history(n: int, seed: int = 0) -> list[tuple[dict[str, Any], float]]:
    """``n`` random architectures and their synthetic results."""
    rng = random.Random(seed)

    def draw(kind: str, label: str, args: tuple[Any, ...]) -> Any:
        if kind == "float":
            low, high, log = args
            if log:
                return math.exp(rng.uniform(math.log(low), math.log(high)))
            return rng.uniform(low, high)
        if kind == "int":
            return rng.randint(*args)
        return rng.choice(args[0])

    out = []
    for _ in range(n):
        arch = {label: draw(kind, label, args) for kind, label, args in SPACE}
        out.append((arch, walk(lambda kind, label, args, a=arch: a[label])))
    return out


def hp_get(hp: tn.HP) -> Callable[[str, str, tuple[Any, ...]], Any]:
    def get(kind: str, label: str, args: tuple[Any, ...]) -> Any:
        if kind == "float":
            return hp.float(label, args[0], args[1], log=args[2])
        if kind == "int":
            return hp.int(label, *args)
        return hp.choice(label, args[0])
    return get


def time_torchnas(strategy: str, past: list[tuple[dict[str, Any], float]],
                  repeats: int) -> tuple[list[float], float]:
    """Seconds per ask + suggestions, and the seconds the reopened study took to replay."""
    journal = tn.storage.MemoryJournal()
    writer = tn.Study(name="suggest", storage=journal, objectives={"value": "min"},
                      strategy="random", seed=0)
    for arch, value in past:
        trial = writer.ask(fixed=arch)
        walk(hp_get(trial.hp))
        writer.tell(trial, value)
    # a reopened study keeps its stored strategy when given "auto" (the default): pass an object
    chosen: Any = tn.strategies.create("auto") if strategy == "auto" else strategy_spec(strategy)
    start = time.perf_counter()
    study = tn.Study(name="suggest", storage=journal, strategy=chosen)
    replay = time.perf_counter() - start
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        trial = study.ask()
        value = walk(hp_get(trial.hp))
        times.append(time.perf_counter() - start)
        study.tell(trial, value)
    return times, replay


def time_optuna(sampler: str, past: list[tuple[dict[str, Any], float]],
                repeats: int) -> tuple[list[float], float]:
    """Seconds per ask + suggestions, and the seconds ``add_trials`` took."""
    import optuna
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    dists: dict[str, Any] = {}
    for kind, label, args in SPACE:
        dists[label] = (FloatDistribution(args[0], args[1], log=args[2]) if kind == "float"
                        else IntDistribution(*args) if kind == "int"
                        else CategoricalDistribution(args[0]))
    study = optuna.create_study(direction="minimize", sampler=optuna_sampler(sampler, 0))
    start = time.perf_counter()
    study.add_trials([optuna.trial.create_trial(params=arch, distributions=dists, value=value)
                      for arch, value in past])
    setup = time.perf_counter() - start

    def suggest(trial: optuna.Trial) -> Callable[[str, str, tuple[Any, ...]], Any]:
        def get(kind: str, label: str, args: tuple[Any, ...]) -> Any:
            if kind == "float":
                return trial.suggest_float(label, args[0], args[1], log=args[2])
            if kind == "int":
                return trial.suggest_int(label, *args)
            return trial.suggest_categorical(label, args[0])
        return get

    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        trial = study.ask()
        value = walk(suggest(trial))
        times.append(time.perf_counter() - start)
        study.tell(trial, value)
    return times, setup


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--history", type=int, default=1000, help="finished trials before timing")
    parser.add_argument("--repeats", type=int, default=50, help="timed asks per method")
    parser.add_argument("--strategies", default=None,
                        help="comma list of torchnas strategies, each 'name' or "
                             "'name(key=value, ...)' (default: every registered one)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 100 trials, 5 asks")
    args = parser.parse_args()
    if args.quick:
        args.history, args.repeats = 100, 5
    quiet()
    past = history(args.history)
    methods = [*strategy_names(args.strategies, exclude=()), *OPTUNA_SAMPLERS]
    print(f"Suggestion time after {args.history} finished trials, 10-label mixed space, "
          f"{args.repeats} asks each; 'auto' = {auto_means()}; {machine_note()}", flush=True)
    results: dict[str, tuple[list[float], float]] = {}
    for method in methods:
        runner = time_optuna if method.startswith("optuna:") else time_torchnas
        results[method] = runner(method, past, args.repeats)
    reference = statistics.fmean(results["optuna:tpe"][0])
    rows = []
    for method, (times, setup) in results.items():
        mean = statistics.fmean(times)
        rows.append([method if method.startswith("optuna:") else f"torchnas:{method}",
                     f"{1e3 * mean:.2f}", f"{1e3 * statistics.median(times):.2f}",
                     f"{1e3 * max(times):.2f}", ratio(mean, reference), f"{setup:.2f}"])
    print(table(["method", "ms mean", "ms median", "ms max", "/ optuna:tpe",
                 "replay / add_trials s"], rows))


if __name__ == "__main__":
    main()
