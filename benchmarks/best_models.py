"""``get_best_models(2)`` on ``digits``: the returned models are the trials' own trained models.

Keras Tuner's ``get_best_models(n)`` hands back the best trials' trained models; torchnas's
used to rebuild the architectures untrained. Now ``ModelSearch(keep_models=3)`` keeps the best
trials' weights and ``get_best_models(n)`` loads them. Per space of ``--spaces`` (the built-in
``mlp`` and ``chain_cnn``) and search seed, a search on ``tn.data.load("digits")`` (scikit-learn's
8x8 digits: 1,151 train, 287 validation, 359 test) with ``--trials`` (10) trials of ``--epochs``
(5) epochs, then for each of the 2 returned models (best first, against
``search.study.top_trials(2)``):

- the trial's number and its recorded ``val_accuracy`` / ``val_loss``;
- the returned model evaluated on ``data.val`` (``tn.evaluation.evaluate``): it must reproduce
  the trial's validation accuracy and loss (to 1e-6), the proof the weights are the trial's own;
- its test accuracy on ``data.test``;
- the same architecture rebuilt untrained (``tn.build``; the old behaviour) on ``data.test``.

    python benchmarks/best_models.py [--seeds 3] [--spaces mlp,chain_cnn] [--trials 10]
        [--epochs 5]
        [--out benchmarks/results/best_models.json] [--quick]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from _common import machine_note, quiet, table, write_result

import torchnas as tn

TOLERANCE = 1e-6


def run_seed(space_name: str, seed: int, data: tn.data.Data, args: argparse.Namespace,
             ) -> list[dict[str, Any]]:
    """One search; a row per model ``get_best_models(2)`` returns."""
    search = tn.ModelSearch(space=space_name, data=data,
                            trainer=tn.Trainer(epochs=args.epochs, threads=1),
                            trials=args.trials, seed=seed, keep_models=3, progress=False,
                            name=f"best-models-{space_name}-{seed}")
    start = time.perf_counter()
    search.run()
    search_s = time.perf_counter() - start
    models = search.get_best_models(2)
    trials = search.study.top_trials(2)
    assert search.best_trial.number == trials[0].number
    space = tn.spaces.create(space_name, input_shape=data.input_shape,
                             num_classes=data.num_classes)
    assert data.test is not None
    rows = []
    for rank, (model, trial) in enumerate(zip(models, trials, strict=True), start=1):
        val = tn.evaluation.evaluate(model, data.val)
        test = tn.evaluation.evaluate(model, data.test)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            untrained = tn.build(space, trial.arch).eval()
        rows.append({
            "space": space_name, "seed": seed, "rank": rank, "trial": trial.number,
            "arch": dict(trial.arch), "search_s": search_s,
            "trial_val_accuracy": trial.metrics["val_accuracy"],
            "trial_val_loss": trial.metrics["val_loss"],
            "model_val_accuracy": val["accuracy"], "model_val_loss": val["loss"],
            "val_accuracy_diff": abs(val["accuracy"] - trial.metrics["val_accuracy"]),
            "val_loss_diff": abs(val["loss"] - trial.metrics["val_loss"]),
            "test_accuracy": test["accuracy"],
            "untrained_test_accuracy": tn.evaluation.evaluate(untrained, data.test)["accuracy"],
        })
    return rows


def report(rows: list[dict[str, Any]]) -> str:
    """The per-model table and the summary lines."""
    body = [[r["space"], str(r["seed"]), str(r["rank"]), str(r["trial"]),
             f"{r['trial_val_accuracy']:.4f}", f"{r['model_val_accuracy']:.4f}",
             f"{r['val_accuracy_diff']:.1e}", f"{r['val_loss_diff']:.1e}",
             f"{r['test_accuracy']:.4f}",
             f"{r['untrained_test_accuracy']:.4f}"] for r in rows]
    lines = [table(["space", "seed", "rank", "trial", "trial val acc", "model val acc",
                    "|val acc diff|", "|val loss diff|", "test acc", "untrained test acc"], body)]
    same = all(r["val_accuracy_diff"] <= TOLERANCE and r["val_loss_diff"] <= TOLERANCE
               for r in rows)
    mean = statistics.fmean
    lines.append(
        f"\nreturned models reproduce their trials' validation accuracy and loss to "
        f"{TOLERANCE:g}: {'yes' if same else 'NO'} ({len(rows)} models; max diff accuracy "
        f"{max(r['val_accuracy_diff'] for r in rows):.1e}, loss "
        f"{max(r['val_loss_diff'] for r in rows):.1e})")
    for space in dict.fromkeys(r["space"] for r in rows):
        some = [r for r in rows if r["space"] == space]
        lines.append(
            f"{space}: mean test accuracy of the returned models "
            f"{mean(r['test_accuracy'] for r in some):.4f}, of untrained rebuilds "
            f"{mean(r['untrained_test_accuracy'] for r in some):.4f}; mean trial val accuracy "
            f"{mean(r['trial_val_accuracy'] for r in some):.4f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=3, help="search seeds 0..N-1")
    parser.add_argument("--spaces", default="mlp,chain_cnn", help="built-in spaces, a comma list")
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--out", type=Path, default=None,
                        help="JSON results (default benchmarks/results/best_models.json; "
                             "--quick: a temporary file)")
    parser.add_argument("--quick", action="store_true", help="mlp, 1 seed, 3 trials, 2 epochs")
    args = parser.parse_args(argv)
    if args.quick:
        args.spaces, args.seeds, args.trials, args.epochs = "mlp", 1, 3, 2
    spaces = [s.strip() for s in args.spaces.split(",") if s.strip()]
    unknown = [s for s in spaces if s not in tn.spaces.list()]
    if unknown:
        raise SystemExit(f"unknown spaces {unknown}; built-in: {tn.spaces.list()}")
    if args.out is None:
        args.out = (Path(tempfile.gettempdir()) / "torchnas-best-models-quick.json"
                    if args.quick else Path(__file__).parent / "results" / "best_models.json")
    quiet()
    torch.set_num_threads(1)
    data = tn.data.load("digits")
    print(f"digits ({len(data.train)} train, {len(data.val)} val, {len(data.test or [])} test)"
          f", spaces {', '.join(spaces)}, {args.trials} trials of {args.epochs} epochs; "
          f"{machine_note()}", flush=True)
    start = time.perf_counter()
    rows = []
    for space, seed in ((sp, s) for sp in spaces for s in range(args.seeds)):
        rows += run_seed(space, seed, data, args)
        print(f"{space} seed {seed} done ({time.perf_counter() - start:.0f}s)", flush=True)
    total = time.perf_counter() - start
    print("\n" + report(rows))
    print(f"\n{total:.0f}s in all; {machine_note()}")
    return write_result(args, {"seconds": total, "models": rows})


if __name__ == "__main__":
    main()
