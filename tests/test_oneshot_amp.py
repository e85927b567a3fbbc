"""Mixed precision in one-shot search: the supernet's forward passes autocast to the chosen
type (on CPU too, with ``amp="bfloat16"`` / ``"float16"``), float16 runs through a gradient
scaler, and the search still finds what it finds in full precision."""

from __future__ import annotations

import pytest
import torch
from helpers import Zero, output_dtypes, signals
from torch import nn

import torchnas as tn
from torchnas.oneshot import DARTS, ENAS, GDAS, SPOS, OneShot


def conv_or_none(hp: tn.HP) -> nn.Module:
    op = hp.op("op", {"none": Zero, "conv": lambda: nn.Conv1d(1, 1, 3, padding=1)})
    return nn.Sequential(op, nn.Flatten(), nn.Linear(16, 2))


def two_edges(hp: tn.HP) -> nn.Module:
    ops = {"skip": nn.Identity,
           "conv": lambda: nn.Sequential(nn.Conv1d(2, 2, 3, padding=1), nn.BatchNorm1d(2))}
    return nn.Sequential(nn.Conv1d(1, 2, 1), hp.op("e1", ops), hp.op("e2", ops), nn.Flatten(),
                         nn.Linear(32, 2))


@pytest.mark.parametrize("method", [
    DARTS(epochs=2, batch_size=32, amp="bfloat16"),
    DARTS(epochs=2, batch_size=32, amp="float16", order=2),
    GDAS(epochs=2, batch_size=32, amp="bfloat16"),
    SPOS(epochs=2, batch_size=32, amp="float16", population=4, generations=2, parents=2),
    ENAS(epochs=2, batch_size=32, amp="bfloat16", controller_steps=3, derive_samples=2),
], ids=["darts", "darts2-fp16", "gdas", "spos-fp16", "enas"])
def test_every_method_trains_its_supernet_in_the_chosen_type(method: OneShot) -> None:
    data = signals(256)
    net = method.supernet(two_edges, data, seed=0)
    seen = output_dtypes(net, nn.Conv1d)
    result = method.search(two_edges, data, seed=0, net=net)
    chosen = getattr(torch, str(method.amp))
    if getattr(method, "order", 1) == 2:  # its second-order steps run in full precision
        assert set(seen) == {chosen, torch.float32}
    else:
        assert set(seen) == {chosen}
    assert set(result.arch) == {"e1", "e2"}
    assert all(p.dtype == torch.float32 for p in net.parameters())  # master weights
    for weights in result.alphas.values():
        assert all(0.0 <= w <= 1.0 for w in weights.values())


def test_darts_in_float16_finds_the_op_that_solves_the_task() -> None:
    method = DARTS(epochs=6, batch_size=32, arch_lr=0.05, exclude_zero=False, amp="float16",
                   warmup_epochs=1)
    data = signals()
    torch.manual_seed(0)  # the initial weights (supernet() seeds the logits only)
    net = method.supernet(conv_or_none, data, seed=0)
    result = method.search(conv_or_none, data, seed=0, net=net)
    assert result.arch == {"op": "conv"} and result.alphas["op"]["conv"] > 0.7
    assert result.history[-1]["val_accuracy"] > 0.7  # chance: 0.5


def test_amp_true_is_full_precision_off_cuda() -> None:
    method = DARTS(epochs=1, batch_size=32, amp=True, device="cpu")
    data = signals(256)
    net = method.supernet(two_edges, data, seed=0)
    seen = output_dtypes(net, nn.Conv1d)
    method.search(two_edges, data, seed=0, net=net)
    assert seen and set(seen) == {torch.float32}


def test_an_unknown_amp_type_is_refused_naming_it() -> None:
    with pytest.raises(tn.ConfigError, match="darts: amp must be True, False or one of"):
        tn.oneshot.create("darts", amp="half")
