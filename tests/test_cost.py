"""Cost metrics (``tn.metrics``) measured on real models, and their use in ModelSearch: as
objectives, as constraints, and the rejection of architectures that break a constraint before
any training."""

from __future__ import annotations

import time
from typing import Any

import pytest
import torch
from torch import nn

import torchnas as tn
from torchnas.strategies import RandomStrategy

REJECTED, COMPLETE = tn.TrialState.REJECTED, tn.TrialState.COMPLETE


# -- the measurements ---------------------------------------------------------------------------
def test_params_counts_trainable_parameters_once() -> None:
    model = nn.Sequential(nn.Linear(10, 5), nn.ReLU(), nn.Linear(5, 2))
    assert tn.metrics.params(model) == 10 * 5 + 5 + 5 * 2 + 2
    model[0].weight.requires_grad_(False)
    assert tn.metrics.params(model) == 5 + 5 * 2 + 2
    shared = nn.Linear(4, 4)
    assert tn.metrics.params(nn.Sequential(shared, shared)) == 20


@pytest.mark.parametrize(("layer", "shape", "expected"), [
    (nn.Linear(10, 3), (10,), 2 * 10 * 3),
    (nn.Conv1d(2, 4, 3, padding=1), (2, 16), 2 * 2 * 3 * 4 * 16),
    (nn.Conv2d(4, 8, 3, stride=2, padding=1), (4, 8, 8), 2 * 4 * 9 * 8 * (4 * 4)),
    (nn.Conv1d(6, 6, 5, padding=2, groups=6), (6, 20), 2 * 1 * 5 * 6 * 20),
])
def test_flops_are_the_hand_count_per_sample(layer: nn.Module, shape: tuple[int, ...],
                                             expected: int) -> None:
    for batch in (1, 5):  # a multiply-add counts 2; bias adds count 0; per sample
        assert tn.metrics.flops(layer, torch.zeros(batch, *shape)) == expected


def test_flops_add_up_over_a_network_and_leave_it_in_train_mode() -> None:
    net = nn.Sequential(nn.Conv1d(1, 4, 3, padding=1), nn.BatchNorm1d(4), nn.ReLU(),
                        nn.Flatten(), nn.Linear(4 * 8, 3))
    assert tn.metrics.flops(net, torch.zeros(2, 1, 8)) == 2 * 3 * 4 * 8 + 2 * 32 * 3
    assert net.training and all(m.training for m in net.modules())


class Sleeper(nn.Module):
    """Sleeps for the next of the given durations on each forward pass; records batch sizes."""

    def __init__(self, seconds: list[float]) -> None:
        super().__init__()
        self.seconds = list(seconds)
        self.batches: list[int] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.batches.append(len(x))
        time.sleep(self.seconds.pop(0))
        return x


def test_latency_is_the_median_of_the_timed_repeats_in_ms() -> None:
    warm, timed = [0.2, 0.2], [0.002, 0.400, 0.030, 0.200, 0.004]
    model = Sleeper(warm + timed)
    ms = tn.metrics.latency(model, torch.zeros(3, 4), warmup=2, repeats=5, batch_size=7)
    # the 30 ms pass (sleeps overshoot on a busy machine); with the warm-up passes: 200 ms
    assert 30.0 <= ms < 150.0
    assert model.batches == [7] * 7 and model.training
    net = nn.Sequential(nn.Linear(8, 8), nn.ReLU())
    assert 0 < tn.metrics.latency(net, torch.zeros(1, 8), repeats=3, threads=1) < 1000
    with pytest.raises(ValueError, match="repeats"):
        tn.metrics.latency(net, torch.zeros(1, 8), repeats=0)


def test_peak_memory_is_what_the_pass_allocates() -> None:
    linear = nn.Linear(100, 100, bias=False)  # 40,000 bytes of weights
    for batch in (1, 4, 32):  # weights + input + output, float32
        assert tn.metrics.peak_memory(linear, torch.zeros(batch, 100)) == 40_000 + 800 * batch
    net = nn.Sequential(nn.Conv1d(1, 16, 5, padding=2), nn.BatchNorm1d(16), nn.ReLU(),
                        nn.Flatten(), nn.Linear(16 * 40, 10))
    stats = net[1].running_mean.clone()
    sizes = [tn.metrics.peak_memory(net, torch.randn(b, 1, 40)) for b in (1, 8, 64)]
    assert sizes[0] < sizes[1] < sizes[2]
    trained = [tn.metrics.peak_memory(net, torch.randn(b, 1, 40), backward=True) for b in (1, 64)]
    assert trained[0] > sizes[0] and trained[1] > sizes[2]  # gradients and saved activations
    assert trained[1] - trained[0] > sizes[2] - sizes[0]
    assert all(p.grad is None for p in net.parameters()) and net.training
    assert torch.equal(net[1].running_mean, stats)


# -- in ModelSearch -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def digits() -> tn.data.Data:
    return tn.data.load("digits")


