"""The one-shot methods on toy problems with a known answer (NNI's test_sanity, for one-shot).

A signal task that only a convolution can solve (``none`` outputs zeros); a task that a skip
connection solves best (the collapse guard); two equally good ops of different size (the cost
penalty). Every method derives an architecture that ``tn.build`` rebuilds.
"""

from __future__ import annotations

import random
from typing import Any

import pytest
import torch
from helpers import Zero, signals
from torch import nn

import torchnas as tn
from torchnas.oneshot import DARTS, ENAS, GDAS, SPOS, CollapseReport, Supernet, recalibrate_bn


def conv_or_none(hp: tn.HP) -> nn.Module:
    op = hp.op("op", {"none": Zero, "conv": lambda: nn.Conv1d(1, 1, 3, padding=1)})
    return nn.Sequential(op, nn.Flatten(), nn.Linear(16, 2))


def skip_or_conv(hp: tn.HP) -> nn.Module:
    """Two edges where an identity is all the head needs; a random conv only blurs."""
    ops = {"conv": lambda: nn.Sequential(nn.Conv1d(1, 1, 5, padding=2), nn.Tanh()),
           "skip": nn.Identity}
    return nn.Sequential(hp.op("e1", ops), hp.op("e2", ops), nn.Flatten(), nn.Linear(16, 2))


def small_or_big(hp: tn.HP) -> nn.Module:
    ops = {"big": lambda: nn.Sequential(nn.Linear(16, 128), nn.Linear(128, 16)),
           "small": lambda: nn.Linear(16, 16)}
    return nn.Sequential(nn.Flatten(), hp.op("op", ops), nn.Linear(16, 2))


def quick(cls: Any, **kw: Any) -> Any:
    kw.setdefault("epochs", 4)
    kw.setdefault("batch_size", 32)
    return cls(**kw)


def weight(result: tn.oneshot.OneShotResult, label: str, name: str) -> float:
    return result.alphas[label][name]


@pytest.mark.parametrize("order", [1, 2])
def test_darts_finds_the_op_that_solves_the_task(order: int) -> None:
    data = signals()
    result = quick(DARTS, order=order, arch_lr=0.05, epochs=6, exclude_zero=False).search(
        conv_or_none, data, seed=0)
    assert result.arch == {"op": "conv"}
    assert weight(result, "op", "conv") > 0.7
    losses = [h["val_loss"] for h in result.history]
    assert losses[-1] < losses[0]
    assert result.history[-1]["val_accuracy"] > 0.7  # chance: 0.5
    assert tn.build(conv_or_none, result.arch)[0].__class__ is nn.Conv1d
    assert not result.collapse.collapsed and result.collapse.zero == {}


def test_gdas_runs_one_path_per_step_and_learns() -> None:
    data = signals()
    method = quick(GDAS, arch_lr=0.05, epochs=6, exclude_zero=False)
    torch.manual_seed(0)  # the initial weights (supernet() seeds the logits only)
    net = method.supernet(conv_or_none, data)
    calls = {"none": 0, "conv": 0, "passes": 0}
    for name, m in zip(("none", "conv"), net.mixed_ops()[0].candidates, strict=True):
        m.register_forward_hook(lambda *_, n=name: calls.__setitem__(n, calls[n] + 1))
    net.model.register_forward_hook(lambda *_: calls.__setitem__("passes", calls["passes"] + 1))
    result = method.search(conv_or_none, data, net=net)
    assert calls["passes"] > 0
    assert calls["none"] + calls["conv"] == calls["passes"]  # one candidate per forward pass
    assert calls["conv"] > calls["none"] > 0  # both drawn, the better one more often
    assert result.arch == {"op": "conv"}


