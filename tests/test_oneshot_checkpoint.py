"""Supernet checkpoints: a one-shot search stopped in the middle resumes from its last epoch and
ends in the same state as a search that was never stopped (weights, logits, history, result)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
import torch
from helpers import Zero, signals
from torch import nn

import torchnas as tn
from torchnas.oneshot import DARTS, OneShot
from torchnas.testing.oneshot import Kill, assert_same, final_state, killed_at


def space(hp: tn.HP) -> nn.Module:
    """Two searched edges with batch norm (running statistics are part of the state)."""
    ops = {"none": Zero, "skip": nn.Identity,
           "conv": lambda: nn.Sequential(nn.Conv1d(2, 2, 3, padding=1), nn.BatchNorm1d(2))}
    return nn.Sequential(nn.Conv1d(1, 2, 1), hp.op("e1", ops), hp.op("e2", ops), nn.Flatten(),
                         nn.Linear(32, 2))


def run(method: OneShot, data: tn.data.Data, **kw: Any) -> dict[str, Any]:
    torch.manual_seed(3)  # the initial weights (search seeds them only for nets it builds)
    net = method.supernet(space, data, seed=3)
    return final_state(method.search(space, data, seed=3, net=net, **kw), net)


@pytest.mark.parametrize("method", [
    DARTS(epochs=4, batch_size=32, warmup_epochs=1),
    DARTS(epochs=3, batch_size=32, order=2),
    DARTS(epochs=4, batch_size=32, warmup_epochs=1, amp="float16"),
], ids=["darts-warmup", "darts2", "darts-fp16"])
def test_a_killed_search_resumes_to_the_same_final_state(method: OneShot,
                                                         tmp_path: Path) -> None:
    """Settings the contract (every registered method at its defaults, 4 epochs:
    tests/test_contract_oneshot.py) does not meet: a warm-up, second order, float16."""
    data = signals(384)
    straight = run(method, data)
    ckpt = tmp_path / "s.supernet.pt"
    with pytest.raises(Kill):
        run(method, data, checkpoint=ckpt, on_epoch=killed_at(3))
    assert ckpt.exists() and torch.load(ckpt, weights_only=True)["epoch"] == 2
    seen: list[int] = []
    resumed = run(method, data, checkpoint=ckpt, on_epoch=lambda e, m: seen.append(e))
    assert seen == list(range(3, method.epochs + 1))  # epochs 1 and 2 were not run again
    assert_same(resumed, straight)
    assert torch.load(ckpt, weights_only=True)["epoch"] == method.epochs


def test_a_finished_checkpoint_only_derives_again(tmp_path: Path) -> None:
    data = signals(384)
    method = DARTS(epochs=2, batch_size=32)
    ckpt = tmp_path / "s.supernet.pt"
    first = run(method, data, checkpoint=ckpt)
    seen: list[int] = []
    again = run(method, data, checkpoint=ckpt, on_epoch=lambda e, m: seen.append(e))
    assert seen == []
    assert_same(again, first)


def test_a_checkpoint_of_other_settings_is_not_used(tmp_path: Path,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    data = signals(384)
    ckpt = tmp_path / "s.supernet.pt"
    run(DARTS(epochs=2, batch_size=32), data, checkpoint=ckpt)
    seen: list[int] = []
    with caplog.at_level(logging.WARNING, logger="torchnas"):
        run(DARTS(epochs=2, batch_size=32, arch_lr=0.01), data, checkpoint=ckpt,
            on_epoch=lambda e, m: seen.append(e))
    assert seen == [1, 2]  # started over
    assert "differs in settings" in caplog.text
    ckpt.write_bytes(b"not a checkpoint")
    with caplog.at_level(logging.WARNING, logger="torchnas"):
        run(DARTS(epochs=1, batch_size=32), data, checkpoint=ckpt)
    assert "unreadable" in caplog.text


def test_model_search_resumes_a_killed_supernet_search(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Through ModelSearch: the checkpoint lies beside the storage; a search interrupted in
    its third epoch goes on from there and records one trial."""
    data = signals(384)
    db = tmp_path / "runs" / "s.db"
    strategy = {"name": "darts", "epochs": 4, "batch_size": 32}

    def search(**kw: Any) -> tn.ModelSearch:
        return tn.ModelSearch(space=space, data=data, trainer=tn.Trainer(epochs=1),
                              strategy=strategy, storage=str(db), name="cut", progress=False,
                              **kw)

    import torchnas.oneshot._base as base

    original = base.SearchRun.end_epoch

    def end_epoch(self: Any, epoch: int, metrics: dict[str, float]) -> None:
        original(self, epoch, metrics)
        if epoch == 3:
            raise Kill

    with monkeypatch.context() as patch:
        patch.setattr(base.SearchRun, "end_epoch", end_epoch)
        with pytest.raises(Kill):
            search().run()
    ckpt = tn.oneshot.checkpoint_path(str(db), "cut")
    assert ckpt is not None and ckpt == tmp_path / "runs" / "s.cut.supernet.pt"
    assert torch.load(ckpt, weights_only=True)["epoch"] == 2
    s = search()
    s.run()
    epochs = [row["epoch"] for row in s.oneshot_result.history]
    assert epochs == [1.0, 2.0, 3.0, 4.0]
    trials = tn.load_study(str(db), name="cut").trials
    assert [t.state for t in trials][-1] is tn.TrialState.COMPLETE
    assert trials[-1].arch == s.oneshot_result.arch


