"""One-shot search (DARTS, PC-DARTS, GDAS, SPOS, ENAS) against multi-trial search on MNIST-1D
and digits, in the built-in ``cell`` space (NAS-Bench-201-like, one shared cell).

For each dataset and seed:

* **one standalone training** of a single candidate (every edge ``conv_3x3``) with the
  Trainer (``--epochs``): wall time and peak memory of a training step;
* **each one-shot method** through ``tn.ModelSearch(strategy=method)`` with the library's
  default settings (only ``epochs`` and ``batch_size`` are set here): the supernet search
  (``--search-epochs``) plus the training of the derived architecture as the study's trial; its
  wall time, the supernet's peak training-step memory (PC-DARTS: partial channels, the
  memory-lean option; ``darts`` is the same supernet without it), and the test accuracy of the
  derived architecture retrained on train+val (``--epochs``, the same Trainer);
* **multi-trial search** (``strategy="auto"``) through the same ``ModelSearch`` and Trainer,
  for ``--budget-factor`` (5) times the slowest one-shot method's time: for each one-shot
  method, the multi-trial best (by validation accuracy) among the trials finished within
  **five times** that method's time, retrained on train+val and tested the same way.

The goal the issue sets: a one-shot method within 1 point of the multi-trial best in at most a
fifth of its time. With ``--seeds N`` the whole comparison runs for seeds 0..N-1 (each seed
seeds the search, the data split of the supernet and the trainings) and a summary gives
mean ± standard error over the seeds; ``--json FILE`` appends one record per dataset and seed,
and ``--summarize FILE`` prints the summary of such records (runs of different seeds in
parallel processes). Peak memory is that of one training step (forward and backward) at
``--search-batch-size``, measured by ``torchnas.evaluation._cost.peak_memory`` (an allocation
tracker on CPU, exact at operator granularity). Timings depend on the machine's load: the load
average is printed before and after; torch runs ``--threads`` threads. Methods may carry
settings to try other values: ``--methods "darts(arch_lr=0.01),spos"``.

    python benchmarks/oneshot.py [--datasets mnist1d,digits] [--methods darts,pc_darts,...]
        [--seeds 3] [--epochs 10] [--search-epochs 10] [--budget-factor 5] [--channels 16]
        [--json FILE] [--summarize FILE] [--quick]
"""

from __future__ import annotations

import argparse
import json
import math
import random
import time
from collections import defaultdict
from typing import Any

import torch
from _common import (
    fmt_mean_se,
    machine_note,
    mean_se,
    quiet,
    ratio,
    split_items,
    strategy_spec,
    table,
)

import torchnas as tn
from torchnas.evaluation._cost import peak_memory
from torchnas.oneshot import training_memory

METHODS = ("darts", "pc_darts", "gdas", "spos", "enas")
CANDIDATE = {f"cell/edge_{j}_{i}": "conv_3x3" for j in range(1, 4) for i in range(j)}
GUARDS = {"es": "early_stop", "aux": "aux_skip"}


def method_spec(label: str, args: argparse.Namespace) -> dict[str, Any]:
    """The method's settings: the library's defaults, the search epochs and batch size, and
    what the label adds (``darts(arch_lr=0.01)``); ``darts+es`` / ``darts+aux`` add a
    collapse guard."""
    item, _, guard = label.partition("+")
    found = strategy_spec(item)
    spec: dict[str, Any] = {"name": found} if isinstance(found, str) else dict(found)
    if spec["name"] not in tn.oneshot.available():
        raise SystemExit(f"unknown one-shot method {spec['name']!r}; known: "
                         f"{', '.join(tn.oneshot.available())}")
    spec.setdefault("epochs", args.search_epochs)
    spec.setdefault("batch_size", args.search_batch_size)
    if guard:
        spec["collapse_guard"] = GUARDS[guard]
    return spec


def space_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    return {"channels": args.channels, "stages": 3}


def standalone(data: tn.data.Data, args: argparse.Namespace, seed: int) -> dict[str, float]:
    """One training of one candidate: wall time and training-step memory."""
    space = tn.spaces.create("cell", input_shape=data.input_shape, num_classes=data.num_classes,
                             **space_kwargs(args))
    torch.manual_seed(seed)
    model = tn.build(space, CANDIDATE)
    x = torch.stack([torch.as_tensor(data.train[i][0]) for i in range(args.search_batch_size)])
    memory = peak_memory(model, x, backward=True)  # at the supernets' batch size
    tn.Trainer(epochs=1, batch_size=args.batch_size).fit(tn.build(space, CANDIDATE), data)  # warm
    start, cpu = time.perf_counter(), time.process_time()
    metrics = tn.Trainer(epochs=args.epochs, batch_size=args.batch_size).fit(model, data,
                                                                              seed=seed)
    return {"seconds": time.perf_counter() - start, "cpu": time.process_time() - cpu,
            "memory": memory, "val_accuracy": metrics["val_accuracy"],
            "params": metrics["params"]}


