"""Experiment trackers as callbacks: TensorBoard, MLflow and Weights & Biases.

Each writes one run per trial (its architecture as the run's hyperparameters, its reports as
metrics per step, its final metrics and state), in the driver, where every report arrives. The
libraries are optional (``pip install 'torchnas[tensorboard]'``, ``[mlflow]``, ``[wandb]``); a
tracker named without its library is a :class:`~torchnas.ConfigError` before the search starts.

By default each writes beside the study: a study stored in ``runs/x.db`` under the name ``s``
writes to ``runs/x.s.tensorboard/``, ``runs/x.s.mlflow/`` and ``runs/x.s.wandb/``; a study in
memory to ``runs/s.tensorboard/`` (and so on) under the current folder. Nothing reaches the
network unless you point a tracker there (an MLflow ``tracking_uri``, W&B ``mode="online"``).

Trackers count steps in integers: a fractional step (half an epoch) is written rounded down.
"""

from __future__ import annotations

import importlib.util
import itertools
import json
import math
import os
import re
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, cast

from torchnas._util.errors import ConfigError
from torchnas._util.registry import Configurable
from torchnas.evaluation._callbacks import Callback, register
from torchnas.study._trial import FrozenTrial, TrialState

if TYPE_CHECKING:
    from torchnas.study import Study

__all__ = ["MLflow", "TensorBoard", "Tracker", "WandB", "tracker_dir"]


def tracker_dir(study: Study, kind: str) -> Path:
    """Where a tracker writes by default: ``runs/x.<study>.<kind>`` beside a study stored in
    ``runs/x.db``; ``runs/<study>.<kind>`` (under the current folder) for a study in memory."""
    safe = re.sub(r"[^\w.-]", "_", study.name)  # a folder name, whatever the study's
    path = getattr(study.journal, "path", None)
    if path is None:
        return Path("runs") / f"{safe}.{kind}"
    db = Path(path)
    return db.with_name(f"{db.stem}.{safe}.{kind}")


def _step(step: float) -> int:
    return math.floor(step)


def _last_step(trial: FrozenTrial) -> int:
    return _step(trial.intermediate[-1][0]) if trial.intermediate else 0


def _finite(metrics: Mapping[str, float]) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items() if math.isfinite(v)}


def _new_finals(trial: FrozenTrial) -> dict[str, float]:
    """The final metrics not already reported, with that value, at the last step (written at
    that step: a metric measured only at the end, or one that differs from its last report)."""
    last = dict(trial.intermediate[-1][1]) if trial.intermediate else {}
    return {k: v for k, v in _finite(trial.metrics).items() if last.get(k) != v}


def _scalar(value: Any) -> int | float | str | bool:
    """A decision's value as a tracker's hyperparameter: numbers, strings and booleans as they
    are, anything else (a list of chosen inputs) as JSON."""
    if isinstance(value, (bool, int, float, str)):
        return value
    return json.dumps(value)


class Tracker(Callback, Configurable):
    """A callback writing to an experiment tracker whose library is optional."""

    #: The module the tracker imports, and the ``torchnas[extra]`` that installs it.
    package: ClassVar[str] = ""
    extra: ClassVar[str] = ""

    def check(self) -> None:
        if importlib.util.find_spec(self.package) is None:
            raise ConfigError(f"callback {self.name!r} needs the {self.package} package: "
                              f"pip install 'torchnas[{self.extra}]'")


