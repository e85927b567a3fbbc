"""The one-shot cost penalty on several costs at once (``costs={metric: {"weight", "target"}}``):
each cost measured per candidate, penalized together, validated, and the old single-cost
spelling (``cost_weight``, ``cost_metric``, ``cost_target``) unchanged."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

import torchnas as tn
from torchnas.oneshot import DARTS, ENAS, SPOS, CostModel, CostTerm, Supernet, parse_costs


class Zero(nn.Module):
    """The ``none`` candidate: zeros shaped like its input (free in every cost)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * 0.0


def two_bits(n: int = 512, seed: int = 0) -> tn.data.Data:
    """Four classes: one bit per channel (its first half outweighs its second), so each of the
    space's two ops is needed for half of the answer."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 2, 16, generator=gen)
    bits = (x[:, :, :8].sum(2) > x[:, :, 8:].sum(2)).long()
    cut = n * 3 // 4
    y = 2 * bits[:, 0] + bits[:, 1]
    return tn.data.from_tensors((x[:cut], y[:cut]), (x[cut:], y[cut:]), num_classes=4)


class TwoBranches(nn.Module):
    def __init__(self, a: nn.Module, b: nn.Module) -> None:
        super().__init__()
        self.a, self.b, self.head = a, b, nn.Linear(32, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.cat([self.a(x[:, 0]), self.b(x[:, 1:]).flatten(1)], 1))


def space(hp: tn.HP) -> nn.Module:
    """``a``: a dense op heavy in parameters; ``b``: a wide 1x1 conv heavy in activations
    (memory) but light in parameters; either may be ``none``."""
    a = hp.op("a", {"dense": lambda: nn.Sequential(nn.Linear(16, 128), nn.Linear(128, 16)),
                    "none": Zero})
    b = hp.op("b", {"wide": lambda: nn.Sequential(nn.Conv1d(1, 64, 1), nn.Conv1d(64, 1, 1)),
                    "none": Zero})
    return TwoBranches(a, b)


def darts(costs: dict[str, Any]) -> tn.oneshot.OneShotResult:
    method = DARTS(epochs=4, batch_size=32, arch_lr=0.05, exclude_zero=False, costs=costs)
    return method.search(space, two_bits(), seed=2)


@pytest.fixture(scope="module")
def free() -> tn.oneshot.OneShotResult:
    """The search without a penalty (weights 0: the costs are measured, not penalized)."""
    return darts({"params": {"weight": 0}, "peak_memory_mb": {"weight": 0}})


@pytest.mark.slow
@pytest.mark.parametrize("costs", [
    {"params": {"weight": 1.0}, "peak_memory_mb": {"weight": 1.0}},
    {"params": {"target": 500}, "peak_memory": {"target": 0.01}},
], ids=["weights", "targets"])
def test_a_penalty_on_two_costs_lowers_each(free: tn.oneshot.OneShotResult,
                                            costs: dict[str, Any]) -> None:
    paid = darts(costs)
    assert free.arch["a"] == "dense"  # the task needs it: without a penalty it wins
    assert paid.arch == {"a": "none", "b": "none"}
    assert set(free.cost) == set(paid.cost) == {"params", "peak_memory"}
    assert paid.cost["params"] < free.cost["params"] / 10
    assert paid.cost["peak_memory"] < free.cost["peak_memory"] / 10
    assert paid.alphas["a"]["dense"] < free.alphas["a"]["dense"]
    assert paid.alphas["b"]["wide"] < free.alphas["b"]["wide"]
    for metric in ("params", "peak_memory"):  # every cost's expected value, per epoch
        curve = [h[f"expected_{metric}"] for h in paid.history]
        assert curve[-1] < curve[0]
    assert paid.settings["costs"] == costs


def test_each_cost_is_measured_per_candidate() -> None:
    net = Supernet(space, torch.randn(2, 2, 16))
    params = CostModel(net, "params")
    memory = CostModel(net, "peak_memory_mb", batch_size=32)
    assert memory.metric == "peak_memory"
    (_, a_params), (_, b_params) = params.ops
    assert a_params.tolist() == [16 * 128 + 128 + 128 * 16 + 16, 0.0]
    assert b_params.tolist() == [64 + 64 + 64 + 1, 0.0]
    (_, a_mem), (_, b_mem) = memory.ops
    dense, wide, none = float(a_mem[0]), float(b_mem[0]), float(b_mem[1])
    # the wide conv holds 64 channels of activations per sample: more than the dense op,
    # whose weights dominate its (smaller) memory; none holds only its output
    assert wide > dense > none > 0
    assert wide >= 32 * 64 * 16 * 4 / 2**20
    assert none == pytest.approx(32 * 16 * 4 / 2**20, rel=0.01)  # and a scalar
    # the expected cost is differentiable in the architecture logits
    terms = parse_costs({"params": {"weight": 1.0}, "peak_memory_mb": {"target": 0.01}})
    total = sum(t.penalty(m, net) for t, m in zip(terms, (params, memory), strict=True))
    assert isinstance(total, torch.Tensor)
    total.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.arch_parameters())


def test_spos_keeps_to_every_target() -> None:
    limits = {"params": {"target": 500}, "peak_memory_mb": {"target": 0.01}}
    method = SPOS(epochs=1, batch_size=32, population=4, generations=2, exclude_zero=False,
                  costs=limits)
    result = method.search(space, two_bits(256), seed=0)
    assert result.arch == {"a": "none", "b": "none"}  # the only path within both
    assert result.cost["params"] <= 500 and result.cost["peak_memory"] <= 0.01
    strict = SPOS(epochs=1, batch_size=32, population=4, generations=2, exclude_zero=False,
                  costs={"params": {"target": 1}, "latency_ms": {"weight": 1.0}})
    with pytest.raises(ValueError, match=r"no path satisfies cost_target 1.0 \(params\)"):
        strict.search(space, two_bits(256), seed=0)


def test_path_penalties_of_sampled_methods() -> None:
    net = Supernet(space, torch.randn(2, 2, 16))
    params = CostModel(net, "params")
    dense, none = {"a": [0], "b": [1]}, {"a": [1], "b": [1]}
    weighted = CostTerm("params", weight=2.0)
    assert weighted.path_penalty(params, none, hard_target=False) == 0.0
    assert weighted.path_penalty(params, dense, hard_target=False) == pytest.approx(
        2.0 * (params.of_path(dense) - params.low) / (params.high - params.low))
    target = CostTerm("params", target=1000.0)  # a target alone: its excess (ENAS)
    assert target.path_penalty(params, dense, hard_target=False) == pytest.approx(
        params.of_path(dense) / 1000.0 - 1.0)
    assert target.path_penalty(params, none, hard_target=False) == 0.0
    assert target.path_penalty(params, dense, hard_target=True) == 0.0  # SPOS: a limit
    result = ENAS(epochs=1, batch_size=32, exclude_zero=False,
                  costs={"params": {"target": 1000}, "peak_memory_mb": {"weight": 0.5}}
                  ).search(space, two_bits(256), seed=0)
    assert set(result.cost) == {"params", "peak_memory"}


@pytest.mark.parametrize(("costs", "message"), [
    ("params", "costs must be a dict"),
    ({"energy": {"weight": 1}}, "unknown cost metric 'energy'"),
    ({"params": 1.0}, r"costs\['params'\] must be a dict with 'weight', 'target'"),
    ({"params": {}}, r"costs\['params'\] must be a dict"),
    ({"params": {"wieght": 1}}, "unknown key 'wieght'"),
    ({"params": {"weight": -1}}, r"costs\['params'\]\['weight'\] must be a finite number >= 0, "
                                 "got -1"),
    ({"params": {"weight": True}}, r"\['weight'\] must be a finite number >= 0, got True"),
    ({"latency_ms": {"target": 0}}, r"costs\['latency_ms'\]\['target'\] must be a finite "
                                    "number > 0, got 0"),
    ({"flops": {"target": float("nan")}}, r"\['target'\] must be a finite number > 0"),
    ({"latency": {"weight": 1}, "latency_ms": {"target": 2}},
     "'latency_ms' and 'latency' are the same cost"),
])
def test_bad_cost_specs_name_the_key_and_value(costs: Any, message: str) -> None:
    with pytest.raises(tn.ConfigError, match=message):
        tn.oneshot.create("darts", costs=costs)
    with pytest.raises(tn.ConfigError, match=message):
        parse_costs(costs)


def test_costs_and_the_old_spelling_are_not_mixed() -> None:
    with pytest.raises(tn.ConfigError, match="give costs or cost_weight/cost_target, not both"):
        tn.oneshot.create("darts", cost_weight=1.0, costs={"params": {"weight": 1.0}})
    method = tn.oneshot.create("gdas", costs={"latency_ms": {"target": 2.0},
                                              "params": {"weight": 0.5},
                                              "peak_memory_mb": {"target": 50}})
    assert method.cost_terms() == [CostTerm("latency", None, 2.0), CostTerm("params", 0.5, None),
                                   CostTerm("peak_memory", None, 50.0)]


def test_the_old_single_cost_spelling_still_works() -> None:
    old = tn.oneshot.create("darts", cost_weight=2.0, cost_metric="latency_ms", cost_target=3.0)
    assert old.cost_terms() == [CostTerm("latency", 2.0, 3.0)]
    assert tn.oneshot.create("darts").cost_terms() == []
    assert tn.oneshot.create("spos", cost_target=5).cost_terms() == [CostTerm("params", 0.0, 5)]
    result = DARTS(epochs=2, batch_size=32, arch_lr=0.05, exclude_zero=False,
                   cost_weight=2.0).search(space, two_bits(256), seed=0)
    assert list(result.cost) == ["params"]
    assert "expected_cost" in result.history[-1]
    assert "expected_params" not in result.history[-1]  # one cost: the old history
