"""The NAS path for PyTorch models: space + data + trainer + study, in one object."""

from __future__ import annotations

import functools
import logging
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from torchnas import data as tn_data
from torchnas import execution, oneshot
from torchnas._util.checks import check_bool, check_int
from torchnas._util.errors import ConfigError, SpaceError, TrialPruned
from torchnas.evaluation import COST_METRICS, PROXIES, Trainer, summary
from torchnas.report._console import ProgressBar
from torchnas.search._checks import check_metric_names, probe_model, warn_if_another_space
from torchnas.search._export import check_path
from torchnas.search._model_metrics import ModelMetrics, Rejected, parse_fidelity
from torchnas.search._results import SearchResults
from torchnas.search._seeds import RetrainReport, better, merge_executions
from torchnas.search._settings import check_resumed_settings, resume_line, search_settings
from torchnas.space import HP, FixedSource, SpaceInfo, explore
from torchnas.space import builtin as spaces
from torchnas.storage._artifacts import ArtifactStore, artifacts_dir
from torchnas.strategies import Strategy, derive_seed, resolve
from torchnas.study import Study
from torchnas.study._objectives import parse_constraints, parse_objectives
from torchnas.study._trial import FrozenTrial

__all__ = ["ModelSearch", "Rejected"]

log = logging.getLogger("torchnas")

SpaceFn = Callable[[HP], nn.Module]


