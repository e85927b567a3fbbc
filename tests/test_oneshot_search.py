"""One-shot search through ``tn.ModelSearch`` and the CLI, exactly like the multi-trial path:
the derived architecture is retrained and recorded as a trial of the same storage, and the
architecture weights are written beside it. Real training on digits (seconds on a CPU)."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

import torchnas as tn
from torchnas.cli import main
from torchnas.oneshot._search import DerivedTrials

TINY = {"channels": 4, "stages": 2}


@pytest.fixture(scope="module")
def digits() -> tn.data.Data:
    return tn.data.load("digits")


def search(data: Any, **kw: Any) -> tn.ModelSearch:
    kw.setdefault("space", "cell")
    kw.setdefault("space_kwargs", TINY)
    kw.setdefault("strategy", {"name": "darts", "epochs": 1, "batch_size": 128})
    kw.setdefault("trainer", tn.Trainer(epochs=1))
    kw.setdefault("progress", False)
    return tn.ModelSearch(data=data, **kw)


def test_model_search_darts_records_the_derived_architecture(digits: tn.data.Data,
                                                             tmp_path: Path) -> None:
    db = tmp_path / "runs" / "s.db"
    s = search(digits, storage=str(db), name="oneshot")
    study = s.run()
    result = s.oneshot_result
    assert isinstance(result, tn.oneshot.OneShotResult) and result.method == "darts"
    [trial] = tn.load_study(str(db), name="oneshot").trials
    assert trial.state is tn.TrialState.COMPLETE and trial.arch == result.arch
    assert {"val_accuracy", "params", "search_seconds"} <= set(trial.metrics)
    assert study.best_trial.number == trial.number
    saved = json.loads((tmp_path / "runs" / "s.oneshot.oneshot.json").read_text())
    assert saved["trial"] == trial.number and saved["arch"] == trial.arch
    assert saved["method"] == "darts" and saved["settings"]["epochs"] == 1
    assert set(saved["alphas"]) == set(trial.arch)
    for weights in saved["alphas"].values():
        assert set(weights) == {"none", "skip", "conv_1x1", "conv_3x3", "avg_pool_3x3"}
        assert sum(weights.values()) == pytest.approx(1.0)
    assert {"collapsed", "param_free", "counts"} <= set(saved["collapse"])
    model = s.best_model(retrain=False)  # the standalone model of the derived architecture
    assert not any(isinstance(m, tn.oneshot.MixedOp) for m in model.modules())
    # a second run resumes: no new search, no new trial
    again = search(digits, storage=str(db), name="oneshot")
    again.run()
    assert len(tn.load_study(str(db), name="oneshot").trials) == 1
    assert again.oneshot_result.arch == result.arch


def test_each_method_runs_through_model_search(digits: tn.data.Data) -> None:
    settings = {"gdas": {}, "spos": {"population": 3, "generations": 2, "parents": 2},
                "enas": {"controller_steps": 2, "derive_samples": 1},
                "pc_darts": {"partial_channels": 2}}
    for name, extra in settings.items():
        s = search(digits, strategy={"name": name, "epochs": 1, "batch_size": 256, **extra})
        study = s.run()
        [trial] = study.trials
        assert trial.state is tn.TrialState.COMPLETE, (name, trial.error)
        assert trial.arch == s.oneshot_result.arch


def test_one_shot_settings_fail_before_any_work(digits: tn.data.Data, tmp_path: Path) -> None:
    db = tmp_path / "x.db"
    with pytest.raises(tn.ConfigError, match="epochz"):
        search(digits, strategy={"name": "darts", "epochz": 1}, storage=str(db)).run()
    assert not db.exists()


def test_the_cli_runs_a_one_shot_search_from_yaml(tmp_path: Path) -> None:
    db = tmp_path / "cli.db"
    config = tmp_path / "darts.yaml"
    config.write_text(f"""\
space: cell
space_kwargs: {{channels: 4, stages: 2}}
data: digits
strategy: {{name: gdas, epochs: 1, batch_size: 256}}
trainer: {{epochs: 1}}
storage: {db}
progress: false
""")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["search", str(config)]) == 0
    study = tn.load_study(str(db))
    [trial] = study.trials
    assert trial.state is tn.TrialState.COMPLETE
    assert list(tmp_path.glob("cli.*.oneshot.json"))
    method = {"name": "gdas", "epochs": 1, "batch_size": 256}
    assert study.config["strategy"] == method  # the real method, not a placeholder
    [resolved] = tmp_path.glob("cli.*.config.yaml")
    assert yaml.safe_load(resolved.read_text())["strategy"] == method


def test_a_one_shot_study_stores_its_method_and_old_ones_still_open(digits: tn.data.Data,
                                                                     tmp_path: Path) -> None:
    db = str(tmp_path / "s.db")
    old = tn.Study(name="old", storage=db, objectives={"val_accuracy": "max"},
                   strategy="random")  # how one-shot studies were stored before
    assert old.config["strategy"] == {"name": "random"}
    search(digits, storage=db, name="old").run()
    [trial] = tn.load_study(db, name="old").trials
    assert trial.state is tn.TrialState.COMPLETE
    assert tn.load_study(db, name="old").config["strategy"] == {"name": "random"}
    new = tn.Study(name="new", storage=db, strategy={"name": "darts", "epochs": 1})
    assert new.config["strategy"] == {"name": "darts", "epochs": 1}
    reopened = tn.load_study(db, name="new", read_only=True)
    assert isinstance(reopened.strategy, DerivedTrials)
    trial_of_new = new.ask()  # it proposes no architecture of its own
    with pytest.raises(tn.ConfigError, match="records a one-shot search"):
        trial_of_new.hp.choice("op", ["a", "b"])
