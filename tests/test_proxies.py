"""Zero-cost proxies: finite, deterministic, side-effect free on the built-in spaces' models;
synflow's ranking of sizes; proxies as ModelSearch objectives and as its warm start."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

import torchnas as tn

PROXIES = list(tn.metrics.PROXIES)


def models(space: str, shape: tuple[int, ...], n: int = 3) -> list[nn.Module]:
    built = tn.spaces.create(space, input_shape=shape, num_classes=10)
    study = tn.Study(strategy="random", seed=3, objectives={"v": "max"})
    out = []
    for _ in range(n):
        trial = study.ask()
        with torch.random.fork_rng():
            torch.manual_seed(trial.number)
            out.append(built(trial.hp))
        study.tell(trial, 0.0)
    return out


@pytest.mark.parametrize("space", ["chain_cnn", "mlp"])
@pytest.mark.parametrize("shape", [(1, 40), (1, 8, 8)], ids=["1d", "2d"])
def test_every_proxy_is_finite_deterministic_and_leaves_the_model_alone(
    space: str, shape: tuple[int, ...]
) -> None:
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(16, *shape, generator=gen), torch.arange(16) % 10
    for model in models(space, shape):
        before = {k: v.clone() for k, v in model.state_dict().items()}
        scores = {name: tn.metrics.proxy(name, model, x, y) for name in PROXIES}
        again = {name: tn.metrics.proxy(name, model, x, y) for name in PROXIES}
        assert scores == again
        assert all(isinstance(v, float) and torch.isfinite(torch.tensor(v))
                   for v in scores.values()), scores
        assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
        assert all(p.grad is None for p in model.parameters()) and model.training


def mlp(width: int) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(40, width), nn.ReLU(), nn.Linear(width, width),
                         nn.ReLU(), nn.Linear(width, 10))


def test_synflow_ranks_a_clearly_bigger_network_higher() -> None:
    x, y = torch.randn(8, 1, 40), torch.arange(8)
    small, big = (tn.metrics.proxy("synflow", mlp(w), x, y) for w in (16, 256))
    assert big > 10 * small > 0
    assert tn.metrics.proxy("synflow", mlp(16), x * 5, y + 1) == small  # data-free


def test_naswot_counts_distinguishable_activation_patterns() -> None:
    x, y = torch.randn(8, 1, 40), torch.arange(8)
    assert tn.metrics.proxy("naswot", mlp(64), x, y) > tn.metrics.proxy("naswot", mlp(4), x, y)
    twins = torch.cat([x[:4], x[:4]])  # pairs of identical samples: a singular kernel
    assert 0 < tn.metrics.proxy("naswot", mlp(64), twins, y) < tn.metrics.proxy(
        "naswot", mlp(64), x, y)
    narrow = torch.randn(64, 1, 40)  # more samples than units: finite all the same
    assert 0 < tn.metrics.proxy("naswot", mlp(4), narrow, torch.arange(64) % 10) < float("inf")
    with pytest.raises(ValueError, match="activation modules"):
        tn.metrics.proxy("naswot", nn.Sequential(nn.Flatten(), nn.Linear(40, 10)), x, y)
    with pytest.raises(ValueError, match=r"unknown proxy 'synflo'.*synflow"):
        tn.metrics.proxy("synflo", mlp(4), x, y)


# -- in ModelSearch -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def digits() -> tn.data.Data:
    return tn.data.load("digits")


def small_space(hp: tn.HP) -> nn.Module:
    """32 architectures: depth 1-2, four widths per layer."""
    layers: list[nn.Module] = [nn.Flatten()]
    width = 64
    for i in range(hp.int("layers", 1, 2)):
        units = hp.choice(f"units_{i}", [4, 8, 16, 32])
        layers += [nn.Linear(width, units), nn.ReLU()]
        width = units
    return nn.Sequential(*layers, nn.Linear(width, 10))


class NoTrainer(tn.Trainer):
    def fit(self, model: nn.Module, data: tn.data.Data, **kw: Any) -> dict[str, float]:
        raise AssertionError("nothing should be trained")


def test_a_proxy_is_an_objective_computed_without_training(digits: tn.data.Data) -> None:
    search = tn.ModelSearch(space=small_space, data=digits, trainer=NoTrainer(), trials=3,
                            strategy="random", progress=False,
                            objectives={"naswot": "max"}, constraints={"params": ("<", 3000)})
    study = search.run()
    assert any(t.state is tn.TrialState.COMPLETE for t in study.trials)
    for t in study.trials:
        if t.state is tn.TrialState.COMPLETE:
            assert set(t.metrics) == {"naswot", "params"} and t.metrics["naswot"] > 0
        else:
            assert t.state is tn.TrialState.REJECTED and t.metrics["params"] >= 3000
    x, y = search.model_metrics.proxy_batch(search.dataset)
    assert len(x) == 64 and len(y) == 64  # proxy_batch_size training samples


def test_warm_start_trains_the_top_proxy_picks_first_and_once(digits: tn.data.Data,
                                                              tmp_path: Path) -> None:
    kw: dict[str, Any] = {
        "space": small_space, "data": digits, "trainer": tn.Trainer(epochs=1),
        "strategy": "random", "progress": False, "storage": str(tmp_path / "w.db"),
        "warm_start": {"proxy": "synflow", "samples": 12, "top": 3},
    }
    first = tn.ModelSearch(trials=2, **kw)
    study = first.run()
    ranking = first.warm_start_ranking
    assert ranking is not None and len(ranking) == 12
    assert len({tn.arch_key(a) for _, a in ranking}) == 12
    scores = [s for s, _ in ranking]
    assert scores == sorted(scores, reverse=True)
    assert [t.arch for t in study.trials] == [a for _, a in ranking[:2]]
    study.journal.close()
    resumed = tn.ModelSearch(trials=5, **kw)
    trials = resumed.run().trials
    assert resumed.warm_start_ranking is None  # not a new study: no second warm start
    assert [t.arch for t in trials[:3]] == [a for _, a in ranking[:3]]
    picks = {tn.arch_key(a) for _, a in ranking[:3]}
    assert all(tn.arch_key(t.arch) not in picks for t in trials[3:])
    assert len(trials) == 5 and resumed._study().queued == []


def test_the_warm_start_defaults_to_naswot(digits: tn.data.Data) -> None:
    search = tn.ModelSearch(space=small_space, data=digits, trainer=tn.Trainer(epochs=1),
                            trials=1, progress=False, warm_start={"samples": 4, "top": 1})
    study = search.run()
    assert search.model_metrics.warm_start == tn.search.WarmStart(proxy="naswot", samples=4, top=1)
    assert search.warm_start_ranking is not None
    assert study.trials[0].arch == search.warm_start_ranking[0][1]
