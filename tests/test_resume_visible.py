"""Resume you can see: what a rerun says it resumes, a bar and new-best lines that count the
whole study, Ctrl-C as one line and exit 130 (a real SIGINT), and settings that change what a
trial means refused on a stored study; the CLI's export of kept weights and summary in best."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch

import torchnas as tn
from torchnas.cli import main
from torchnas.export import read_export


@pytest.fixture(scope="module")
def digits() -> tn.data.Data:
    return tn.data.load("digits")


def search(data: Any, db: Path, **kw: Any) -> tn.ModelSearch:
    kw.setdefault("trainer", tn.Trainer(epochs=1))
    return tn.ModelSearch(space="mlp", data=data, storage=str(db), name="r", strategy="random",
                          **kw)


def test_a_rerun_says_what_it_resumes_and_counts_the_whole_study(
        digits: tn.data.Data, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "r.db"
    search(digits, db, trials=3).run()
    capsys.readouterr()
    study = search(digits, db, trials=5).run()
    out, err = capsys.readouterr()
    assert out.splitlines()[0] == "resuming 'r': 3 of 5 trials done"
    assert "3/5" in err and "5/5" in err and "0/2" not in err  # the bar counts the study
    first = study.trials[:3]
    best_before = max(t.metrics["val_accuracy"] for t in first)
    for line in err.replace("\r", "\n").splitlines():
        if "new best" in line:  # only trials better than every earlier one, old ones included
            number = int(line.split("trial ")[1].split(":")[0])
            assert number >= 3 and study.trials[number].metrics["val_accuracy"] > best_before
    search(digits, db, trials=5).run()
    out, err = capsys.readouterr()
    assert out.splitlines()[0] == "study 'r' is already complete: 5 of 5 trials done"
    assert "search:" not in err  # no empty bar


def test_settings_that_change_what_a_trial_means_are_refused(digits: tn.data.Data,
                                                             tmp_path: Path) -> None:
    db = tmp_path / "r.db"
    search(digits, db, trials=2, progress=False).run()
    other = search(digits, db, trials=3, progress=False,
                   trainer=tn.Trainer(epochs=2, batch_size=64),
                   fidelity={"width": 0.5}, space_kwargs={"max_layers": 2})
    with pytest.raises(tn.ConfigError) as info:
        other.run()
    message = str(info.value)
    for part in ("trainer.epochs: 1 -> 2", "trainer.batch_size: 128 -> 64",
                 "fidelity.width: 1.0 -> 0.5", "space_kwargs.max_layers: (not set) -> 2",
                 "override_settings=True"):
        assert part in message
    assert len(tn.load_study(str(db), name="r").trials) == 2  # nothing ran
    # where and how fast trials run does not change their meaning
    search(digits, db, trials=3, progress=False,
           trainer=tn.Trainer(epochs=1, threads=1, device="cpu")).run()
    mixed = search(digits, db, trials=4, progress=False, trainer=tn.Trainer(epochs=2),
                   override_settings=True)
    mixed.run()
    assert len(mixed.study.trials) == 4
    assert mixed.study.settings["trainer"]["epochs"] == 1  # the stored ones stay


def write_config(tmp_path: Path, trials: int, epochs: int = 1) -> Path:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"space: mlp\ndata: digits\ntrainer: {{epochs: {epochs}}}\ntrials: {trials}\n"
                   f"strategy: random\nstorage: {tmp_path / 'c.db'}\nname: c\n")
    return cfg


def test_the_cli_never_overwrites_the_saved_config_with_other_settings(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = write_config(tmp_path, 2)
    assert main(["search", str(cfg)]) == 0
    saved = tmp_path / "c.c.config.yaml"
    before = saved.read_text()
    assert main(["search", str(cfg), "--set", "trainer.epochs=2"]) == 2
    assert "trainer.epochs: 1 -> 2" in capsys.readouterr().err
    assert main(["search", str(cfg), "--set", "trainer.epochs=2", "--set", "trials=3", "--set",
                 "override_settings=true"]) == 0
    assert "keeps the study's own settings" in capsys.readouterr().out
    assert saved.read_text() == before


def _has_trials(db: Path) -> bool:
    try:
        return bool(tn.load_study(str(db), read_only=True).trials)
    except ValueError:  # the file exists, its tables not yet
        return False


def _default_sigint() -> None:
    """Ctrl-C's default in the child: a test run from a background shell inherits SIGINT
    ignored, and Python keeps an inherited SIG_IGN (as ``nohup`` users want)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_marks_running_trials_interrupted_and_exits_130(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, 3, epochs=400)
    proc = subprocess.Popen([sys.executable, "-m", "torchnas.cli", "search", str(cfg)],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
                            preexec_fn=_default_sigint)
    db = tmp_path / "c.db"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # wait until the first trial runs
        time.sleep(0.5)
        if db.exists() and _has_trials(db):
            break
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert "1 running trial(s) marked interrupted" in err
    [trial] = tn.load_study(str(db)).trials
    assert trial.state is tn.TrialState.INTERRUPTED


@pytest.fixture(scope="module")
def cli_study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("cli")
    cfg = write_config(folder, 3)
    assert main(["search", str(cfg), "--set", "keep_models=1", "--set", "progress=false"]) == 0
    return folder


def test_export_no_retrain_writes_the_kept_trained_model(cli_study: Path,
                                                        digits: tn.data.Data,
                                                        capsys: pytest.CaptureFixture[str]
                                                        ) -> None:
    db = cli_study / "c.db"
    study = tn.load_study(str(db))
    out = cli_study / "best.pt"
    assert main(["export", str(db), str(out), "--no-retrain"]) == 0
    assert "its trained weights from" in capsys.readouterr().out
    model = tn.load_model(out)
    x = torch.stack([digits.val[i][0] for i in range(len(digits.val))])  # type: ignore[arg-type]
    y = torch.stack([digits.val[i][1] for i in range(len(digits.val))])  # type: ignore[arg-type]
    with torch.no_grad():
        acc = (model.eval()(x).argmax(1) == y).float().mean().item()
    assert acc == pytest.approx(study.best_trial.metrics["val_accuracy"])
    assert read_export(out)["meta"]["trial"] == study.best_trial.number
    other = next(t for t in study.trials if t.number != study.best_trial.number)
    assert main(["export", str(db), str(cli_study / "o.pt"), "--trial", str(other.number),
                 "--no-retrain"]) == 2
    err = capsys.readouterr().err
    assert f"trial {other.number}'s trained weights were not kept" in err
    assert "without --no-retrain" in err


def test_best_prints_the_kept_models_summary(cli_study: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["best", str(cli_study / "c.db")]) == 0
    out = capsys.readouterr().out
    assert "Model (trained weights in" in out and "Trainable params" in out
    assert "FLOPs per sample" in out


def test_summary_names_layers_shapes_params_and_flops(digits: tn.data.Data) -> None:
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 32), torch.nn.ReLU(),
                                torch.nn.Linear(32, 10))
    s = tn.summary(model, digits)
    assert s.params == 64 * 32 + 32 + 32 * 10 + 10 == s.total_params
    assert s.flops == 2 * (64 * 32 + 32 * 10)
    assert s.input_shape == (2, 1, 8, 8) and s.output_shape == (2, 10)
    text = str(s)
    assert "[2, 32]" in text and "Linear" in text and "2,080" in text
    assert "Units." not in text
    assert model.training  # left as it was
    with pytest.raises(tn.ConfigError, match="sample shape"):
        tn.summary(model, "digits")  # type: ignore[arg-type]