def test_spos_trains_single_paths_then_evolves_with_recalibrated_batch_norm() -> None:
    def space(hp: tn.HP) -> nn.Module:
        ops = {"none": Zero, "conv": lambda: nn.Sequential(
            nn.Conv1d(4, 4, 3, padding=1), nn.BatchNorm1d(4)), "skip": nn.Identity}
        return nn.Sequential(nn.Conv1d(1, 4, 1), hp.op("a", ops), hp.op("b", ops),
                             nn.Flatten(), nn.Linear(64, 2))

    method = quick(SPOS, epochs=3, population=6, generations=3, parents=2, exclude_zero=False)
    result = method.search(space, signals(), seed=1)
    generations = [h for h in result.history if "generation" in h]
    assert [h["generation"] for h in generations] == [1.0, 2.0, 3.0]
    assert generations[-1]["evaluated"] >= 6
    assert "none" not in (result.arch["a"], result.arch["b"])  # a zero edge cuts the signal
    assert generations[-1]["best_fitness"] > 0.7
    for label in ("a", "b"):
        assert sum(result.alphas[label].values()) == pytest.approx(1.0)
    model = tn.build(space, result.arch)  # the derived path as a standalone model
    kinds = {"none": Zero, "conv": nn.Sequential, "skip": nn.Identity}
    assert [type(model[i]) for i in (1, 2)] == [kinds[result.arch[k]] for k in ("a", "b")]
    assert model.eval()(torch.randn(3, 1, 16)).shape == (3, 2)


def test_batch_norm_recalibration_estimates_the_path_statistics() -> None:
    net = nn.Sequential(nn.Linear(3, 3), nn.BatchNorm1d(3))
    net[1].running_mean.fill_(100.0)
    x = torch.randn(64, 3)
    recalibrate_bn(net, [(x[:32], None), (x[32:], None)], steps=2)
    with torch.no_grad():
        h = net[0](x)
    assert torch.allclose(net[1].running_mean, h.mean(0), atol=1e-5)
    assert net[1].momentum == 0.1 and net.training


def test_enas_controller_learns_the_op_that_solves_the_task() -> None:
    method = quick(ENAS, epochs=5, controller_steps=15, controller_lr=0.05, derive_samples=2,
                   exclude_zero=False)
    result = method.search(conv_or_none, signals(), seed=0)
    assert result.arch == {"op": "conv"}
    assert sum(result.alphas["op"].values()) == pytest.approx(1.0)
    assert result.alphas["op"]["conv"] > 0.5
    assert {"train_loss", "reward"} <= set(result.history[-1])


def rigged(net: Supernet, winner: str) -> None:
    with torch.no_grad():
        for c in net.choices.values():
            c.logits.zero_()
            c.logits[c.names.index(winner)] = 1.0


def test_collapse_is_detected_when_skips_take_over() -> None:
    net = Supernet(skip_or_conv, torch.randn(2, 1, 16))
    rigged(net, "skip")
    report = CollapseReport.of(net, net.best_path(), threshold=0.5)
    assert report.collapsed and report.param_free == {"e1": "skip", "e2": "skip"}
    assert "collapsed: 2/2" in str(report)
    rigged(net, "conv")
    assert not CollapseReport.of(net, net.best_path(), threshold=0.5).collapsed


def test_early_stop_guard_stops_before_the_collapse() -> None:
    data = signals()
    method = quick(DARTS, arch_lr=0.3, epochs=6, warmup_epochs=1, collapse_guard="early_stop",
                   collapse_threshold=0.0)
    torch.manual_seed(0)  # the initial weights (supernet() seeds the logits only)
    net = method.supernet(skip_or_conv, data)
    rigged(net, "conv")
    result = method.search(skip_or_conv, data, net=net)
    assert result.collapse.stopped_at is not None
    assert len(result.history) == result.collapse.stopped_at
    assert result.arch == {"e1": "conv", "e2": "conv"}  # from the epoch before the collapse
    assert not result.collapse.collapsed and result.collapse.guard == "early_stop"
    unguarded = quick(DARTS, arch_lr=0.3, epochs=6, warmup_epochs=1, collapse_threshold=0.0)
    torch.manual_seed(0)
    net = unguarded.supernet(skip_or_conv, data)
    rigged(net, "conv")
    assert unguarded.search(skip_or_conv, data, net=net).collapse.collapsed


def test_aux_skip_guard_adds_a_decaying_skip() -> None:
    net = Supernet(skip_or_conv, torch.randn(2, 1, 16))
    x = torch.randn(4, 1, 16)
    op = net.mixed_ops()[0]
    base = op(x)
    net.state.aux_skip = 0.5
    assert torch.allclose(op(x), base + 0.5 * x)
    method = quick(DARTS, epochs=2, collapse_guard="aux_skip")
    seen: list[float] = []
    method.search(skip_or_conv, signals(), on_epoch=lambda e, m: seen.append(net.state.aux_skip),
                  net=net)
    assert seen == [1.0, 0.5] and net.state.aux_skip == 0.0


