"""NAS-Bench-Graph, a tabular benchmark: torchnas strategies against Optuna, same run.

NAS-Bench-Graph (``pip install nas-bench-graph``) tabulates 26,206 graph neural networks per
dataset. An architecture is a DAG of 4 computing nodes: node ``i`` reads one earlier node
(0 = the raw input, ``j`` = node ``j``; node 0 can only read the raw input) and applies one of 9
operations (gat, gcn, gin, cheb, sage, arma, graph, fc, skip); leaf nodes feed the output. The
space is 3 input decisions (``hp.inputs``: 2, 3 and 4 candidates) and 4 operation decisions
(``hp.choice``), 157,464 assignments that the benchmark's ``Arch.valid_hash`` maps onto its
table (isomorphic DAGs share one entry). The only assignments it lacks are the 24 with every
operation ``skip`` (no model at all): the objective raises for them and the trial is recorded
FAILED (Optuna: FAIL), a query spent either way.

Every strategy of ``tn.strategies.available()`` but grid runs through ``tn.Study`` (``"auto"``
included), beside Optuna's TPESampler and RandomSampler on the same define-by-run space. For
each method and seed, ``--queries`` look-ups; then the **validation regret** (the best
validation accuracy in the table minus the best found, percentage points) and the **test
accuracy of the pick** (the queried architecture with the best validation accuracy). Means
± standard errors over seeds; the ratio of each method's mean regret to Optuna TPE's; how many
seeds found the table's best; distinct table entries among the queries (isomorphic
assignments and repeats share one); failed queries (all-skip); seconds per search.

    python benchmarks/tabular.py [--datasets cora,citeseer,pubmed] [--seeds 20] [--queries 100]
                                 [--strategies auto,random,...] [--workers 2] [--quick]
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from _common import (
    OPTUNA_SAMPLERS,
    auto_means,
    fmt_mean_se,
    machine_note,
    mean_se,
    optuna_sampler,
    quiet,
    ratio,
    strategy_names,
    strategy_spec,
    table,
)

import torchnas as tn

NODES = 4


def load_table(dataset: str) -> dict[Any, dict[str, Any]]:
    """The benchmark's light table of ``dataset``: ``{hash: {valid_perf, perf, ...}}``."""
    try:
        from nas_bench_graph import light_read
    except ImportError:
        raise SystemExit("this benchmark needs NAS-Bench-Graph: pip install nas-bench-graph "
                         "(or pip install -e '.[bench]')") from None
    return light_read(dataset)


def lookup(table_: dict[Any, dict[str, Any]], link: list[int], ops: list[str]) -> dict[str, Any]:
    """The table's row of an architecture (input of each node, operation of each node).

    Raises:
        ValueError: for an architecture the benchmark does not define (every op ``skip``).
    """
    from nas_bench_graph import Arch

    if all(op == "skip" for op in ops):
        raise ValueError("every operation is 'skip': NAS-Bench-Graph has no such model")
    row = table_.get(Arch(list(link), list(ops)).valid_hash())
    if row is None:
        raise ValueError(f"architecture {link} {ops} is not in the table")
    return row


def decode(get_input: Callable[[str, int], int], get_op: Callable[[str, list[str]], str]
           ) -> tuple[list[int], list[str]]:
    """Walks the space in one order for every library: per node, its input then its operation.

    ``get_input(label, n)`` picks an index in ``range(n)``; ``get_op(label, ops)`` an operation.
    Returns the benchmark's ``(link, ops)``: each node's input and operation.
    """
    from nas_bench_graph import gnn_list

    link: list[int] = [0]  # node 0 can only read the raw input: no decision
    ops: list[str] = []
    for i in range(NODES):
        if i:
            link.append(get_input(f"node{i}/input", i + 1))
        ops.append(get_op(f"node{i}/op", list(gnn_list)))
    return link, ops


@dataclass
class Run:
    """One method on one dataset: per seed, the regret and the pick's test accuracy."""

    regret: list[float] = field(default_factory=list)
    test: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    distinct: list[int] = field(default_factory=list)


def run_torchnas(strategy: str, table_: dict[Any, dict[str, Any]], seed: int, queries: int,
                 seen: set[int]) -> tuple[dict[str, Any] | None, int]:
    """Best row found by a torchnas strategy, and the number of failed queries; ``seen``
    collects the rows queried."""

    def objective(hp: tn.HP) -> float:
        link, ops = decode(lambda label, n: hp.inputs(label, list(range(n))),
                           lambda label, values: hp.choice(label, values))
        row = lookup(table_, link, ops)
        seen.add(id(row))
        return float(row["valid_perf"])

    study = tn.Study(name="nas-bench-graph", storage=None, objectives={"val_accuracy": "max"},
                     strategy=strategy_spec(strategy), seed=seed)
    study.optimize(objective, trials=queries)
    failed = sum(t.state is tn.TrialState.FAILED for t in study.trials)
    try:
        arch = study.best_trial.arch
    except ValueError:
        return None, failed
    # an architecture records hp.inputs as the sorted list of chosen indices
    link, ops = decode(lambda label, n: arch[label][0], lambda label, values: arch[label])
    return lookup(table_, link, ops), failed


