"""How much a model of NAS-Bench-Graph can know: the ceiling behind ``tabular.py``'s regrets.

``tabular.py`` asks for a strategy whose mean validation regret after 100 queries is at most
half of Optuna TPE's (about 1 point on cora). This script measures how the tables' tops are
made, without any search strategy:

* **near the best**: how many distinct table entries lie within 0.2, 0.5 and 1 point of the
  best validation accuracy (a regret of 0.5 means finding one of those in 100 queries);
* **a model with 131x the budget**: gradient-boosted trees (scikit-learn) on a one-hot encoding
  of the 7 decisions, fitted on one half of the distinct entries (about 13,100) and scored on
  the other half (2-fold cross-fitting, so no entry is predicted by a model that saw it): the
  Spearman correlation and R² of its predictions, and the regret of its top-k predictions
  (the best validation accuracy among the k entries it ranks highest). A strategy that spends
  100 queries cannot know the table better than this model does;
* **knowing where to look**: 100 queries drawn at random among the model's top K entries
  (K = 100, 300, 1,000, 3,000; 200 draws): the regret of a strategy that knew, from the
  start, the region that model knows;
* **what a strategy must know**: 100 queries drawn at random among the table's own top p %
  of entries (p = 1, 2, 5, 10; ranked by the table's values themselves: an oracle): the
  regret of a strategy whose every query lands there; and the share of the model's top p %
  that is in the table's top p % (p = 2, 5): how well even the 131x model finds that region;
* **how many labels it takes**: the same model fitted on ``n`` random entries (n = 100, 300,
  1,000, 3,000; ``--repeats`` seeds), then the 100 entries it ranks highest among the rest
  queried too: the regret of those ``n + 100`` queries. This is how many look-ups a model-based
  search needs before its picks reach a given regret.

    python benchmarks/tabular_ceiling.py [--datasets cora,citeseer,pubmed] [--folds 2]
                                         [--repeats 5]
"""

from __future__ import annotations

import argparse
import itertools
from typing import Any

import numpy as np
from _common import table
from tabular import NODES, load_table


def entries(dataset: str) -> tuple[np.ndarray, np.ndarray]:
    """Every distinct table entry once: its decisions (node 1-3 inputs, 4 ops as indices)
    and its validation accuracy in percent."""
    from nas_bench_graph import Arch, gnn_list

    rows: dict[object, tuple[list[int], float]] = {}
    table_ = load_table(dataset)
    links = itertools.product(*[range(i + 1) for i in range(1, NODES)])
    for link, ops in itertools.product(links, itertools.product(range(len(gnn_list)),
                                                                repeat=NODES)):
        names = [gnn_list[o] for o in ops]
        if all(n == "skip" for n in names):
            continue
        key = Arch([0, *link], names).valid_hash()
        if key not in rows:
            rows[key] = ([*link, *ops], 100 * float(table_[key]["valid_perf"]))
    x = np.array([r[0] for r in rows.values()])
    y = np.array([r[1] for r in rows.values()])
    return x, y


def one_hot(x: np.ndarray) -> np.ndarray:
    sizes = [int(x[:, j].max()) + 1 for j in range(x.shape[1])]
    return np.concatenate([(x[:, [j]] == np.arange(s)).astype(float)
                           for j, s in enumerate(sizes)], axis=1)


def _model(seed: int) -> Any:
    from sklearn.ensemble import HistGradientBoostingRegressor

    return HistGradientBoostingRegressor(max_iter=300, random_state=seed)


def labels_needed(x: np.ndarray, y: np.ndarray, sizes: tuple[int, ...], repeats: int
                  ) -> list[float]:
    """Per ``n`` in ``sizes``: mean regret of ``n`` random entries plus the model's top 100."""
    features, best, out = one_hot(x), float(y.max()), []
    for n in sizes:
        regrets = []
        for seed in range(repeats):
            seen = np.random.default_rng(seed).choice(len(y), n, replace=False)
            pred = _model(seed).fit(features[seen], y[seen]).predict(features)
            pred[seen] = -np.inf
            picked = np.argsort(-pred)[:100]
            regrets.append(best - max(float(y[seen].max()), float(y[picked].max())))
        out.append(float(np.mean(regrets)))
    return out


