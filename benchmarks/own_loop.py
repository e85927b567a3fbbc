"""Your own loop against the built-in Trainer on MNIST-1D: the per-trial overhead of
``train_fn``, same run.

Two searches of the same space, seed and strategy (random: both draw the same architectures):
one trains with ``tn.Trainer``, the other with ``train_fn=own_fit``, a plain PyTorch loop that
does the Trainer's training by hand (Adam at the space's learning rate, batches of 128 shuffled
by a generator seeded from the trial's seed, a cosine schedule stepped per batch down to 0,
cross-entropy, validation in batches of 512 after every epoch, reported to the trial). The
training is then the same step for step, and the script checks it: every trial's validation
accuracy and loss must be equal in both searches. What differs is torchnas's path around the
training: the Trainer's fit, or ``train_fn`` with its trial view, seeding and result checks.

Each search runs ``--rounds`` times, inline, in memory, with ``--threads`` torch threads,
after a warm-up round of both that is not counted (the first search of a process compiles
oneDNN kernels for every new layer shape: whichever ran first would pay for it); the order
alternates from round to round (Trainer first, then train_fn first, ...). We report the mean
time per trial (a trial's recorded start to end: asking, building, measuring ``params``,
training, recording), the training time inside it (``train_seconds``: the Trainer's fit, or
the ``train_fn`` call), the rest (overhead = trial time - training time), and the ratios
train_fn / Trainer (of the means, and the median of the per-trial ratios, each trial paired
with the same trial of the other search in the same round).

    python benchmarks/own_loop.py [--trials 10] [--epochs 3] [--rounds 3] [--space chain_cnn]
        [--threads 1] [--out benchmarks/results/own_loop.json] [--quick]
"""

from __future__ import annotations

import argparse
import functools
import math
import statistics
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from _common import machine_note, quiet, table, write_result
from torch import nn

import torchnas as tn


def own_fit(model: nn.Module, data: tn.data.Data, hp: tn.HP, trial: Any, *,
            epochs: int) -> dict[str, float]:
    """The Trainer's recipe, written by hand (CPU, full precision, tensor datasets)."""
    seed = torch.initial_seed()  # torchnas seeded torch with the trial's training seed
    gen = torch.Generator().manual_seed(seed)
    x, y = data.train.tensors[:2]  # type: ignore[attr-defined]
    xv, yv = data.val.tensors[:2]  # type: ignore[attr-defined]
    batch = int(hp.get("batch_size", 128))
    weights = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(weights, lr=float(hp.get("lr", 1e-3)), weight_decay=0.0)
    n = len(y)
    total = epochs * math.ceil(n / batch)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda step: 0.5 * (1.0 + math.cos(math.pi * min(step, total) / total)))
    metrics: dict[str, float] = {}
    for epoch in range(1, epochs + 1):
        model.train()
        order = torch.randperm(n, generator=gen)
        loss_sum, seen = torch.zeros(()), 0
        for i in range(0, n, batch):
            idx = order[i : i + batch]
            if len(idx) == 1 < batch and n > 1:
                continue  # a trailing batch of one sample breaks BatchNorm
            loss = F.cross_entropy(model(x[idx]).float(), y[idx].long())
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            loss_sum += loss.detach() * len(idx)
            seen += len(idx)
        model.eval()
        val_loss = torch.zeros((), dtype=torch.float64)
        correct = torch.zeros((), dtype=torch.long)
        with torch.no_grad():
            for i in range(0, len(yv), 512):
                out = model(xv[i : i + 512]).float()
                val_loss += F.cross_entropy(out, yv[i : i + 512].long(), reduction="sum")
                correct += (out.argmax(1) == yv[i : i + 512]).sum()
        metrics = {"val_accuracy": int(correct) / len(yv), "val_loss": float(val_loss) / len(yv),
                   "train_loss": float(loss_sum) / max(seen, 1)}
        if trial is not None:
            trial.report(epoch, metrics)
    return metrics