def supernet_memory(spec: dict[str, Any], data: tn.data.Data, args: argparse.Namespace) -> int:
    """A training step's peak memory of the method's supernet, in the mode it trains in."""
    method, _ = tn.oneshot.resolve(dict(spec))
    space = tn.spaces.create("cell", input_shape=data.input_shape, num_classes=data.num_classes,
                             **space_kwargs(args))
    net = method.supernet(space, data)
    if method.name == "gdas":
        net.state.set_mode("gumbel")
    elif method.name in ("spos", "enas"):
        net.set_path(net.random_path(random.Random(0)))
    x = torch.stack([torch.as_tensor(data.train[i][0]) for i in range(args.search_batch_size)])
    return training_memory(net, x)


def search(data: tn.data.Data, strategy: Any, args: argparse.Namespace, seed: int,
           timeout: float | None = None) -> tn.ModelSearch:
    return tn.ModelSearch(space="cell", data=data, space_kwargs=space_kwargs(args),
                          trainer=tn.Trainer(epochs=args.epochs, batch_size=args.batch_size),
                          strategy=strategy, trials=None, timeout=timeout, storage=None,
                          seed=seed, progress=False)


def test_accuracy(s: tn.ModelSearch, trial: tn.FrozenTrial) -> float:
    s.best_model(retrain=True, trial=trial)
    return float(s.test_accuracy or math.nan)


def run_oneshot(label: str, data: tn.data.Data, args: argparse.Namespace,
                seed: int) -> dict[str, Any]:
    spec = method_spec(label, args)
    s = search(data, spec, args, seed)
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
            "memory": supernet_memory(spec, data, args)}


def best_by(study: tn.Study, start: float, seconds: float) -> tn.FrozenTrial | None:
    done = [t for t in study.trials if t.state is tn.TrialState.COMPLETE and t.end is not None
            and t.end - start <= seconds]
    return max(done, key=lambda t: t.metrics["val_accuracy"], default=None)


def bench(dataset: str, args: argparse.Namespace, seed: int) -> dict[str, Any]:
    """The whole comparison on one dataset with one seed; prints its table, returns a record."""
    data = tn.data.load(dataset)
    print(f"\n== {dataset}, seed {seed}: {data}; cell space, channels {args.channels}, 3 stages; "
          f"{args.epochs} training epochs, {args.search_epochs} search epochs", flush=True)
    single = standalone(data, args, seed)
    print(f"one standalone training of one candidate (all conv_3x3, {single['params']:,.0f} "
          f"params): {single['seconds']:.1f} s ({single['cpu']:.1f} s CPU), step memory "
          f"{single['memory'] / 2**20:.1f} MiB", flush=True)
    shots = {}
    for label in args.methods:
        shots[label] = out = run_oneshot(label, data, args, seed)
        print(f"  {label}: {out['seconds']:.1f} s (search {out['search_seconds']:.1f} s), test "
              f"{out['test']:.4f}, derived {out['arch']}", flush=True)
    wanted = args.budget_factor * max(o["seconds"] for o in shots.values())
    budget = min(args.max_budget, wanted)
    multi = search(data, "auto", args, seed, timeout=budget)
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
    for label, o in shots.items():
        five = tested(best_by(study, start, 5 * o["seconds"]))
        o["cut"] = 5 * o["seconds"] > budget  # the multi-trial run was shorter
        o["multi_5x"] = five
        rows.append([label, f"{o['search_seconds']:.0f}",
                     ratio(o["search_seconds"], single["seconds"]),
                     f"{o['memory'] / 2**20:.1f}", ratio(o["memory"], single["memory"]),
                     f"{o['seconds']:.0f}", ratio(o["cpu"], single["cpu"]),
                     f"{100 * o['test']:.1f}", f"{100 * five:.1f}" + ("*" if o["cut"] else ""),
                     f"{100 * (o['test'] - five):+.1f}",
                     f"{o['param_free']}/6" + (" collapsed" if o["collapsed"] else "")
                     + (f", stopped at {o['stopped_at']}" if o["stopped_at"] else "")])
    print(table(["method", "search s", "x single", "step MiB", "x single", "total s",
                 "CPU x single", "test %", "multi 5x t", "vs 5x", "param-free wins"], rows))
    print("search s: the supernet search; total s: search + training the derived architecture "
          "as the study's trial (what multi-trial time is compared with); CPU x single: total "
          "CPU time over the standalone training's (steadier than wall time on a shared "
          f"machine); step MiB: peak memory of one training step at batch "
          f"{args.search_batch_size}; test %: after retraining on train+val; multi 5x t: the "
          "multi-trial best within 5x the method's total time; * : the multi-trial run ended "
          "before that (capped by --max-budget)", flush=True)
    record = {"dataset": dataset, "seed": seed, "single": single, "oneshot": shots,
              "budget": budget, "wanted_budget": wanted, "multi_cpu": multi_cpu,
              "multi_complete": complete}
    if args.json:
        with open(args.json, "a", encoding="utf-8") as f:
            f.write(json.dumps(record, default=str) + "\n")
    return record