def within_top(y: np.ndarray, pred: np.ndarray, sizes: tuple[int, ...], draws: int = 200
               ) -> list[float]:
    """Per K in ``sizes``: mean regret of 100 random queries among the K best predicted."""
    order, best, rng, out = np.argsort(-pred), float(y.max()), np.random.default_rng(0), []
    for k in sizes:
        top = y[order[:k]]
        out.append(float(np.mean([best - rng.choice(top, min(100, k), replace=False).max()
                                  for _ in range(draws)])))
    return out


def cross_fitted(x: np.ndarray, y: np.ndarray, folds: int, seed: int = 0) -> np.ndarray:
    """Each entry's prediction by a model fitted on the other folds."""
    from sklearn.model_selection import KFold

    features, out = one_hot(x), np.empty_like(y)
    for train, test in KFold(folds, shuffle=True, random_state=seed).split(features):
        model = _model(seed).fit(features[train], y[train])
        out[test] = model.predict(features[test])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", default="cora,citeseer,pubmed")
    parser.add_argument("--folds", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    sizes = (100, 300, 1000, 3000)
    from scipy.stats import spearmanr

    fracs = (0.01, 0.02, 0.05, 0.10)
    rows, needed, region, oracle = [], [], [], []
    for dataset in [d.strip() for d in args.datasets.split(",") if d.strip()]:
        x, y = entries(dataset)
        best = float(y.max())
        near = [int((y >= best - d - 1e-9).sum()) for d in (0.2, 0.5, 1.0)]
        pred = cross_fitted(x, y, args.folds)
        order = np.argsort(-pred)
        r2 = 1 - float(((pred - y) ** 2).mean() / y.var())
        top = [best - float(y[order[:k]].max()) for k in (10, 30, 100)]
        rows.append([dataset, str(len(y)), f"{best:.2f}", f"{float(np.median(y)):.2f}",
                     " / ".join(map(str, near)),
                     f"{spearmanr(pred, y)[0]:.3f}", f"{r2:.3f}",
                     " / ".join(f"{t:.2f}" for t in top),
                     f"{float(y[order[:100]].mean()):.2f}"])
        region.append([dataset, *(f"{r:.2f}" for r in within_top(y, pred, sizes))])
        ks = tuple(int(len(y) * f) for f in fracs)
        shares = [len(set(order[:k]) & set(np.argsort(-y)[:k])) / k
                  for k in (int(len(y) * 0.02), int(len(y) * 0.05))]
        oracle.append([dataset, *(f"{r:.2f}" for r in within_top(y, y, ks)),
                       " / ".join(f"{s:.0%}" for s in shares)])
        needed.append([dataset, *(f"{r:.2f}" for r in labels_needed(x, y, sizes,
                                                                       args.repeats))])
        print(f"{dataset} done", flush=True)
    fitted = f"{(args.folds - 1) / args.folds:.0%}"
    print(table(["dataset", "entries", "best val %", "median", "within 0.2/0.5/1 pt",
                 f"Spearman (fit on {fitted})", "R²", "regret of top 10/30/100",
                 "mean val of top 100"], rows))
    print("\nRegret of 100 random queries among the model's top K (200 draws):")
    print(table(["dataset", *(f"K = {k:,}" for k in sizes)], region))
    print("\nRegret of 100 random queries among the table's own top p % (an oracle's region), "
          "and the share of the model's top p % in the table's top p %:")
    print(table(["dataset", *(f"top {f:.0%}" for f in fracs), "model's top 2% / 5% in it"],
                oracle))
    print(f"\nRegret of n random entries plus the 100 a model fitted on them ranks highest "
          f"(mean over {args.repeats} seeds):")
    print(table(["dataset", *(f"n = {n:,} (+100)" for n in sizes)], needed))
    print("A regret of 0.5 points means finding one of the entries 'within 0.5 pt'; the "
          "model's top predictions show how far a near-perfect model of the table's smooth "
          "part still is from them.")


if __name__ == "__main__":
    main()
