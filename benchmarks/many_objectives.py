"""Two, three and four objectives: time per trial and final hypervolume of torchnas ``auto``
against Optuna's multi-objective TPE and NSGA-II, in the same run.

Two synthetic problems of seven decisions each, without training, so that the figures are the
strategies' own cost:

- ``dtlz2``: DTLZ2 (Deb et al. 2005) on seven floats in ``[0, 1]``, ``m`` objectives (all
  minimized; the front is the positive part of the unit sphere).
- ``hw``: a hardware-aware search on a mixed space (depth, width, kernel, expansion, input
  resolution, squeeze-excite on/off, learning rate): a model error that falls with capacity and
  resolution and has an optimal learning rate, against latency, peak memory and parameter
  count from closed formulas; the first ``m`` of (error, latency, memory, size), each mapped to
  ``[0, 1]`` (log scale for the costs), all minimized.

Each tool runs ``--trials`` trials per problem, number of objectives and seed: torchnas
``auto`` (what a multi-objective study gets; the script prints what it resolves to), Optuna 5's
``TPESampler`` (multi-objective TPE) multivariate and with its defaults (univariate), and
``NSGAIISampler`` (population 50). Time per trial is the run's wall time over its trials (the
study's own work: the objectives cost microseconds); the last-50 column is the time per trial
of the last 50 trials, when the history is longest. The final hypervolume is that of all the
run's trials, against the same reference for every tool (``1.1`` in every objective, for both
problems). Ratios are against Optuna's multivariate TPE. The tools of one seed run one after
the other, so timings on a shared machine meet the same load.

    python benchmarks/many_objectives.py [--trials 300] [--seeds 2] [--objectives 2,3,4]
        [--problems dtlz2,hw] [--out benchmarks/results/many_objectives.json] [--quick]
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _common import fmt_mean_se, machine_note, mean_se, quiet, ratio, table, write_result

import torchnas as tn

REFERENCE = 1.1
"""The hypervolume reference of every objective (all objectives are minimized)."""


# -- problems: decisions in, objective values (minimized) out ----------------------------------
class Ask:
    """The decisions a problem asks for, answered by a torchnas ``hp`` or an Optuna trial."""

    def float(self, name: str, low: float, high: float, log: bool = False) -> float:
        raise NotImplementedError

    def int(self, name: str, low: int, high: int) -> int:
        raise NotImplementedError

    def choice(self, name: str, options: list[Any]) -> Any:
        raise NotImplementedError


class TorchnasAsk(Ask):
    def __init__(self, hp: tn.HP) -> None:
        self.hp = hp

    def float(self, name: str, low: float, high: float, log: bool = False) -> float:
        return float(self.hp.float(name, low, high, log=log))

    def int(self, name: str, low: int, high: int) -> int:
        return int(self.hp.int(name, low, high))

    def choice(self, name: str, options: list[Any]) -> Any:
        return self.hp.choice(name, options)


class OptunaAsk(Ask):
    def __init__(self, trial: Any) -> None:
        self.trial = trial

    def float(self, name: str, low: float, high: float, log: bool = False) -> float:
        return float(self.trial.suggest_float(name, low, high, log=log))

    def int(self, name: str, low: int, high: int) -> int:
        return int(self.trial.suggest_int(name, low, high))

    def choice(self, name: str, options: list[Any]) -> Any:
        return self.trial.suggest_categorical(name, options)


def dtlz2(ask: Ask, m: int) -> list[float]:
    x = [ask.float(f"x{i}", 0.0, 1.0) for i in range(7)]
    g = sum((xi - 0.5) ** 2 for xi in x[m - 1:])
    out = []
    for i in range(m):
        v = 1.0 + g
        for xj in x[: m - 1 - i]:
            v *= math.cos(xj * math.pi / 2)
        if i > 0:
            v *= math.sin(x[m - 1 - i] * math.pi / 2)
        out.append(v)
    return out


def _unit_log(v: float, low: float, high: float) -> float:
    return (math.log(v) - math.log(low)) / (math.log(high) - math.log(low))


def hw(ask: Ask, m: int) -> list[float]:
    depth = ask.int("depth", 2, 12)
    width = ask.choice("width", [16, 32, 64, 128, 256])
    kernel = ask.choice("kernel", [3, 5, 7])
    expand = ask.choice("expand", [1, 2, 4, 6])
    res = ask.choice("resolution", [96, 128, 160, 192, 224])
    se = ask.choice("se", [False, True])
    lr = ask.float("lr", 1e-4, 1e-1, log=True)
    params = depth * width * width * (expand * 2 + kernel * kernel / width * expand) * (
        1.25 if se else 1.0)
    flops = params * (res / 8) ** 2
    memory = width * expand * res * res * (1.1 if se else 1.0) + params
    capacity = math.log(params) + 1.5 * math.log(res) + (0.3 if se else 0.0) + 0.05 * kernel
    error = 0.05 + 0.9 / (1.0 + math.exp(capacity - 17.0)) + 0.08 * (math.log10(lr) + 2.5) ** 2
    latency = flops / 2e8 + depth * (0.05 + (0.04 if se else 0.0))
    values = [min(error, 1.0),
              _unit_log(latency, 0.1, 3e3),
              _unit_log(memory, 2e4, 3e8),
              _unit_log(params, 2e3, 2e9)]
    return values[:m]


PROBLEMS: dict[str, Callable[[Ask, int], list[float]]] = {"dtlz2": dtlz2, "hw": hw}


# -- the tools ---------------------------------------------------------------------------------
class Run:
    """One run's values and the time each trial's objective was called."""

    def __init__(self) -> None:
        self.values: list[list[float]] = []
        self.stamps: list[float] = []
        self.seconds = 0.0


def run_torchnas(spec: Any, problem: str, m: int, trials: int, seed: int) -> Run:
    run = Run()
    fn = PROBLEMS[problem]

    def objective(hp: tn.HP) -> dict[str, float]:
        run.stamps.append(time.perf_counter())
        values = fn(TorchnasAsk(hp), m)
        run.values.append(values)
        return {f"f{i}": v for i, v in enumerate(values)}

    study = tn.Study(objectives={f"f{i}": "min" for i in range(m)}, strategy=spec, seed=seed)
    start = time.perf_counter()
    study.optimize(objective, trials=trials)
    run.seconds = time.perf_counter() - start
    return run


def run_optuna(sampler: str, problem: str, m: int, trials: int, seed: int) -> Run:
    import optuna

    run = Run()
    fn = PROBLEMS[problem]
    samplers = {
        "tpe_mv": lambda: optuna.samplers.TPESampler(seed=seed, multivariate=True),
        "tpe": lambda: optuna.samplers.TPESampler(seed=seed),
        "nsga2": lambda: optuna.samplers.NSGAIISampler(seed=seed),
    }

    def objective(trial: Any) -> list[float]:
        run.stamps.append(time.perf_counter())
        values = fn(OptunaAsk(trial), m)
        run.values.append(values)
        return values

    study = optuna.create_study(directions=["minimize"] * m, sampler=samplers[sampler]())
    start = time.perf_counter()
    study.optimize(objective, n_trials=trials)
    run.seconds = time.perf_counter() - start
    return run


TOOLS: dict[str, Callable[[str, int, int, int], Run]] = {
    "torchnas auto": lambda p, m, n, s: run_torchnas("auto", p, m, n, s),
    "optuna TPE multivariate": lambda p, m, n, s: run_optuna("tpe_mv", p, m, n, s),
    "optuna TPE": lambda p, m, n, s: run_optuna("tpe", p, m, n, s),
    "optuna NSGAII": lambda p, m, n, s: run_optuna("nsga2", p, m, n, s),
}
PEER = "optuna TPE multivariate"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=300)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--objectives", default="2,3,4")
    parser.add_argument("--problems", default="dtlz2,hw")
    parser.add_argument("--tools", default=",".join(TOOLS))
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" /
                        "many_objectives.json")
    parser.add_argument("--quick", action="store_true", help="40 trials, 1 seed, dtlz2 only")
    args = parser.parse_args()
    if args.quick:
        args.trials, args.seeds, args.problems = 40, 1, "dtlz2"
    quiet()
    counts = [int(v) for v in args.objectives.split(",")]
    problems = args.problems.split(",")
    tools = [t.strip() for t in args.tools.split(",")]
    unknown = [t for t in tools if t not in TOOLS] + [p for p in problems if p not in PROBLEMS]
    if unknown:
        raise SystemExit(f"unknown {unknown}; tools {list(TOOLS)}, problems {list(PROBLEMS)}")
    print(machine_note())
    print("auto resolves to " + ", ".join(
        f"{tn.strategies.auto_name({f'f{i}': 'min' for i in range(m)})!r} ({m} objectives)"
        for m in counts) + f"; {args.trials} trials, {args.seeds} seeds")
    cells: dict[str, dict[str, list[float]]] = {}
    begin = time.perf_counter()
    for problem in problems:
        for m in counts:
            for seed in range(args.seeds):
                for tool in tools:
                    run = TOOLS[tool](problem, m, args.trials, seed)
                    cell = cells.setdefault(f"{problem}|{m}|{tool}",
                                            {"ms": [], "last50_ms": [], "hv": []})
                    cell["ms"].append(1e3 * run.seconds / args.trials)
                    tail = min(50, len(run.stamps) - 1)
                    cell["last50_ms"].append(
                        1e3 * (run.stamps[-1] - run.stamps[-1 - tail]) / tail if tail else math.nan)
                    cell["hv"].append(tn.hypervolume(run.values, [REFERENCE] * m))
                    print(f"  {problem} m={m} seed {seed} {tool}: {cell['ms'][-1]:.1f} ms/trial, "
                          f"hypervolume {cell['hv'][-1]:.4f} "
                          f"({time.perf_counter() - begin:.0f}s)", flush=True)
    rows = []
    for problem in problems:
        for m in counts:
            peer = cells[f"{problem}|{m}|{PEER}"] if PEER in tools else None
            for tool in tools:
                c = cells[f"{problem}|{m}|{tool}"]
                rows.append([f"{problem} m={m} {tool}", fmt_mean_se(c["ms"], 1),
                             fmt_mean_se(c["last50_ms"], 1),
                             ratio(mean_se(c["ms"])[0], mean_se(peer["ms"])[0]) if peer else "-",
                             fmt_mean_se(c["hv"], 4),
                             ratio(mean_se(c["hv"])[0], mean_se(peer["hv"])[0], 3)
                             if peer else "-"])
    print(f"\n{args.trials} trials; mean ± se over {args.seeds} seeds; reference {REFERENCE} "
          f"in every objective; ratios against {PEER}")
    print(table(["problem, objectives, tool", "ms/trial", "last 50", "time ratio",
                 "hypervolume", "HV ratio"], rows))
    print(f"\n{time.perf_counter() - begin:.0f}s in all; {machine_note()}")
    write_result(args, {"reference": REFERENCE, "peer": PEER, "machine": machine_note(),
                        "cells": cells})


if __name__ == "__main__":
    main()
