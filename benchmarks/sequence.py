"""The ``rnn`` space on MNIST-1D: test accuracy after a short search, against the MNIST-1D
paper's baselines (Greydanus 2020: GRU about 91 %, CNN about 94 % test accuracy).

``tn.ModelSearch`` searches the built-in ``rnn`` space (MNIST-1D's ``(1, 40)`` signals read as 40
steps of one feature) for ``--budget`` seconds of wall clock with ``--workers`` trial processes
of one torch thread each (a trial still training at the budget stops at the end of its epoch),
then retrains the best architecture on train+val (same epochs) and measures its test accuracy
once. The load average is printed before and after: on a shared machine it says how much of the
budget the trials really had.

    python benchmarks/sequence.py [--budget 180] [--epochs 10] [--batch-size 128]
        [--workers 2] [--seed 0] [--out benchmarks/results/sequence.json]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from _common import machine_note, quiet

import torchnas as tn

PAPER = {"GRU (MNIST-1D paper)": 0.91, "CNN (MNIST-1D paper)": 0.94}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--budget", type=float, default=180.0, help="search seconds (wall clock)")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=None, help="write the results as JSON")
    args = p.parse_args()
    quiet()
    before = machine_note()
    print(before)
    data = tn.data.load("mnist1d")
    search = tn.ModelSearch(
        space="rnn", data=data, space_kwargs={"max_layers": 2, "hidden": [32, 64, 128]},
        trainer=tn.Trainer(epochs=args.epochs, batch_size=args.batch_size, threads=1),
        objectives={"val_accuracy": "max"}, constraints={"params": ["<=", 200_000]},
        trials=None, timeout=args.budget, workers=args.workers, seed=args.seed,
        progress=False)
    start = time.perf_counter()
    study = search.run()
    search_s = time.perf_counter() - start
    states = [t.state for t in study.trials]
    done = states.count(tn.TrialState.COMPLETE)
    best = search.best_trial
    start = time.perf_counter()
    search.best_model(retrain=True, trial=best)
    retrain_s = time.perf_counter() - start
    test = float(search.test_accuracy or 0)
    after = machine_note()
    result = {"budget_s": args.budget, "epochs": args.epochs, "batch_size": args.batch_size,
              "workers": args.workers, "seed": args.seed, "search_s": search_s,
              "trials_complete": done,
              "trials_cut": states.count(tn.TrialState.PRUNED), "best_arch": best.arch,
              "best_val_accuracy": best.metrics["val_accuracy"], "retrain_s": retrain_s,
              "test_accuracy": test, "machine_before": before, "machine_after": after}
    print(f"rnn search: {done} trials complete in {search_s:.0f} s, best val accuracy "
          f"{best.metrics['val_accuracy']:.4f}, arch {best.arch}")
    print(f"retrained on train+val in {retrain_s:.0f} s")
    print(f"{'model':<24} test accuracy")
    print(f"{'rnn space (torchnas)':<24} {100 * test:.1f} %")
    for name, acc in PAPER.items():
        print(f"{name:<24} {100 * acc:.1f} %")
    print(after)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
