"""One-shot search (DARTS, PC-DARTS, GDAS, SPOS, ENAS) against multi-trial search on MNIST-1D
and digits, in the built-in ``cell`` space (NAS-Bench-201-like, one shared cell).

For each dataset:

* **one standalone training** of a single candidate (every edge ``conv_3x3``) with the
  Trainer (``--epochs``): wall time and peak memory of a training step;
* **each one-shot method** through ``tn.ModelSearch(strategy=method)``: the supernet search
  (``--search-epochs``) plus the training of the derived architecture as the study's trial;
  its wall time, the supernet's peak training-step memory (PC-DARTS: partial channels, the
  memory-lean option), and the test accuracy of the derived architecture retrained on
  train+val (``--epochs``);
* **multi-trial search** (``strategy="auto"``) through the same ``ModelSearch`` and Trainer,
  for ``--budget-factor`` times the slowest one-shot method's time: for each one-shot method,
  the multi-trial best (by validation accuracy) found within the **same** time and within
  **five times** that time, each retrained on train+val and tested the same way.

The goal the issue sets: a one-shot method within 1 point of the multi-trial best in at most a
fifth of its time (the ``5x`` columns). Peak memory is that of one training step (forward and
backward) at ``--batch-size``, measured by ``torchnas.evaluation._cost.peak_memory`` (an
allocation tracker on CPU, exact at operator granularity). Timings depend on the machine's load:
the load average is printed before and after; torch runs ``--threads`` threads.

    python benchmarks/oneshot.py [--datasets mnist1d,digits] [--methods darts,pc_darts,...]
        [--epochs 10] [--search-epochs 10] [--budget-factor 5] [--channels 16] [--quick]
"""

from __future__ import annotations

import argparse
import json
import math
import time
from typing import Any

import torch
from _common import machine_note, quiet, ratio, table

import torchnas as tn
from torchnas.evaluation._cost import peak_memory
from torchnas.oneshot import training_memory

METHODS = ("darts", "pc_darts", "gdas", "spos", "enas")
CANDIDATE = {f"cell/edge_{j}_{i}": "conv_3x3" for j in range(1, 4) for i in range(j)}


GUARDS = {"es": "early_stop", "aux": "aux_skip"}


