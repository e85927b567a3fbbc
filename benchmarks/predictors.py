"""Surrogate predictors on ``chain_cnn`` / MNIST-1D: rank correlation and calibration.

``--archs`` distinct architectures of ``chain_cnn``, drawn at random (seeded; the same draw as
``benchmarks/proxies.py``), are each trained for ``--epochs`` (seeded) and validated; results
are kept in ``--cache`` (JSON lines: ``arch``, ``val_accuracy``, ``params``, ``epochs``) and rows
of ``benchmarks/proxies.py``'s cache with the same epochs are reused. Then, for each of
``--splits`` random splits, ``--held-out`` architectures are set aside and each
``tn.evaluation.Predictor`` kind is fitted on ``n`` of the others (``n`` in ``--train``):

- Spearman's rho and Kendall's tau (scipy) of the predicted mean with the held-out truths;
- calibration: the fraction of held-out truths within the predicted mean ± 1 and ± 2 standard
  deviations (a calibrated Gaussian gives 68 % and 95 %);
- the peer in the same run: a scikit-learn ``GaussianProcessRegressor`` with its default kernel
  on the one-hot-style vectors a user would write by hand (the architecture's values, with
  categories as integer codes), and the parameter count (a cost proxy, no uncertainty).

Means over splits; fit + predict seconds per predictor.

    python benchmarks/predictors.py [--archs 100] [--epochs 8] [--train 10,25,50]
                                    [--held-out 40] [--splits 10] [--quick]
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from _common import distinct_archs, machine_note, table
from scipy.stats import kendalltau, spearmanr

import torchnas as tn
from torchnas.evaluation import Predictor
from torchnas.surrogate import KINDS


def trained(space: Any, data: tn.data.Data, archs: list[dict[str, Any]], epochs: int,
            cache: Path, reuse: Path) -> list[dict[str, Any]]:
    """Each architecture trained once (rows from the caches are reused)."""
    rows: dict[str, dict[str, Any]] = {}
    for path in (reuse, cache):
        if path.exists():
            for line in path.read_text().splitlines():
                row = json.loads(line)
                if row.get("epochs") == epochs and "val_accuracy" in row:
                    rows[tn.arch_key(row["arch"])] = row
    cache.parent.mkdir(parents=True, exist_ok=True)
    with cache.open("a") as out:
        for i, arch in enumerate(archs):
            if tn.arch_key(arch) in rows:
                continue
            torch.manual_seed(i)
            model = tn.build(space, arch)
            fit = tn.Trainer(epochs=epochs, seed=i, device="cpu").fit(model, data, params=arch)
            row = {"arch": arch, "val_accuracy": fit["val_accuracy"],
                   "params": tn.metrics.params(model), "epochs": epochs}
            out.write(json.dumps(row) + "\n")
            out.flush()
            rows[tn.arch_key(arch)] = row
            print(f"  trained {i + 1}/{len(archs)}: val {row['val_accuracy']:.4f}", flush=True)
    return [rows[tn.arch_key(a)] for a in archs]


def peer_vectors(archs: list[dict[str, Any]], domains: dict[str, Any]) -> np.ndarray:
    """The hand-made encoding a user would feed scikit-learn: one number per label (its
    value, a category's index, the first chosen input), ``-1`` where absent."""
    out = np.full((len(archs), len(domains)), -1.0)
    for r, arch in enumerate(archs):
        for c, (label, dom) in enumerate(domains.items()):
            if label not in arch:
                continue
            v = arch[label]
            if isinstance(dom, tn.space.Categorical):
                v = [json.dumps(x) for x in dom.choices].index(json.dumps(v))
            elif isinstance(v, list):
                v = v[0] if v else -1
            out[r, c] = float(v)
    return out


def scores(mean: np.ndarray, std: np.ndarray | None, truth: np.ndarray) -> dict[str, float]:
    out = {"rho": float(spearmanr(mean, truth).statistic),
           "tau": float(kendalltau(mean, truth).statistic)}
    if std is not None:
        z = np.abs(truth - mean) / np.maximum(std, 1e-12)
        out["in1"], out["in2"] = float((z <= 1).mean()), float((z <= 2).mean())
    return out


def evaluate(rows: list[dict[str, Any]], domains: dict[str, Any], sizes: list[int],
             held_out: int, splits: int) -> dict[tuple[str, int], list[dict[str, float]]]:
    from sklearn.gaussian_process import GaussianProcessRegressor

    results: dict[tuple[str, int], list[dict[str, float]]] = {}
    for split in range(splits):
        order = np.random.default_rng(split).permutation(len(rows))
        test, pool = order[:held_out], order[held_out:]
        t_archs = [rows[i]["arch"] for i in test]
        truth = np.array([rows[i]["val_accuracy"] for i in test])
        for n in sizes:
            train = pool[:n]
            archs = [rows[i]["arch"] for i in train]
            ys = [rows[i]["val_accuracy"] for i in train]
            for kind in KINDS:
                start = time.perf_counter()
                p = Predictor(kind, seed=split).fit(archs, ys, domains=domains)
                mean, std = p.predict(t_archs)
                s = scores(mean, std, truth)
                s["sec"] = time.perf_counter() - start
                results.setdefault((f"torchnas:{kind}", n), []).append(s)
            start = time.perf_counter()
            gp = GaussianProcessRegressor(normalize_y=True, random_state=split)
            gp.fit(peer_vectors(archs, domains), ys)
            mean, std = gp.predict(peer_vectors(t_archs, domains), return_std=True)
            s = scores(mean, std, truth)
            s["sec"] = time.perf_counter() - start
            results.setdefault(("sklearn GP (default kernel, raw values)", n), []).append(s)
            s = scores(np.array([rows[i]["params"] for i in test], float), None, truth)
            results.setdefault(("params (cost proxy)", n), []).append(s)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--archs", type=int, default=100)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--train", default="10,25,50", help="training-set sizes")
    parser.add_argument("--held-out", type=int, default=40)
    parser.add_argument("--splits", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--cache", default="runs/predictors-bench.jsonl")
    parser.add_argument("--reuse", default="runs/proxies-bench.jsonl",
                        help="benchmarks/proxies.py's cache, read if it exists")
    parser.add_argument("--quick", action="store_true",
                        help="24 architectures, 1 epoch, sizes 5,10, 3 splits (a smoke test)")
    args = parser.parse_args()
    if args.quick:
        args.archs, args.epochs, args.train, args.held_out, args.splits = 24, 1, "5,10", 10, 3
        args.cache = str(Path(tempfile.gettempdir()) / "torchnas-predictors-quick.jsonl")
    sizes = [int(s) for s in args.train.split(",")]
    if max(sizes) + args.held_out > args.archs:
        raise SystemExit(f"--archs {args.archs} is fewer than the largest training set plus "
                         f"--held-out ({max(sizes)} + {args.held_out})")
    torch.set_num_threads(args.threads)
    logging.getLogger("torchnas").setLevel(logging.ERROR)
    data = tn.data.load("mnist1d")
    space = tn.spaces.create("chain_cnn", input_shape=data.input_shape,
                             num_classes=data.num_classes)
    domains = {lb: info.domain for lb, info in tn.space.explore(space).labels.items()}
    rows = trained(space, data, distinct_archs(space, args.archs, seed=0), args.epochs,
                   Path(args.cache), Path(args.reuse))
    acc = [r["val_accuracy"] for r in rows]
    print(f"\nchain_cnn on MNIST-1D: {len(rows)} architectures trained {args.epochs} epochs (val "
          f"accuracy mean {statistics.fmean(acc):.4f}, sd {statistics.stdev(acc):.4f}, best "
          f"{max(acc):.4f}); {args.splits} splits, {args.held_out} held out; means over "
          f"splits; {machine_note()}")
    results = evaluate(rows, domains, sizes, args.held_out, args.splits)

    def cell(runs: list[dict[str, float]], key: str, digits: int = 3) -> str:
        values = [r[key] for r in runs if key in r and math.isfinite(r[key])]
        return f"{statistics.fmean(values):.{digits}f}" if values else "-"

    out = [[name, str(n), cell(runs, "rho"), cell(runs, "tau"), cell(runs, "in1", 2),
            cell(runs, "in2", 2), cell(runs, "sec", 3)]
           for (name, n), runs in sorted(results.items(), key=lambda kv: (kv[0][1], kv[0][0]))]
    print(table(["predictor", "n train", "spearman", "kendall", "within 1 sd", "within 2 sd",
                 "fit+predict s"], out))


if __name__ == "__main__":
    main()