class ModelSearch(SearchResults):
    """Searches architectures of a space on a dataset, then hands back the best model.

    The constructor is the config (the YAML file of ``torchnas search`` holds these keywords);
    nothing happens until :meth:`run`.

    Args:
        space: a space function ``build(hp) -> nn.Module`` or a built-in space name.
        data: a :class:`~torchnas.data.Data` bundle or a built-in dataset name.
        trainer: a :class:`~torchnas.evaluation.Trainer` (default: ``Trainer()``).
        objectives: as for :class:`~torchnas.Study`; default ``{"val_accuracy": "max"}``.
        constraints: as for :class:`~torchnas.Study` (``params`` is always measured).
        strategy: a strategy name, object or ``{"name": ..., **kwargs}``; a one-shot method's
            name (``tn.oneshot.available()``: ``darts``, ``gdas``, ``spos``, ...) runs one
            weight-sharing search instead, whose derived architecture is retrained and recorded
            as a trial (:meth:`_run_oneshot`).
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
        cost: how model metrics are measured (defaults:
            :data:`torchnas.search._model_metrics.COST_DEFAULTS`): ``device`` (target of
            ``latency_ms`` and ``peak_memory``; the proxies run there too), ``batch_size``,
            ``warmup``, ``repeats``, ``threads`` (of ``latency_ms``), ``backward``
            (``peak_memory`` of a training step) and ``proxy_batch_size`` (training samples,
            drawn once from the seed, that proxies score on).
        warm_start: ``{"proxy": "naswot", "samples": 200, "top": 10}`` (the defaults; ``{}``
            takes them all): before the first trial of a new study, ``samples`` random
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
            (``retrain``, :meth:`best_model`) is at full fidelity. Keys, any of:
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

    Objectives and constraints may name the trainer's metrics and the metrics of the built,
    untrained model (:mod:`torchnas.metrics`): ``params``, ``flops``, ``peak_memory``,
    ``latency_ms`` and the zero-cost proxies (``synflow``, ``snip``, ``grad_norm``, ``naswot``,
    ``jacob_cov``; write their direction: ``{"synflow": "max"}``). Those are measured right
    after the model is built and join the trial's metrics. An architecture that breaks a
    constraint on one of them is not trained: it is recorded ``REJECTED`` with the measured
    metrics and the reason (the strategy learns from it; it counts towards ``trials``). When
    every objective and constraint is a model metric, nothing is trained.

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
        cost: Mapping[str, Any] | None = None,
        warm_start: Mapping[str, Any] | None = None,
        workers: int = 1,
        executor: str | dict[str, Any] | None = None,
        trial_timeout: float | None = None,
        retries: int = 0,
        fidelity: Mapping[str, Any] | None = None,
        keep_models: int = 3,
        executions_per_trial: int = 1,
        retrain_attempts: int = 3,
        override_settings: bool = False,
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
        self.study: Study | None = None
        self.space_info: SpaceInfo | None = None
        self.test_accuracy: float | None = None
        self.test_metrics: dict[str, float] = {}
        self.retrain_report: RetrainReport | None = None
        self._deadline: float | None = None  # wall clock: trials may run on other machines

    def __getstate__(self) -> dict[str, Any]:
        """What worker processes receive: no live study; the space function is rebuilt there
        (the loaded data is kept, so workers do not load it again)."""
        state = dict(self.__dict__)
        state["study"] = None
        state.pop("space_fn", None)
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

    @functools.cached_property
    def space_fn(self) -> SpaceFn:
        """The space function (a built-in space is created for the data's shape)."""
        kwargs = dict(self.space_kwargs or {})
        if isinstance(self.space, str):
            kwargs.setdefault("input_shape", self.dataset.input_shape)
            kwargs.setdefault("num_classes", self.dataset.num_classes)
            fn: SpaceFn = spaces.create(self.space, **kwargs)
            return fn
        if not callable(self.space):
            raise ConfigError(f"space must be a function build(hp) or a name, got {self.space!r}")
        return functools.partial(self.space, **kwargs) if kwargs else self.space

    @property
    def space_name(self) -> str | None:
        """The registered name of the space, when it is a built-in one."""
        return self.space if isinstance(self.space, str) else None

    def _trainer(self) -> Trainer:
        return self.trainer if self.trainer is not None else Trainer()

    @functools.cached_property
    def _fidelity(self) -> dict[str, Any]:
        """``fidelity``, checked: ``{"width": w, "epochs": e or None, "data": f}``."""
        return parse_fidelity(self.fidelity)

    def _trial_trainer(self) -> Trainer:
        """The trainer of the trials (the fidelity's epochs, when given)."""
        trainer, epochs = self._trainer(), self._fidelity["epochs"]
        return trainer if epochs is None else Trainer(**{**trainer.get_params(),
                                                         "epochs": epochs})

    @functools.cached_property
    def _trial_data(self) -> tn_data.Data:
        """The data the trials train on (the fidelity's subset of the training split)."""
        seed = derive_seed(self.seed, "fidelity data") % 2**63
        return self.dataset.subset(self._fidelity["data"], seed=seed)

    def check(self) -> SpaceInfo:
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
        self._check_study_settings(trainer)
        self.model_metrics.check_inputs(bundle)
        info = explore(self.space_fn, seed=self.seed)
        probe_model(self.space_fn, info, bundle)
        self.space_info = info
        return info

    def _check_study_settings(self, trainer: Trainer) -> None:
        """Strategy, objectives and constraints, checked before storage is touched: each
        objective and constraint must be a metric the trainer reports."""
        if oneshot.is_method(self.strategy):
            oneshot.resolve(self.strategy)
        else:
            resolve(self.strategy)
        execution.resolve(self.executor, self.workers)
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ConfigError(f"seed must be an integer, got {self.seed!r}")
        for key, low in (("keep_models", 0), ("executions_per_trial", 1),
                         ("retrain_attempts", 1)):
            check_int("ModelSearch", key, getattr(self, key), low)
        check_bool("ModelSearch", "override_settings", self.override_settings)
        execution.Plan(trials=self.trials, timeout=self.timeout, max_failures=self.max_failures,
                       retries=self.retries, trial_timeout=self.trial_timeout).check()
        if self.export_to is not None:
            check_path(self.export_to)
        names = [*parse_objectives(self.objectives or {"val_accuracy": "max"}),
                 *parse_constraints(self.constraints)]
        known = [*trainer.METRICS, *(m for m in COST_METRICS if m not in trainer.METRICS),
                 *PROXIES]
        self.model_metrics  # noqa: B018 - checks the cost and warm_start settings
        self._fidelity  # noqa: B018 - and the fidelity
        check_metric_names(names, known)

    def make_study(self) -> Study:
        """The study this search runs in (created or reopened from ``storage``)."""
        default_name = f"{self.space_name or getattr(self.space, '__name__', 'space')}-" + (
            self.data if isinstance(self.data, str) else self.dataset.name
        )
        return Study(
            name=self.name or default_name, storage=self.storage,
            objectives=self.objectives if self.objectives is not None else {"val_accuracy": "max"},
            constraints=self.constraints, scheduler=self.scheduler, seed=self.seed,
            strategy="random" if oneshot.is_method(self.strategy) else self.strategy,
            settings=self._settings(),
        )

    # -- metrics of the built model: cost, proxies, rejection, warm start ------------------------
    @functools.cached_property
    def model_metrics(self) -> ModelMetrics:
        """The cost metrics, proxies, rejection and warm start of this search (settings checked
        when first used: :meth:`check` does)."""
        return ModelMetrics(self.objectives, self.constraints, self.cost, self.warm_start,
                            self.seed)

    @property
    def warm_start_ranking(self) -> list[tuple[float, dict[str, Any]]] | None:
        """The warm start's ``(score, architecture)`` pairs, best first (after :meth:`run`
        started a new study with ``warm_start``)."""
        return self.model_metrics.ranking

    def _measure(self, model: nn.Module, names: Sequence[str] | None = None) -> dict[str, float]:
        """The model metrics among ``names`` (see :meth:`ModelMetrics.measure`)."""
        return self.model_metrics.measure(model, self.dataset, names)

    # -- the search -----------------------------------------------------------------------------
    def _train_seed(self, number: int, execution: int = 0) -> int:
        """The seed of trial ``number``'s weights and training (its retraining reuses it);
        each further execution (``executions_per_trial``) has its own."""
        if execution:
            return derive_seed(self.seed, "train", number, execution) % (2**31)
        return derive_seed(self.seed, "train", number) % (2**31)

    def _build(self, arch: Mapping[str, Any], seed: int, width: float = 1.0) -> nn.Module:
        """The model of ``arch`` at ``width``, its weights initialised from ``seed``."""
        hp = HP(FixedSource(arch))
        hp.width = width
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = self.space_fn(hp)
        if set(arch) - set(hp.arch):
            raise SpaceError(f"the architecture has labels this space never met: "
                             f"{sorted(set(arch) - set(hp.arch))}")
        return model

    @functools.cached_property
    def artifacts(self) -> ArtifactStore:
        """Where the trained weights of the best ``keep_models`` trials are kept."""
        root = artifacts_dir(self.storage, self._study().name)
        return ArtifactStore(root)

    def keep_trained(self, number: int, model: nn.Module, seed: int, width: float = 1.0,
                     execution: int = 0) -> None:
        """Writes trial ``number``'s trained weights to :attr:`artifacts` (the search drops
        those of trials that leave the best ``keep_models``)."""
        if self.keep_models:
            self.artifacts.save(number, model, {"seed": seed, "width": width,
                                                "execution": execution})

    def _objective(self, hp: HP) -> dict[str, float]:
        assert hp.trial is not None
        trial = hp.trial
        seed = self._train_seed(trial.number)
        for attempt in range(self.redraws + 1):
            hp.width = self._fidelity["width"]
            with torch.random.fork_rng(devices=[]):  # initial weights: same seed, same model
                torch.manual_seed(seed)
                model = self.space_fn(hp)
            twin = trial.duplicate_of()
            if twin is None or attempt == self.redraws:
                break
            log.info("trial %d repeats trial %d's architecture: drawing again", trial.number, twin)
            # the strategy first; past half the redraws, uniformly at random
            hp = trial.redraw(uniform=2 * (attempt + 1) > self.redraws)
        trial.commit()
        if hp.width == 1.0:
            measured = self._measure(model)
        else:  # costs are those of the full-width model, the one deployed
            full = self._build(hp.arch, seed)
            measured = self._measure(full, [*self.model_metrics.named, "params"])
            del full

        if (reason := self.model_metrics.rejection(measured)) is not None:
            return Rejected(measured, reason)
        if not self.model_metrics.trains:
            return measured

        def check_deadline(step: float) -> None:
            if self._deadline is not None and time.time() > self._deadline:
                raise TrialPruned(f"the search's timeout passed during epoch {step}")

        def report(step: int, metrics: Mapping[str, float]) -> None:
            # with the costs: schedulers rank on every objective, a pruned trial keeps them
            trial.report(step, {**metrics, **measured})
            check_deadline(step)

        runs: list[dict[str, float]] = []
        best: tuple[int, nn.Module, int] | None = None
        objective = next(iter(self.objectives_parsed.items()))
        for run in range(self.executions_per_trial):
            run_seed = self._train_seed(trial.number, run)
            if run:  # only the first execution reports to the scheduler
                model = self._build(hp.arch, run_seed, hp.width)
            metrics = self._trial_trainer().fit(
                model, self._trial_data, params=hp.arch, seed=run_seed, budget=trial.budget,
                report=report if run == 0 else lambda step, _: check_deadline(step))
            runs.append(metrics)
            if best is None or better(metrics, runs[best[0]], objective):
                best = (run, model, run_seed)
        assert best is not None
        self.keep_trained(trial.number, best[1], best[2], hp.width, best[0])
        return {**merge_executions(runs, self.objectives_parsed), **measured}

    @functools.cached_property
    def objectives_parsed(self) -> dict[str, str]:
        """``{metric: direction}`` of the objectives."""
        return parse_objectives(self.objectives or {"val_accuracy": "max"})

    def _settings(self) -> dict[str, Any]:
        """What gives this search's trials their meaning (stored with a new study)."""
        return search_settings(self)

    def run(self) -> Study:
        """Checks the inputs, then runs trials until ``trials`` have finished in the study or
        ``timeout`` passes; prints the leaderboard; retrains/exports when asked.

        ``KeyboardInterrupt`` (Ctrl-C) leaves the running trials ``INTERRUPTED`` (they run
        first when the same search runs again) and propagates."""
        if oneshot.is_method(self.strategy):
            return self._run_oneshot()
        info = self.check()
        study = self.study = self.make_study()
        check_resumed_settings(self, study)
        warn_if_another_space(study, info)
        if info.size is not None and self.trials is not None and self.trials > info.size:
            log.warning("the space has %d architecture(s) and trials=%d: 'grid' stops once it "
                        "has run them all, other strategies repeat them", info.size, self.trials)
        self.model_metrics.queue_warm_start(study, self.space_fn, self.dataset)
        self.artifacts  # noqa: B018 - resolved here: process and Ray workers write to it too
        before = study.trials
        finished = sum(t.state.finished for t in before)
        remaining = None if self.trials is None else max(0, self.trials - finished)
        line = resume_line(study.name, before, self.trials)
        if line is not None:
            log.info(line)
            if self.progress:
                print(line, flush=True)
        first = next(iter(study.objectives.items()))
        self._deadline = None if self.timeout is None else time.time() + self.timeout
        if remaining != 0:
            bar = ProgressBar(self.trials, self.timeout, first, enabled=self.progress,
                              done=before)
            try:
                study.optimize(self._objective, trials=remaining, timeout=self.timeout,
                               workers=self.workers, executor=self.executor,
                               callbacks=[self._keep_best, bar], max_failures=self.max_failures,
                               retries=self.retries, trial_timeout=self.trial_timeout)
            finally:
                bar.close()
                self._keep_best(study)
        if self.progress:
            print(self.leaderboard(), file=sys.stdout, flush=True)
        if (self.retrain or self.export_to) and not study._ranked():
            log.warning("no trial completed (feasible) in study %r: nothing to retrain or export",
                        study.name)
            if self.progress:
                print("No trial completed within the budget: nothing to retrain or export.",
                      flush=True)
        elif self.retrain or self.export_to:
            model = self.best_model(retrain=True)
            if self.export_to:
                path = self.export(self.export_to, model)
                if self.progress:
                    print(f"Best model written to {path}", flush=True)
        return study

    def _keep_best(self, study: Study, trial: FrozenTrial | None = None) -> None:
        """Drops the kept weights of finished trials no longer among the best
        ``keep_models`` (a study callback; running trials' files are left alone)."""
        if not self.keep_models:
            return
        best = study.top_trials(self.keep_models)
        top = {t.number for t in best}
        states = {t.number: t.state for t in study.trials}
        store = self.artifacts
        store.discard(n for n in store.kept()
                      if n not in top and n in states and states[n].finished)
        for t in best:  # a kept model's summary, for `torchnas best` (which runs no space)
            if store.has(t.number) and "summary" not in store.meta(t.number):
                text = str(summary(self.trial_model(t), self.dataset))
                store.update_meta(t.number, {"summary": text, "arch": t.arch})

    def _run_oneshot(self) -> Study:
        """The one-shot path: one supernet search of the space (``timeout`` bounds it), the
        derived architecture retrained with the trainer and recorded as a trial of the study
        (same storage); the result (``self.oneshot_result``: architecture weights, history,
        collapse report) is also written beside a SQLite storage (see
        :func:`torchnas.oneshot.run_search`). ``trials`` and ``redraws`` do not apply."""
        self.oneshot_result = oneshot.run_search(self)
        return self._study()

    # -- results --------------------------------------------------------------------------------
    def _study(self) -> Study:
        if self.study is None:
            self.study = self.make_study()
        return self.study
