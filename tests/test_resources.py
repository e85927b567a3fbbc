"""Resources across trials: each worker's threads and GPUs (the assignment is tested without
CUDA: only the query of how many GPUs there are is replaced), and memory that does not grow:
no trial's model, optimizer or tensors outlive it, in the driver or in a worker (counted with
``gc`` and weak references, not resident memory; ``benchmarks/memory.py`` measures that).

Objectives and spaces are module-level: worker processes import them by name.
"""

from __future__ import annotations

import gc
import os
import weakref
from typing import Any

import pytest
import torch
from torch import nn

import torchnas as tn
from torchnas.execution import _process, device_plan
from torchnas.execution._process import visible_gpus

COMPLETE = tn.TrialState.COMPLETE


# -- which GPUs and threads a worker gets -------------------------------------------------------
@pytest.mark.parametrize(("count", "env", "expected"), [
    (0, None, []),
    (0, "0,1", []),  # the variable names GPUs but CUDA sees none
    (2, None, ["0", "1"]),
    (2, "", ["0", "1"]),
    (2, "3, 5", ["3", "5"]),
    (1, "GPU-8f2a,GPU-77c1", ["GPU-8f2a"]),  # UUIDs are kept as CUDA names them
    (2, "MIG-1a,MIG-2b", ["MIG-1a", "MIG-2b"]),
])
def test_visible_gpus_names_them_as_cuda_visible_devices_does(count: int, env: str | None,
                                                              expected: list[str]) -> None:
    assert visible_gpus(count, env) == expected


def test_too_few_gpus_name_the_ways_out() -> None:
    with pytest.raises(tn.ConfigError, match=r"workers=3 but 1 GPU\(s\).*gpus_per_trial=0\.3333"
                                             r".*gpus_per_trial=0\)"):
        device_plan(3, None, ["0"], cores=8)
    shares = device_plan(3, 0.3333, ["0"], cores=8)  # the share it suggests does fit
    assert [p["cuda_visible_devices"] for p in shares] == ["0"] * 3


def where_it_runs(hp: tn.HP) -> dict[str, float]:
    hp.int("x", 0, 10**6)
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    return {"acc": 1.0, "pid": os.getpid(), "threads": torch.get_num_threads(),
            "gpu": -1.0 if visible is None else (-2.0 if visible == "" else float(visible))}


@pytest.mark.parametrize(("gpus_per_trial", "gpus"), [(None, {3.0, 5.0}), (0, {-2.0})])
def test_each_worker_gets_its_own_gpu_and_a_share_of_the_cores(
        monkeypatch: pytest.MonkeyPatch, gpus_per_trial: float | None, gpus: set[float]) -> None:
    monkeypatch.setattr(_process, "_gpu_ids", lambda: ["3", "5"])  # as CUDA_VISIBLE_DEVICES=3,5
    monkeypatch.setattr(_process, "_cores", lambda: 4)
    study = tn.Study(objectives={"acc": "max"}, strategy="random", seed=0)
    executor = tn.execution.ProcessExecutor(workers=2, gpus_per_trial=gpus_per_trial)
    study.optimize(where_it_runs, trials=8, executor=executor)
    trials = study.trials
    assert len(trials) == 8 and all(t.state is COMPLETE for t in trials)
    by_worker: dict[float, set[float]] = {}
    for t in trials:
        by_worker.setdefault(t.metrics["pid"], set()).add(t.metrics["gpu"])
    assert all(len(seen) == 1 for seen in by_worker.values())  # a worker keeps its GPU
    assert set().union(*by_worker.values()) <= gpus
    if len(by_worker) == 2 and gpus_per_trial is None:
        assert set().union(*by_worker.values()) == gpus  # two workers, two GPUs
    assert {t.metrics["threads"] for t in trials} == {2.0}  # 4 cores // 2 workers


# -- memory: nothing of a trial outlives it ------------------------------------------------------
MODELS: list[weakref.ref[nn.Module]] = []  # every model built in this process


class TrackedSpace:
    """A small conv net space that keeps a weak reference to every model it builds."""

    def __call__(self, hp: tn.HP) -> nn.Module:
        width = hp.choice("width", [4, 8, 16])
        model = nn.Sequential(nn.Conv1d(1, width, 3, padding=1), nn.BatchNorm1d(width),
                              nn.ReLU(), nn.Flatten(), nn.Linear(width * 16, 4))
        MODELS.append(weakref.ref(model))
        return model


def live() -> dict[str, int]:
    """Models built here still alive, and live tensors and modules (after a collection)."""
    gc.collect()
    counts = {"models": sum(r() is not None for r in MODELS), "tensors": 0, "modules": 0}
    for obj in gc.get_objects():
        if issubclass(type(obj), torch.Tensor):  # (isinstance wakes lazy modules)
            counts["tensors"] += 1
        elif issubclass(type(obj), nn.Module):
            counts["modules"] += 1
    return counts


