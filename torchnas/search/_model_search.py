"""The NAS path for PyTorch models: space + data + trainer + study, in one object.

:class:`ModelSearch` is the facade: its constructor is the config, :meth:`ModelSearch.run` the
loop around the study. What a trial runs is its :class:`~torchnas.search.ModelObjective`; what
it hands back, its :class:`~torchnas.search.SearchResults`.
"""

from __future__ import annotations

import functools
import logging
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from torch import nn

from torchnas import data as tn_data
from torchnas import oneshot
from torchnas._util.errors import ConfigError
from torchnas._util.registry import Configurable
from torchnas.evaluation import Callbacks, Trainer
from torchnas.oneshot import OneShotResult
from torchnas.report._console import ProgressBar
from torchnas.search._checks import (
    check_settings,
    probe_model,
    warn_if_another_space,
)
from torchnas.search._model_metrics import ModelMetrics, Rejected
from torchnas.search._objective import ModelObjective, SpaceFn
from torchnas.search._options import CostSettings, Fidelity, WarmStart
from torchnas.search._results import SearchResults
from torchnas.search._seeds import RetrainReport
from torchnas.search._settings import check_resumed_settings, resume_line
from torchnas.search._train_fn import TrainFn, resolve_train_fn
from torchnas.space import SpaceInfo, explore
from torchnas.storage._artifacts import ArtifactStore, artifacts_dir
from torchnas.strategies import Strategy
from torchnas.study import Study
from torchnas.study._trial import FrozenTrial

__all__ = ["ModelSearch", "Rejected"]

log = logging.getLogger("torchnas")


