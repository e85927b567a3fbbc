"""Per-trial overhead of each experiment tracker, torchnas beside Optuna's, same run, no training.

A trivial objective (one float, one choice) reports 10 steps and returns. A study runs N
trials without a tracker, then with each tracker (TensorBoard, MLflow on a local SQLite store,
W&B offline; and MLflow writing each report at once, ``flush_every=0``), in rounds that
interleave the settings; the time per trial is the mean between two trial ends (the first
trial left out: it pays the imports and the tracker's setup, given apart as ``setup``). The
overhead of a tracker is its time per trial minus the same run's time without one. Beside it,
as the peer, Optuna with the callbacks of optuna-integration (``MLflowCallback``,
``TensorBoardCallback``, ``WeightsAndBiasesCallback(as_multirun=True)``) when installed: they
log the final value and the parameters at each trial's end, not the reports, so they do less
than the torchnas trackers. Nothing reaches the network.

    python benchmarks/trackers.py [--trials 200] [--steps 10] [--rounds 5]
        [--out benchmarks/results/trackers.json] [--quick]
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import logging
import os
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _common import machine_note, quiet, table, write_result

import torchnas as tn

TRACKERS = ("tensorboard", "mlflow", "wandb")
#: torchnas settings beside the trackers' defaults: MLflow writing each report at once.
VARIANTS = ("mlflow-live",)


def torchnas_run(tracker: str | None, root: Path, trials: int, steps: int) -> list[float]:
    """Seconds from the call to each trial's end, for a study with ``tracker`` (or none)."""
    specs: dict[str, Any] = {
        "tensorboard": {"name": "tensorboard", "log_dir": str(root / "tb")},
        "mlflow": {"name": "mlflow", "tracking_uri": f"sqlite:///{root / 'mlflow.db'}"},
        "mlflow-live": {"name": "mlflow", "tracking_uri": f"sqlite:///{root / 'mlflow.db'}",
                        "flush_every": 0},
        "wandb": {"name": "wandb", "dir": str(root), "mode": "offline"},
    }

    def objective(hp: tn.HP) -> float:
        x = hp.float("x", 0.0, 1.0)
        act = hp.choice("act", ["relu", "gelu", "tanh"])
        assert hp.trial is not None
        for step in range(steps):
            hp.trial.report(step, {"loss": x / (step + 1), "aux": len(act) + step})
        return x

    study = tn.Study(name=f"trackers-{tracker}", objectives={"loss": "min"},
                     strategy="random", seed=0)
    start = time.perf_counter()
    ends: list[float] = []
    callbacks = [] if tracker is None else [specs[tracker]]
    study.optimize(objective, trials=trials,
                   callbacks=[*callbacks, lambda s, t: ends.append(time.perf_counter())])
    return [e - start for e in ends]


def optuna_callback(tracker: str, root: Path) -> Any:
    if tracker == "mlflow":
        from optuna_integration.mlflow import MLflowCallback

        return MLflowCallback(tracking_uri=f"sqlite:///{root / 'optuna-mlflow.db'}",
                              metric_name="loss")
    if tracker == "tensorboard":
        from optuna_integration.tensorboard import TensorBoardCallback

        return TensorBoardCallback(str(root / "optuna-tb"), metric_name="loss")
    from optuna_integration.wandb import WeightsAndBiasesCallback

    return WeightsAndBiasesCallback(metric_name="loss", as_multirun=True, wandb_kwargs={
        "mode": "offline", "dir": str(root), "project": "optuna", "reinit": "create_new"})


def optuna_run(tracker: str | None, root: Path, trials: int, steps: int) -> list[float]:
    import optuna

    def objective(trial: Any) -> float:
        x = trial.suggest_float("x", 0.0, 1.0)
        trial.suggest_categorical("act", ["relu", "gelu", "tanh"])
        for step in range(steps):
            trial.report(x / (step + 1), step)
        return float(x)

    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    start = time.perf_counter()
    ends: list[float] = []
    callbacks = [] if tracker is None else [optuna_callback(tracker, root)]
    study.optimize(objective, n_trials=trials,
                   callbacks=[*callbacks, lambda s, t: ends.append(time.perf_counter())])
    return [e - start for e in ends]


