"""Parallel execution: trials per minute with 2 workers against 1, and the Ray executor's per-trial
overhead against the process executor's; optionally the crash torture's figures.

1. Throughput: the same search (the ``mlp`` space on scikit-learn's digits, ``--epochs`` epochs
   a trial, random search, same seed) run inline (1 worker, 1 torch thread) and with the process
   executor at 1 and 2 workers (1 thread each). Trials per minute are counted from the first to
   the last trial's end (steady state: the workers' start-up is reported apart) and over the
   whole call. The goal: 2 workers >= 1.7x one, on 2 cores.
2. Overhead: an objective that only decides (five labels and one report, no training), run
   ``--overhead-trials`` times with 2 workers by the process executor and by the Ray executor (a
   local Ray, started before timing; worker start-up excluded by a warm-up call). Reported: ms
   per trial and the Ray / process ratio.
3. ``--torture K``: runs benchmarks/torture.py with K kills and prints its figures.

    python benchmarks/parallel.py [--trials 24] [--epochs 15] [--repeats 3]
                                  [--overhead-trials 300] [--no-ray] [--torture 20]
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from _common import machine_note, ratio, table

import torchnas as tn


def decide_only(hp: tn.HP) -> float:
    """Five decisions and a report: what a trial costs the framework, without training."""
    x = hp.float("x", -5.0, 5.0)
    n = hp.int("n", 1, 64)
    act = hp.choice("act", ["relu", "gelu", "tanh"])
    lr = hp.float("lr", 1e-4, 1e-1, log=True)
    deep = hp.bool("deep")
    assert hp.trial is not None
    hp.trial.report(1, {"value": x * x})
    return (x - 1) ** 2 + abs(n - 16) + lr + (act == "gelu") + deep


def spin(hp: tn.HP) -> dict[str, float]:
    """A CPU-bound objective without memory traffic: a pure Python loop (about 0.2 s)."""
    n = hp.int("n", 1, 10)
    cpu = time.process_time()
    total = 0
    for i in range(1_500_000):
        total += i % (n + 1)
    return {"value": float(total % 7), "cpu": time.process_time() - cpu}


def _spin_for(seconds: float, out: Any) -> None:
    """Counts loop iterations for ``seconds`` (in its own process)."""
    end, count = time.perf_counter() + seconds, 0
    while time.perf_counter() < end:
        for _ in range(10_000):
            count += 1
    out.put(count)


def machine_ceiling(seconds: float = 4.0) -> float:
    """What 2 busy processes get done against 1 here, without torchnas: the best speedup this
    machine allows right now (other tenants' load included)."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    rates = []
    for n in (1, 2, 1, 2):
        out = ctx.Queue()
        procs = [ctx.Process(target=_spin_for, args=(seconds, out)) for _ in range(n)]
        for p in procs:
            p.start()
        rates.append((n, sum(out.get() for _ in procs)))
        for p in procs:
            p.join()
    one = statistics.fmean(r for n, r in rates if n == 1)
    two = statistics.fmean(r for n, r in rates if n == 2)
    return two / one


def spin_throughput(workers: int, executor: str, trials: int) -> float:
    study = tn.Study(objectives={"value": "min"}, strategy="random", seed=0)
    ends: list[float] = []
    study.optimize(spin, trials=trials, workers=workers, executor=executor,
                   callbacks=[lambda s, t: ends.append(time.perf_counter())])
    return (len(ends) - 1) / (ends[-1] - ends[0]) * 60


class Timed:
    """The search's objective, also reporting when it ran and the CPU it used."""

    def __init__(self, search: tn.ModelSearch) -> None:
        self.search = search

    def __call__(self, hp: tn.HP) -> dict[str, float]:
        start, cpu = time.time(), time.process_time()
        out = dict(self.search.objective(hp))
        return {**out, "t_start": start, "t_end": time.time(),
                "cpu": time.process_time() - cpu}


def throughput(label: str, trials: int, epochs: int, workers: int, executor: str) -> dict[str, Any]:
    ends: list[float] = []
    search = tn.ModelSearch(space="mlp", data="digits", trainer=tn.Trainer(epochs=epochs),
                            trials=trials, strategy="random", seed=0, progress=False,
                            workers=workers, executor={"name": executor, "threads_per_worker": 1}
                            if executor == "process" else executor)
    search.check()
    study = search.make_study()
    start = time.perf_counter()
    driver_cpu = time.process_time()
    study.optimize(Timed(search), trials=trials, workers=workers, executor=search.executor,
                   callbacks=[lambda s, t: ends.append(time.perf_counter())])
    total = time.perf_counter() - start
    driver_cpu = time.process_time() - driver_cpu
    steady = ends[-1] - ends[0]
    done = [t.metrics for t in study.trials]
    span = max(m["t_end"] for m in done) - min(m["t_start"] for m in done)
    busy = sum(m["t_end"] - m["t_start"] for m in done)
    return {"label": label, "per_min": (len(ends) - 1) / steady * 60,
            "per_min_total": len(ends) / total * 60, "first": ends[0] - start,
            "utilization": busy / (workers * span), "cpu": sum(m["cpu"] for m in done) / trials,
            "driver_ms": driver_cpu / trials * 1000}


def overhead(executor: Any, trials: int) -> tuple[float, float]:
    """Seconds per trial of ``decide_only`` with 2 workers, from the first trial's end to the
    last's (steady state), and seconds until the first trial ended (workers' start)."""
    study = tn.Study(objectives={"value": "min"}, strategy="random", seed=0)
    study.optimize(decide_only, trials=10, executor=executor)  # imports and caches warm
    ends: list[float] = []
    start = time.perf_counter()
    study.optimize(decide_only, trials=trials, executor=executor,
                   callbacks=[lambda s, t: ends.append(time.perf_counter())])
    return (ends[-1] - ends[0]) / (len(ends) - 1), ends[0] - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=24)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--overhead-trials", type=int, default=300)
    parser.add_argument("--no-ray", action="store_true")
    parser.add_argument("--torture", type=int, default=0, metavar="KILLS")
    args = parser.parse_args()
    logging.getLogger("torchnas").setLevel(logging.ERROR)
    torch.set_num_threads(1)
    print(machine_note())

    configs = [("inline, 1 worker", 1, "inline"), ("process, 1 worker", 1, "process"),
               ("process, 2 workers", 2, "process")]
    results: dict[str, list[dict[str, Any]]] = {c[0]: [] for c in configs}
    for _ in range(args.repeats):  # interleaved, so that a change of load hits every config
        for label, workers, executor in configs:
            results[label].append(throughput(label, args.trials, args.epochs, workers, executor))
    runs = [{k: (statistics.median(r[k] for r in results[c[0]]) if k != "label" else c[0])
             for k in results[c[0]][0]} for c in configs]
    base = runs[0]["per_min"]
    print(f"\nThroughput: mlp on digits, {args.epochs} epochs a trial, {args.trials} trials, "
          f"1 torch thread per worker; median of {args.repeats} interleaved runs")
    print(table(["executor", "trials/min (steady)", "vs inline", "trials/min (whole call)",
                 "first done (s)", "workers busy", "CPU s/trial", "driver CPU ms/trial"],
                [[r["label"], f"{r['per_min']:.1f}", ratio(r["per_min"], base),
                  f"{r['per_min_total']:.1f}", f"{r['first']:.1f}", f"{r['utilization']:.0%}",
                  f"{r['cpu']:.2f}", f"{r['driver_ms']:.1f}"] for r in runs]))
    print(f"2 workers / 1 process worker: {ratio(runs[2]['per_min'], runs[1]['per_min'])}; "
          "'workers busy': time in objectives / (workers x span of the trials); "
          "'CPU s/trial': the objective's own CPU time (it grows when cores are contended)")

    spins: dict[str, list[float]] = {"inline": [], "process": []}
    ceilings = []
    for _ in range(args.repeats):
        ceilings.append(machine_ceiling())
        spins["inline"].append(spin_throughput(1, "inline", args.trials))
        spins["process"].append(spin_throughput(2, "process", args.trials))
    one, two = (statistics.median(spins[k]) for k in ("inline", "process"))
    ceiling = statistics.median(ceilings)
    print(f"\nA pure-Python CPU-bound objective (no memory traffic), {args.trials} trials: "
          f"inline {one:.0f} trials/min, 2 process workers {two:.0f} trials/min: "
          f"{ratio(two, one)}x. This machine's own ceiling now (2 busy processes / 1, without "
          f"torchnas): {ceiling:.2f}x, so the executor reaches {two / one / ceiling:.0%} of it.")

    rows = []
    process, process_start = overhead(tn.execution.ProcessExecutor(workers=2),
                                      args.overhead_trials)
    rows.append(["process, 2 workers", f"{process * 1000:.2f}", "1.00",
                 f"{process_start:.2f}"])
    if not args.no_ray and importlib.util.find_spec("ray") is not None:
        import ray

        from torchnas.execution._ray import start_local_ray

        start_local_ray(num_cpus=os.cpu_count() or 2, log_to_driver=False, runtime_env={
            "env_vars": {"PYTHONPATH": str(Path(__file__).parent)}})
        try:
            on_ray, ray_start = overhead(tn.execution.RayExecutor(workers=2),
                                         args.overhead_trials)
        finally:
            ray.shutdown()
        rows.append(["ray, 2 workers", f"{on_ray * 1000:.2f}", ratio(on_ray, process),
                     f"{ray_start:.2f}"])
    print(f"\nPer-trial overhead: {args.overhead_trials} trials of 5 decisions and a report, "
          "no training")
    print(table(["executor", "ms per trial (steady)", "vs process", "first trial done (s)"],
                rows))

    if args.torture:
        spec = importlib.util.spec_from_file_location("torture", Path(__file__).with_name(
            "torture.py"))
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        with tempfile.TemporaryDirectory() as tmp:
            figures = module.torture(Path(tmp), kills=args.torture, trials=4 * args.torture)
        print("\nCrash torture (benchmarks/torture.py):")
        for k, v in figures.items():
            print(f"  {k}: {v}")


if __name__ == "__main__":
    main()