def widths(hp: tn.HP) -> nn.Module:
    """Eight architectures: 64 * w + w + 10 * w + 10 parameters."""
    w = hp.choice("width", [4, 8, 12, 16, 24, 32, 48, 64])
    return nn.Sequential(nn.Flatten(), nn.Linear(64, w), nn.ReLU(), nn.Linear(w, 10))


class CountingTrainer(tn.Trainer):
    """A real Trainer that counts the architectures it trains."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.trained: list[dict[str, Any]] = []

    def fit(self, model: nn.Module, data: tn.data.Data, **kw: Any) -> dict[str, float]:
        self.trained.append(dict(kw.get("params") or {}))
        return super().fit(model, data, **kw)


class NoTrainer(tn.Trainer):
    def fit(self, model: nn.Module, data: tn.data.Data, **kw: Any) -> dict[str, float]:
        raise AssertionError("nothing should be trained")


class Listening(RandomStrategy):
    """Random search that keeps what it is told."""

    def __init__(self) -> None:
        self.told: list[tuple[int, tn.TrialState]] = []

    def tell(self, trial: tn.FrozenTrial) -> None:
        self.told.append((trial.number, trial.state))


def test_architectures_over_a_cost_limit_are_rejected_untrained(digits: tn.data.Data) -> None:
    trainer, strategy = CountingTrainer(epochs=1), Listening()
    search = tn.ModelSearch(space=widths, data=digits, trainer=trainer, strategy=strategy,
                            trials=8, progress=False, constraints={"params": ("<=", 1000)},
                            objectives={"val_accuracy": "max"})
    study = search.run()
    rejected = [t for t in study.trials if t.state is REJECTED]
    complete = [t for t in study.trials if t.state is COMPLETE]
    assert len(study.trials) == 8 and rejected and complete
    assert {t.arch["width"] for t in complete} == {4, 8, 12}  # 75 * w + 10 <= 1000
    assert trainer.trained == [t.arch for t in complete]  # the rejected never reach fit
    for t in rejected:
        w = t.arch["width"]
        assert t.metrics == {"params": 75 * w + 10} and t.feasible is False
        assert t.error == f"params {75 * w + 10:,} > 1,000"
        assert "val_accuracy" not in t.metrics
    assert search.best_trial.state is COMPLETE and search.best_trial.arch["width"] <= 12
    assert sorted(strategy.told) == [(t.number, t.state) for t in study.trials]
    assert "rejected" in search.leaderboard().splitlines()[0]


def test_cost_metrics_as_objectives_train_nothing(digits: tn.data.Data) -> None:
    search = tn.ModelSearch(space=widths, data=digits, trainer=NoTrainer(), strategy="random",
                            trials=3, progress=False,
                            objectives={"flops": "min", "latency_ms": "min"},
                            constraints={"peak_memory": ("<", 1e9)}, cost={"repeats": 3})
    study = search.run()
    assert all(t.state is COMPLETE for t in study.trials)
    for t in study.trials:
        w = t.arch["width"]
        assert set(t.metrics) == {"flops", "latency_ms", "peak_memory", "params"}
        assert t.metrics["flops"] == 2 * (64 * w + w * 10)
        assert t.metrics["params"] == 75 * w + 10 and t.metrics["latency_ms"] > 0
    assert study.pareto_front()


def test_cost_metrics_join_the_trained_metrics(digits: tn.data.Data) -> None:
    search = tn.ModelSearch(space=widths, data=digits, trainer=tn.Trainer(epochs=1),
                            strategy="random", trials=2, progress=False,
                            objectives={"val_accuracy": "max", "flops": "min"})
    for t in search.run().trials:
        assert t.state is COMPLETE and t.metrics["flops"] == 2 * 74 * t.arch["width"]
        assert 0 <= t.metrics["val_accuracy"] <= 1


@pytest.mark.parametrize(("settings", "message"), [
    ({"constraints": {"latency": ("<", 5)}}, "'latency' is not a metric.*'latency_ms'"),
    ({"objectives": {"flop": "min"}}, "'flop' is not a metric.*'flops'"),
    ({"cost": {"repeat": 3}}, "cost: unknown key 'repeat'; did you mean 'repeats'"),
    ({"cost": {"batch_size": 0}}, "cost: batch_size must be an integer >= 1"),
    ({"cost": {"device": "gpu"}}, "cost: device 'gpu' is not a torch device"),
    ({"warm_start": {"proxy": "synflo"}}, "warm_start: proxy must be one of synflow"),
    ({"warm_start": {"proxy": "snip", "tops": 3}}, "did you mean 'top'"),
])
def test_bad_cost_settings_fail_before_any_trial(digits: tn.data.Data, settings: dict[str, Any],
                                                 message: str) -> None:
    search = tn.ModelSearch(space=widths, data=digits, trainer=NoTrainer(), progress=False,
                            **settings)
    with pytest.raises(tn.ConfigError, match=message):
        search.run()
