"""Memory across trials: resident memory after 20 and after 200 trials of a small model.

``tn.ModelSearch`` searches the built-in ``chain_cnn`` space (``--space``) on a subset of
MNIST-1D (``--train`` training and ``--val`` validation signals), one epoch a trial, random
search, with one torch thread:

- ``torchnas inline``: one process; its resident memory (RSS) is read after every trial;
- ``torchnas inline, no oneDNN cache``: the same with ``ONEDNN_PRIMITIVE_CACHE_CAPACITY=0``
  (oneDNN, torch's CPU convolution library, keeps the kernels it compiled for each layer shape
  it met, up to 1024 of them: a search meets new shapes all the time; this run shows how much
  of the growth that cache is); and with 256, what the ``torchnas`` command sets;
- ``torchnas process``: 2 worker processes (``recycle_mb`` at its default: a worker that grew
  that much since its first trial is replaced between two trials); the driver's RSS and the
  workers' (each read from ``/proc/PID/statm`` by the driver; summed) after every trial;
- ``optuna + loop`` (the peer): Optuna's random sampler draws the same space's decisions (the
  same ``build(hp)`` function, through a source that asks the Optuna trial), and a plain
  PyTorch loop trains the model the same way (Adam at the drawn learning rate, one epoch).

Each configuration runs in a fresh Python process (so none inherits another's allocations).
Reported: RSS after trial ``--mark`` (20) and after the last (200), their difference (goal:
at most 50 MB), and the live ``torch.Tensor`` and ``nn.Module`` objects (``gc``) at both marks in
the process that measures. The difference against the peer's is printed as a ratio too.

    python benchmarks/memory.py [--trials 200] [--mark 20] [--space chain_cnn]
                                [--train 800] [--val 200] [--only NAME]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from _common import machine_note, quiet, ratio, table

import torchnas as tn

CONFIGS = {  # name: environment of its process
    "torchnas inline": {},
    "torchnas inline, no oneDNN cache": {"ONEDNN_PRIMITIVE_CACHE_CAPACITY": "0"},
    "torchnas inline, the CLI's oneDNN cache": {"ONEDNN_PRIMITIVE_CACHE_CAPACITY": "256"},
    "torchnas process": {},
    "optuna + loop": {},
}
PAGE_MB = os.sysconf("SC_PAGE_SIZE") / 2**20
GOAL_MB = 50.0


def rss_mb(pid: int | str = "self") -> float:
    """Resident memory of a process in MB (``/proc/PID/statm``); NaN when it is gone."""
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE_MB
    except (OSError, IndexError, ValueError):
        return float("nan")


def live_objects() -> dict[str, int]:
    """Live tensors and modules in this process (after a collection)."""
    gc.collect()
    tensors = modules = 0
    for obj in gc.get_objects():
        if issubclass(type(obj), torch.Tensor):  # (isinstance wakes lazy modules)
            tensors += 1
        elif issubclass(type(obj), torch.nn.Module):
            modules += 1
    return {"tensors": tensors, "modules": modules}


def worker_pids() -> list[int]:
    """Live grandchildren of this process: the process executor's workers (forked by its
    forkserver, itself a child of this process)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            if stat[0] not in ("Z", "X"):
                parents[int(entry.name)] = int(stat[1])
    children = {p for p, parent in parents.items() if parent == os.getpid()}
    return sorted(p for p, parent in parents.items() if parent in children)


def subset(args: argparse.Namespace) -> tn.data.Data:
    full = tn.data.load("mnist1d")
    x, y = full.train.tensors  # type: ignore[attr-defined]
    vx, vy = full.val.tensors  # type: ignore[attr-defined]
    return tn.data.from_tensors((x[: args.train], y[: args.train]),
                                (vx[: args.val], vy[: args.val]), num_classes=10,
                                name="mnist1d-subset")


class Marks:
    """A study callback (or a plain call per trial) that samples memory at the marks."""

    def __init__(self, marks: tuple[int, ...], workers: bool) -> None:
        self.marks = marks
        self.workers = workers
        self.count = 0
        self.samples: dict[int, dict[str, Any]] = {}
        self.pids: set[int] = set()

    def __call__(self, *_: Any) -> None:
        self.count += 1
        if self.workers:
            self.pids.update(worker_pids())
        if self.count not in self.marks:
            return
        sample: dict[str, Any] = {"rss": rss_mb(), **live_objects(), "time": time.time()}
        if self.workers:
            pids = worker_pids()
            sample["workers"] = {str(p): rss_mb(p) for p in pids}
            sample["workers_rss"] = sum(sample["workers"].values())
        self.samples[self.count] = sample


def run_torchnas(data: tn.data.Data, args: argparse.Namespace, workers: int,
                 marks: Marks) -> None:
    search = tn.ModelSearch(space=args.space, data=data, strategy="random", seed=0,
                            trainer=tn.Trainer(epochs=1, batch_size=64), trials=args.trials,
                            progress=False, workers=workers,
                            executor={"name": "process", "threads_per_worker": 1}
                            if workers > 1 else None)
    search.check()
    study = search.make_study()
    bar = tn.report.ProgressBar(args.trials, None, ("val_accuracy", "max"), enabled=False)
    study.optimize(search.objective, trials=args.trials, workers=workers,
                   executor=search.executor, callbacks=[bar, marks])
    bar.close()
    failed = [t for t in study.trials if t.state is not tn.TrialState.COMPLETE]
    if failed:
        raise SystemExit(f"{len(failed)} trials did not complete: {failed[0].error}")


