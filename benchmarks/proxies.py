"""Zero-cost proxies on ``chain_cnn`` / MNIST-1D: how well they rank architectures, and what
their warm start saves a search.

1. Rank correlation. ``--archs`` distinct architectures drawn at random (seeded) are each
   scored by every proxy on one seeded batch of training data (before training), then trained
   for ``--epochs`` (seeded) and validated. The table gives Spearman's rho (scipy) of each score
   with the validation accuracy, of two votes (the mean rank over proxies: all five, and the trio
   synflow + jacob_cov + snip of Abdelfattah et al. 2021), and of two cost baselines (``params``,
   ``flops``); plus the mean accuracy of each score's top 10 and its time per architecture.
   Published on NAS-Bench-201 (CIFAR-10): synflow 0.74, the vote 0.82.
2. Search time to ``--target`` validation accuracy: random search of the same space, same
   seeds, without and with ``warm_start={"proxy": p, "samples": --samples, "top": --top}`` for
   each proxy ``p`` of ``--proxy``; seconds (the warm start's scoring included) and trials
   until a trial first reaches the target.

    python benchmarks/proxies.py [--archs 100] [--epochs 8] [--seeds 0,1,2,3,4] [--quick]

Per-architecture results are kept in ``--cache`` (JSON lines), so a second run only reports.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from _common import distinct_archs
from scipy.stats import rankdata, spearmanr

import torchnas as tn
from torchnas.evaluation._proxies import PROXIES

TRIO = ("synflow", "jacob_cov", "snip")


def proxy_batch(data: tn.data.Data, size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``size`` training samples drawn with ``seed`` (what every proxy scores on)."""
    gen = torch.Generator().manual_seed(seed)
    rows = [data.train[int(i)] for i in torch.randperm(len(data.train), generator=gen)[:size]]  # type: ignore[arg-type]
    return torch.stack([r[0] for r in rows]), torch.stack([r[1] for r in rows])


def measure(space: Any, arch: dict[str, Any], i: int, data: tn.data.Data,
            batch: tuple[torch.Tensor, torch.Tensor], epochs: int) -> dict[str, Any]:
    torch.manual_seed(i)
    model = tn.build(space, arch)
    row: dict[str, Any] = {"arch": arch, "params": tn.metrics.params(model),
                           "flops": tn.metrics.flops(model, batch[0][:1])}
    for name in PROXIES:
        start = time.perf_counter()
        row[name] = tn.metrics.proxy(name, model, *batch, seed=0)
        row[f"{name}_s"] = time.perf_counter() - start
    fit = tn.Trainer(epochs=epochs, seed=i, device="cpu").fit(model, data, params=arch)
    row["val_accuracy"], row["train_s"] = fit["val_accuracy"], fit["train_seconds"]
    return row