def peer_trackers() -> list[str]:
    """The Optuna callbacks that can run here (optuna-integration and the tracker's library)."""
    try:
        import optuna_integration  # noqa: F401
    except ImportError:
        return []
    found = []
    for tracker in TRACKERS:
        try:
            optuna_callback(tracker, Path(tempfile.gettempdir()))
        except Exception:
            continue
        found.append(tracker)
    return found


def summarize(runs: list[list[float]]) -> dict[str, float]:
    """Median over rounds of: ms per trial after the first, and setup (first trial) in s."""
    per_trial = [statistics.mean(b - a for a, b in itertools.pairwise(r)) * 1e3 for r in runs]
    setup = [r[0] for r in runs]
    return {"ms_per_trial": statistics.median(per_trial), "setup_s": statistics.median(setup),
            "rounds_ms_per_trial": per_trial}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--steps", type=int, default=10, help="reports per trial")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", type=Path, default=None,
                        help="JSON results (default benchmarks/results/trackers.json; "
                             "--quick: a temporary file)")
    parser.add_argument("--quick", action="store_true", help="20 trials, 1 round")
    args = parser.parse_args(argv)
    if args.quick:
        args.trials, args.rounds = 20, 1
    if args.out is None:
        args.out = (Path(tempfile.gettempdir()) / "torchnas-trackers-quick.json" if args.quick
                    else Path(__file__).parent / "results" / "trackers.json")
    quiet()
    with contextlib.suppress(ImportError):
        import mlflow  # noqa: F401 - it sets its loggers' levels as it loads: quieten them after
    for name in ("mlflow", "alembic", "optuna_integration"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", category=FutureWarning)  # optuna-integration's notices
    os.environ.setdefault("WANDB_SILENT", "true")
    os.environ.setdefault("WANDB_ERROR_REPORTING", "false")
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    peers = peer_trackers()
    settings: list[tuple[str, str | None, Callable[..., list[float]]]] = [
        ("torchnas", t, torchnas_run) for t in (None, *TRACKERS, *VARIANTS)]
    if peers:
        settings += [("optuna", t, optuna_run) for t in (None, *peers)]
    print(f"{args.trials} trials of {args.steps} reports, {args.rounds} rounds; trackers "
          f"{', '.join(TRACKERS)}; Optuna's peers: {', '.join(peers) or 'none'}; "
          f"{machine_note()}", flush=True)
    raw: dict[str, list[list[float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for round_ in range(args.rounds):
            for i, (framework, tracker, run) in enumerate(settings):
                root = Path(tmp) / f"r{round_}-{i}"
                root.mkdir()
                key = f"{framework}+{tracker or 'none'}"
                raw.setdefault(key, []).append(run(tracker, root, args.trials, args.steps))
                print(f"round {round_}: {key} {raw[key][-1][-1]:.1f}s", flush=True)
    results = {key: summarize(runs) for key, runs in raw.items()}
    rows = []
    for key, r in results.items():
        framework = key.partition("+")[0]
        base = results[f"{framework}+none"]["ms_per_trial"]
        r["overhead_ms_per_trial"] = r["ms_per_trial"] - base
        rows.append([key, f"{r['ms_per_trial']:.2f}", f"{r['overhead_ms_per_trial']:.2f}",
                     f"{r['setup_s']:.2f}"])
    print("\n" + table(["framework+tracker", "ms/trial", "overhead ms/trial", "setup s"], rows))
    print(f"\n{machine_note()}")
    versions = {}
    for module in ("torch", "tensorboard", "mlflow", "wandb", "optuna", "optuna_integration"):
        try:
            versions[module] = __import__(module).__version__
        except (ImportError, AttributeError):
            versions[module] = None
    return write_result(args, {"versions": versions, "machine": machine_note(),
                               "results": results})


if __name__ == "__main__":
    main()
