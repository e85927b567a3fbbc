"""Tests of torchnas.evaluation.Trainer on real (tiny) training runs."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator
from typing import Any

import pytest
import torch
from helpers import Items, output_dtypes
from torch import nn
from torch.utils.data import DataLoader

from torchnas import data as tdata
from torchnas._util.errors import TrialPruned
from torchnas.evaluation import Trainer, evaluate


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    """Tiny models train several times faster on one thread (and do not stall on a busy CPU)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def digits() -> tdata.Data:
    return tdata.load("digits")


def mlp(seed: int = 0, hidden: int = 64) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, hidden), nn.ReLU(), nn.Linear(hidden, 10))


class Counting(nn.Module):
    """Wraps a model and counts the samples it sees in training mode."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.seen = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            self.seen += len(x)
        return self.inner(x)


class NaNModel(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x.flatten(1)) * float("nan")


def _metrics(result: dict[str, float]) -> dict[str, float]:
    return {k: v for k, v in result.items() if k != "train_seconds"}


def test_learns_digits(digits: tdata.Data) -> None:
    model = mlp()
    result = Trainer(epochs=10, batch_size=64, lr=1e-2).fit(model, digits)
    assert result["val_accuracy"] > 0.9  # 0.95 to 0.96 over seeds
    assert 0.0 <= result["val_accuracy"] <= 1.0 and result["val_loss"] < 1.0
    assert result["params"] == 64 * 64 + 64 + 64 * 10 + 10
    assert result["epochs"] == 10 and result["train_seconds"] > 0
    again = evaluate(model, digits.val)
    assert again["accuracy"] == pytest.approx(result["val_accuracy"])
    assert again["loss"] == pytest.approx(result["val_loss"], rel=1e-5)
    assert Trainer().evaluate(model, DataLoader(digits.val))["accuracy"] == again["accuracy"]


def test_same_seed_same_metrics(digits: tdata.Data) -> None:
    trainer = Trainer(epochs=2, seed=7)
    first = trainer.fit(mlp(), digits)
    assert _metrics(trainer.fit(mlp(), digits)) == _metrics(first)
    assert _metrics(trainer.fit(mlp(), digits, seed=8)) != _metrics(first)


def test_dataloader_path_is_deterministic_and_learns(digits: tdata.Data) -> None:
    data = tdata.from_datasets(Items(digits.train), Items(digits.val), num_classes=10)
    trainer = Trainer(epochs=4, batch_size=32, lr=1e-2)
    first = trainer.fit(mlp(), data)
    assert first["val_accuracy"] > 0.85
    assert _metrics(trainer.fit(mlp(), data)) == _metrics(first)


def test_fit_leaves_global_rng_alone(digits: tdata.Data) -> None:
    model = mlp()
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    Trainer(epochs=1).fit(model, digits)
    assert torch.equal(torch.rand(3), expected)


def test_params_override_trainer_settings(digits: tdata.Data) -> None:
    trainer = Trainer(epochs=2, lr=3e-3)
    base = trainer.fit(mlp(), digits, params={"lr": 3e-3, "filters": 32})
    assert _metrics(base) == _metrics(trainer.fit(mlp(), digits))
    slow = trainer.fit(mlp(), digits, params={"lr": 1e-5})
    assert slow["val_accuracy"] < base["val_accuracy"] - 0.2
    sgd = trainer.fit(mlp(), digits, params={"optimizer": "sgd", "batch_size": 32})
    assert _metrics(sgd) != _metrics(base)
    with pytest.raises(ValueError, match=r"params\['optimizer'\] must be one of 'adam'"):
        trainer.fit(mlp(), digits, params={"optimizer": "lamb"})


def test_report_is_called_every_epoch(digits: tdata.Data) -> None:
    calls: list[tuple[int, dict[str, float]]] = []
    result = Trainer(epochs=3).fit(mlp(), digits, report=lambda e, m: calls.append((e, m)))
    assert [e for e, _ in calls] == [1, 2, 3]
    assert all(set(m) == {"val_accuracy", "val_loss", "train_loss"} for _, m in calls)
    assert calls[-1][1]["val_accuracy"] == result["val_accuracy"]
    assert calls[0][1]["val_loss"] > calls[-1][1]["val_loss"]


def test_pruning_stops_after_the_reporting_epoch(digits: tdata.Data) -> None:
    epochs: list[int] = []

    def report(epoch: int, metrics: dict[str, float]) -> None:
        epochs.append(epoch)
        if epoch == 2:
            raise TrialPruned()

    model = Counting(mlp())
    with pytest.raises(TrialPruned):
        Trainer(epochs=10).fit(model, digits, report=report)
    assert epochs == [1, 2]
    assert model.seen == 2 * len(digits.train)


def test_nan_loss_raises_floating_point_error(digits: tdata.Data) -> None:
    with pytest.raises(FloatingPointError, match="epoch 1"):
        Trainer(epochs=3).fit(NaNModel(), digits)


def test_final_trains_on_train_and_val(digits: tdata.Data) -> None:
    calls: list[int] = []
    model = Counting(mlp())
    result = Trainer(epochs=2).fit(model, digits, final=True, report=lambda e, m: calls.append(e))
    assert model.seen == 2 * len(digits.train_val())
    assert model.seen == 2 * (len(digits.train) + len(digits.val))
    assert "val_accuracy" not in result and result["epochs"] == 2 and calls == []


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"epochs": 0}, "epochs must be an integer >= 1"),
        ({"batch_size": 2.5}, "batch_size must be an integer"),
        ({"optimizer": "rmsprop"}, "optimizer must be one of 'adam', 'adamw', 'sgd'"),
        ({"lr_schedule": "step"}, "lr_schedule must be one of 'cosine', 'constant'"),
        ({"lr": 0.0}, r"lr must be a finite number in \(0.0"),
        ({"weight_decay": -1.0}, "weight_decay"),
        ({"label_smoothing": 1.0}, "label_smoothing"),
        ({"grad_clip": float("nan")}, "grad_clip"),
        ({"device": "tpu"}, "device must be"),
        ({"num_workers": -1}, "num_workers"),
        ({"amp": "bf16"}, "amp must be True, False or one of"),
        ({"threads": 0}, "threads must be an integer >= 1"),
    ],
)
def test_bad_arguments_fail_before_training(
    digits: tdata.Data, kwargs: dict[str, Any], message: str
) -> None:
    trainer = Trainer(**kwargs)  # the constructor only stores
    ((key, value),) = kwargs.items()
    assert trainer.get_params()[key] is value
    model = Counting(mlp())
    before = [p.clone() for p in model.parameters()]
    with pytest.raises(ValueError, match=message):
        trainer.fit(model, digits)
    assert model.seen == 0
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


def test_other_settings_train(digits: tdata.Data) -> None:
    trainer = Trainer(epochs=4, optimizer="sgd", lr=0.05, lr_schedule="constant",
                      grad_clip=1.0, label_smoothing=0.1, weight_decay=1e-4)
    assert trainer.fit(mlp(), digits)["val_accuracy"] > 0.75  # 0.82 to 0.89 over seeds
    adamw = Trainer(epochs=4, optimizer="adamw", lr=1e-2, weight_decay=0.01)
    assert adamw.fit(mlp(), digits)["val_accuracy"] > 0.8  # 0.88 to 0.90 over seeds
    assert repr(trainer).startswith("Trainer(epochs=4, optimizer='sgd'")


@pytest.mark.parametrize("amp", ["bfloat16", "float16"])
def test_named_amp_types_autocast_on_cpu_and_still_learn(digits: tdata.Data, amp: str) -> None:
    model = mlp()
    seen = output_dtypes(model, nn.Linear)
    # float16 runs through the gradient scaler and its unscaling before clipping
    result = Trainer(epochs=6, batch_size=64, lr=1e-2, amp=amp, grad_clip=5.0).fit(model, digits)
    assert set(seen) == {getattr(torch, amp)}
    assert result["val_accuracy"] > 0.85  # 0.94 to 0.95 over seeds, as in full precision
    assert all(p.dtype == torch.float32 for p in model.parameters())  # master weights


def test_amp_true_is_full_precision_off_cuda(digits: tdata.Data) -> None:
    model = mlp()
    seen = output_dtypes(model, nn.Linear)
    Trainer(epochs=1, amp=True, device="cpu").fit(model, digits)
    assert seen and set(seen) == {torch.float32}


def test_trailing_batch_of_one_with_batchnorm() -> None:
    x, y = torch.randn(129, 3), torch.arange(129) % 2
    data = tdata.from_tensors((x, y), (x[:20], y[:20]))
    model = Counting(nn.Sequential(nn.Linear(3, 8), nn.BatchNorm1d(8), nn.Linear(8, 2)))
    Trainer(epochs=1, batch_size=128).fit(model, data)
    assert model.seen == 128


def test_no_reference_to_the_model_is_kept(digits: tdata.Data) -> None:
    trainer = Trainer(epochs=1)
    model = mlp()
    trainer.fit(model, digits)
    ref = weakref.ref(model)
    del model
    gc.collect()
    assert ref() is None

    def prune(epoch: int, metrics: dict[str, float]) -> None:
        raise TrialPruned()

    pruned = mlp()
    try:
        trainer.fit(pruned, digits, report=prune)
    except TrialPruned as e:
        error = e
    ref = weakref.ref(pruned)
    del pruned, error
    gc.collect()
    assert ref() is None