@register("tensorboard")
class TensorBoard(Tracker):
    """A TensorBoard run per trial (``trial-0007``): each report's metrics as scalars, and at
    its end the architecture and final metrics in the HParams dashboard.

    Args:
        log_dir: the folder of the runs (``tensorboard --logdir`` it); ``None``: beside the
            study (see :func:`tracker_dir`).
    """

    package = "tensorboard"
    extra = "tensorboard"

    def __init__(self, log_dir: str | None = None) -> None:
        self.log_dir = log_dir

    def on_search_start(self, study: Study) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self._new = SummaryWriter
        self._root = Path(self.log_dir) if self.log_dir else tracker_dir(study, "tensorboard")
        self._writers: dict[int, Any] = {}

    def _writer(self, number: int) -> Any:
        if number not in self._writers:
            self._writers[number] = self._new(log_dir=str(self._root / f"trial-{number:04d}"))
        return self._writers[number]

    def on_report(self, study: Study, number: int, step: int | float,
                  metrics: Mapping[str, float]) -> None:
        writer = self._writer(number)
        for key, value in metrics.items():
            writer.add_scalar(key, value, _step(step))

    def on_trial_end(self, study: Study, trial: FrozenTrial) -> None:
        from torch.utils.tensorboard.summary import hparams

        writer = self._writer(trial.number)
        step, final = _last_step(trial), _finite(trial.metrics)
        for key, value in _new_finals(trial).items():  # the HParams table reads the scalars
            writer.add_scalar(key, value, step)
        config: dict[str, Any] = {k: _scalar(v) for k, v in trial.arch.items()}
        config["state"] = trial.state.value
        for summary in hparams(config, final):
            writer.file_writer.add_summary(summary, step)
        writer.close()
        del self._writers[trial.number]

    def on_search_end(self, study: Study) -> None:
        for writer in getattr(self, "_writers", {}).values():  # trials interrupted
            writer.close()
        self._writers = {}


_MLFLOW_STATUS = {TrialState.COMPLETE: "FINISHED", TrialState.FAILED: "FAILED"}


