"""Low-fidelity search: trials train narrower models (``hp.scale``), for fewer epochs, on a
subset of the training data; the chosen architecture is retrained at full fidelity. Real
training on scikit-learn's digits. (That every built-in space narrows under ``hp.scale`` is part
of the space contract: tests/test_contract_spaces.py.)"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn
from torch.utils.data import Subset, TensorDataset

import torchnas as tn
from torchnas.space import HP, FixedSource


@pytest.fixture(scope="module")
def digits() -> tn.data.Data:
    return tn.data.load("digits")


def params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_scale_is_identity_at_full_width_and_never_zero() -> None:
    hp = HP(FixedSource({}))
    assert [hp.scale(n) for n in (1, 7, 64)] == [1, 7, 64]
    hp.width = 0.5
    assert [hp.scale(n) for n in (1, 7, 64)] == [1, 4, 32]
    hp.width = 0.01
    assert hp.scale(64) == 1


def widths_seen(hp: HP) -> nn.Module:
    """An MLP that records the width each build used (the test reads ``seen``)."""
    units = hp.int("units", 16, 64, step=16)
    seen.append((units, hp.scale(units), hp.trial is not None))
    return nn.Sequential(nn.Flatten(), nn.Linear(64, hp.scale(units)), nn.ReLU(),
                         nn.Linear(hp.scale(units), 10))


seen: list[tuple[int, int, bool]] = []


def test_trials_run_at_low_fidelity_and_the_retraining_at_full(digits: tn.data.Data) -> None:
    seen.clear()
    search = tn.ModelSearch(space=widths_seen, data=digits, trainer=tn.Trainer(epochs=3),
                            trials=3, strategy="random", progress=False,
                            fidelity={"width": 0.5, "epochs": 1, "data": 0.3})
    study = search.run()
    in_trials = [(units, built) for units, built, trial in seen if trial]
    assert len(in_trials) >= 3  # redraws of repeated architectures build again
    assert all(built == units // 2 for units, built in in_trials)  # built at half width
    first = next(i for i, (_, _, trial) in enumerate(seen) if trial)
    assert all(built == units for units, built, _ in seen[:first])  # space checks: full width
    # after a trial: the full-width build measures params; the kept model is rebuilt at the
    # trial's width for its summary
    assert all(built in (units, units // 2) for units, built, _ in seen[first:])
    for t in study.trials:
        assert t.state is tn.TrialState.COMPLETE
        assert t.metrics["epochs"] == 1
        full = 64 * t.arch["units"] + t.arch["units"] + 10 * t.arch["units"] + 10
        assert t.metrics["params"] == full  # the deployed (full-width) model's size
    train = search.objective.trial_data.train
    assert isinstance(train, TensorDataset)
    assert len(train) == math.ceil(0.3 * len(digits.train))  # type: ignore[arg-type]
    assert len(search.objective.trial_data.val) == len(digits.val)  # type: ignore[arg-type]
    seen.clear()
    model = search.best_model(retrain=True)
    best = search.best_trial.arch["units"]
    # retrained at full width; then the trial's own kept model (half width) is rebuilt for
    # its test metrics, which the retrain report gives beside the retrained model's
    assert seen == [(best, best, False), (best, best // 2, False)]
    assert search.retrain_report is not None and search.retrain_report.chosen == "retrained"
    assert search.retrain_report.trial_test_metrics is not None
    assert params(model) == search.best_trial.metrics["params"]
    low = max(t.metrics["val_accuracy"] for t in study.trials)
    assert search.test_accuracy is not None
    assert search.test_accuracy > low + 0.1  # 3 epochs on all of train+val beat 1 on 30 %


@pytest.mark.parametrize(("fidelity", "culprit"), [
    ({"widht": 0.5}, "did you mean 'width'"),
    ({"width": 0}, "width must be in (0, 1]"),
    ({"data": 1.5}, "data must be in (0, 1]"),
    ({"epochs": 0}, "epochs must be an integer >= 1"),
    ({"epochs": 2.5}, "epochs must be an integer >= 1"),
    ([0.5], "fidelity must be a mapping"),
])
def test_bad_fidelity_fails_before_any_trial(digits: tn.data.Data, tmp_path: Path,
                                             fidelity: Any, culprit: str) -> None:
    db = tmp_path / "f.db"
    search = tn.ModelSearch(space="mlp", data=digits, trials=1, progress=False,
                            storage=str(db), fidelity=fidelity)
    with pytest.raises(tn.ConfigError, match=culprit.replace("(", r"\(").replace("]", r"\]")):
        search.run()
    assert not db.exists()


def test_data_subset_is_seeded_and_keeps_the_other_splits(digits: tn.data.Data) -> None:
    a, b, c = (digits.subset(0.25, seed=s) for s in (1, 1, 2))
    assert isinstance(a.train, TensorDataset)
    n = len(digits.train)  # type: ignore[arg-type]
    assert len(a.train) == math.ceil(0.25 * n)  # type: ignore[arg-type]
    assert torch.equal(a.train.tensors[0], b.train.tensors[0])  # type: ignore[attr-defined]
    assert not torch.equal(a.train.tensors[0], c.train.tensors[0])  # type: ignore[attr-defined]
    assert a.val is digits.val and a.test is digits.test and a.name == digits.name
    assert digits.subset(1.0) is digits
    plain = tn.data.from_datasets(Subset(digits.train, range(50)), digits.val)
    assert len(plain.subset(0.1).train) == 5  # type: ignore[arg-type]
    for bad in (0, -0.1, 1.01, True, "half"):
        with pytest.raises(tn.DataError, match="subset fraction"):
            digits.subset(bad)  # type: ignore[arg-type]
