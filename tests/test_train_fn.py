"""Your own training loop: ``tn.ModelSearch(train_fn=...)``, with real training on digits.

A hand-written loop (Adam, shuffled batches, a report per epoch) runs under a scheduler that
prunes, a cost constraint that refuses before it, a low fidelity (width through ``hp.scale``, a
data subset, the epochs as ``trial.budget``), process workers, the retraining on train+val and
the export, a YAML config through the CLI, a resume; and the contract is enforced: a missing
metric stops the search at the first trial, a lambda cannot go to process workers, a resumed
study with another train_fn is refused.
"""

from __future__ import annotations

import contextlib
import io
import math
import textwrap
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import torchnas as tn
from torchnas import cli
from torchnas.search import TrialView

#: What the loops saw, call by call (inline executor only: one process).
calls: list[dict[str, Any]] = []


@pytest.fixture(scope="module")
def digits() -> tn.data.Data:
    return tn.data.load("digits")


@pytest.fixture(autouse=True)
def _clear() -> None:
    calls.clear()


def mlp(hp: tn.HP) -> nn.Module:
    """A one-hidden-layer MLP for digits (8x8 images) whose width goes through ``hp.scale``."""
    units = hp.choice("units", [16, 32, 64])
    return nn.Sequential(nn.Flatten(), nn.Linear(64, hp.scale(units)), nn.ReLU(),
                         nn.Linear(hp.scale(units), 10))


def epoch_loop(model: nn.Module, data: tn.data.Data, hp: tn.HP, trial: Any,
               epochs: int = 4) -> dict[str, float]:
    """A plain PyTorch loop: Adam at a learning rate it decides itself, batches of 64, a
    report per epoch; ``trial.budget`` (when set) caps its epochs."""
    lr = hp.float("lr", 3e-3, 3e-2, log=True)  # decided here: joins the architecture
    if trial is not None and trial.budget is not None:
        epochs = min(epochs, int(trial.budget))
    x, y = data.train.tensors  # type: ignore[attr-defined]
    xv, yv = data.val.tensors  # type: ignore[attr-defined]
    calls.append({"units": model[1].out_features, "arch": dict(hp.arch), "trial": trial,
                  "train": len(x), "val": len(xv), "budget": trial and trial.budget, "lr": lr})
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    metrics: dict[str, float] = {}
    for epoch in range(1, epochs + 1):
        model.train()
        order = torch.randperm(len(x))
        total = 0.0
        for i in range(0, len(x), 64):
            idx = order[i : i + 64]
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
        model.eval()
        with torch.no_grad():
            out = model(xv)
        metrics = {"val_accuracy": float((out.argmax(1) == yv).float().mean()),
                   "val_loss": float(F.cross_entropy(out, yv)), "train_loss": total / len(x)}
        if trial is not None:
            trial.report(epoch, metrics)  # raises TrialPruned when the scheduler says stop
    return metrics


def loop_without_train_loss(model: nn.Module, data: tn.data.Data, hp: tn.HP,
                            trial: Any) -> dict[str, float]:
    metrics = epoch_loop(model, data, hp, trial, epochs=2)
    return {k: v for k, v in metrics.items() if k != "train_loss"}


def loop_missing_metric(model: nn.Module, data: tn.data.Data, hp: tn.HP,
                        trial: Any) -> Mapping[str, float]:
    calls.append({"trial": trial})
    return {"accuracy": 0.5}  # not val_accuracy, the objective


def search(data: tn.data.Data, **kw: Any) -> tn.ModelSearch:
    kw.setdefault("space", mlp)
    kw.setdefault("train_fn", epoch_loop)
    kw.setdefault("trials", 4)
    kw.setdefault("strategy", "random")
    kw.setdefault("progress", False)
    return tn.ModelSearch(data=data, **kw)