def summarize(records: list[dict[str, Any]]) -> None:
    """Mean ± standard error over the seeds, per dataset and method."""
    by: dict[str, dict[str, list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
    for r in records:
        for label, o in r["oneshot"].items():
            by[r["dataset"]][label].append({**o, "single": r["single"]})
    for dataset, methods in by.items():
        rows = []
        for label, runs in methods.items():
            diff = [100 * (o["test"] - o["multi_5x"]) for o in runs]
            met = sum(d >= -1.0 for d in diff)
            cut = sum(bool(o.get("cut")) for o in runs)
            rows.append([
                label, str(len(runs)),
                fmt_mean_se([o["search_seconds"] / o["single"]["seconds"] for o in runs]),
                fmt_mean_se([o["seconds"] / o["single"]["seconds"] for o in runs]),
                fmt_mean_se([o["memory"] / 2**20 for o in runs], 1),
                fmt_mean_se([100 * o["test"] for o in runs]),
                fmt_mean_se([100 * o["multi_5x"] for o in runs])
                + (f" ({cut} cut)" if cut else ""),
                fmt_mean_se(diff),
                ("yes" if mean_se(diff)[0] >= -1.0 else "no") + f" ({met}/{len(runs)} seeds)"])
        mine = [r for r in records if r["dataset"] == dataset]
        single = [r["single"] for r in mine]
        print(f"\n== summary, {dataset}: mean ± se over seeds {sorted(r['seed'] for r in mine)}; "
              f"standalone training {fmt_mean_se([s['seconds'] for s in single], 1)} s, "
              f"step memory {single[0]['memory'] / 2**20:.1f} MiB")
        print(table(["method", "seeds", "search x single", "total x single", "step MiB",
                     "test %", "multi-trial 5x %", "diff (points)", "goal met (mean >= -1)"],
                    rows))


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
    parser.add_argument("--max-budget", type=float, default=math.inf,
                        help="cap of the multi-trial time (a capped 5x column is starred)")
    parser.add_argument("--search-batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0, help="the first seed")
    parser.add_argument("--seeds", type=int, default=1, help="seeds seed, seed+1, ...")
    parser.add_argument("--json", help="append one record per dataset and seed to this file")
    parser.add_argument("--summarize", nargs="+", metavar="FILE",
                        help="only print the summary of the records in these JSON-lines files")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 2 epochs, 2 search epochs, 8 channels, factor 2")
    args = parser.parse_args()
    if args.summarize:
        records = []
        for name in args.summarize:
            with open(name, encoding="utf-8") as f:
                records += [json.loads(line) for line in f if line.strip()]
        summarize(records)
        return
    args.methods = split_items(args.methods)
    for label in args.methods:
        method_spec(label, args)  # unknown names fail before any work
    if args.quick:
        args.epochs, args.search_epochs, args.channels, args.budget_factor = 2, 2, 8, 2.0
    torch.set_num_threads(args.threads)
    quiet()
    print(f"before: {machine_note()}; torch threads {args.threads}", flush=True)
    records = [bench(dataset.strip(), args, seed)
               for seed in range(args.seed, args.seed + args.seeds)
               for dataset in args.datasets.split(",")]
    summarize(records)
    print(f"after: {machine_note()}")




if __name__ == "__main__":
    main()
