"""torchnas studies through Optuna: the read-only storage adapter, read by Optuna itself and by
the real optuna-dashboard server (started on 127.0.0.1, its JSON API read with urllib)."""

from __future__ import annotations

import json
import math
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import warnings
from pathlib import Path
from typing import Any

import pytest

import torchnas as tn
from torchnas._util.errors import ConfigError

optuna = pytest.importorskip("optuna")

from torchnas.integrations.optuna_storage import (  # noqa: E402
    OptunaStorage,
    ReadOnlyStorageError,
)

STATES = {"complete": "COMPLETE", "pruned": "PRUNED", "failed": "FAIL", "running": "RUNNING"}


def _objective(hp: tn.HP) -> dict[str, float]:
    kind = hp.choice("kind", ["mlp", "conv"])
    width = hp.int("width", 4, 64, log=True)
    lr = hp.float("lr", 1e-4, 1e-1, log=True)
    if kind == "conv":
        hp.int("kernel", 1, 7, step=2)  # conditional: only the conv trials meet it
    for step in range(1, 4):
        hp.trial.report(step, {"acc": step * width / 300})
    if hp.trial.number % 6 == 4:
        raise RuntimeError("too wide")  # a failed trial
    if hp.trial.number % 6 == 5:
        raise tn.TrialPruned()  # a pruned one, its curve kept
    return {"acc": width / 64 + (0.1 if kind == "conv" else 0.0), "ms": width * 0.5 + lr,
            "params": float(width * 10)}


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, tn.Study]:
    path = tmp_path_factory.mktemp("optuna") / "runs.db"
    study = tn.Study(name="s", storage=str(path), objectives={"acc": "max", "ms": "min"},
                     strategy="random", seed=3)
    study.optimize(_objective, trials=14, max_failures=None)
    other = tn.Study(name="one", storage=str(path), objectives={"acc": "max"},
                     strategy="random", seed=1)
    other.optimize(_objective, trials=4, max_failures=None)
    return path, tn.load_study(str(path), name="s", read_only=True)


def _check_same(optuna_trials: list[Any], study: tn.Study) -> None:
    ours = study.trials
    assert [t.number for t in optuna_trials] == [t.number for t in ours]
    for o, t in zip(optuna_trials, ours, strict=True):
        assert o.state.name == STATES[t.state.value]
        assert o.params == t.arch
        assert o.intermediate_values == {s: m["acc"] for s, m in t.intermediate}
        if t.state is tn.TrialState.COMPLETE:
            assert o.values == [t.metrics["acc"], t.metrics["ms"]]
            assert o.user_attrs["params"] == t.metrics["params"]
        else:
            assert o.values is None
        assert o.datetime_start.timestamp() == pytest.approx(t.start, abs=1e-3)


def test_optuna_load_study_reads_the_same_trials(db: tuple[Path, tn.Study]) -> None:
    path, study = db
    states = {t.state for t in study.trials}
    assert states == {tn.TrialState.COMPLETE, tn.TrialState.FAILED, tn.TrialState.PRUNED}
    assert any("kernel" in t.arch for t in study.trials)
    assert any("kernel" not in t.arch for t in study.trials)

    storage = OptunaStorage(path)
    assert [s.study_name for s in storage.get_all_studies()] == ["s", "one"]
    loaded = optuna.load_study(study_name="s", storage=storage)
    assert loaded.directions == [optuna.study.StudyDirection.MAXIMIZE,
                                 optuna.study.StudyDirection.MINIMIZE]
    assert loaded.metric_names == ["acc", "ms"]
    _check_same(loaded.trials, study)
    dist = loaded.trials[0].distributions
    assert dist["width"] == optuna.distributions.IntDistribution(4, 64, log=True)
    assert dist["lr"] == optuna.distributions.FloatDistribution(1e-4, 1e-1, log=True)
    assert dist["kind"] == optuna.distributions.CategoricalDistribution(["mlp", "conv"])
    conv = next(t for t in loaded.trials if "kernel" in t.params)
    assert conv.distributions["kernel"] == optuna.distributions.IntDistribution(1, 7, step=2)
    failed = next(t for t in loaded.trials if t.state.name == "FAIL")
    assert "too wide" in failed.system_attrs["fail_reason"]
    # Optuna's own tools work on it: the Pareto front and importances
    front = {t.number for t in study.pareto_front()}
    assert {t.number for t in loaded.best_trials} == front
    importances = optuna.importance.get_param_importances(
        loaded, target=lambda t: t.values[1],
        evaluator=optuna.importance.FanovaImportanceEvaluator(seed=0))
    assert set(importances) >= {"width", "lr", "kind"}

    single = optuna.load_study(study_name="one", storage=storage)
    # the data behind the dashboard's contour and timeline views (drawn by plotly.js in the
    # browser), through Optuna's matplotlib twins of them
    pytest.importorskip("matplotlib").use("Agg")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        timeline = optuna.visualization.matplotlib.plot_timeline(loaded)
        assert len(timeline.patches) >= len(study.trials)  # one bar per trial
        contour = optuna.visualization.matplotlib.plot_contour(single, params=["width", "lr"])
        assert contour.get_xlabel() and contour.get_ylabel()
    best = tn.load_study(str(path), name="one", read_only=True).best_trial
    assert single.best_trial.number == best.number
    assert single.best_value == best.metrics["acc"]
    trial_id = storage.get_trial_id_from_study_id_trial_number(single._study_id, best.number)
    assert storage.get_trial(trial_id).number == best.number