# -- trials -----------------------------------------------------------------------------------
def test_a_scheduler_prunes_trials_of_your_own_loop(digits: tn.data.Data) -> None:
    study = search(digits, trials=8, scheduler={"name": "asha", "min_budget": 1,
                                                "max_budget": 4, "reduction_factor": 2},
                   objectives={"val_accuracy": "max", "params": "min"}).run()
    states = [t.state for t in study.trials]
    assert len(states) == 8
    assert tn.TrialState.PRUNED in states and tn.TrialState.COMPLETE in states
    for t in study.trials:
        assert {"units", "lr"} <= set(t.arch)  # the loop's own decision is recorded
        assert t.intermediate, t.number  # it reported per epoch
        assert t.metrics["params"] == 64 * t.arch["units"] + t.arch["units"] + 10 * (
            t.arch["units"] + 1)  # measured by torchnas, in the reports too
        assert "params" in t.intermediate[-1][1]
        if t.state is tn.TrialState.PRUNED:
            assert len(t.intermediate) < 4
        else:
            assert {"val_accuracy", "val_loss", "train_loss", "train_seconds"} <= set(t.metrics)
            assert 0.5 < t.metrics["val_accuracy"] <= 1
    assert all(isinstance(c["trial"], TrialView) for c in calls)
    assert all(c["trial"].number == n for n, c in enumerate(calls))


def test_a_cost_constraint_rejects_before_your_loop(digits: tn.data.Data) -> None:
    s = search(digits, trials=6, constraints={"params": ("<=", 1300)},
               warm_start={"proxy": "naswot", "samples": 6, "top": 1})
    study = s.run()
    assert s.warm_start_ranking and study.trials[0].arch["units"] == 16  # the proxy's pick
    assert study.trials[0].state is tn.TrialState.COMPLETE and "lr" in study.trials[0].arch
    rejected = [t for t in study.trials if t.state is tn.TrialState.REJECTED]
    trained = [t for t in study.trials if t.state is tn.TrialState.COMPLETE]
    assert rejected and trained
    assert all(t.arch["units"] > 16 and "lr" not in t.arch for t in rejected)
    assert "params" in (rejected[0].error or "")
    assert [c["units"] for c in calls] == [t.arch["units"] for t in trained] == [16] * len(trained)


def test_low_fidelity_reaches_your_loop(digits: tn.data.Data) -> None:
    study = search(digits, trials=3, fidelity={"width": 0.5, "data": 0.5, "epochs": 2}).run()
    assert len(calls) == 3
    for call, t in zip(calls, study.trials, strict=True):
        assert call["units"] == t.arch["units"] // 2  # built at half width by hp.scale
        assert call["train"] == math.ceil(0.5 * len(digits.train))  # type: ignore[arg-type]
        assert call["val"] == len(digits.val)  # type: ignore[arg-type]
        assert call["budget"] == 2  # the fidelity's epochs
        assert len(t.intermediate) == 2
        units = t.arch["units"]
        assert t.metrics["params"] == 64 * units + units + 10 * (units + 1)  # full width


def test_executions_seed_your_loop(digits: tn.data.Data) -> None:
    study = search(digits, trials=2, executions_per_trial=2).run()
    assert len(calls) == 4
    for t in study.trials:
        assert t.metrics["executions"] == 2 and "val_accuracy_std" in t.metrics
        assert len(t.intermediate) == 4  # only the first execution reports
    again = search(digits, trials=2, executions_per_trial=2).run()
    assert [t.metrics for t in again.trials] == [t.metrics | {
        "train_seconds": a.metrics["train_seconds"]} for t, a in zip(
            study.trials, again.trials, strict=True)]  # same seed, same training


def test_your_loop_runs_in_process_workers(digits: tn.data.Data, tmp_path: Path) -> None:
    db = tmp_path / "w.db"
    study = search(digits, trials=4, workers=2, executor="process", storage=str(db)).run()
    assert [t.state for t in study.trials] == [tn.TrialState.COMPLETE] * 4
    assert all("lr" in t.arch and len(t.intermediate) == 4 for t in study.trials)
    assert calls == []  # the loops ran in the workers


# -- after the search -------------------------------------------------------------------------
def test_retrain_on_train_val_and_export(digits: tn.data.Data, tmp_path: Path) -> None:
    s = search(digits, trials=3)
    s.run()
    best = s.best_trial
    calls.clear()
    model = s.best_model(retrain=True)
    [call] = calls
    assert call["trial"] is None
    assert call["train"] == len(digits.train) + len(digits.val)  # type: ignore[arg-type]
    assert call["val"] == len(digits.test)  # type: ignore[arg-type]
    assert call["lr"] == best.arch["lr"]  # the loop's own decision, given back
    assert set(s.test_metrics) == {"test_accuracy", "test_loss"}
    assert 0.5 < s.test_metrics["test_accuracy"] <= 1
    report = s.retrain_report
    assert report is not None and report.chosen == "retrained"
    assert report.trial_train_loss == best.metrics["train_loss"]
    assert math.isfinite(report.attempts[0].train_loss)
    path = s.export(tmp_path / "best.pt", model)
    saved = tn.search.read_export(path)
    assert saved["arch"] == {"units": best.arch["units"]}
    assert saved["meta"]["train_fn_decisions"] == {"lr": best.arch["lr"]}
    assert saved["meta"]["train_fn"].endswith(":epoch_loop")
    x = torch.rand(3, 1, 8, 8)
    assert torch.equal(tn.load_model(path, space=mlp)(x), model(x))
    kept = s.best_model(retrain=False)  # the trial's own weights, rebuilt with the loop's lr
    assert isinstance(kept, nn.Sequential)