class OptunaSource:
    """Values of a torchnas space's decisions drawn by an Optuna trial."""

    def __init__(self, trial: Any) -> None:
        self.trial = trial

    def value(self, label: str, domain: Any, met: Mapping[str, Any]) -> Any:
        from torchnas.space import Categorical, Float, Int

        if isinstance(domain, Int):
            return self.trial.suggest_int(label, domain.low, domain.high, step=domain.step,
                                          log=domain.log)
        if isinstance(domain, Float):
            return self.trial.suggest_float(label, domain.low, domain.high, log=domain.log)
        if isinstance(domain, Categorical):
            return self.trial.suggest_categorical(label, list(domain.choices))
        raise TypeError(f"no Optuna equivalent of {domain.describe()}")


def run_optuna(data: tn.data.Data, args: argparse.Namespace, marks: Marks) -> None:
    import optuna

    space: Callable[[tn.HP], torch.nn.Module] = tn.spaces.create(
        args.space, input_shape=data.input_shape, num_classes=data.num_classes)
    x, y = data.train.tensors  # type: ignore[attr-defined]
    vx, vy = data.val.tensors  # type: ignore[attr-defined]

    def objective(trial: Any) -> float:
        hp = tn.HP(OptunaSource(trial))
        torch.manual_seed(trial.number)
        model = space(hp)
        opt = torch.optim.Adam(model.parameters(), lr=hp.get("lr", 1e-3))
        model.train()
        for idx in torch.randperm(len(x)).split(64):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            return float((model(vx).argmax(1) == vy).float().mean())

    study = optuna.create_study(direction="maximize",
                                sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(objective, n_trials=args.trials, callbacks=[marks])


def run_one(name: str, args: argparse.Namespace) -> dict[str, Any]:
    """Runs one configuration in this process; returns its samples."""
    torch.set_num_threads(1)
    quiet()
    data = subset(args)
    marks = Marks((args.mark, args.trials), workers=name == "torchnas process")
    start = time.perf_counter()
    if name == "optuna + loop":
        run_optuna(data, args, marks)
    else:
        run_torchnas(data, args, 2 if name == "torchnas process" else 1, marks)
    return {"name": name, "seconds": time.perf_counter() - start, "workers": len(marks.pids),
            "samples": {str(k): v for k, v in marks.samples.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--mark", type=int, default=20)
    parser.add_argument("--space", default="chain_cnn")
    parser.add_argument("--train", type=int, default=800)
    parser.add_argument("--val", type=int, default=200)
    parser.add_argument("--only", choices=list(CONFIGS),
                        help="run one configuration in this process (prints JSON)")
    args = parser.parse_args()
    if not 0 < args.mark < args.trials:
        raise SystemExit("--mark must be between 0 and --trials")
    if args.only:
        print(json.dumps(run_one(args.only, args)))
        return
    print(machine_note())
    tn.data.load("mnist1d")  # generated and cached once, before any configuration runs
    runs = []
    for name, env in CONFIGS.items():
        cmd = [sys.executable, __file__, "--only", name, *sys.argv[1:]]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False,
                              env={**os.environ, **env})
        if done.returncode:
            raise SystemExit(f"{name} failed:\n{done.stderr[-3000:]}")
        runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
    a, b = str(args.mark), str(args.trials)
    rows, growth = [], {}
    for run in runs:
        s = run["samples"]
        parts = [("driver" if "workers" in s[b] else "process", "rss")]
        if "workers" in s[b]:
            parts.append((f"{len(s[b]['workers'])} workers (sum; {run['workers']} started)",
                          "workers_rss"))
        for who, key in parts:
            grew = s[b][key] - s[a][key]
            growth[(run["name"], who)] = grew
            objects = (f"{s[a]['tensors']} -> {s[b]['tensors']}",
                       f"{s[a]['modules']} -> {s[b]['modules']}") if key == "rss" else ("", "")
            rows.append([f"{run['name']}: {who}", f"{s[a][key]:.1f}", f"{s[b][key]:.1f}",
                         f"{grew:+.1f}", "yes" if grew <= GOAL_MB else "NO", *objects,
                         f"{run['seconds']:.0f}" if key == "rss" else ""])
    print(f"\n{args.trials} trials of {args.space} on MNIST-1D ({args.train} train, {args.val} "
          "val signals), 1 epoch each, random search, 1 torch thread per process")
    print(table(["run", f"RSS MB @{a}", f"RSS MB @{b}", "growth MB", f"<= {GOAL_MB:g} MB",
                 "live tensors", "live modules", "seconds"], rows))
    peer = growth[("optuna + loop", "process")]
    print(f"growth against the peer's ({peer:+.1f} MB): inline "
          f"{ratio(growth[('torchnas inline', 'process')], peer)}, process driver "
          f"{ratio(growth[('torchnas process', 'driver')], peer)}. 'live tensors/modules': "
          "objects in the measuring process after gc.collect()")
    print(machine_note())


if __name__ == "__main__":
    main()