def test_cost_penalty_prefers_the_cheaper_of_two_equal_ops() -> None:
    data = signals()
    free = quick(DARTS, arch_lr=0.05, epochs=3).search(small_or_big, data, seed=0)
    paid = quick(DARTS, arch_lr=0.05, epochs=3, cost_weight=2.0).search(small_or_big, data,
                                                                       seed=0)
    assert paid.arch == {"op": "small"}
    assert weight(paid, "op", "small") > weight(free, "op", "small")
    assert paid.cost["params"] < 16 * 128 * 2
    history = [h["expected_cost"] for h in paid.history]
    assert history[-1] < history[0]


def test_spos_keeps_to_a_cost_limit() -> None:
    method = quick(SPOS, epochs=1, population=4, generations=2, cost_target=16 * 16 + 16 + 100)
    result = method.search(small_or_big, signals(), seed=0)
    assert result.arch == {"op": "small"}


def test_spos_with_no_path_under_its_cost_limit_says_so() -> None:
    method = quick(SPOS, epochs=1, population=4, generations=3, cost_target=1)
    with pytest.raises(ValueError, match="spos: no path satisfies cost_target 1 "):
        method.search(small_or_big, signals(256), seed=0)


def test_bad_settings_name_the_setting() -> None:
    with pytest.raises(tn.ConfigError, match="order"):
        tn.oneshot.create("darts", order=3)
    with pytest.raises(tn.ConfigError, match="collapse_guard"):
        tn.oneshot.create("gdas", collapse_guard="sometimes")
    with pytest.raises(tn.ConfigError, match="no_such"):
        tn.oneshot.create("spos", no_such=1)
    with pytest.raises(tn.ConfigError, match="did you mean 'darts'"):
        tn.oneshot.create("dart")
    assert tn.oneshot.available() == ["darts", "enas", "gdas", "pc_darts", "spos"]


@pytest.mark.parametrize("metric", ["params", "flops"])
def test_costs_are_measured_per_candidate(metric: str) -> None:
    net = Supernet(small_or_big, torch.randn(2, 1, 16))
    costs = tn.oneshot.CostModel(net, metric)
    [(label, per_candidate)] = costs.ops
    big, small = per_candidate.tolist()
    expected = {"params": (16 * 128 + 128 + 128 * 16 + 16, 16 * 16 + 16),
                "flops": (2 * (16 * 128 + 128 * 16), 2 * 16 * 16)}[metric]
    assert label == "op" and (big, small) == expected
    path = {"op": [1]}
    assert costs.of_path(path) == costs.low < costs.high
    assert costs.low <= float(costs.expected(net).detach()) <= costs.high


def test_exclude_zero_never_derives_nor_samples_none() -> None:
    """The default: ``none`` (an op whose output is all zeros) is never derived, even when its
    logit is the highest, and single-path methods never draw it."""
    data = signals(256)
    net = DARTS().supernet(conv_or_none, data)
    assert net.zero_candidates() == {"op": [0]}
    with torch.no_grad():
        net.choices["op"].logits.copy_(torch.tensor([5.0, 0.0]))
    assert net.best_path() == {"op": [0]} and net.best_path(exclude_zero=True) == {"op": [1]}
    rng = random.Random(0)
    assert all(net.random_path(rng, exclude_zero=True) == {"op": [1]} for _ in range(20))
    ctrl = ENAS().controller(net)
    assert all(ctrl.sample()[0] == {"op": [1]} for _ in range(20))
    for method in (quick(SPOS, epochs=1, population=2, generations=1, parents=1),
                   quick(GDAS, epochs=1)):
        assert method.search(conv_or_none, data).arch == {"op": "conv"}


def test_warmup_defaults_to_half_the_epochs() -> None:
    assert DARTS(epochs=10).warmup() == 5 and GDAS(epochs=3).warmup() == 1
    assert DARTS(epochs=1).warmup() == 0
    assert DARTS(epochs=10, warmup_epochs=0).warmup() == 0
    assert tn.oneshot.create("darts").arch_lr == 0.03 and tn.oneshot.create("gdas").arch_lr == 3e-3
    with pytest.raises(tn.ConfigError, match="warmup_epochs"):
        tn.oneshot.create("darts", warmup_epochs=-1)