@register("mlflow")
class MLflow(Tracker):
    """An MLflow parent run per search and a nested run per trial: the architecture as params,
    each report's metrics per step, the final metrics, and tags ``torchnas.state`` and
    ``torchnas.error``; a complete trial's run is ``FINISHED``, a failed one's ``FAILED``, a
    pruned, rejected or interrupted one's ``KILLED``. The parent run holds the model the search
    exported (``ModelSearch(export_to=...)``) as an artifact.

    Reports are sent as they come, but at most once every ``flush_every`` seconds: those that
    come sooner wait for the next one, or for the trial's end (one write to the store each; a
    search whose reports come faster, a tabular benchmark's, would otherwise spend its time in
    MLflow's store).

    Args:
        tracking_uri: where runs go; ``None``: ``MLFLOW_TRACKING_URI`` when set, else a local
            SQLite store beside the study (``runs/x.<study>.mlflow/mlflow.db``, artifacts in
            ``artifacts/`` beside it; ``mlflow ui --backend-store-uri sqlite:///...`` shows it).
            MLflow 3 refuses the older ``./mlruns`` folder store unless
            ``MLFLOW_ALLOW_FILE_STORE=true``.
        experiment: the experiment's name (``None``: the study's).
        log_artifacts: log the exported model into the parent run.
        flush_every: the least seconds between two writes of reports (0: each report at once).
    """

    package = "mlflow"
    extra = "mlflow"

    def __init__(self, tracking_uri: str | None = None, experiment: str | None = None,
                 log_artifacts: bool = True, flush_every: float = 1.0) -> None:
        self.tracking_uri = tracking_uri
        self.experiment = experiment
        self.log_artifacts = log_artifacts
        self.flush_every = flush_every

    def check(self) -> None:
        super().check()
        every = self.flush_every
        if isinstance(every, bool) or not isinstance(every, (int, float)) or not every >= 0:
            raise ConfigError(f"callback 'mlflow': flush_every must be a number of seconds "
                              f">= 0, got {every!r}")
        local = self.tracking_uri is None and not os.environ.get("MLFLOW_TRACKING_URI")
        if local and importlib.util.find_spec("sqlalchemy") is None:
            raise ConfigError("callback 'mlflow' writes to a local SQLite store, which needs "
                              "sqlalchemy and alembic: pip install 'torchnas[mlflow]'")

    def on_search_start(self, study: Study) -> None:
        from mlflow.tracking import MlflowClient
        from mlflow.utils import validation

        self._limits = {name: getattr(validation, name, default) for name, default in (
            ("MAX_PARAM_VAL_LENGTH", 500), ("MAX_TAG_VAL_LENGTH", 5000),
            ("MAX_ENTITY_KEY_LENGTH", 250), ("MAX_PARAMS_TAGS_PER_BATCH", 100),
            ("MAX_METRICS_PER_BATCH", 1000))}
        uri, where = self.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI"), None
        if not uri:
            root = tracker_dir(study, "mlflow").resolve()
            root.mkdir(parents=True, exist_ok=True)
            uri, where = f"sqlite:///{root / 'mlflow.db'}", (root / "artifacts").as_uri()
        self._client = client = MlflowClient(tracking_uri=uri)
        name = self.experiment or study.name
        found = client.get_experiment_by_name(name)
        self._experiment = (found.experiment_id if found is not None
                            else client.create_experiment(name, artifact_location=where))
        self._parent = client.create_run(self._experiment, run_name=study.name, tags={
            "torchnas.study": study.name}).info.run_id
        self._log(self._parent, params={
            "objectives": json.dumps(study.objectives),
            "strategy": json.dumps(study.config.get("strategy")), "seed": study.seed})
        self._runs: dict[int, str] = {}
        self._pending: dict[int, list[Any]] = {}  # reports not yet written, by trial
        self._flushed = time.monotonic()

    def _key(self, key: str) -> str:
        return re.sub(r"[^\w./\- ]", "_", key)[: self._limits["MAX_ENTITY_KEY_LENGTH"]]

    def _metrics(self, metrics: Mapping[str, float], step: int) -> list[Any]:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        return [Metric(self._key(k), float(v), now, step) for k, v in metrics.items()]

    def _log(self, run: str, params: Mapping[str, Any] | None = None,
             metrics: list[Any] | None = None, tags: Mapping[str, str] | None = None) -> None:
        """As few ``log_batch`` calls as MLflow's limits allow (usually one), keys made valid
        and values cut to those limits."""
        from mlflow.entities import Param, RunTag

        cut, limits = self._limits["MAX_PARAM_VAL_LENGTH"], self._limits
        named: list[Any] = [Param(self._key(k), str(_scalar(v))[:cut])
                            for k, v in (params or {}).items()]
        named += [RunTag(k, v[: limits["MAX_TAG_VAL_LENGTH"]]) for k, v in (tags or {}).items()]
        values = metrics or []
        size, many = limits["MAX_PARAMS_TAGS_PER_BATCH"], limits["MAX_METRICS_PER_BATCH"]
        chunks: list[list[Any]] = [named[i:i + size] for i in range(0, len(named), size)]
        parts: list[list[Any]] = [values[i:i + many] for i in range(0, len(values), many)]
        none: list[Any] = []
        for batch, part in itertools.zip_longest(chunks, parts, fillvalue=none):
            self._client.log_batch(run, metrics=part,
                                   params=[e for e in batch if isinstance(e, Param)],
                                   tags=[e for e in batch if isinstance(e, RunTag)])

    def _flush(self) -> None:
        """Writes every trial's waiting reports."""
        pending, self._pending = self._pending, {}
        for number, values in pending.items():
            self._log(self._run(number), metrics=values)
        self._flushed = time.monotonic()

    def _run(self, number: int) -> str:
        if number not in self._runs:
            self._runs[number] = self._client.create_run(
                self._experiment, run_name=f"trial-{number:04d}",
                tags={"mlflow.parentRunId": self._parent, "torchnas.trial": str(number)},
            ).info.run_id
        return self._runs[number]

    def on_trial_start(self, study: Study, number: int) -> None:
        self._run(number)

    def on_report(self, study: Study, number: int, step: int | float,
                  metrics: Mapping[str, float]) -> None:
        self._pending.setdefault(number, []).extend(self._metrics(metrics, _step(step)))
        if time.monotonic() - self._flushed >= self.flush_every:
            self._flush()

    def on_trial_end(self, study: Study, trial: FrozenTrial) -> None:
        run = self._run(trial.number)
        tags = {"torchnas.state": trial.state.value}
        if trial.error:
            tags["torchnas.error"] = trial.error
        values = [*self._pending.pop(trial.number, []),
                  *self._metrics(_new_finals(trial), _last_step(trial))]
        self._log(run, params=trial.arch, metrics=values, tags=tags)
        self._client.set_terminated(run, _MLFLOW_STATUS.get(trial.state, "KILLED"))
        del self._runs[trial.number]

    def on_artifact(self, study: Study, path: Path) -> None:
        if self.log_artifacts:
            self._client.log_artifact(self._parent, str(path))

    def on_search_end(self, study: Study) -> None:
        if getattr(self, "_parent", None) is None:
            return  # on_search_start failed
        self._flush()
        for run in self._runs.values():  # trials interrupted
            self._client.set_tag(run, "torchnas.state", TrialState.INTERRUPTED.value)
            self._client.set_terminated(run, "KILLED")
        self._client.set_terminated(self._parent, "KILLED" if self._runs else "FINISHED")
        self._runs, self._parent = {}, None


