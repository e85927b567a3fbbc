"""What a user walks away with: the trained models of the best trials kept beside the study,
Keras Tuner's result methods, several executions per trial, and a retrain that cannot end
clearly worse than its trial without saying so. Real training on scikit-learn's digits."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch
from helpers import quick_search
from torch import nn

import torchnas as tn
from torchnas.evaluation import evaluate
from torchnas.search._seeds import clearly_worse, merge_executions
from torchnas.storage._artifacts import ArtifactStore, artifacts_dir


@pytest.fixture(scope="module")
def digits() -> tn.data.Data:
    return tn.data.load("digits")


def search(data: Any, **kw: Any) -> tn.ModelSearch:
    kw.setdefault("trials", 5)
    return quick_search(data, **kw)


@pytest.fixture(scope="module")
def searched(digits: tn.data.Data, tmp_path_factory: pytest.TempPathFactory
             ) -> tuple[tn.ModelSearch, Path]:
    db = tmp_path_factory.mktemp("results") / "runs" / "d.db"
    s = search(digits, storage=str(db), name="d", keep_models=2)
    s.run()
    return s, db


# -- kept models --------------------------------------------------------------------------------
def test_the_best_trials_keep_their_trained_weights_beside_the_study(searched: Any) -> None:
    s, db = searched
    top = s.study.top_trials(2)
    folder = db.parent / "d.artifacts" / "d"
    assert artifacts_dir(str(db), "d") == folder
    weights = [p.name for p in folder.iterdir() if not p.name.endswith(".graph.json")]
    assert sorted(weights) == sorted(
        f"trial-{t.number}.{ext}" for t in top for ext in ("pt", "json"))
    graphs = sorted(p.name for p in folder.glob("*.graph.json"))  # every trial's, kept
    assert graphs == sorted(f"trial-{t.number}.graph.json" for t in s.study.trials)
    meta = json.loads((folder / f"trial-{top[0].number}.json").read_text())
    assert meta["seed"] == s.objective.train_seed(top[0].number) and meta["width"] == 1.0
    assert "Trainable params" in meta["summary"]


def test_get_best_models_returns_the_trials_own_trained_models(searched: Any,
                                                               digits: tn.data.Data) -> None:
    s, _ = searched
    models = s.get_best_models(2)
    top = s.study.top_trials(2)
    assert len(models) == 2
    for model, trial in zip(models, top, strict=True):
        assert not model.training
        # the weights are the trial's: its validation accuracy comes back exactly
        assert evaluate(model, digits.val)["accuracy"] == pytest.approx(
            trial.metrics["val_accuracy"], abs=1e-9)
    untrained = tn.build(s.space_fn, top[0].arch)
    assert evaluate(untrained, digits.val)["accuracy"] < top[0].metrics["val_accuracy"] - 0.3
    assert s.get_best_hyperparameters(2) == [t.arch for t in top]
    assert s.best_model(retrain=False).state_dict().keys() == models[0].state_dict().keys()


def test_a_trial_beyond_keep_models_has_no_weights_and_says_so(searched: Any) -> None:
    s, _ = searched
    third = s.study.top_trials(3)[2]
    with pytest.raises(ValueError, match=rf"trial {third.number}'s trained weights were not "
                                         r"kept \(keep_models=2"):
        s.get_best_models(3)


def test_top_trials_orders_a_pareto_front_first() -> None:
    study = tn.Study(objectives={"a": "max", "b": "min"}, strategy="random")

    def objective(hp: tn.HP) -> dict[str, float]:
        x = hp.int("x", 0, 9)
        return {"a": float(x), "b": float((x - 5) ** 2)}

    study.optimize(objective, trials=12)
    top = study.top_trials(20)
    front = study.pareto_front()
    assert top[: len(front)] == front
    assert len(top) == len(study.ranked())
    with pytest.raises(ValueError, match="n must be an integer >= 1"):
        study.top_trials(0)


def test_keep_models_zero_keeps_nothing(digits: tn.data.Data, tmp_path: Path) -> None:
    s = search(digits, storage=str(tmp_path / "z.db"), trials=2, keep_models=0)
    s.run()
    assert not (tmp_path / "z.artifacts").exists()
    with pytest.raises(ValueError, match="keep_models=0"):
        s.get_best_models(1)


def test_an_in_memory_search_keeps_models_in_a_temporary_folder(digits: tn.data.Data) -> None:
    s = search(digits, trials=3, keep_models=1)
    s.run()
    root = s.artifacts.root
    assert s.artifacts.kept() == [s.best_trial.number]
    [model] = s.get_best_models(1)
    assert isinstance(model, nn.Module)
    del s, model
    import gc

    gc.collect()
    assert not root.exists()


def test_kept_weights_load_without_unpickling(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    store.save(0, nn.Linear(3, 2), {"seed": 1})
    assert set(store.load_weights(0)) == {"weight", "bias"}

    class Payload:
        def __reduce__(self) -> Any:
            return (print, ("pwned",))

    torch.save({"weight": Payload()}, store.weights_path(1))
    with pytest.raises(Exception, match=r"(?i)weights_only|unsupported"):
        store.load_weights(1)


# -- executions per trial ------------------------------------------------------------------------
def test_merge_executions_means_and_spreads() -> None:
    runs = [{"val_accuracy": 0.8, "train_seconds": 1.0, "only": 1.0},
            {"val_accuracy": 0.9, "train_seconds": 2.0}]
    merged = merge_executions(runs, {"val_accuracy": "max"})
    assert merged["val_accuracy"] == pytest.approx(0.85)
    assert merged["val_accuracy_std"] == pytest.approx(math.sqrt(0.005))
    assert merged["train_seconds"] == 3.0 and merged["executions"] == 2.0
    assert "only" not in merged
    assert merge_executions(runs[:1], {"val_accuracy": "max"}) == runs[0]


def test_executions_per_trial_trains_each_architecture_with_several_seeds(
        digits: tn.data.Data) -> None:
    s = search(digits, trials=2, executions_per_trial=3, trainer=tn.Trainer(epochs=1))
    study = s.run()
    for t in study.trials:
        assert t.metrics["executions"] == 3
        assert t.metrics["val_accuracy_std"] > 0  # three seeds: three results
        # the mean of three runs trained by hand with the trial's seeds
        accs = []
        for run in range(3):
            model = s.objective.build(t.arch, s.objective.train_seed(t.number, run))
            accs.append(tn.Trainer(epochs=1).fit(model, digits, params=t.arch,
                                                 seed=s.objective.train_seed(t.number, run))
                        ["val_accuracy"])
        assert t.metrics["val_accuracy"] == pytest.approx(sum(accs) / 3)
        kept = s.trial_model(t)
        assert evaluate(kept, digits.val)["accuracy"] == pytest.approx(max(accs))
    assert " ± " in s.leaderboard()


# -- the retrain ------------------------------------------------------------------------------
def test_clearly_worse() -> None:
    assert clearly_worse(1.33, 0.02) and clearly_worse(math.nan, 0.5)
    assert not clearly_worse(0.3, 0.25) and not clearly_worse(5.0, None)


BROKEN: set[int] = set()


def flaky_retrain(hp: tn.HP) -> nn.Module:
    """An MLP whose retraining (built outside a trial) is dead for the seeds in ``BROKEN``:
    its output layer is frozen at zero, so its loss stays at chance."""
    units = hp.int("units", 32, 64, step=32)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, units), nn.ReLU(), nn.Linear(units, 10))
    if hp.trial is None and torch.initial_seed() in BROKEN:
        nn.init.zeros_(model[3].weight)
        model[3].weight.requires_grad_(False)
    return model


@pytest.mark.parametrize("attempts", [1, 3])
def test_a_retrain_clearly_worse_than_its_trial_is_retried_or_reported(
        digits: tn.data.Data, attempts: int, capsys: pytest.CaptureFixture[str]) -> None:
    s = search(digits, space=flaky_retrain, trials=2, retrain_attempts=attempts, progress=True,
               trainer=tn.Trainer(epochs=8, lr=1e-2))
    s.run()
    best = s.best_trial
    BROKEN.clear()
    BROKEN.add(s.objective.train_seed(best.number))  # the first retrain seed is the trial's
    try:
        if attempts == 1:
            with pytest.warns(RuntimeWarning, match=rf"the retrain of trial {best.number} on "
                                                    r"train\+val stayed clearly worse"):
                model = s.best_model(retrain=True)
        else:
            model = s.best_model(retrain=True)
    finally:
        BROKEN.clear()
    report = s.retrain_report
    assert report is not None and report.trial_test_metrics is not None
    assert report.attempts[0].train_loss > 2.0  # ln(10) = 2.30: chance
    assert report.attempts[0].seed == s.objective.train_seed(best.number)
    own = report.trial_test_metrics["test_accuracy"]
    assert own > 0.8
    if attempts == 1:
        assert report.failed and report.chosen == "trial"
        assert s.test_accuracy == own  # the trial's own model was kept
        assert "WARNING: the retrain" in capsys.readouterr().err
        assert evaluate(model, digits.val)["accuracy"] == pytest.approx(
            best.metrics["val_accuracy"])
    else:
        assert len(report.attempts) == 2 and not report.failed
        assert report.chosen == "retrained" and report.attempts[1].train_loss < 0.5
        assert s.test_accuracy is not None and s.test_accuracy > 0.8
        out = capsys.readouterr().out
        assert "(2 seeds)" in out and f"(the trial's own model: {own:.4f})" in out


@pytest.mark.slow
def test_process_workers_keep_their_trials_weights_in_the_drivers_folder(
        digits: tn.data.Data) -> None:
    s = search(digits, trials=4, keep_models=2, workers=2, executor="process",
               trainer=tn.Trainer(epochs=1))
    s.run()
    top = s.study.top_trials(2)
    assert s.artifacts.kept() == sorted(t.number for t in top)
    for model, trial in zip(s.get_best_models(2), top, strict=True):
        assert evaluate(model, digits.val)["accuracy"] == pytest.approx(
            trial.metrics["val_accuracy"], abs=1e-9)