def test_a_retrain_without_train_loss_is_not_checked(digits: tn.data.Data) -> None:
    s = search(digits, trials=2, train_fn=loop_without_train_loss, retrain_attempts=3)
    s.run()
    s.best_model(retrain=True)
    report = s.retrain_report
    assert report is not None and report.trial_train_loss is None
    assert len(report.attempts) == 1 and report.chosen == "retrained"
    assert "test_accuracy" in s.test_metrics


# -- the contract -------------------------------------------------------------------------------
def test_a_missing_metric_stops_the_search_at_the_first_trial(digits: tn.data.Data) -> None:
    s = search(digits, trials=5, train_fn=loop_missing_metric)
    with pytest.raises(tn.ConfigError, match=r"train_fn [\w.]+:loop_missing_metric returned no "
                                             r"'val_accuracy' \(it returned \['accuracy'\]"):
        s.run()
    assert len(calls) == 1
    assert s.study is not None and [t.state for t in s.study.trials] == [tn.TrialState.FAILED]


def test_a_lambda_cannot_go_to_process_workers(digits: tn.data.Data, tmp_path: Path) -> None:
    def local(model: nn.Module, data: Any, hp: tn.HP, trial: Any) -> dict[str, float]:
        return {}

    for fn, what in ((lambda m, d, h, t: {}, "<lambda>"), (local, "<locals>")):
        s = search(digits, train_fn=fn, workers=2, storage=str(tmp_path / "l.db"))
        with pytest.raises(tn.ConfigError, match=rf"train_fn .*{what}.* cannot be sent to "
                                                 r"executor='process'.*module level"):
            s.run()
        assert s.study is None  # refused before storage was touched
    search(digits, train_fn=lambda m, d, h, t: {}, trials=0).check()  # inline: fine


@pytest.mark.parametrize(("kw", "message"), [
    ({"trainer": tn.Trainer(epochs=1)}, r"trainer and train_fn are both given"),
    ({"train_fn": 3}, r"train_fn must be a function .* or its name package.module:function"),
    ({"train_fn": "no_such_tfn_module:fit"}, r"train_fn: cannot import 'no_such_tfn_module'"),
    ({"train_fn": lambda model, data: {}}, r"must take the four arguments"),
    ({"strategy": "darts"}, r"one-shot method"),
])
def test_bad_train_fn_settings_fail_before_any_trial(digits: tn.data.Data, kw: dict[str, Any],
                                                     message: str) -> None:
    s = search(digits, **kw)
    with pytest.raises(tn.ConfigError, match=message):
        s.run()
    assert calls == []


def test_a_resume_with_another_train_fn_is_refused(digits: tn.data.Data, tmp_path: Path) -> None:
    db = str(tmp_path / "r.db")
    search(digits, trials=1, storage=db, name="r").run()
    with pytest.raises(tn.ConfigError, match=r"train_fn: \"[\w.]+:epoch_loop\" -> "
                                             r"\"[\w.]+:loop_without_train_loss\""):
        search(digits, trials=2, storage=db, name="r", train_fn=loop_without_train_loss).run()
    with pytest.raises(tn.ConfigError, match=r"train_fn: \"[\w.]+:epoch_loop\" -> null"):
        search(digits, trials=2, storage=db, name="r", train_fn=None,
               trainer=tn.Trainer(epochs=1)).run()
    study = search(digits, trials=2, storage=db, name="r").run()  # the same loop goes on
    assert len(study.trials) == 2


