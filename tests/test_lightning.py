"""torchnas.integrations.lightning with the real Lightning on the CPU: a tiny LightningModule
reports every validation into a real Study, a pruned trial stops training, a module that logs
no objective metric stops the search at its first trial, ``fit`` pickles as a train_fn."""

from __future__ import annotations

import functools
import inspect
import pickle
from collections.abc import Mapping
from typing import Any

import pytest
import torch
from torch import nn

import torchnas as tn

L = pytest.importorskip("lightning")
tnl = pytest.importorskip("torchnas.integrations.lightning")

PRUNED, COMPLETE, FAILED = tn.TrialState.PRUNED, tn.TrialState.COMPLETE, tn.TrialState.FAILED


class Net(L.LightningModule):
    """A one-layer classifier; ``val_name`` is what it logs its validation accuracy as."""

    def __init__(self, width: int = 8, lr: float = 0.1, val_name: str = "val_accuracy",
                 in_epoch_end: bool = False) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(4, width), nn.ReLU(), nn.Linear(width, 2))
        self.lr, self.val_name, self.in_epoch_end = lr, val_name, in_epoch_end
        self.epochs_trained = 0
        self.correct: list[torch.Tensor] = []

    def training_step(self, batch: Any, index: int) -> torch.Tensor:
        x, y = batch
        loss = nn.functional.cross_entropy(self.net(x), y)
        self.log("train_loss", loss, on_step=False, on_epoch=True)
        return loss

    def on_train_epoch_end(self) -> None:
        self.epochs_trained += 1

    def validation_step(self, batch: Any, index: int) -> None:
        x, y = batch
        out = self.net(x)
        self.log("val_loss", nn.functional.cross_entropy(out, y))
        if self.in_epoch_end:  # the torchmetrics way: logged once in on_validation_epoch_end
            self.correct.append((out.argmax(1) == y).float())
        else:
            self.log(self.val_name, (out.argmax(1) == y).float().mean())

    def on_validation_epoch_end(self) -> None:
        if self.in_epoch_end:
            self.log(self.val_name, torch.cat(self.correct).mean())
            self.correct.clear()

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=self.lr)


def toy(n: int = 96) -> tn.data.Data:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 4, generator=g)
    y = (x[:, 0] + x[:, 1] > 0).long()
    return tn.data.from_tensors((x[:64], y[:64]), (x[64:], y[64:]))


class PruneAt(tn.schedulers.Scheduler):
    """Prunes every trial but the first at its first report."""

    name = "prune_at_1"

    def should_prune(self, trial: tn.FrozenTrial, trials: Mapping[int, tn.FrozenTrial]) -> bool:
        return trial.number > 0


def test_every_validation_is_reported_into_the_study() -> None:
    data = toy()
    study = tn.Study(objectives={"val_accuracy": "max"}, strategy="random", seed=0)

    def objective(hp: tn.HP) -> dict[str, float]:
        model = Net(width=hp.choice("width", [4, 8]), in_epoch_end=hp.bool("epoch_end"))
        return tnl.fit(model, data, hp, hp.trial, max_epochs=3, batch_size=16)

    study.optimize(objective, trials=2)
    for t in study.trials:
        assert t.state is COMPLETE, t.error
        assert [step for step, _ in t.intermediate] == [1, 2, 3]
        assert all({"val_accuracy", "val_loss"} <= set(m) for _, m in t.intermediate)
        # the result: the last validation, as logged, and the last epoch's training loss
        assert t.metrics["val_accuracy"] == t.intermediate[-1][1]["val_accuracy"]
        assert {"val_accuracy", "val_loss", "train_loss"} <= set(t.metrics)
        assert 0 <= t.metrics["val_accuracy"] <= 1


def test_a_pruned_trial_stops_training_at_once() -> None:
    data = toy()
    study = tn.Study(objectives={"val_accuracy": "max"}, strategy="random",
                     scheduler=PruneAt(), seed=0)
    models: list[Net] = []

    def objective(hp: tn.HP) -> dict[str, float]:
        models.append(Net(width=hp.choice("width", [4, 8, 16])))
        return tnl.fit(models[-1], data, hp, hp.trial, max_epochs=5, batch_size=16)

    study.optimize(objective, trials=2)
    first, second = study.trials
    assert first.state is COMPLETE and len(first.intermediate) == 5
    assert models[0].epochs_trained == 5
    assert second.state is PRUNED and [s for s, _ in second.intermediate] == [1]
    assert models[1].epochs_trained == 1  # stopped after the epoch it was pruned in
    assert "val_accuracy" in second.metrics  # a pruned trial keeps its last report


def test_half_epoch_validations_report_fractional_steps() -> None:
    study = tn.Study(objectives={"val_accuracy": "max"}, strategy="random")
    trial = study.ask()
    tnl.fit(Net(), toy(), trial.hp, trial, max_epochs=2, batch_size=16,
            val_check_interval=0.5)
    steps = [s for s, _ in study.trials[0].intermediate]
    assert steps == [0.5, 1, 1.5, 2]