class ModelSearch(Configurable):
    """Searches architectures of a space on a dataset, then hands back the best model.

    The constructor is the config (the YAML file of ``torchnas search`` holds these keywords);
    nothing happens until :meth:`run`.

    Args:
        space: a space function ``build(hp) -> nn.Module`` or a built-in space name.
        data: a :class:`~torchnas.data.Data` bundle or a built-in dataset name.
        trainer: a :class:`~torchnas.evaluation.Trainer` (default: ``Trainer()``; not with
            ``train_fn``).
        objectives: as for :class:`~torchnas.Study`; default: the trainer's task's
            (``{"val_accuracy": "max"}``; regression ``{"val_mse": "min"}``, language model
            ``{"val_perplexity": "min"}``).
        constraints: as for :class:`~torchnas.Study` (``params`` is always measured).
        strategy: a strategy name, object or ``{"name": ..., **kwargs}``; a one-shot method's
            name (``tn.oneshot.available()``: ``darts``, ``gdas``, ``spos``, ...) runs one
            weight-sharing search instead, whose derived architecture is retrained and recorded
            as a trial (:func:`torchnas.oneshot.run_search`; the study stores the method's
            spec as its strategy).
        scheduler: early-stopping scheduler, or ``None``.
        trials: the study's total number of finished trials to reach (a resumed search
            only runs the rest).
        timeout: the search's time budget in seconds: no trial starts after it, and a trial
            still training when it passes stops at the end of its epoch (recorded PRUNED).
        storage: ``None`` (memory), a path or ``sqlite:///path``.
        name: the study's name (default: ``"<space>-<data>"``).
        seed: seed of the strategy and of every trial's training.
        space_kwargs: keyword arguments for the space (built-in: besides the data's shape).
        retrain: when ``True``, :meth:`run` ends by retraining the best architecture on
            train+val and reporting its test accuracy.
        export_to: a path the retrained best model is written to at the end of :meth:`run`
            (see :meth:`export`).
        progress: draw a progress bar and print the leaderboard.
        max_failures: stop after this many failed trials in a row.
        redraws: how many times a trial draws its decisions again when they repeat an
            architecture already evaluated or running (de-duplication; 0 turns it off): the
            strategy is asked again, and past half of them the decisions are drawn uniformly.
        cost: how model metrics are measured: a :class:`~torchnas.search.CostSettings` or a
            mapping of its keys (``None``: the defaults): ``device`` (target of
            ``latency_ms`` and ``peak_memory``; the proxies run there too), ``batch_size``,
            ``warmup``, ``repeats``, ``threads`` (of ``latency_ms``), ``backward``
            (``peak_memory`` of a training step) and ``proxy_batch_size`` (training samples,
            drawn once from the seed, that proxies score on).
        warm_start: a :class:`~torchnas.search.WarmStart` or a mapping of its keys,
            ``{"proxy": "naswot", "samples": 200, "top": 10}`` (the defaults; ``{}`` takes
            them all; ``None``: off): before the first trial of a new study, ``samples`` random
            architectures are scored with the proxy and the ``top`` ones (among those meeting
            the model-only constraints) are queued to be trained first. A resumed study is not
            warm-started again; the scoring's time is not part of ``timeout``.
        workers: trials trained at once.
        executor: where trials run: ``"inline"``, ``"process"`` (local worker processes, one
            trial each, threads and GPUs split among them), ``"ray"``, or
            ``{"name": ..., **arguments}`` (see :mod:`torchnas.execution`); ``None``: inline
            for one worker, else process.
        trial_timeout: seconds a trial may run before its worker process is stopped and it is
            recorded FAILED (process and Ray executors).
        retries: how many times a failed architecture is queued again.
        fidelity: a low-fidelity search (the proxy task of DARTS and ProxylessNAS): trials
            train a cheaper version of each candidate, and the retraining of the chosen one
            (``retrain``, :meth:`best_model`) is at full fidelity. A
            :class:`~torchnas.search.Fidelity` or a mapping of any of its keys:
            ``"width"`` (in (0, 1]: channel and unit counts scaled by it, in spaces that pass
            them through :meth:`HP.scale <torchnas.space.HP.scale>`: every built-in space
            does), ``"epochs"`` (the trials' epochs instead of the trainer's) and ``"data"``
            (in (0, 1]: the share of the training split the trials train on, the same
            seeded subset for every trial; validation uses the whole val split). Per-trial
            budgets from a scheduler (epochs or data) work on top of it.
        keep_models: how many of the best trials keep their trained weights, beside a SQLite
            study (``runs/x.db`` keeps them in ``runs/x.artifacts/<study>/``; a study in
            memory in a temporary folder): :meth:`get_best_models` returns them trained,
            ``best_model(retrain=False)`` and ``torchnas export --no-retrain`` write them.
            0 keeps none.
        executions_per_trial: how many times each architecture is trained, with different
            seeds (Keras Tuner's setting of that name): its metrics are the means, and each
            objective's spread is recorded as ``<objective>_std`` (sample standard
            deviation) and shown in the leaderboard. Only the first execution reports to the
            scheduler; the kept weights are the best execution's.
        retrain_attempts: how many seeds the retraining of the chosen architecture on
            train+val may try. A retrain whose final training loss is clearly worse than
            the trial's (:func:`~torchnas.search._seeds.clearly_worse`) is tried again with
            another seed; if every attempt stays worse, the search says so loudly and keeps
            the trial's own trained model when its weights were kept
            (:attr:`retrain_report` holds the test metrics of both).
        override_settings: go on with a stored study although the trainer, data, space or
            fidelity settings differ from those it was created with (by default that is an
            error naming each difference: the study's trials would mix two meanings).
        train_fn: your own training loop instead of the trainer, in the trials and the
            retraining: ``train_fn(model, data, hp, trial) -> {metric: value}``, a
            module-level function or its name ``package.module:function`` (the form YAML
            writes; the study stores that name, so a resumed search with another one is
            refused). It gets the built
            model (cost metrics measured and constraints on them checked already), the data
            (the fidelity's subset), the trial's ``hp`` (values the space did not decide can
            be decided there: they join the architecture) and the trial
            (:class:`~torchnas.search._train_fn.TrialView`: ``report(step, metrics)``,
            ``should_prune()``, ``budget``; ``None`` in the retraining), and returns every
            objective and constraint metric torchnas does not measure (one missing stops the
            search at the first trial with a :class:`~torchnas.ConfigError` naming it). See
            :mod:`torchnas.search._train_fn`.
        callbacks: called in this process as the search runs, whatever the executor:
            experiment trackers by name (``"tensorboard"``, ``"mlflow"``, ``"wandb"``) or as
            ``{"name": ..., **settings}``, :class:`~torchnas.callbacks.Callback` objects, or
            functions ``fn(study, trial)`` called at each trial's end (see
            :mod:`torchnas.callbacks`); they also hear of the exported model
            (``on_artifact``). One that raises is disabled with a warning; the search goes
            on. With a one-shot strategy they see the one trial it records. Not stored with
            the study: they only watch it.

    Objectives and constraints may name the trainer's metrics and the metrics of the built,
    untrained model (:mod:`torchnas.metrics`): ``params``, ``flops``, ``peak_memory``,
    ``latency_ms`` and the zero-cost proxies (``synflow``, ``snip``, ``grad_norm``, ``naswot``,
    ``jacob_cov``; write their direction: ``{"synflow": "max"}``). Those are measured right
    after the model is built and join the trial's metrics. An architecture that breaks a
    constraint on one of them is not trained: it is recorded ``REJECTED`` with the measured
    metrics and the reason (the strategy learns from it; it counts towards ``trials``). When
    every objective and constraint is a model metric, nothing is trained.

    The search's parts: :attr:`objective` (what a trial runs: a picklable
    :class:`~torchnas.search.ModelObjective` that worker processes and one-shot methods
    receive), :attr:`results` (a :class:`~torchnas.search.SearchResults` over the study:
    :meth:`best_model`, :meth:`export` and the other result methods here call it) and the
    study (:meth:`make_study`).

    Example:
        >>> import torchnas as tn
        >>> search = tn.ModelSearch(space="mlp", data="digits", trials=2, progress=False,
        ...                         trainer=tn.Trainer(epochs=1))
        >>> study = search.run()
        >>> len(study.trials)
        2
    """

    def __init__(
        self,
        space: str | SpaceFn,
        data: str | tn_data.Data,
        trainer: Trainer | None = None,
        objectives: str | Sequence[str] | Mapping[str, str] | None = None,
        constraints: Mapping[str, Any] | None = None,
        strategy: str | Strategy | dict[str, Any] = "auto",
        scheduler: Any = None,
        trials: int | None = 20,
        timeout: float | None = None,
        storage: str | None = None,
        name: str | None = None,
        seed: int = 0,
        space_kwargs: Mapping[str, Any] | None = None,
        retrain: bool = False,
        export_to: str | None = None,
        progress: bool = True,
        max_failures: int | None = 10,
        redraws: int = 10,
        cost: CostSettings | Mapping[str, Any] | None = None,
        warm_start: WarmStart | Mapping[str, Any] | None = None,
        workers: int = 1,
        executor: str | dict[str, Any] | None = None,
        trial_timeout: float | None = None,
        retries: int = 0,
        fidelity: Fidelity | Mapping[str, Any] | None = None,
        keep_models: int = 3,
        executions_per_trial: int = 1,
        retrain_attempts: int = 3,
        override_settings: bool = False,
        train_fn: TrainFn | str | None = None,
        callbacks: Sequence[Any] | None = None,
    ) -> None:
        self.space = space
        self.data = data
        self.trainer = trainer
        self.objectives = objectives
        self.constraints = constraints
        self.strategy = strategy
        self.scheduler = scheduler
        self.trials = trials
        self.timeout = timeout
        self.storage = storage
        self.name = name
        self.seed = seed
        self.space_kwargs = space_kwargs
        self.retrain = retrain
        self.export_to = export_to
        self.progress = progress
        self.max_failures = max_failures
        self.redraws = redraws
        self.cost = cost
        self.warm_start = warm_start
        self.workers = workers
        self.executor = executor
        self.trial_timeout = trial_timeout
        self.retries = retries
        self.fidelity = fidelity
        self.keep_models = keep_models
        self.executions_per_trial = executions_per_trial
        self.retrain_attempts = retrain_attempts
        self.override_settings = override_settings
        self.train_fn = train_fn
        self.callbacks = callbacks
        self.study: Study | None = None
        self.space_info: SpaceInfo | None = None
        self.oneshot_result: OneShotResult | None = None  # a one-shot search's, once run
        self._results: SearchResults | None = None

    def __getstate__(self) -> dict[str, Any]:
        """A pickled search has no live study (nor results over it), nor callbacks (they run
        in the driver); its objective pickles without the space function."""
        state = dict(self.__dict__)
        state.update(study=None, _results=None, callbacks=None)
        return state

    # -- resolved pieces ------------------------------------------------------------------------
    @functools.cached_property
    def dataset(self) -> tn_data.Data:
        """The data bundle (loaded when ``data`` is a name) after validation."""
        bundle = tn_data.load(self.data) if isinstance(self.data, str) else self.data
        if not isinstance(bundle, tn_data.Data):
            raise ConfigError(
                f"data must be a dataset name or a torchnas Data, got {type(bundle).__name__}; "
                f"build one with tn.data.from_tensors((x, y), (x_val, y_val)) or "
                f"tn.data.from_datasets(train, val)")
        tn_data.validate(bundle)
        return bundle

    @property
    def space_fn(self) -> SpaceFn:
        """The space function (a built-in space is created for the data's shape)."""
        return self.objective.space_fn

    @property
    def space_name(self) -> str | None:
        """The registered name of the space, when it is a built-in one."""
        return self.space if isinstance(self.space, str) else None

    @property
    def study_name(self) -> str:
        """``name``, or ``"<space>-<data>"``."""
        if self.name:
            return self.name
        space = self.space_name or getattr(self.space, "__name__", "space")
        return f"{space}-{self.data if isinstance(self.data, str) else self.dataset.name}"

    def _trainer(self) -> Trainer:
        return self.trainer if self.trainer is not None else Trainer()

    def _objectives(self) -> Any:
        """``objectives``, or the trainer's task's default objective."""
        return (self.objectives if self.objectives is not None
                else self._trainer().default_objectives())

    @functools.cached_property
    def model_metrics(self) -> ModelMetrics:
        """The cost metrics, proxies, rejection and warm start of this search (``cost`` and
        ``warm_start`` converted and checked here: :meth:`check` does it first)."""
        return ModelMetrics(self._objectives(), self.constraints, CostSettings.parse(self.cost),
                            WarmStart.parse(self.warm_start), self.seed)

    @property
    def warm_start_ranking(self) -> list[tuple[float, dict[str, Any]]] | None:
        """The warm start's ``(score, architecture)`` pairs, best first (after :meth:`run`
        started a new study with ``warm_start``)."""
        return self.model_metrics.ranking

    @functools.cached_property
    def artifacts(self) -> ArtifactStore:
        """Where the trained weights of the best ``keep_models`` trials are kept."""
        return ArtifactStore(artifacts_dir(self.storage, self.study_name))

    @functools.cached_property
    def objective(self) -> ModelObjective:
        """What each trial runs (picklable: process and Ray workers receive it)."""
        return ModelObjective(
            self.space, self.dataset, self._trainer(), self.model_metrics,
            Fidelity.parse(self.fidelity), self.seed, space_kwargs=self.space_kwargs,
            redraws=self.redraws, executions_per_trial=self.executions_per_trial,
            keep_models=self.keep_models, artifacts=self.artifacts,
            train_fn=resolve_train_fn(self.train_fn))

    @property
    def results(self) -> SearchResults:
        """The results of this search's study (:meth:`make_study` opens it when needed)."""
        study = self._study()
        if self._results is None or self._results.study is not study:
            self._results = SearchResults(study, self.objective,
                                          retrain_attempts=self.retrain_attempts,
                                          progress=self.progress)
        return self._results

    # -- checks ---------------------------------------------------------------------------------
    def check(self) -> SpaceInfo:  # type: ignore[override]  # it also returns what it explored
        """Validates data and space before any trial: explores the space (a malformed one
        fails here, naming the label) and runs one built model on a batch of the data; checks
        the trainer's settings too, and refuses a zero-cost proxy the inputs cannot feed."""
        bundle = self.dataset
        trainer = self._trainer()
        if not isinstance(trainer, Trainer):
            raise ConfigError(f"trainer must be a torchnas Trainer, got {trainer!r}")
        try:
            trainer.check()
        except ValueError as exc:
            raise ConfigError(f"trainer: {exc}") from None
        check_settings(self.get_params(), trainer)
        if self.train_fn is None:
            trainer.check_data(bundle)  # the task's: float targets for regression, ...
        self.model_metrics.check_inputs(bundle)
        info = explore(self.space_fn, seed=self.seed)
        probe_model(self.space_fn, info, bundle, check_output=self.train_fn is None,
                    task=trainer.get_task())
        self.space_info = info
        return info

    def make_study(self) -> Study:
        """The study this search runs in (created or reopened from ``storage``). A one-shot
        search's study stores the method's spec as its strategy."""
        strategy = (oneshot.resolve(self.strategy)[1] if oneshot.is_method(self.strategy)
                    else self.strategy)
        return Study(
            name=self.study_name, storage=self.storage,
            objectives=self._objectives(),
            constraints=self.constraints, scheduler=self.scheduler, seed=self.seed,
            strategy=strategy, settings=self.objective.settings())

    def _study(self) -> Study:
        if self.study is None:
            self.study = self.make_study()
        return self.study

    # -- the search -----------------------------------------------------------------------------
    def run(self) -> Study:
        """Checks the inputs, then runs trials until ``trials`` have finished in the study or
        ``timeout`` passes; prints the leaderboard; retrains/exports when asked.

        ``KeyboardInterrupt`` (Ctrl-C) leaves the running trials ``INTERRUPTED`` (they run
        first when the same search runs again) and propagates."""
        if oneshot.is_method(self.strategy):
            return self._run_oneshot()
        info = self.check()
        mine = Callbacks(self.callbacks or ())  # checked before the study is opened
        study = self.study = self.make_study()
        objective = self.objective
        check_resumed_settings(study, objective.settings(), storage=self.storage,
                               override=self.override_settings)
        warn_if_another_space(study, info, own_labels=self.train_fn is not None)
        if (info.size is not None and self.trials is not None and self.trials > info.size
                and self.train_fn is None):  # train_fn may decide more
            log.warning("the space has %d architecture(s) and trials=%d: 'grid' stops once it "
                        "has run them all, other strategies repeat them", info.size, self.trials)
        self.model_metrics.queue_warm_start(study, objective.space_fn, self.dataset)
        results = self.results
        before = study.trials
        finished = sum(t.state.finished for t in before)
        remaining = None if self.trials is None else max(0, self.trials - finished)
        line = resume_line(study.name, before, self.trials)
        if line is not None:
            log.info(line)
            if self.progress:
                print(line, flush=True)
        first = next(iter(study.objectives.items()))
        objective.deadline = None if self.timeout is None else time.time() + self.timeout
        bar = (None if remaining == 0 else
               ProgressBar(self.trials, self.timeout, first, enabled=self.progress, done=before))
        calls = Callbacks([*mine, results.keep_best, *([] if bar is None else [bar])])
        calls.search_start(study)  # ended here, after the export (optimize leaves it running)
        try:
            if bar is not None:
                try:
                    study.optimize(objective, trials=remaining, timeout=self.timeout,
                                   workers=self.workers, executor=self.executor,
                                   callbacks=calls, max_failures=self.max_failures,
                                   retries=self.retries, trial_timeout=self.trial_timeout)
                finally:
                    bar.close()
                    results.keep_best()
            self._finish(study, calls)
        finally:
            calls.search_end(study)
        return study

    def _run_oneshot(self) -> Study:
        """The one-shot path: one supernet search of the space (``timeout`` bounds it), the
        derived architecture retrained with the trainer and recorded as a trial of the study
        (same storage); the result (``self.oneshot_result``: architecture weights, history,
        collapse report) is also written beside a SQLite storage (see
        :func:`torchnas.oneshot.run_search`). ``trials`` and ``redraws`` do not apply."""
        method, _ = oneshot.resolve(self.strategy)
        self.check()
        calls = Callbacks(self.callbacks or ())
        study = self.study = self.make_study()
        before = {t.number for t in study.trials if t.state.finished}
        calls.search_start(study)
        try:
            self.oneshot_result = oneshot.run_search(method, self.objective, study,
                                                     storage=self.storage, timeout=self.timeout,
                                                     progress=self.progress)
            for trial in study.trials:  # the derived architecture's
                if trial.state.finished and trial.number not in before:
                    calls.trial_end(study, trial)
            self._finish(study, calls)
        finally:
            calls.search_end(study)
        return study

    def _finish(self, study: Study, calls: Callbacks) -> None:
        """The end of both paths: the leaderboard; the retraining and export when asked (the
        exported file goes to the callbacks)."""
        if self.progress:
            print(self.leaderboard(), file=sys.stdout, flush=True)
        if not (self.retrain or self.export_to):
            return
        if not study.ranked():
            log.warning("no trial completed (feasible) in study %r: nothing to retrain or export",
                        study.name)
            if self.progress:
                print("No trial completed within the budget: nothing to retrain or export.",
                      flush=True)
            return
        model = self.best_model(retrain=True)
        if self.export_to:
            path = self.export(self.export_to, model)
            calls.artifact(study, path)
            if self.progress:
                print(f"Best model written to {path}", flush=True)

    # -- results (see SearchResults) ------------------------------------------------------------
    @property
    def best_trial(self) -> FrozenTrial:
        """The best trial by the first objective (the front's first for several objectives)."""
        return self.results.best_trial

    def leaderboard(self, top: int = 10) -> str:
        """The best trials as a table."""
        return self.results.leaderboard(top)

    def get_best_hyperparameters(self, n: int = 1) -> list[dict[str, Any]]:
        """The architectures of the ``n`` best trials, best first (Keras Tuner's method)."""
        return self.results.get_best_hyperparameters(n)

    def get_best_models(self, n: int = 1) -> list[nn.Module]:
        """The trained models of the ``n`` best trials, best first, their kept weights loaded
        (see :meth:`SearchResults.get_best_models`)."""
        return self.results.get_best_models(n)

    def trial_model(self, trial: FrozenTrial) -> nn.Module:
        """``trial``'s own trained model (its kept weights; eval mode)."""
        return self.results.trial_model(trial)

    def best_model(self, retrain: bool = True, trial: FrozenTrial | None = None) -> nn.Module:
        """The best architecture (or ``trial``'s) as a trained model, retrained on train+val
        unless ``retrain=False`` (see :meth:`SearchResults.best_model`)."""
        return self.results.best_model(retrain, trial)

    def export(self, path: str | Path, model: nn.Module | None = None,
               trial: FrozenTrial | None = None) -> Path:
        """Writes the best model (or ``trial``'s) to ``path`` (see
        :meth:`SearchResults.export`)."""
        return self.results.export(path, model, trial)

    @property
    def test_metrics(self) -> dict[str, float]:
        """The test metrics of the model :meth:`best_model` last retrained."""
        return {} if self._results is None else self._results.test_metrics

    @property
    def test_accuracy(self) -> float | None:
        """``test_metrics["test_accuracy"]``, when measured."""
        return self.test_metrics.get("test_accuracy")

    @property
    def retrain_report(self) -> RetrainReport | None:
        """How the last retraining went (``None`` before one)."""
        return None if self._results is None else self._results.retrain_report
