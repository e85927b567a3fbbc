"""No oversubscription: workers x threads never exceed the cores by default, a trainer takes no
more threads than its worker was given, an explicit oversubscription is refused, and a warning
says when the cores are busy before a search starts.

Objectives are module-level functions: worker processes import them by name.
"""

from __future__ import annotations

import logging
import os

import pytest
import torch
from torch import nn

import torchnas as tn
from torchnas.execution import device_plan
from torchnas.execution._threads import busy_cores, cores, thread_limit, warn_if_busy

CORES = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
X = torch.randn(64, 8, generator=torch.Generator().manual_seed(0))
Y = (X[:, 0] > 0).long()
DATA = tn.data.from_tensors((X[:48], Y[:48]), (X[48:], Y[48:]))


class Spy(nn.Module):
    """A linear model that records the torch threads of every forward pass."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(8, 2)
        self.seen: list[int] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append(torch.get_num_threads())
        return self.linear(x)


def train_with_many_threads(hp: tn.HP) -> dict[str, float]:
    """The threads a trial starts with, and those a ``Trainer(threads=64)`` trains with."""
    hp.int("x", 0, 100)
    start = torch.get_num_threads()
    model = Spy()
    metrics = tn.Trainer(epochs=1, batch_size=16, threads=64, device="cpu").fit(model, DATA)
    return {"acc": metrics["val_accuracy"], "start": start, "fit": max(model.seen),
            "after": torch.get_num_threads()}


def test_the_cores_are_the_affinity() -> None:
    assert cores() == CORES
    assert thread_limit() == CORES  # not in a worker: the cores


def test_process_workers_and_their_trainers_never_use_more_threads_than_their_share() -> None:
    study = tn.Study(objectives={"acc": "max"}, strategy="random", seed=0)
    study.optimize(train_with_many_threads, trials=4, workers=2, executor="process")
    trials = study.trials
    assert [t.state for t in trials] == [tn.TrialState.COMPLETE] * 4
    share = max(1, CORES // 2)
    for t in trials:
        assert t.metrics["start"] == share
        assert t.metrics["fit"] == share  # Trainer(threads=64) capped to the worker's share
        assert t.metrics["after"] == share  # and restored


def test_an_inline_trainer_is_capped_at_the_cores_with_an_info_log(
        caplog: pytest.LogCaptureFixture) -> None:
    before = torch.get_num_threads()
    with caplog.at_level(logging.INFO, logger="torchnas"):
        metrics = train_with_many_threads(tn.HP(tn.space.FixedSource({"x": 1})))
    assert metrics["fit"] == CORES and metrics["after"] == before
    assert f"Trainer(threads=64): training with {CORES} threads" in caplog.text


def test_each_worker_gets_its_share_and_an_explicit_oversubscription_is_refused() -> None:
    assert [p["threads"] for p in device_plan(2, None, [], cores=8)] == [4, 4]
    assert [p["threads"] for p in device_plan(3, None, [], cores=8)] == [2, 2, 2]
    assert [p["threads"] for p in device_plan(2, None, [], cores=8, threads=4)] == [4, 4]
    with pytest.raises(tn.ConfigError, match=r"threads_per_worker=3 x workers=3 is 9 threads "
                                             r"on 8 cores.*use threads_per_worker=2"):
        device_plan(3, None, [], cores=8, threads=3)
    with pytest.raises(tn.ConfigError, match=r"use workers=2 with threads_per_worker=1"):
        device_plan(4, None, [], cores=2, threads=1)
    study = tn.Study(objectives={"acc": "max"}, strategy="random", seed=0)
    executor = tn.execution.ProcessExecutor(workers=2, threads_per_worker=CORES)
    with pytest.raises(tn.ConfigError, match=rf"threads_per_worker={CORES} x workers=2"):
        study.optimize(train_with_many_threads, trials=1, executor=executor)
    assert study.trials == []
    search = tn.ModelSearch(space="mlp", data=DATA, workers=2, progress=False,
                            executor={"name": "process", "threads_per_worker": CORES})
    with pytest.raises(tn.ConfigError, match=rf"threads_per_worker={CORES} x workers=2"):
        search.check()  # before the space is explored


def test_more_workers_than_cores_warn_that_they_share_them(
        caplog: pytest.LogCaptureFixture) -> None:
    study = tn.Study(objectives={"acc": "max"}, strategy="random", seed=0)
    with caplog.at_level(logging.WARNING, logger="torchnas"):
        study.optimize(train_with_many_threads, trials=2, workers=CORES + 1, executor="process")
    assert f"workers={CORES + 1} on {CORES} cores: each worker has 1 thread" in caplog.text
    assert {t.metrics["fit"] for t in study.trials} == {1}


@pytest.mark.parametrize(("load", "cores_", "threads", "busy"), [
    (0.2, 2, 2, False),    # idle
    (1.2, 2, 2, True),     # one core busy: two threads would share the other
    (2.0, 2, 1, True),     # every core busy
    (1.4, 2, 1, False),    # a free core for the one thread
    (1.5, 16, 16, False),  # a desktop's background load
    (8.5, 16, 16, True),   # half of a big machine is busy
    (0.0, 4, 16, True),    # oversubscribed by the search itself
])
def test_the_cores_are_busy_when_the_load_leaves_too_few_free(
        load: float, cores_: int, threads: int, busy: bool) -> None:
    assert busy_cores(load, cores_, threads) is busy


def test_busy_cores_are_logged_with_the_load_and_what_gets_noisy(
        caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="torchnas"):
        assert warn_if_busy(10**6, workers=4)  # more threads than any machine has cores
    assert f"on {CORES} cores, before 4 trial(s) at once" in caplog.text
    assert "slower" in caplog.text and "latency_ms" in caplog.text


def test_the_trainer_documents_its_defaults() -> None:
    params = tn.Trainer().get_params()
    assert (params["optimizer"], params["lr"], params["batch_size"], params["epochs"],
            params["lr_schedule"]) == ("adam", 1e-3, 128, 10, "cosine")
    doc = " ".join((tn.Trainer.__doc__ or "").split())
    assert "Adam, ``lr=1e-3``, batches of 128, 10 epochs" in doc
    assert 'cosine learning-rate schedule stepped every batch from ``lr`` down to 0' in doc
    assert '``lr_schedule="constant"``' in doc
