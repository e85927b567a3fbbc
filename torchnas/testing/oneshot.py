"""The contract every one-shot method keeps, on a supernet of a tiny space.

Subclass :class:`OneShotContract` in a test module and give it a ``make`` fixture returning a
function that builds a fresh method from keyword settings (``epochs``, ``batch_size`` and
``device`` are passed); :func:`registered` lists ``tn.oneshot.available()`` to run it over.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

import torchnas as tn
from torchnas.oneshot import OneShot, OneShotResult, Supernet

__all__ = ["MakeOneShot", "OneShotContract", "by_name", "registered", "signals", "tiny"]

MakeOneShot = Callable[..., OneShot]
"""Builds a fresh method; keyword arguments override its settings (the fixture ``make``)."""

CHANNELS = 4
OPS = ("none", "skip", "conv")


class Zero(nn.Module):
    """The ``none`` candidate: zeros shaped like its input."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * 0.0


def tiny(hp: tn.HP) -> nn.Module:
    """Two searched edges of ``none``, ``skip`` and a convolution with batch norm, on 1-D
    signals of length 16; its candidates are narrow under PC-DARTS (``hp.partial_channels``)."""
    c = CHANNELS // getattr(hp, "partial_channels", 1)
    ops: dict[str, Callable[[], nn.Module]] = {
        "none": Zero, "skip": nn.Identity,
        "conv": lambda: nn.Sequential(nn.Conv1d(c, c, 3, padding=1), nn.BatchNorm1d(c))}
    return nn.Sequential(nn.Conv1d(1, CHANNELS, 1), hp.op("e1", ops), hp.op("e2", ops),
                         nn.Flatten(), nn.Linear(CHANNELS * 16, 2))


def signals(n: int = 256, seed: int = 0) -> tn.data.Data:
    """Class 1 when the first half of the signal outweighs the second."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 1, 16, generator=gen)
    y = (x[:, 0, :8].sum(1) > x[:, 0, 8:].sum(1)).long()
    cut = n * 3 // 4
    return tn.data.from_tensors((x[:cut], y[:cut]), (x[cut:], y[cut:]))


def registered() -> list[str]:
    """The names of ``tn.oneshot.available()``."""
    return tn.oneshot.available()


def by_name(name: str) -> MakeOneShot:
    """A ``make`` for the registered method ``name``."""
    return lambda **settings: tn.oneshot.create(name, **settings)


class Kill(Exception):
    """Stands for the process being killed after an epoch."""


def killed_at(epoch: int) -> Callable[[int, dict[str, float]], None]:
    def on_epoch(e: int, metrics: dict[str, float]) -> None:
        if e == epoch:
            raise Kill
    return on_epoch


def final_state(result: OneShotResult, net: Supernet) -> dict[str, Any]:
    """What a search ends with: its result (wall times aside) and the supernet's state."""
    history = [{k: v for k, v in row.items() if k != "seconds"} for row in result.history]
    return {"arch": result.arch, "alphas": result.alphas, "history": history,
            "net": {k: v.clone() for k, v in net.state_dict().items()}}


def assert_same(a: dict[str, Any], b: dict[str, Any]) -> None:
    assert a["arch"] == b["arch"]
    assert len(a["history"]) == len(b["history"])
    for row_a, row_b in zip(a["history"], b["history"], strict=True):
        assert row_a == pytest.approx(row_b)
    assert a["alphas"].keys() == b["alphas"].keys()
    for label, weights in a["alphas"].items():
        assert weights == pytest.approx(b["alphas"][label])
    assert a["net"].keys() == b["net"].keys()
    for k in a["net"]:
        torch.testing.assert_close(a["net"][k], b["net"][k], msg=f"supernet state {k!r}")