def test_writes_are_refused(db: tuple[Path, tn.Study]) -> None:
    path, study = db
    before = len(study.trials)
    storage = OptunaStorage(path)
    loaded = optuna.load_study(study_name="s", storage=storage)
    with pytest.raises(ReadOnlyStorageError, match="read-only through OptunaStorage"):
        loaded.ask()
    with pytest.raises(ReadOnlyStorageError, match="read-only"):
        loaded.set_user_attr("k", 1)
    with pytest.raises(ReadOnlyStorageError, match="create_new_study"):
        optuna.create_study(study_name="new", storage=storage)
    with pytest.raises(ReadOnlyStorageError, match="delete_study"):
        optuna.delete_study(study_name="s", storage=storage)
    trial_id = loaded.trials[0]._trial_id
    with pytest.raises(ReadOnlyStorageError):
        storage.set_trial_user_attr(trial_id, "k", 1)
    assert len(tn.load_study(str(path), name="s", read_only=True).trials) == before
    with pytest.raises(ConfigError, match="no torchnas storage file"):
        OptunaStorage(path.parent / "missing.db")


def test_follows_a_study_that_grows(tmp_path: Path) -> None:
    path = tmp_path / "grow.db"
    study = tn.Study(name="g", storage=str(path), objectives={"acc": "max"}, strategy="random")
    study.optimize(_objective, trials=2, max_failures=None)
    storage = OptunaStorage(path)
    study_id = storage.get_study_id_from_name("g")
    assert storage.get_n_trials(study_id) == 2
    study.optimize(_objective, trials=2, max_failures=None)
    assert storage.get_n_trials(study_id) == 4
    with pytest.raises(KeyError):
        storage.get_study_id_from_name("nope")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=30) as response:
        return json.loads(response.read())


@pytest.mark.slow
def test_optuna_dashboard_serves_a_torchnas_study(db: tuple[Path, tn.Study]) -> None:
    pytest.importorskip("optuna_dashboard")
    path, study = db
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "torchnas.integrations.optuna_storage", str(path),
         "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                studies = _get(f"{base}/api/studies")["study_summaries"]
                break
            except (urllib.error.URLError, ConnectionError):
                if proc.poll() is not None or time.monotonic() > deadline:
                    out = proc.stdout.read() if proc.stdout else ""
                    pytest.fail(f"optuna-dashboard did not start:\n{out}")
                time.sleep(0.2)
        assert [s["study_name"] for s in studies] == ["s", "one"]
        summary = studies[0]
        assert summary["directions"] == ["maximize", "minimize"]
        detail = _get(f"{base}/api/studies/{summary['study_id']}?after=0")
        trials = detail["trials"]
        ours = study.trials
        assert len(trials) == len(ours)
        assert detail["objective_names"] == ["acc", "ms"]
        for served, t in zip(trials, ours, strict=True):
            assert served["number"] == t.number
            assert served["state"] == STATES[t.state.value].capitalize()
            params = {p["name"]: p["param_external_value"] for p in served["params"]}
            assert params == {k: str(v) for k, v in t.arch.items()}
            if t.state is tn.TrialState.COMPLETE:
                assert served["values"] == pytest.approx([t.metrics["acc"], t.metrics["ms"]])
                assert [v["value"] for v in served["intermediate_values"]] == pytest.approx(
                    [m["acc"] for _, m in t.intermediate])
            assert served["datetime_start"] and (served["datetime_complete"] or
                                                 t.state is tn.TrialState.RUNNING)
        union = {p["name"] for p in detail["union_search_space"]}
        assert union == {"kind", "width", "lr", "kernel"}
        assert {t["number"] for t in detail["best_trials"]} == {
            t.number for t in study.pareto_front()}
        importances = _get(f"{base}/api/studies/{summary['study_id']}/param_importances")
        per_objective = importances["param_importances"]
        assert len(per_objective) == 2
        for entry in per_objective:
            assert {p["name"] for p in entry} >= {"width", "lr", "kind"}
            assert all(math.isfinite(p["importance"]) for p in entry)
        # a write through the dashboard's API is refused, and the journal is untouched
        request = urllib.request.Request(f"{base}/api/studies/{summary['study_id']}/note",
                                         data=b'{"version": 1, "body": "x"}', method="PUT",
                                         headers={"Content-Type": "application/json"})
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=30)
        assert refused.value.code == 500
        assert len(tn.load_study(str(path), name="s", read_only=True).trials) == len(ours)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    log = proc.stdout.read() if proc.stdout else ""
    assert f"at http://127.0.0.1:{port}/" in log
    assert '_refuse("set_study_system_attr")' in log  # the note was refused by the adapter