KILLED_SEARCH = """
import sys, time, torch
from torch import nn
import torchnas as tn
torch.set_num_threads(1)


def space(hp):
    ops = {"skip": nn.Identity,
           "conv": lambda: nn.Sequential(nn.Conv1d(2, 2, 3, padding=1), nn.BatchNorm1d(2))}
    return nn.Sequential(nn.Conv1d(1, 2, 1), hp.op("e1", ops), hp.op("e2", ops), nn.Flatten(),
                         nn.Linear(32, 2))


gen = torch.Generator().manual_seed(0)
x = torch.randn(256, 1, 16, generator=gen)
y = (x[:, 0, :8].sum(1) > x[:, 0, 8:].sum(1)).long()
data = tn.data.from_tensors((x[:192], y[:192]), (x[192:], y[192:]))
method = tn.oneshot.SPOS(epochs=EPOCHS, batch_size=16, population=4, generations=2, parents=2)
"""


@pytest.mark.slow
def test_a_search_process_killed_with_sigkill_resumes(tmp_path: Path) -> None:
    """A real kill: the search runs in a child process, SIGKILLed once its checkpoint holds
    epoch 2 or later; the search started again goes on from that epoch and ends like a search
    never stopped."""
    import os
    import signal
    import subprocess
    import sys
    import time

    epochs = 20
    source = KILLED_SEARCH.replace("EPOCHS", str(epochs))
    ckpt = tmp_path / "k.supernet.pt"
    script = tmp_path / "search.py"
    script.write_text(source + f"method.search(space, data, seed=5, checkpoint={str(ckpt)!r})\n")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}
    child = subprocess.Popen([sys.executable, str(script)], env=env)
    try:
        deadline = time.monotonic() + 120
        epoch = 0
        while epoch < 2 and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
            if ckpt.exists():
                epoch = torch.load(ckpt, weights_only=True)["epoch"]
        child.send_signal(signal.SIGKILL)
    finally:
        child.wait()
    assert child.returncode == -signal.SIGKILL, "the search ended before it was killed"
    epoch = torch.load(ckpt, weights_only=True)["epoch"]
    assert 2 <= epoch < epochs
    scope: dict[str, Any] = {}
    exec(source, scope)  # the same space, data and method here
    seen: list[int] = []
    resumed = scope["method"].search(scope["space"], scope["data"], seed=5, checkpoint=ckpt,
                                     on_epoch=lambda e, m: seen.append(e))
    assert seen == list(range(epoch + 1, epochs + 1))
    straight = scope["method"].search(scope["space"], scope["data"], seed=5)
    assert resumed.arch == straight.arch
    assert [h["epoch"] for h in resumed.history if "epoch" in h] == list(range(1, epochs + 1))
    for a, b in zip(resumed.history, straight.history, strict=True):
        assert {k: v for k, v in a.items() if k != "seconds"} == pytest.approx(
            {k: v for k, v in b.items() if k != "seconds"})