def run_optuna(sampler: str, table_: dict[Any, dict[str, Any]], seed: int, queries: int,
               seen: set[int]) -> tuple[dict[str, Any] | None, int]:
    """Best row found by an Optuna sampler, and the number of failed queries; ``seen``
    collects the rows queried."""
    import optuna

    def objective(trial: optuna.Trial) -> float:
        link, ops = decode(lambda label, n: trial.suggest_categorical(label, list(range(n))),
                           lambda label, values: trial.suggest_categorical(label, values))
        row = lookup(table_, link, ops)
        seen.add(id(row))
        return float(row["valid_perf"])

    study = optuna.create_study(direction="maximize", sampler=optuna_sampler(sampler, seed))
    study.optimize(objective, n_trials=queries, catch=(ValueError,))
    failed = sum(t.state is optuna.trial.TrialState.FAIL for t in study.trials)
    done = [t for t in study.trials if t.state is optuna.trial.TrialState.COMPLETE]
    if not done:
        return None, failed
    params = max(done, key=lambda t: t.value).params
    link, ops = decode(lambda label, n: params[label], lambda label, values: params[label])
    return lookup(table_, link, ops), failed


def _one(job: tuple[str, str, int, int]) -> tuple[str, int, float, float, int, int, float]:
    """One method, one seed: (method, seed, regret, test accuracy, failed, distinct, s)."""
    import torch

    torch.set_num_threads(1)
    quiet()
    method, dataset, seed, queries = job
    table_ = _TABLES[dataset]
    start, seen = time.perf_counter(), set[int]()
    runner = run_optuna if method.startswith("optuna:") else run_torchnas
    row, failed = runner(method, table_, seed, queries, seen)
    seconds = time.perf_counter() - start
    best_valid = max(float(r["valid_perf"]) for r in table_.values())
    found = math.nan if row is None else float(row["valid_perf"])
    test = math.nan if row is None else 100 * float(row["perf"])
    return method, seed, 100 * (best_valid - found), test, failed, len(seen), seconds


_TABLES: dict[str, dict[Any, dict[str, Any]]] = {}


def benchmark(dataset: str, methods: list[str], seeds: int, queries: int,
              workers: int = 1) -> dict[str, Run]:
    """Every method on one table, seed after seed (``workers`` processes share the jobs)."""
    _TABLES[dataset] = load_table(dataset)
    jobs = [(m, dataset, seed, queries) for seed in range(seeds) for m in methods]
    if workers > 1:
        import multiprocessing

        with multiprocessing.get_context("fork").Pool(workers) as pool:
            results = pool.map(_one, jobs, chunksize=1)
    else:
        results = [_one(job) for job in jobs]
    runs = {m: Run() for m in methods}
    for method, _, regret, test, failed, distinct, seconds in sorted(
            results, key=lambda r: (r[1], methods.index(r[0]))):
        run = runs[method]
        run.regret.append(regret)
        run.test.append(test)
        run.failed.append(failed)
        run.distinct.append(distinct)
        run.seconds.append(seconds)
    return runs


def report(dataset: str, table_: dict[Any, dict[str, Any]], runs: dict[str, Run], seeds: int,
           queries: int) -> str:
    """One dataset's table of results."""
    oracle = max(table_.values(), key=lambda r: float(r["valid_perf"]))
    head = (f"{dataset}: {len(table_)} architectures; best validation accuracy "
            f"{100 * float(oracle['valid_perf']):.2f}% (its test accuracy "
            f"{100 * float(oracle['perf']):.2f}%, best test in the table "
            f"{100 * max(float(r['perf']) for r in table_.values()):.2f}%); "
            f"{queries} queries, {seeds} seeds, mean ± standard error")
    reference = mean_se(runs["optuna:tpe"].regret)[0] if "optuna:tpe" in runs else math.nan
    rows = []
    for method, run in runs.items():
        name = method if method.startswith("optuna:") else f"torchnas:{method}"
        if method == "auto":
            name += f" (= {auto_means()})"
        rows.append([name, fmt_mean_se(run.regret), ratio(mean_se(run.regret)[0], reference),
                     fmt_mean_se(run.test),
                     f"{sum(r == 0 for r in run.regret)}/{len(run.regret)}",
                     f"{mean_se(run.distinct)[0]:.1f}", f"{mean_se(run.failed)[0]:.1f}",
                     f"{mean_se(run.seconds)[0]:.2f}"])
    return head + "\n" + table(
        ["method", "val regret (pp)", "/ optuna:tpe", "test acc of pick (%)", "optimum found",
         "distinct archs", "failed", "s per run"], rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", default="cora,citeseer,pubmed")
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--strategies", default=None,
                        help="comma list of torchnas strategies, each 'name' or "
                             "'name(key=value, ...)' (default: every registered one but grid)")
    parser.add_argument("--no-optuna", action="store_true", help="skip Optuna's samplers")
    parser.add_argument("--workers", type=int, default=1,
                        help="processes running (method, seed) jobs side by side; timings "
                             "compare only within one run")
    parser.add_argument("--quick", action="store_true", help="smoke run: cora, 3 seeds, 30 queries")
    args = parser.parse_args()
    if args.quick:
        args.datasets, args.seeds, args.queries = "cora", 3, 30
    quiet()
    methods = strategy_names(args.strategies)
    if not args.no_optuna:
        methods += list(OPTUNA_SAMPLERS)
    print(f"NAS-Bench-Graph, {args.queries} queries x {args.seeds} seeds; torchnas "
          f"{tn.__version__}, 'auto' = {auto_means()}; {machine_note()}\n", flush=True)
    for dataset in [d.strip() for d in args.datasets.split(",") if d.strip()]:
        runs = benchmark(dataset, methods, args.seeds, args.queries, args.workers)
        print(report(dataset, _TABLES[dataset], runs, args.seeds, args.queries) + "\n",
              flush=True)


if __name__ == "__main__":
    main()