class OneShotContract:
    """What every one-shot method promises.

    A subclass provides the fixture ``make``: a function of keyword settings returning a fresh
    method. The checks: a search trains the supernet of :func:`tiny` and derives an
    architecture that ``tn.build`` turns into a working model, with architecture weights that
    are distributions over each label's candidates; the same seed gives the same result; a
    search killed after an epoch resumes from its checkpoint to the state of one never stopped;
    the constructor is the config.
    """

    epochs = 1
    """Epochs of the quick searches (the resumed one runs 4)."""

    @pytest.fixture
    def make(self) -> MakeOneShot:
        raise NotImplementedError("give the contract a `make` fixture: (**settings) -> OneShot")

    def quick(self, make: MakeOneShot, **settings: Any) -> OneShot:
        settings.setdefault("epochs", self.epochs)
        return make(batch_size=32, device="cpu", **settings)

    def test_a_search_trains_the_supernet_and_derives_an_architecture(
            self, make: MakeOneShot) -> None:
        method = self.quick(make)
        data = signals()
        net = method.supernet(tiny, data, seed=0)
        before = {k: v.clone() for k, v in net.state_dict().items()}
        result = method.search(tiny, data, seed=0, net=net)
        changed = [k for k, v in net.state_dict().items() if not torch.equal(v, before[k])]
        assert changed, "no weight of the supernet changed"
        assert result.method == method.name and result.history
        assert set(result.arch) == {"e1", "e2"} and set(result.arch.values()) <= set(OPS)
        model = tn.build(tiny, result.arch)
        assert not any(isinstance(m, tn.oneshot.MixedOp) for m in model.modules())
        with torch.no_grad():
            assert model.eval()(torch.randn(3, 1, 16)).shape == (3, 2)
        assert set(result.alphas) == {"e1", "e2"}
        for label, weights in result.alphas.items():
            assert set(weights) <= set(OPS) and all(0.0 <= w <= 1.0 for w in weights.values())
            assert math.isclose(sum(weights.values()), 1.0, abs_tol=1e-5), (label, weights)
        json.dumps(result.to_json())
        assert result.settings == json.loads(json.dumps(result.settings))

    def test_the_same_seed_gives_the_same_result(self, make: MakeOneShot) -> None:
        data = signals()
        first = self.quick(make).search(tiny, data, seed=5)
        second = self.quick(make).search(tiny, data, seed=5)
        assert first.arch == second.arch
        for label, weights in first.alphas.items():
            assert weights == pytest.approx(second.alphas[label])

    def test_a_killed_search_resumes_to_the_same_final_state(
            self, make: MakeOneShot, tmp_path: Path) -> None:
        method = self.quick(make, epochs=4)
        data = signals(384)

        def run(**kw: Any) -> dict[str, Any]:
            torch.manual_seed(3)  # the initial weights (search seeds them only for nets it builds)
            net = method.supernet(tiny, data, seed=3)
            return final_state(method.search(tiny, data, seed=3, net=net, **kw), net)

        straight = run()
        ckpt = tmp_path / "s.supernet.pt"
        with pytest.raises(Kill):
            run(checkpoint=ckpt, on_epoch=killed_at(3))
        assert ckpt.exists() and torch.load(ckpt, weights_only=True)["epoch"] == 2
        seen: list[int] = []
        resumed = run(checkpoint=ckpt, on_epoch=lambda e, m: seen.append(e))
        assert seen == [3, 4]  # epochs 1 and 2 were not run again
        assert_same(resumed, straight)
        assert torch.load(ckpt, weights_only=True)["epoch"] == 4

    def test_constructor_is_the_config(self, make: MakeOneShot) -> None:
        method = make()
        method.check()
        params = method.get_params()
        again = type(method)(**params)
        assert again.get_params() == params
        found, spec = tn.oneshot.resolve(method)
        assert found is method
        json.dumps(spec)
        if method.name in tn.oneshot.available():
            by_spec, _ = tn.oneshot.resolve(spec)
            assert type(by_spec) is type(method) and by_spec.get_params() == params