def correlations(rows: list[dict[str, Any]]) -> None:
    acc = np.array([r["val_accuracy"] for r in rows])
    ranks = {n: rankdata([r[n] for r in rows]) for n in [*PROXIES, "params", "flops"]}
    scores = {n: np.array([r[n] for r in rows], dtype=float) for n in ranks}
    scores["vote (all 5)"] = np.mean([ranks[n] for n in PROXIES], axis=0)
    scores["vote (synflow, jacob_cov, snip)"] = np.mean([ranks[n] for n in TRIO], axis=0)
    top = max(1, len(rows) // 10)
    print(f"\nSpearman rho with val accuracy after training, {len(rows)} architectures "
          f"(val accuracy: mean {acc.mean():.4f}, best {acc.max():.4f}; "
          f"mean of the true top {top}: {np.sort(acc)[-top:].mean():.4f})")
    print(f"{'score':34s} {'rho':>7s} {'p':>9s} {f'acc@top{top}':>10s} {'ms/arch':>8s}")
    for name, s in scores.items():
        rho, p = spearmanr(s, acc)
        best = acc[np.argsort(-s, kind="stable")[:top]].mean()
        ms = (statistics.mean(r[f"{name}_s"] for r in rows) * 1000 if name in PROXIES
              else float("nan"))
        print(f"{name:34s} {rho:7.3f} {p:9.2g} {best:10.4f} {ms:8.1f}")
    print(f"training: {statistics.mean(r['train_s'] for r in rows):.1f} s per architecture")


def time_to_target(data: tn.data.Data, seed: int, warm: dict[str, Any] | None, epochs: int,
                   target: float, max_trials: int, folder: Path) -> tuple[float | None, int]:
    """Seconds and trials until a trial first reaches ``target`` val accuracy (None: never)."""
    folder.mkdir(parents=True, exist_ok=True)
    kw: dict[str, Any] = {
        "space": "chain_cnn", "data": data, "trainer": tn.Trainer(epochs=epochs, device="cpu"),
        "strategy": "random", "seed": seed, "progress": False, "name": "s",
        "storage": str(folder / f"{seed}-{'warm' if warm else 'plain'}.db"), "warm_start": warm,
    }
    start = time.perf_counter()
    for n in range(1, max_trials + 1):
        study = tn.ModelSearch(trials=n, **kw).run()
        last = study.trials[-1]
        if last.state is tn.TrialState.COMPLETE and last.metrics["val_accuracy"] >= target:
            return time.perf_counter() - start, n
    return None, max_trials


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--archs", type=int, default=100)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--batch", type=int, default=64, help="proxy batch size")
    parser.add_argument("--seeds", default="0,1,2,3,4",
                        help="seeds of the warm-start comparison")
    parser.add_argument("--proxy", default="naswot,synflow",
                        help="the warm start's proxies (comma list; each is compared)")
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--top", type=int, default=10)
    parser.add_argument("--target", type=float, default=0.94)
    parser.add_argument("--max-trials", type=int, default=30)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--cache", default="runs/proxies-bench.jsonl")
    parser.add_argument("--skip", choices=["correlation", "warm"], help="leave a part out")
    parser.add_argument("--quick", action="store_true",
                        help="20 architectures, 2 epochs, one seed, target 0.6 (a smoke test)")
    args = parser.parse_args()
    if args.quick:
        args.archs, args.epochs, args.seeds, args.target = 20, 2, "0", 0.6
        args.samples, args.top, args.max_trials = 40, 5, 10
        args.cache = str(Path(tempfile.gettempdir()) / "torchnas-proxies-quick.jsonl")
    torch.set_num_threads(args.threads)
    logging.getLogger("torchnas").setLevel(logging.ERROR)  # failed or rejected trials
    data = tn.data.load("mnist1d")
    space = tn.spaces.create("chain_cnn", input_shape=data.input_shape,
                             num_classes=data.num_classes)
    print(f"chain_cnn on MNIST-1D ({len(data.train)} train / {len(data.val)} val), "
          f"{args.epochs} epochs, torch threads {args.threads}")
    if args.skip != "correlation":
        cache = Path(args.cache)
        cache.parent.mkdir(parents=True, exist_ok=True)
        done = [json.loads(line) for line in cache.read_text().splitlines()] \
            if cache.exists() else []
        done = [r for r in done if r.get("epochs") == args.epochs]
        batch = proxy_batch(data, args.batch, seed=0)
        archs = distinct_archs(space, args.archs, seed=0)
        with cache.open("a") as out:
            for i, arch in enumerate(archs[len(done):], start=len(done)):
                row = {**measure(space, arch, i, data, batch, args.epochs), "epochs": args.epochs}
                out.write(json.dumps(row) + "\n")
                out.flush()
                done.append(row)
                print(f"  {i + 1}/{len(archs)}: val {row['val_accuracy']:.4f}", flush=True)
        correlations(done[: args.archs])
    if args.skip != "warm":
        warms: list[dict[str, Any] | None] = [None] + [
            {"proxy": p, "samples": args.samples, "top": args.top} for p in args.proxy.split(",")]
        labels = ["plain"] + [f"warm {w['proxy']}" for w in warms if w]
        print(f"\nTime to {args.target:.0%} val accuracy: seconds / trials until a trial first "
              f"reaches it; random search, at most {args.max_trials} trials; warm start: "
              f"samples {args.samples}, top {args.top}")
        print(f"{'seed':>4s} " + " ".join(f"{label:>18s}" for label in labels))
        runs: list[list[tuple[float | None, int]]] = []
        with tempfile.TemporaryDirectory() as tmp:
            for seed in (int(s) for s in args.seeds.split(",")):
                runs.append([time_to_target(data, seed, w, args.epochs, args.target,
                                            args.max_trials, Path(tmp) / str(k))
                             for k, w in enumerate(warms)])
                cells = [f"{s:8.1f} s {n:3d} tr" if s is not None else f"{'never':>10s} {n:3d} tr"
                         for s, n in runs[-1]]
                print(f"{seed:4d} " + " ".join(f"{c:>18s}" for c in cells), flush=True)
        for k, label in enumerate(labels):
            hits = [(s, n) for s, n in (r[k] for r in runs) if s is not None]
            if hits:
                print(f"{label}: reached in {len(hits)}/{len(runs)} seeds; mean "
                      f"{statistics.mean(s for s, _ in hits):.1f} s, "
                      f"{statistics.mean(n for _, n in hits):.1f} trials")


if __name__ == "__main__":
    main()