def method_spec(label: str, args: argparse.Namespace) -> dict[str, Any]:
    """The method's settings; ``darts+es`` / ``darts+aux`` add a collapse guard."""
    name, _, guard = label.partition("+")
    spec: dict[str, Any] = {"name": name, "epochs": args.search_epochs,
                            "batch_size": args.search_batch_size}
    if guard:
        spec["collapse_guard"] = GUARDS[guard]
    if name in ("darts", "pc_darts", "gdas"):
        spec["warmup_epochs"] = max(1, args.search_epochs // 5)
    if name == "spos":
        spec.update(population=12, generations=4, parents=4)
    return spec


def space_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    return {"channels": args.channels, "stages": 3}


def standalone(data: tn.data.Data, args: argparse.Namespace) -> dict[str, float]:
    """One training of one candidate: wall time and training-step memory."""
    space = tn.spaces.create("cell", input_shape=data.input_shape, num_classes=data.num_classes,
                             **space_kwargs(args))
    torch.manual_seed(0)
    model = tn.build(space, CANDIDATE)
    x = torch.stack([torch.as_tensor(data.train[i][0]) for i in range(args.search_batch_size)])
    memory = peak_memory(model, x, backward=True)  # at the supernets' batch size
    tn.Trainer(epochs=1, batch_size=args.batch_size).fit(tn.build(space, CANDIDATE), data)  # warm
    start, cpu = time.perf_counter(), time.process_time()
    metrics = tn.Trainer(epochs=args.epochs, batch_size=args.batch_size).fit(model, data)
    return {"seconds": time.perf_counter() - start, "cpu": time.process_time() - cpu,
            "memory": memory, "val_accuracy": metrics["val_accuracy"],
            "params": metrics["params"]}


def supernet_memory(name: str, data: tn.data.Data, args: argparse.Namespace) -> int:
    """A training step's peak memory of the method's supernet, in the mode it trains in."""
    method, _ = tn.oneshot.resolve(method_spec(name, args))
    space = tn.spaces.create("cell", input_shape=data.input_shape, num_classes=data.num_classes,
                             **space_kwargs(args))
    net = method.supernet(space, data)
    if name == "gdas":
        net.state.set_mode("gumbel")
    elif name in ("spos", "enas"):
        import random

        net.set_path(net.random_path(random.Random(0)))
    x = torch.stack([torch.as_tensor(data.train[i][0]) for i in range(args.search_batch_size)])
    return training_memory(net, x)


def search(data: tn.data.Data, strategy: Any, args: argparse.Namespace,
           timeout: float | None = None) -> tn.ModelSearch:
    return tn.ModelSearch(space="cell", data=data, space_kwargs=space_kwargs(args),
                          trainer=tn.Trainer(epochs=args.epochs, batch_size=args.batch_size),
                          strategy=strategy, trials=None, timeout=timeout, storage=None,
                          seed=args.seed, progress=False)


def test_accuracy(s: tn.ModelSearch, trial: tn.FrozenTrial) -> float:
    s.best_model(retrain=True, trial=trial)
    return float(s.test_accuracy or math.nan)


def run_oneshot(name: str, data: tn.data.Data, args: argparse.Namespace) -> dict[str, Any]:
    s = search(data, method_spec(name, args), args)
    start, cpu = time.perf_counter(), time.process_time()
    study = s.run()
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    [trial] = study.trials
    result = s.oneshot_result
    return {"seconds": seconds, "cpu": cpu, "search_seconds": result.seconds, "arch": result.arch,
            "val_accuracy": trial.metrics.get("val_accuracy", math.nan),
            "test": test_accuracy(s, trial), "collapsed": result.collapse.collapsed,
            "stopped_at": result.collapse.stopped_at,
            "param_free": len(result.collapse.param_free),
            "memory": supernet_memory(name, data, args)}


def best_by(study: tn.Study, start: float, seconds: float) -> tn.FrozenTrial | None:
    done = [t for t in study.trials if t.state is tn.TrialState.COMPLETE and t.end is not None
            and t.end - start <= seconds]
    return max(done, key=lambda t: t.metrics["val_accuracy"], default=None)


def bench(dataset: str, args: argparse.Namespace) -> None:
    data = tn.data.load(dataset)
    print(f"\n== {dataset}: {data}; cell space, channels {args.channels}, 3 stages; "
          f"{args.epochs} training epochs, {args.search_epochs} search epochs")
    single = standalone(data, args)
    print(f"one standalone training of one candidate (all conv_3x3, {single['params']:,.0f} "
          f"params): {single['seconds']:.1f} s ({single['cpu']:.1f} s CPU), step memory "
          f"{single['memory'] / 2**20:.1f} MiB", flush=True)
    shots = {}
    for name in args.methods:
        shots[name] = out = run_oneshot(name, data, args)
        print(f"  {name}: {out['seconds']:.1f} s (search {out['search_seconds']:.1f} s), test "
              f"{out['test']:.4f}, derived {out['arch']}", flush=True)
    budget = min(args.max_budget, args.budget_factor * max(o["seconds"] for o in shots.values()))
    multi = search(data, "auto", args, timeout=budget)
    start, cpu = time.time(), time.process_time()
    study = multi.run()
    multi_cpu = time.process_time() - cpu
    complete = sum(t.state is tn.TrialState.COMPLETE for t in study.trials)
    print(f"  multi-trial ({study.config['strategy']['name']}): {complete} complete trials in "
          f"{budget:.0f} s ({multi_cpu:.0f} s CPU)", flush=True)
    tests: dict[int, float] = {}

    def tested(t: tn.FrozenTrial | None) -> float:
        if t is None:
            return math.nan
        if t.number not in tests:
            tests[t.number] = test_accuracy(multi, t)
        return tests[t.number]

    rows = []
    for name, o in shots.items():
        same = tested(best_by(study, start, o["seconds"]))
        five = tested(best_by(study, start, 5 * o["seconds"]))
        cut = "*" if 5 * o["seconds"] > budget else ""  # the multi-trial run was shorter
        rows.append([name, f"{o['search_seconds']:.0f}",
                     ratio(o["search_seconds"], single["seconds"]),
                     f"{o['memory'] / 2**20:.1f}", ratio(o["memory"], single["memory"]),
                     f"{o['seconds']:.0f}", ratio(o["cpu"], single["cpu"]),
                     f"{100 * o['test']:.1f}", f"{100 * same:.1f}",
                     f"{100 * five:.1f}{cut}", f"{100 * (o['test'] - five):+.1f}",
                     f"{o['param_free']}/6" + (" collapsed" if o["collapsed"] else "")
                     + (f", stopped at {o['stopped_at']}" if o["stopped_at"] else "")])
        o.update(multi_same=same, multi_5x=five)
    best = tested(best_by(study, start, budget))
    rows.append(["multi-trial (all)", "-", "-", f"{single['memory'] / 2**20:.1f}", "1.00",
                 f"{budget:.0f}", ratio(multi_cpu, single["cpu"]), f"{100 * best:.1f}", "-",
                 "-", "-", "-"])
    print(table(["method", "search s", "x single", "step MiB", "x single", "total s",
                 "CPU x single", "test %", "multi same t", "multi 5x t", "vs 5x",
                 "param-free wins"], rows))
    print("search s: the supernet search; total s: search + training the derived architecture "
          "as the study's trial (what multi-trial time is compared with); CPU x single: total "
          "CPU time over the standalone training's (steadier than wall time on a shared "
          "machine); step MiB: peak memory "
          f"of one training step at batch {args.search_batch_size}; test %: after retraining on "
          "train+val; * : the multi-trial run ended before 5x the method's time")
    if args.json:
        record = {"dataset": dataset, "single": single, "oneshot": shots, "budget": budget,
                  "multi_cpu": multi_cpu,
                  "multi_complete": complete, "multi_best_test": best}
        with open(args.json, "a", encoding="utf-8") as f:
            f.write(json.dumps(record, default=str) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", default="mnist1d,digits")
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--epochs", type=int, default=10, help="training epochs of a model")
    parser.add_argument("--search-epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--channels", type=int, default=16)
    parser.add_argument("--budget-factor", type=float, default=5.0,
                        help="multi-trial time = this x the slowest one-shot method's time")
    parser.add_argument("--max-budget", type=float, default=900.0,
                        help="cap of the multi-trial time (a capped 5x column is starred)")
    parser.add_argument("--search-batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", help="append the figures to this JSON-lines file")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 2 epochs, 2 search epochs, 8 channels, factor 2")
    args = parser.parse_args()
    args.methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    if args.quick:
        args.epochs, args.search_epochs, args.channels, args.budget_factor = 2, 2, 8, 2.0
    torch.set_num_threads(args.threads)
    quiet()
    print(f"before: {machine_note()}; torch threads {args.threads}")
    for dataset in args.datasets.split(","):
        bench(dataset.strip(), args)
    print(f"after: {machine_note()}")


if __name__ == "__main__":
    main()