# -- YAML and the command line ---------------------------------------------------------------
LOOP_MODULE = '''
import torch
import torch.nn.functional as F
from torch import nn


def space(hp):
    units = hp.choice("units", [16, 32])
    return nn.Sequential(nn.Flatten(), nn.Linear(64, units), nn.ReLU(), nn.Linear(units, 10))


def fit(model, data, hp, trial):
    opt = torch.optim.Adam(model.parameters(), lr=hp.float("lr", 3e-3, 3e-2, log=True))
    x, y = data.train.tensors
    xv, yv = data.val.tensors
    for epoch in (1, 2):
        for i in range(0, len(x), 64):
            loss = F.cross_entropy(model(x[i:i + 64]), y[i:i + 64])
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            acc = float((model(xv).argmax(1) == yv).float().mean())
        if trial is not None:
            trial.report(epoch, {"val_accuracy": acc})
    return {"val_accuracy": acc, "train_loss": float(loss.detach())}
'''


def run_cli(*argv: str | Path) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main([str(a) for a in argv])
    return code, out.getvalue(), err.getvalue()


def test_yaml_names_the_loop_as_module_function(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "tfn_yaml_loops.py").write_text(LOOP_MODULE)
    (tmp_path / "c.yaml").write_text(textwrap.dedent("""\
        space: tfn_yaml_loops:space
        data: digits
        train_fn: tfn_yaml_loops:fit
        strategy: random
        trials: 3
        storage: runs/y.db
        name: y
    """))
    code, out, err = run_cli("search", "c.yaml")
    assert code == 0, err
    assert "Leaderboard of 'y' (3 complete)" in out
    resolved = (tmp_path / "runs" / "y.y.config.yaml").read_text()
    assert "train_fn: tfn_yaml_loops:fit" in resolved and "trainer: null" in resolved
    study = tn.load_study("runs/y.db", name="y")
    assert study.settings is not None and study.settings["train_fn"] == "tfn_yaml_loops:fit"
    assert all("lr" in t.arch for t in study.trials)
    code, out, err = run_cli("export", "runs/y.db", "best.pt")  # code beside a DB: refused
    assert code == 2 and "space: 'tfn_yaml_loops:space'" in err and "--trust-config" in err
    code, out, err = run_cli("export", "runs/y.db", "best.pt", "--trust-config")  # fit again
    assert code == 0, err
    assert "retrained on train+val: test accuracy" in out
    code, out, err = run_cli("search", "c.yaml", "--set", "trainer.epochs=1")
    assert code == 2 and "trainer and train_fn are both given" in err
    code, out, err = run_cli("search", "c.yaml", "--set", "train_fn=tfn_yaml_loops:fitt")
    assert code == 2 and "'tfn_yaml_loops' has no 'fitt'; did you mean 'fit'?" in err


# -- a LightningModule without train_fn -----------------------------------------------------------
def lightning_space(hp: tn.HP) -> nn.Module:
    """A space whose models are LightningModules: trained by Lightning, not the Trainer."""
    L = pytest.importorskip("lightning")

    class Classifier(L.LightningModule):
        def __init__(self, units: int) -> None:
            super().__init__()
            self.net = nn.Sequential(nn.Flatten(), nn.Linear(64, units), nn.ReLU(),
                                     nn.Linear(units, 10))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.net(x)

        def training_step(self, batch: Any, _: int) -> torch.Tensor:
            x, y = batch
            loss = F.cross_entropy(self(x), y)
            self.log("train_loss", loss, on_epoch=True, on_step=False)
            return loss

        def validation_step(self, batch: Any, _: int) -> None:
            x, y = batch
            self.log("val_accuracy", (self(x).argmax(1) == y).float().mean())

        def configure_optimizers(self) -> torch.optim.Optimizer:
            return torch.optim.Adam(self.parameters(), lr=1e-2)

    hp.choice("epochs", [2])  # what the Lightning bridge trains for
    return Classifier(hp.choice("units", [16, 32]))


def test_a_lightning_module_is_trained_by_lightning(digits: tn.data.Data) -> None:
    pytest.importorskip("lightning")
    s = search(digits, space=lightning_space, train_fn=None, trials=2)
    study = s.run()
    for t in study.trials:
        assert t.state is tn.TrialState.COMPLETE, t.error
        assert t.metrics["val_accuracy"] > 0.5 and "train_loss" in t.metrics
        assert [step for step, _ in t.intermediate] == [1, 2]  # Lightning's reports
        assert "params" in t.intermediate[0][1]  # with torchnas's measured costs
    s.best_model(retrain=True)
    assert "test_accuracy" in s.test_metrics