@pytest.mark.parametrize("where", ["validation_step", "no validation_step"])
def test_a_module_that_logs_no_objective_stops_the_search_at_its_first_trial(
        where: str) -> None:
    class NoValidation(Net):
        validation_step = L.LightningModule.validation_step  # not overridden

    data = toy()
    study = tn.Study(objectives={"val_accuracy": "max"}, strategy="random")
    models: list[Net] = []

    def objective(hp: tn.HP) -> dict[str, float]:
        hp.choice("width", [4, 8])
        models.append(Net(val_name="val_acc") if where == "validation_step"
                      else NoValidation())
        return tnl.fit(models[-1], data, hp, hp.trial, max_epochs=5, batch_size=16)

    with pytest.raises(tn.ConfigError) as info:
        study.optimize(objective, trials=5)
    assert type(info.value).__name__ == "TrainFnError"  # the error that stops a search
    message = str(info.value)
    assert "self.log('val_accuracy', ...) in validation_step" in message
    if where == "validation_step":
        assert message.startswith("the LightningModule Net logged val_acc, val_loss; the "
                                  "search's objectives need val_accuracy")
    else:
        assert "NoValidation has no validation_step" in message
    assert [t.state for t in study.trials] == [FAILED]  # one trial, not a stream of them
    assert models[0].epochs_trained == 0  # found at Lightning's sanity check, before training


def test_fit_outside_a_search_and_its_errors() -> None:
    data = toy()
    # no trial (a retrain): nothing reported, objectives given explicitly are still checked
    metrics = tnl.fit(Net(), data, None, None, max_epochs=1, objectives=["val_accuracy"])
    assert {"val_accuracy", "val_loss", "train_loss"} <= set(metrics)
    with pytest.raises(tn.ConfigError, match="need val_f1"):  # TrainFnError is a ConfigError
        tnl.fit(Net(), data, None, None, max_epochs=1, objectives=["val_f1"])
    class Wrapper:  # a trial handed to a train_fn may say what the search ranks on
        objectives = ("val_f1",)
        budget = None

    with pytest.raises(tn.ConfigError, match="need val_f1"):
        tnl.fit(Net(), data, None, Wrapper(), max_epochs=1)
    with pytest.raises(tn.ConfigError, match="max_epochs must be an integer >= 1"):
        tnl.fit(Net(), data, None, None, max_epochs=0)
    with pytest.raises(TypeError, match=r"lightning\.LightningModule, got Linear"):
        tnl.fit(nn.Linear(4, 2), data, None, None)


def test_epochs_and_batch_size_from_the_budget_and_hp() -> None:
    class Budget(tn.schedulers.Scheduler):
        name = "budget_2"

        def should_prune(self, trial: tn.FrozenTrial,
                         trials: Mapping[int, tn.FrozenTrial]) -> bool:
            return False

        def budget(self, number: int) -> float | None:
            return 2.0

    study = tn.Study(objectives={"val_accuracy": "max"}, strategy="random", scheduler=Budget())
    sizes: list[int] = []

    class Sized(Net):
        def training_step(self, batch: Any, index: int) -> torch.Tensor:
            sizes.append(len(batch[0]))
            return super().training_step(batch, index)

    def objective(hp: tn.HP) -> dict[str, float]:
        hp.choice("batch_size", [32])
        hp.int("epochs", 4, 4)
        return tnl.fit(Sized(), toy(), hp, hp.trial)

    study.optimize(objective, trials=1)
    assert len(study.trials[0].intermediate) == 2  # hp says 4 epochs, the budget grants 2
    assert set(sizes) == {32}


def test_fit_is_a_picklable_train_fn() -> None:
    train_fn = functools.partial(tnl.fit, max_epochs=3)
    again = pickle.loads(pickle.dumps(train_fn))
    assert again.func is tnl.fit and again.keywords == {"max_epochs": 3}
    callback = tnl.TorchnasCallback(None, ["val_accuracy"])
    assert isinstance(callback, L.Callback) and callback.pruned is None


class Classifier(Net):
    """A Net with a forward (ModelSearch measures the built model's cost by calling it)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def lightning_space(hp: tn.HP) -> Classifier:
    return Classifier(width=hp.choice("width", [4, 8, 16]), lr=hp.choice("lr", [0.05, 0.1]))


@pytest.mark.skipif("train_fn" not in inspect.signature(tn.ModelSearch).parameters,
                    reason="ModelSearch(train_fn=...) is not in this tree")
def test_a_model_search_over_lightning_modules() -> None:
    search = tn.ModelSearch(space=lightning_space, data=toy(), strategy="random", trials=3,
                            objectives={"val_accuracy": "max"}, progress=False,
                            train_fn=functools.partial(tnl.fit, max_epochs=2, batch_size=16))
    search.run()
    trials = search.study.trials
    assert [t.state for t in trials] == [COMPLETE] * 3, [t.error for t in trials]
    assert all([s for s, _ in t.intermediate] == [1, 2] for t in trials)
    assert all({"val_accuracy", "params"} <= set(t.metrics) for t in trials)
    model = search.best_model(retrain=True)
    assert isinstance(model, Classifier) and model.epochs_trained == 2


@pytest.mark.skipif("train_fn" not in inspect.signature(tn.ModelSearch).parameters,
                    reason="ModelSearch(train_fn=...) is not in this tree")
def test_a_model_search_stops_at_a_module_without_the_objective() -> None:
    def space(hp: tn.HP) -> Classifier:
        return Classifier(width=hp.choice("width", [4, 8]), val_name="val_acc")

    train_fn = functools.partial(tnl.fit, max_epochs=2, objectives=["val_accuracy"])
    search = tn.ModelSearch(space=space, data=toy(), strategy="random", trials=3,
                            progress=False, train_fn=train_fn)
    with pytest.raises(tn.ConfigError, match=r"Classifier logged val_acc, val_loss; .* need "
                                             r"val_accuracy: self\.log\('val_accuracy'"):
        search.run()
    assert [t.state for t in search.study.trials] == [FAILED]
