"""The ``dqn`` strategy (MetaQNN's Q-learning) on NAS-Bench-Graph, beside ``rl``, random search
and Optuna's TPE in the same run.

The space, the queries and the measures are those of ``benchmarks/tabular.py`` (its
``benchmark`` runs every method and seed): per dataset, the mean best validation accuracy found
in ``--queries`` look-ups and its regret against the table's best (percentage points, mean ±
standard error over seeds), the ratio of each method's mean regret to Optuna TPE's, the mean
rank of each method among the methods over seeds (1 = the best of the seed; ties share their
mean rank), the test accuracy of the pick, distinct architectures queried and seconds per
search. Everything is written as JSON to ``--out``.

    python benchmarks/dqn.py [--datasets cora,citeseer,pubmed] [--seeds 20] [--queries 100]
                             [--methods dqn,rl,random,optuna:tpe] [--workers 2] [--quick]
"""

from __future__ import annotations

import argparse
import math
import statistics
from pathlib import Path
from typing import Any

from _common import fmt_mean_se, machine_note, mean_se, quiet, table, write_result
from tabular import _TABLES, Run, benchmark

import torchnas as tn

METHODS = "dqn,rl,random,optuna:tpe"


def ranks(runs: dict[str, Run]) -> dict[str, list[float]]:
    """Per method, its rank among the methods on each seed by regret (1 = best, ties shared)."""
    methods = list(runs)
    out: dict[str, list[float]] = {m: [] for m in methods}
    for seed in range(len(runs[methods[0]].regret)):
        regret = {m: runs[m].regret[seed] for m in methods}
        for m in methods:
            if math.isnan(regret[m]):
                out[m].append(float(len(methods)))
                continue
            better = sum(r < regret[m] for r in regret.values())
            ties = sum(r == regret[m] for r in regret.values())
            out[m].append(better + (ties + 1) / 2)
    return out


def summarize(dataset: str, runs: dict[str, Run], queries: int) -> dict[str, Any]:
    """One dataset's figures, per method, as JSON-able numbers."""
    rows = _TABLES[dataset].values()
    best = 100 * max(float(r["valid_perf"]) for r in rows)
    reference = statistics.fmean(runs["optuna:tpe"].regret) if "optuna:tpe" in runs else math.nan
    rank = ranks(runs)
    out: dict[str, Any] = {"architectures": len(rows), "best_valid": best, "queries": queries,
                           "methods": {}}
    for method, run in runs.items():
        found = [best - r for r in run.regret]
        out["methods"][method] = {
            "best_found": mean_se(found), "regret": mean_se(run.regret),
            "regret_over_tpe": (mean_se(run.regret)[0] / reference
                                if reference and math.isfinite(reference) else None),
            "mean_rank": mean_se(rank[method]), "test_of_pick": mean_se(run.test),
            "distinct": statistics.fmean(run.distinct), "failed": statistics.fmean(run.failed),
            "seconds": statistics.fmean(run.seconds),
            "per_seed": {"regret": run.regret, "test": run.test, "rank": rank[method]},
        }
    return out


def report(dataset: str, result: dict[str, Any], seeds: int) -> str:
    head = (f"{dataset}: {result['architectures']} architectures, best validation accuracy "
            f"{result['best_valid']:.2f}%; {result['queries']} queries, {seeds} seeds, "
            "mean ± standard error")
    rows = []
    for method, m in result["methods"].items():
        name = method if method.startswith("optuna:") else f"torchnas:{method}"
        per = m["per_seed"]
        found = [result["best_valid"] - r for r in per["regret"]]
        rows.append([name, fmt_mean_se(found), fmt_mean_se(per["regret"]),
                     "-" if m["regret_over_tpe"] is None else f"{m['regret_over_tpe']:.2f}",
                     fmt_mean_se(per["rank"]), fmt_mean_se(per["test"]),
                     f"{m['distinct']:.1f}", f"{m['seconds']:.2f}"])
    return head + "\n" + table(
        ["method", "best val found (%)", "val regret (pp)", "/ optuna:tpe", "mean rank",
         "test acc of pick (%)", "distinct archs", "s per run"], rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", default="cora,citeseer,pubmed")
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--methods", default=METHODS,
                        help="comma list: torchnas strategies and optuna:tpe / optuna:random")
    parser.add_argument("--workers", type=int, default=1,
                        help="processes running (method, seed) jobs side by side")
    parser.add_argument("--out", type=Path,
                        default=Path(__file__).parent / "results" / "dqn_nasbenchgraph.json")
    parser.add_argument("--quick", action="store_true", help="smoke run: cora, 3 seeds, 30 queries")
    args = parser.parse_args()
    if args.quick:
        args.datasets, args.seeds, args.queries = "cora", 3, 30
    quiet()
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    note = machine_note()
    print(f"NAS-Bench-Graph, {args.queries} queries x {args.seeds} seeds; torchnas "
          f"{tn.__version__}; {note}\n", flush=True)
    results: dict[str, Any] = {}
    for dataset in [d.strip() for d in args.datasets.split(",") if d.strip()]:
        runs = benchmark(dataset, methods, args.seeds, args.queries, args.workers)
        results[dataset] = summarize(dataset, runs, args.queries)
        print(report(dataset, results[dataset], args.seeds) + "\n", flush=True)
    write_result(args, {"machine_before": note, "machine_after": machine_note(),
                        "datasets": results})


if __name__ == "__main__":
    main()
