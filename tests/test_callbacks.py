"""Callbacks and trackers: the hooks in order, in the driver, with the inline and the process
executor; a callback that raises is warned about and disabled while the search goes on;
KeyboardInterrupt still stops it; names and settings checked before anything starts; and each
tracker read back with its own library (TensorBoard's event reader, MLflow's client, the W&B
offline run file), also from a YAML config through the CLI. Nothing reaches the network: W&B
runs offline and MLflow writes to a local SQLite store.

Objectives are module-level functions: worker processes import them by name.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import logging
import math
import os
import struct
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

import torchnas as tn
from torchnas.cli import main

COMPLETE, FAILED = tn.TrialState.COMPLETE, tn.TrialState.FAILED
STEPS = 3


@pytest.fixture(autouse=True)
def _offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test in its own folder (trackers of a study in memory write under ``runs/``), with
    W&B offline and silent, and no MLflow server from the environment."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_ERROR_REPORTING", "false")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    yield


# -- objectives (module level: workers import them) ---------------------------------------------
def reporting(hp: tn.HP) -> dict[str, float]:
    """Reports ``loss`` at steps 0..STEPS-1; fails when ``x`` is past 0.9."""
    x = hp.float("x", 0.0, 1.0)
    act = hp.choice("act", ["relu", "gelu"])
    assert hp.trial is not None
    for step in range(STEPS):
        hp.trial.report(step, {"loss": x / (step + 1), "pid": float(os.getpid())})
    if x > 0.9:
        raise RuntimeError("x is too large")
    return {"loss": x / STEPS, "width": 16.0 if act == "relu" else 32.0}


class Recorder(tn.callbacks.Callback):
    """Every hook it hears, with the process that called it."""

    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []

    def on_search_start(self, study: tn.Study) -> None:
        self.events.append(("search_start", os.getpid()))

    def on_trial_start(self, study: tn.Study, number: int) -> None:
        self.events.append(("trial_start", os.getpid(), number))

    def on_report(self, study: tn.Study, number: int, step: int | float,
                  metrics: Mapping[str, float]) -> None:
        self.events.append(("report", os.getpid(), number, step, dict(metrics)))

    def on_trial_end(self, study: tn.Study, trial: tn.FrozenTrial) -> None:
        self.events.append(("trial_end", os.getpid(), trial.number, trial))

    def on_search_end(self, study: tn.Study) -> None:
        self.events.append(("search_end", os.getpid()))

    def kinds(self) -> list[str]:
        return [e[0] for e in self.events]


def study(**kw: Any) -> tn.Study:
    kw.setdefault("objectives", {"loss": "min"})
    kw.setdefault("strategy", "random")
    kw.setdefault("seed", 1)
    return tn.Study(**kw)


def check_order(rec: Recorder, trials: int) -> None:
    """Once each search hook around the trials; each trial's reports between its start and end;
    every hook in this process."""
    kinds = rec.kinds()
    assert kinds[0] == "search_start" and kinds[-1] == "search_end"
    assert kinds.count("search_start") == kinds.count("search_end") == 1
    assert kinds.count("trial_start") == kinds.count("trial_end") == trials
    assert {e[1] for e in rec.events} == {os.getpid()}
    for n in range(trials):
        mine = [(i, e) for i, e in enumerate(rec.events) if e[0] != "search_start"
                and e[0] != "search_end" and e[2] == n]
        assert [e[0] for _, e in mine] == ["trial_start", *["report"] * STEPS, "trial_end"]
        assert [e[3] for _, e in mine[1:-1]] == list(range(STEPS))
        end = mine[-1][1][3]
        assert end.number == n and end.state.finished
        assert [s for s, _ in end.intermediate] == list(range(STEPS))


# -- the protocol -------------------------------------------------------------------------------
def test_hooks_come_in_order_inline_and_functions_still_end_trials() -> None:
    rec, ends = Recorder(), []
    s = study()
    s.optimize(reporting, trials=4, callbacks=[rec, lambda st, t: ends.append(t.number)])
    check_order(rec, 4)
    assert ends == [0, 1, 2, 3]
    reports = [e for e in rec.events if e[0] == "report"]
    assert all(e[4]["pid"] == os.getpid() for e in reports)  # inline: the objective ran here


def test_reports_from_worker_processes_reach_the_driver_callbacks() -> None:
    rec = Recorder()
    s = study()
    s.optimize(reporting, trials=4, workers=2, callbacks=[rec])
    check_order(rec, 4)  # every hook in this process (the driver) ...
    workers = {e[4]["pid"] for e in rec.events if e[0] == "report"}
    assert workers and os.getpid() not in workers  # ... for reports made in the workers


def test_a_callback_that_raises_is_warned_about_disabled_and_the_search_goes_on(
        caplog: pytest.LogCaptureFixture) -> None:
    class Broken(tn.callbacks.Callback):
        def __init__(self) -> None:
            self.reports = 0
            self.ended = False

        def on_report(self, study: tn.Study, number: int, step: int | float,
                      metrics: Mapping[str, float]) -> None:
            self.reports += 1
            raise OSError("disk full")

        def on_search_end(self, study: tn.Study) -> None:
            self.ended = True  # still called: a tracker closes its files here

    def broken_function(st: tn.Study, trial: tn.FrozenTrial) -> None:
        raise ValueError("bad luck")

    broken, rec = Broken(), Recorder()
    s = study()
    with caplog.at_level(logging.WARNING, logger="torchnas"):
        s.optimize(reporting, trials=3, callbacks=[broken, broken_function, rec])
    assert len(s.trials) == 3 and all(t.state.finished for t in s.trials)
    assert broken.reports == 1 and broken.ended  # disabled after its first failure
    check_order(rec, 3)  # the others hear everything
    text = caplog.text
    assert "callback Broken raised in on_report: OSError: disk full" in text
    assert "broken_function raised in on_trial_end: ValueError: bad luck" in text
    assert text.count("disabled for the rest of this search") == 2


@pytest.mark.parametrize("hook", ["on_trial_start", "on_report"])
def test_keyboard_interrupt_in_a_callback_stops_the_search(hook: str) -> None:
    class Stop(Recorder):
        def on_trial_start(self, study: tn.Study, number: int) -> None:
            if number == 1 and hook == "on_trial_start":
                raise KeyboardInterrupt

        def on_report(self, study: tn.Study, number: int, step: int | float,
                      metrics: Mapping[str, float]) -> None:
            if number == 1 and hook == "on_report":
                raise KeyboardInterrupt

    stop = Stop()
    s = study()
    with pytest.raises(KeyboardInterrupt):
        s.optimize(reporting, trials=5, callbacks=[stop])
    assert len(s.trials) == 2 and s.trials[0].state.finished
    assert s.trials[1].state is tn.TrialState.INTERRUPTED  # it runs first on resume
    assert stop.kinds()[-1] == "search_end"  # trackers still close their runs
    s.optimize(reporting, trials=1)
    assert s.trials[1].state.finished and s.trials[1].attempts == 2


def test_bad_callbacks_are_refused_before_anything_starts(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(tn.ConfigError, match=r"unknown callback 'tensorbord'; did you mean "
                                             r"'tensorboard'"):
        study().optimize(reporting, trials=1, callbacks=["tensorbord"])
    with pytest.raises(tn.ConfigError, match=r"unknown setting 'logdir'; did you mean 'log_dir'"):
        tn.callbacks.create("tensorboard", logdir="x")
    with pytest.raises(tn.ConfigError, match="mode must be 'offline'"):
        tn.callbacks.resolve({"name": "wandb", "mode": "sometimes"})
    with pytest.raises(tn.ConfigError, match="callbacks must be a list"):
        study().optimize(reporting, trials=1, callbacks="mlflow")  # type: ignore[arg-type]
    with pytest.raises(tn.ConfigError, match="a callback must be"):
        tn.callbacks.resolve(3)
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "wandb" else real(name, *a))
    search = tn.ModelSearch(space="mlp", data="digits", trials=1, progress=False,
                            storage=str(tmp_path / "never.db"), callbacks=["wandb"],
                            trainer=tn.Trainer(epochs=1))
    with pytest.raises(tn.ConfigError, match=r"pip install 'torchnas\[wandb\]'"):
        search.run()
    assert not (tmp_path / "never.db").exists()  # refused before the study was opened
    assert tn.callbacks.available() == ["mlflow", "tensorboard", "wandb"]


def test_a_one_shot_model_search_tells_its_callbacks_of_the_trial_it_records() -> None:
    rec = Recorder()
    search = tn.ModelSearch(space="cell", space_kwargs={"channels": 4, "stages": 2},
                            data="digits", strategy={"name": "darts", "epochs": 1},
                            trainer=tn.Trainer(epochs=1), progress=False, callbacks=[rec])
    study = search.run()
    assert rec.kinds() == ["search_start", "trial_end", "search_end"]
    assert rec.events[1][3] == study.trials[0]


# -- the trackers, read back with their own libraries -------------------------------------------
def tracked(callbacks: list[Any], trials: int = 4, **kw: Any) -> tn.Study:
    s = study(name="demo", storage="runs/x.db", seed=3, **kw)
    s.optimize(reporting, trials=trials, callbacks=callbacks)
    assert {t.state for t in s.trials} == {COMPLETE, FAILED}, "the runs need both states"
    return s


def test_tensorboard_writes_a_run_per_trial_with_scalars_and_hparams() -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    s = tracked(["tensorboard"], trials=6)
    root = Path("runs/x.demo.tensorboard")
    assert sorted(p.name for p in root.iterdir()) == [f"trial-{n:04d}" for n in range(6)]
    for t in s.trials:
        acc = EventAccumulator(str(root / f"trial-{t.number:04d}"))
        acc.Reload()
        loss = acc.Scalars("loss")
        reported = [(step, m["loss"]) for step, m in t.intermediate]
        assert [(e.step, pytest.approx(e.value)) for e in loss[:STEPS]] == reported
        if t.state is COMPLETE:  # the final metrics, for the HParams table
            assert acc.Scalars("width")[-1].value == t.metrics["width"]
        content = acc.PluginTagToContent("hparams")
        start = plugin_data_pb2.HParamsPluginData.FromString(
            content["_hparams_/session_start_info"]).session_start_info
        hparams = {k: v.WhichOneof("kind") and getattr(v, v.WhichOneof("kind"))
                   for k, v in start.hparams.items()}
        assert hparams["x"] == pytest.approx(t.arch["x"]) and hparams["act"] == t.arch["act"]
        assert hparams["state"] == t.state.value


def test_mlflow_writes_a_parent_run_and_a_nested_run_per_trial() -> None:
    from mlflow.tracking import MlflowClient

    s = tracked([{"name": "mlflow"}])
    db = Path("runs/x.demo.mlflow/mlflow.db").resolve()
    client = MlflowClient(tracking_uri=f"sqlite:///{db}")
    experiment = client.get_experiment_by_name("demo")
    runs = client.search_runs([experiment.experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert json.loads(parents[0].data.params["objectives"]) == {"loss": "min"}
    nested = {r.info.run_name: r for r in runs if r not in parents}
    assert sorted(nested) == [f"trial-{n:04d}" for n in range(4)]
    for t in s.trials:
        run = nested[f"trial-{t.number:04d}"]
        assert run.data.tags["mlflow.parentRunId"] == parents[0].info.run_id
        assert run.data.params == {"x": str(t.arch["x"]), "act": t.arch["act"]}
        assert run.data.tags["torchnas.state"] == t.state.value
        history = client.get_metric_history(run.info.run_id, "loss")
        steps = sorted((m.step, m.value) for m in history)
        assert steps[:STEPS] == [(step, pytest.approx(m["loss"])) for step, m in t.intermediate]
        if t.state is COMPLETE:
            assert run.info.status == "FINISHED"
            assert run.data.metrics["width"] == t.metrics["width"]
        else:
            assert run.info.status == "FAILED"
            assert "x is too large" in run.data.tags["torchnas.error"]


def test_mlflow_reports_are_live_at_most_once_every_flush_every_seconds() -> None:
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{Path('live.db').resolve()}"
    client = MlflowClient(tracking_uri=uri)
    seen: list[int] = []

    class Look(tn.callbacks.Callback):  # after the tracker: what does the store hold now?
        def on_report(self, study: tn.Study, number: int, step: int | float,
                      metrics: Mapping[str, float]) -> None:
            experiment = client.get_experiment_by_name(study.name).experiment_id
            runs = client.search_runs([experiment],
                                      filter_string=f"attributes.run_name = 'trial-{number:04d}'")
            seen.append(len(client.get_metric_history(runs[0].info.run_id, "loss")))

    study(name="live").optimize(reporting, trials=1, callbacks=[
        {"name": "mlflow", "tracking_uri": uri, "flush_every": 0}, Look()])
    assert seen == [1, 2, 3]  # each report written as it came
    seen.clear()
    study(name="batched").optimize(reporting, trials=1, callbacks=[
        {"name": "mlflow", "tracking_uri": uri, "flush_every": 3600}, Look()])
    assert seen == [0, 0, 0]  # written at the trial's end (the test above reads them back)


def wandb_records(path: Path) -> list[Any]:
    """The records of an offline W&B run file, read with W&B's own protobuf: after a 7-byte
    header (``:W&B``, magic, version) the file is in LevelDB's log format: 32 KiB blocks of
    chunks (checksum, length, type: full, first, middle, last), each record a
    ``wandb_internal_pb2.Record``."""
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:4] == b":W&B"
    records, pos, buf = [], 7, b""
    while pos + 7 <= len(data):
        left = 32768 - pos % 32768
        if left < 7:  # the block's trailer
            pos += left
            continue
        _checksum, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        chunk = data[pos + 7:pos + 7 + length]
        pos += 7 + length
        buf = chunk if kind in (1, 2) else buf + chunk
        if kind in (1, 4):
            records.append(wandb_internal_pb2.Record.FromString(buf))
    return records


def _complete_records(path: Path, wait: float = 15.0) -> list[Any]:
    """The records of a W&B offline run once its service has written the exit record (on a
    loaded machine the file can lag behind ``run.finish()``)."""
    deadline = time.monotonic() + wait
    while True:
        records = wandb_records(path)
        if any(r.WhichOneof("record_type") == "exit" for r in records) \
                or time.monotonic() > deadline:
            return records
        time.sleep(0.2)


def _value(item: Any) -> Any:
    return json.loads(item.value_json)


def test_wandb_writes_an_offline_run_per_trial() -> None:
    s = tracked(["wandb"])
    files = sorted(Path("runs/x.demo.wandb/wandb").glob("offline-run-*/run-*.wandb"))
    assert len(files) == 4
    seen = {}
    for path in files:
        run, history, summary, exit_code = None, [], {}, None
        for r in _complete_records(path):
            kind = r.WhichOneof("record_type")
            if kind == "run":
                run = r.run
            elif kind == "history":
                history.append({(i.key or "/".join(i.nested_key)): _value(i)
                                for i in r.history.item})
            elif kind == "summary":
                summary.update({(i.key or "/".join(i.nested_key)): _value(i)
                                for i in r.summary.update})
            elif kind == "exit":
                exit_code = r.exit.exit_code
        assert run is not None and run.run_group == "demo" and run.project == "torchnas"
        seen[run.display_name] = (run, history, summary, exit_code)
    assert sorted(seen) == [f"trial-{n:04d}" for n in range(4)]
    for t in s.trials:
        run, history, summary, exit_code = seen[f"trial-{t.number:04d}"]
        config = {i.key: _value(i) for i in run.config.update if i.key != "_wandb"}
        assert config == t.arch
        assert [(h["_step"], h["loss"]) for h in history] == [
            (step, pytest.approx(m["loss"])) for step, m in t.intermediate]
        assert summary["state"] == t.state.value and list(run.tags) == [t.state.value]
        if t.state is COMPLETE:
            assert summary["loss"] == pytest.approx(t.metrics["loss"]) and exit_code == 0
        else:
            assert "x is too large" in summary["error"] and exit_code == 1


# -- YAML, through the CLI ----------------------------------------------------------------------
def test_yaml_callbacks_through_the_cli_log_trials_and_the_exported_model(
        tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    config = tmp_path / "tracked.yaml"
    config.write_text(
        "space: mlp\ndata: digits\ntrainer: {epochs: 1}\ntrials: 2\nstorage: runs/t.db\n"
        "name: tracked\nexport_to: runs/best.pt\n"
        "callbacks: [tensorboard, {name: mlflow, experiment: nas}]\n")
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        assert main(["search", str(config)]) == 0, err.getvalue()
    study = tn.load_study("runs/t.db")
    runs = sorted(p.name for p in Path("runs/t.tracked.tensorboard").iterdir())
    assert runs == ["trial-0000", "trial-0001"]
    client = MlflowClient(tracking_uri=f"sqlite:///{Path('runs/t.tracked.mlflow/mlflow.db')}")
    experiment = client.get_experiment_by_name("nas")
    found = client.search_runs([experiment.experiment_id])
    parent = next(r for r in found if "mlflow.parentRunId" not in r.data.tags)
    assert [a.path for a in client.list_artifacts(parent.info.run_id)] == ["best.pt"]
    trial = next(r for r in found if r.info.run_name == "trial-0000")
    epochs = client.get_metric_history(trial.info.run_id, "val_accuracy")
    assert [m.step for m in epochs] == [1]
    assert math.isclose(epochs[0].value, study.trials[0].intermediate[0][1]["val_accuracy"])
    resolved = Path("runs/t.tracked.config.yaml").read_text()
    assert "callbacks" not in resolved  # they watch a run; the saved config is the study's