@register("wandb")
class WandB(Tracker):
    """A Weights & Biases run per trial, offline by default, written when the trial ends (its
    reports, kept by the study, are logged then): ``group`` is the study's name, ``config`` the
    architecture, the summary its final metrics and state. Upload offline runs later with
    ``wandb sync runs/x.<study>.wandb/wandb/offline-run-*``.

    Args:
        project: the W&B project (``None``: ``"torchnas"``).
        mode: ``"offline"`` (nothing leaves the machine: W&B's own crash reports are off too,
            ``WANDB_ERROR_REPORTING=false`` unless set), ``"online"`` or ``"disabled"``.
        dir: the folder W&B writes its ``wandb/`` folder in; ``None``: beside the study.
        entity: the W&B user or team (online).
    """

    package = "wandb"
    extra = "wandb"

    def __init__(self, project: str | None = None, mode: str = "offline",
                 dir: str | None = None, entity: str | None = None) -> None:
        self.project = project
        self.mode = mode
        self.dir = dir
        self.entity = entity

    def check(self) -> None:
        super().check()
        if self.mode not in ("offline", "online", "disabled"):
            raise ConfigError(f"callback 'wandb': mode must be 'offline', 'online' or "
                              f"'disabled', got {self.mode!r}")

    def on_search_start(self, study: Study) -> None:
        if self.mode == "offline":  # nor W&B's own crash reports (read as its service starts)
            os.environ.setdefault("WANDB_ERROR_REPORTING", "false")
        import wandb

        self._root = Path(self.dir) if self.dir else tracker_dir(study, "wandb")
        self._root.mkdir(parents=True, exist_ok=True)
        # a run written after the fact in the driver: no system metrics, code or git scan
        quiet: dict[str, Any] = {
            "silent": True, "console": "off", "save_code": False, "disable_git": True,
            "x_disable_stats": True, "x_disable_meta": True, "x_disable_machine_info": True,
            "x_save_requirements": False}
        fields = getattr(wandb.Settings, "model_fields", quiet)
        self._settings = wandb.Settings(**{k: v for k, v in quiet.items() if k in fields})

    def on_trial_end(self, study: Study, trial: FrozenTrial) -> None:
        import wandb

        run = wandb.init(
            project=self.project or "torchnas", entity=self.entity, group=study.name,
            name=f"trial-{trial.number:04d}", job_type="trial", dir=str(self._root),
            mode=cast(Any, self.mode), config={k: _scalar(v) for k, v in trial.arch.items()},
            tags=[trial.state.value], reinit="create_new", settings=self._settings)
        try:
            for step, metrics in trial.intermediate:
                run.log(dict(metrics), step=_step(step), commit=True)
            run.summary.update({**_finite(trial.metrics), "state": trial.state.value,
                                **({"error": trial.error} if trial.error else {})})
        finally:
            run.finish(exit_code=1 if trial.state is TrialState.FAILED else 0)
