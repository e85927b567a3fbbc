"""One-shot search (DARTS, GDAS, ENAS) on the ``rnn_cell`` space (a searched recurrent cell,
MNIST-1D read as 40 steps of one feature) against multi-trial search given five times the time.

For each one-shot method: ``tn.ModelSearch(space="rnn_cell", strategy=method)`` with the
library's defaults but ``epochs`` and ``batch_size`` (the supernet search, then the derived
cell trained as the study's trial); its total wall time and the test accuracy of the derived
cell retrained on train+val. Then each multi-trial strategy (``--strategies``, default
``random,auto``) through the same ``ModelSearch`` and Trainer for ``--budget-factor`` (5) times
the slowest method's time (capped by ``--max-budget``); for each one-shot method, the
multi-trial best (by validation accuracy) among the trials finished within five times that
method's time, retrained on train+val and tested the same way. Timings depend on the machine's
load: the load average is printed before and after; torch runs ``--threads`` threads.

    python benchmarks/rnn_cell.py [--methods darts,gdas,enas] [--strategies random,auto]
        [--epochs 5] [--search-epochs 5] [--budget-factor 5] [--max-budget 600]
        [--fixed '{"lr": 0.01}'] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import math
import time
from typing import Any

import torch
from _common import machine_note, quiet, split_items, table

import torchnas as tn


def search(data: tn.data.Data, strategy: Any, args: argparse.Namespace,
           timeout: float | None = None) -> tn.ModelSearch:
    return tn.ModelSearch(space="rnn_cell", data=data,
                          trainer=tn.Trainer(epochs=args.epochs, batch_size=args.batch_size,
                                             threads=args.threads),
                          strategy=strategy, trials=None, timeout=timeout, storage=None,
                          seed=args.seed, progress=False)


def tested(s: tn.ModelSearch, trial: tn.FrozenTrial | None) -> float:
    if trial is None:
        return math.nan
    s.best_model(retrain=True, trial=trial)
    return float(s.test_accuracy or math.nan)


def best_by(study: tn.Study, start: float, seconds: float) -> tn.FrozenTrial | None:
    done = [t for t in study.trials if t.state is tn.TrialState.COMPLETE and t.end is not None
            and t.end - start <= seconds]
    return max(done, key=lambda t: t.metrics["val_accuracy"], default=None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--methods", default="darts,gdas,enas")
    parser.add_argument("--strategies", default="random,auto")
    parser.add_argument("--epochs", type=int, default=5, help="training epochs of a model")
    parser.add_argument("--search-epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--search-batch-size", type=int, default=64)
    parser.add_argument("--budget-factor", type=float, default=5.0)
    parser.add_argument("--max-budget", type=float, default=math.inf)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fixed", default="{}",
                        help='JSON of value decisions the supernets fix, e.g. \'{"lr": 0.01}\' '
                             "(else their defaults: hidden 64, readout attention, lr 2.2e-3)")
    parser.add_argument("--json", help="write the record to this file")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    quiet()
    before = machine_note()
    print(f"before: {before}; torch threads {args.threads}", flush=True)
    data = tn.data.load("mnist1d")
    print(f"{data}; rnn_cell (defaults: 4 nodes); {args.epochs} training epochs, "
          f"{args.search_epochs} search epochs, seed {args.seed}", flush=True)
    shots: dict[str, dict[str, Any]] = {}
    for name in split_items(args.methods):
        spec = {"name": name, "epochs": args.search_epochs, "batch_size": args.search_batch_size,
                "fixed": json.loads(args.fixed)}
        s = search(data, spec, args)
        start = time.perf_counter()
        study = s.run()
        seconds = time.perf_counter() - start
        [trial] = study.trials
        result = s.oneshot_result
        shots[name] = {"seconds": seconds, "search_seconds": result.seconds,
                       "arch": result.arch, "val_accuracy": trial.metrics.get("val_accuracy"),
                       "test": tested(s, trial), "collapsed": result.collapse.collapsed}
        print(f"  {name}: {seconds:.0f} s (search {result.seconds:.0f} s), val "
              f"{shots[name]['val_accuracy']:.4f}, test {shots[name]['test']:.4f}, derived "
              f"{result.arch}; {machine_note()}", flush=True)
    budget = min(args.max_budget, args.budget_factor * max(o["seconds"] for o in shots.values()))
    multi: dict[str, dict[str, Any]] = {}
    for strategy in split_items(args.strategies):
        s = search(data, strategy, args, timeout=budget)
        start = time.time()
        study = s.run()
        complete = sum(t.state is tn.TrialState.COMPLETE for t in study.trials)
        cache: dict[int, float] = {}
        found: dict[str, Any] = {"complete": complete, "per_method": {}}
        for name, o in shots.items():
            best = best_by(study, start, args.budget_factor * o["seconds"])
            if best is not None and best.number not in cache:
                cache[best.number] = tested(s, best)
            found["per_method"][name] = {
                "trial": None if best is None else best.number,
                "arch": None if best is None else best.arch,
                "val_accuracy": None if best is None else best.metrics["val_accuracy"],
                "test": math.nan if best is None else cache[best.number],
                "cut": args.budget_factor * o["seconds"] > budget}
        multi[strategy] = found
        print(f"  multi-trial {strategy}: {complete} complete trials in {budget:.0f} s; "
              f"{machine_note()}", flush=True)
    rows = []
    for name, o in shots.items():
        row = [name, f"{o['seconds']:.0f}", f"{100 * o['test']:.1f}"]
        for found in multi.values():
            m = found["per_method"][name]
            row += [f"{100 * m['test']:.1f}" + ("*" if m["cut"] else "")]
        rows.append(row)
    print(table(["method", "total s", "test %", *(f"{s} 5x %" for s in multi)], rows))
    print("total s: supernet search + training the derived cell; test %: retrained on "
          "train+val; <strategy> 5x %: the multi-trial best within 5x the method's total time "
          "(* : capped by --max-budget)")
    after = machine_note()
    print(f"after: {after}")
    if args.json:
        record = {"settings": vars(args), "before": before, "after": after, "oneshot": shots,
                  "budget": budget, "multi": multi}
        with open(args.json, "w", encoding="utf-8") as f:
            f.write(json.dumps(record, indent=1, default=str) + "\n")


if __name__ == "__main__":
    main()