class Counted:
    """A search's objective that first counts what the worker holds from earlier trials."""

    def __init__(self, search: tn.ModelSearch) -> None:
        self.objective = search.objective

    def __call__(self, hp: tn.HP) -> dict[str, float]:
        before = live()
        out = dict(self.objective(hp))
        return {**out, **{f"live_{k}": float(v) for k, v in before.items()},
                "pid": float(os.getpid())}


def tiny_search(**kw: Any) -> tn.ModelSearch:
    g = torch.Generator().manual_seed(0)
    data = tn.data.from_tensors((torch.randn(96, 1, 16, generator=g), torch.arange(96) % 4),
                                (torch.randn(32, 1, 16, generator=g), torch.arange(32) % 4))
    search = tn.ModelSearch(space=TrackedSpace(), data=data, strategy="random", redraws=0,
                            trainer=tn.Trainer(epochs=1, batch_size=32), progress=False, **kw)
    search.check()
    return search


def test_no_model_tensor_or_module_outlives_its_trial_inline() -> None:
    search = tiny_search(objectives={"val_accuracy": "max"},
                         constraints={"params": ("<=", 10**6)})
    study = search.make_study()
    seen: dict[int, dict[str, int]] = {}

    def count(s: tn.Study, trial: tn.FrozenTrial) -> None:
        if trial.number in (4, 9, 39):
            seen[trial.number] = live()

    study.optimize(search.objective, trials=40, callbacks=[count])
    assert all(t.state is COMPLETE for t in study.trials)
    assert len(MODELS) >= 40
    assert {n: c["models"] for n, c in seen.items()} == {4: 0, 9: 0, 39: 0}
    assert seen[39]["modules"] <= seen[4]["modules"], seen
    assert seen[39]["tensors"] <= seen[9]["tensors"], seen  # (the first trials warm caches)


def test_a_failed_trial_leaves_nothing_behind() -> None:
    def broken(hp: tn.HP) -> float:
        model = TrackedSpace()(hp)
        loss = model(torch.randn(8, 1, 16)).sum()  # an autograd graph the error's frames hold
        raise torch.cuda.OutOfMemoryError(f"CUDA out of memory (loss {loss.item():.1f})")

    study = tn.Study(objectives={"acc": "max"}, strategy="random", seed=0)
    before = live()
    study.optimize(broken, trials=5)
    after = live()
    assert all(t.error and t.error.startswith("OutOfMemoryError: CUDA out of memory")
               for t in study.trials)
    assert after["models"] == 0 and after["tensors"] <= before["tensors"], (before, after)


@pytest.mark.slow  # worker processes, and a gc census in them after every trial
def test_no_model_or_tensor_outlives_its_trial_in_a_worker() -> None:
    search = tiny_search(workers=2)
    study = search.make_study()
    study.optimize(Counted(search), trials=12, workers=2, executor="process")
    trials = study.trials
    assert all(t.state is COMPLETE for t in trials)
    by_worker: dict[float, list[dict[str, float]]] = {}
    for t in trials:
        by_worker.setdefault(t.metrics["pid"], []).append(t.metrics)
    assert max(len(runs) for runs in by_worker.values()) >= 4
    for runs in by_worker.values():
        assert all(m["live_models"] == 0 for m in runs), runs  # the last trial's model is gone
        if len(runs) >= 4:  # from its third trial on, a worker holds as much as before
            assert max(m["live_tensors"] for m in runs[2:]) == runs[2]["live_tensors"], runs
            assert max(m["live_modules"] for m in runs[2:]) == runs[2]["live_modules"], runs


HOARD: list[bytes] = []  # what the leaking objective keeps, per worker process


def leaking(hp: tn.HP) -> dict[str, float]:
    """Keeps 16 MB (touched pages) per trial, as a native cache growing without bound would."""
    from torchnas.execution._worker import resident_mb

    hp.int("x", 0, 10**6)
    HOARD.append(b"\x01" * (16 * 2**20))
    return {"acc": 1.0, "pid": float(os.getpid()), "rss": resident_mb() or 0.0}


@pytest.mark.parametrize("recycle_mb", [40.0, None])
def test_a_worker_whose_memory_grows_is_replaced_between_trials(recycle_mb: float | None) -> None:
    study = tn.Study(objectives={"acc": "max"}, strategy="random", seed=0)
    executor = tn.execution.ProcessExecutor(workers=2, recycle_mb=recycle_mb)
    study.optimize(leaking, trials=12, executor=executor)
    trials = study.trials
    assert len(trials) == 12 and all(t.state is COMPLETE and t.attempts == 1 for t in trials)
    lives: dict[float, list[float]] = {}
    for t in trials:
        lives.setdefault(t.metrics["pid"], []).append(t.metrics["rss"])
    if recycle_mb is None:
        assert len(lives) <= 2
        assert max(len(rss) for rss in lives.values()) >= 6
        return
    assert len(lives) >= 3  # 12 trials of 16 MB on 2 workers: some were replaced
    for rss in lives.values():  # replaced after the trial that passed the limit
        assert len(rss) <= 4, lives
        assert rss[-1] - rss[0] <= recycle_mb + 16 + 8, lives