def search(kind: str, data: tn.data.Data, args: argparse.Namespace) -> list[tn.FrozenTrial]:
    """One search, trained by the Trainer (``kind="trainer"``) or by :func:`own_fit`."""
    how: dict[str, Any] = (
        {"trainer": tn.Trainer(epochs=args.epochs, device="cpu")} if kind == "trainer"
        else {"train_fn": functools.partial(own_fit, epochs=args.epochs)})
    study = tn.ModelSearch(space=args.space, data=data, strategy="random", seed=0,
                           trials=args.trials, progress=False, **how).run()
    return list(study.trials)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--space", default="chain_cnn")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/own_loop.json"))
    parser.add_argument("--quick", action="store_true", help="2 trials, 1 epoch, 1 round")
    args = parser.parse_args()
    if args.quick:
        args.trials, args.epochs, args.rounds = 2, 1, 1
    quiet()
    torch.set_num_threads(args.threads)
    before = machine_note()
    print(before)
    data = tn.data.load("mnist1d")
    runs: dict[str, list[list[tn.FrozenTrial]]] = {"trainer": [], "train_fn": []}
    start = time.perf_counter()
    for kind in runs:  # warm-up: not counted
        search(kind, data, args)
    for r in range(args.rounds):
        for kind in (list(runs) if r % 2 == 0 else list(runs)[::-1]):
            runs[kind].append(search(kind, data, args))
    seconds = time.perf_counter() - start

    # the same training: same architectures, same metrics, trial by trial
    mismatches = 0
    for a, b in zip(runs["trainer"][0], runs["train_fn"][0], strict=True):
        assert a.arch == b.arch, (a.arch, b.arch)
        mismatches += any(a.metrics[k] != b.metrics[k] for k in ("val_accuracy", "val_loss"))

    summary: dict[str, dict[str, float]] = {}
    for kind, rounds in runs.items():
        trials = [t for r in rounds for t in r if t.state is tn.TrialState.COMPLETE]
        total = [t.duration or math.nan for t in trials]
        train = [t.metrics["train_seconds"] for t in trials]
        summary[kind] = {
            "trials": len(trials),
            "trial_s": statistics.fmean(total),
            "train_s": statistics.fmean(train),
            "overhead_ms": statistics.fmean(a - b for a, b in zip(total, train, strict=True))
            * 1e3,
        }
    ratios = {key: summary["train_fn"][key] / summary["trainer"][key]
              for key in ("trial_s", "train_s", "overhead_ms")}
    # the same trial in the same round, paired: less sensitive to load that drifts
    paired = [b.duration / a.duration
              for ra, rb in zip(runs["trainer"], runs["train_fn"], strict=True)
              for a, b in zip(ra, rb, strict=True) if a.duration and b.duration]
    ratios["trial_s_paired_median"] = statistics.median(paired)
    rows = [[kind, str(int(s["trials"])), f"{s['trial_s']:.3f}", f"{s['train_s']:.3f}",
             f"{s['overhead_ms']:.1f}"] for kind, s in summary.items()]
    rows.append(["train_fn / Trainer", "", f"{ratios['trial_s']:.3f}",
                 f"{ratios['train_s']:.3f}", f"{ratios['overhead_ms']:.3f}"])
    print(f"{args.space} on MNIST-1D, {args.trials} trials x {args.rounds} rounds, "
          f"{args.epochs} epochs, {args.threads} thread(s)")
    print(table(["trained by", "trials", "s / trial", "training s", "overhead ms"], rows))
    print(f"median of the paired per-trial ratios train_fn / Trainer: "
          f"{ratios['trial_s_paired_median']:.3f}")
    print(f"same training: {len(runs['trainer'][0]) - mismatches} of "
          f"{len(runs['trainer'][0])} trials with equal validation accuracy and loss")
    print(f"{seconds:.1f} s in all (the warm-up round included); {machine_note()}")
    write_result(args, {"summary": summary, "ratios": ratios,
                        "equal_metrics": len(runs["trainer"][0]) - mismatches,
                        "compared": len(runs["trainer"][0]), "seconds": seconds,
                        "machine_before": before, "machine_after": machine_note()})


if __name__ == "__main__":
    main()
