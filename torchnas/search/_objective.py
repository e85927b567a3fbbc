"""What one trial of a :class:`~torchnas.ModelSearch` runs: :class:`ModelObjective`.

The objective holds everything a trial needs (the space, the data, the trainer or the user's
``train_fn``, the model metrics, the fidelity, the seed, the executions and where trained
weights are kept) and nothing of the study: the trial it runs comes as ``hp.trial``. It is
what the executors send to worker processes (pickled; the space function is rebuilt there) and
what one-shot methods retrain their derived architecture with.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from torchnas import data as tn_data
from torchnas._util.errors import ConfigError, SpaceError, TrialPruned
from torchnas.evaluation import Trainer
from torchnas.evaluation._graph import model_graph
from torchnas.search._model_metrics import ModelMetrics, Rejected
from torchnas.search._options import Fidelity
from torchnas.search._seeds import better, merge_executions
from torchnas.search._settings import trial_settings
from torchnas.search._space_args import builtin_space_kwargs
from torchnas.search._train_fn import (
    TrainFn,
    TrialView,
    call_train_fn,
    function_name,
    lightning_fit,
    retrain_data,
)
from torchnas.space import HP, FixedSource
from torchnas.space import builtin as spaces
from torchnas.storage._artifacts import ArtifactStore
from torchnas.strategies import derive_seed

__all__ = ["ModelObjective", "SpaceFn", "space_function"]

log = logging.getLogger("torchnas")

SpaceFn = Callable[[HP], nn.Module]


def space_function(space: str | SpaceFn, space_kwargs: Mapping[str, Any] | None,
                   dataset: tn_data.Data) -> SpaceFn:
    """The space function of ``space``: a built-in space is created for the data (see
    :func:`builtin_space_kwargs`); ``space_kwargs`` are its arguments."""
    if isinstance(space, str):
        fn: SpaceFn = spaces.create(space, **builtin_space_kwargs(space, space_kwargs, dataset))
        return fn
    if not callable(space):
        raise ConfigError(f"space must be a function build(hp) or a name, got {space!r}")
    kwargs = dict(space_kwargs or {})
    return functools.partial(space, **kwargs) if kwargs else space


class ModelObjective:
    """``objective(hp)``: one trial of a model search.

    It builds the model of ``hp``'s decisions (drawn again, up to ``redraws`` times, while they
    repeat an architecture already evaluated), measures the model metrics the objectives and
    constraints name, rejects a model that breaks a constraint on them, trains it
    ``executions_per_trial`` times at the trial's fidelity (with the trainer, or with
    ``train_fn``), keeps the best execution's weights and returns the metrics.

    Args:
        space: a space function or a built-in space's name.
        dataset: the loaded, validated data.
        trainer: the trainer, at full fidelity (the retraining's; the trials use
            :attr:`trial_trainer`).
        metrics: the model metrics of the search (cost, proxies, rejection).
        fidelity: the trials' fidelity.
        seed: the search's seed; every trial's seeds derive from it.
        space_kwargs: arguments of the space.
        redraws, executions_per_trial, keep_models: as for :class:`~torchnas.ModelSearch`.
        artifacts: where trained weights are kept (``None``: in a temporary folder).
        train_fn: the user's training function, which trains instead of ``trainer``
            (:mod:`torchnas.search._train_fn` has its contract); it is pickled by reference
            to workers, so a module-level function. Without it, a space that returns a
            ``lightning.LightningModule`` is trained by
            :func:`torchnas.integrations.lightning.fit` (see :meth:`fit_fn`).

    Attributes:
        deadline: a wall-clock time (``time.time()``; trials may run on other machines) after
            which a trial still training stops at the end of its epoch (recorded PRUNED).

    It pickles without its space function (workers rebuild it from ``space`` and
    ``space_kwargs``), and needs no study: the trial it runs is ``hp.trial``.
    """

    def __init__(self, space: str | SpaceFn, dataset: tn_data.Data, trainer: Trainer,
                 metrics: ModelMetrics, fidelity: Fidelity, seed: int, *,
                 space_kwargs: Mapping[str, Any] | None = None, redraws: int = 10,
                 executions_per_trial: int = 1, keep_models: int = 3,
                 artifacts: ArtifactStore | None = None, train_fn: TrainFn | None = None) -> None:
        self.space = space
        self.dataset = dataset
        self.trainer = trainer
        self.metrics = metrics
        self.fidelity = fidelity
        self.seed = seed
        self.space_kwargs = space_kwargs
        self.redraws = redraws
        self.executions_per_trial = executions_per_trial
        self.keep_models = keep_models
        self.artifacts = artifacts if artifacts is not None else ArtifactStore(None)
        self.train_fn = train_fn
        self.deadline: float | None = None

    def __getstate__(self) -> dict[str, Any]:
        """What worker processes receive: the space function is rebuilt there (the loaded data
        is kept, so workers do not load it again)."""
        state = dict(self.__dict__)
        state.pop("space_fn", None)
        return state

    # -- the pieces ---------------------------------------------------------------------------
    @functools.cached_property
    def space_fn(self) -> SpaceFn:
        """The space function (a built-in space is created for the data's shape)."""
        return space_function(self.space, self.space_kwargs, self.dataset)

    @property
    def space_name(self) -> str | None:
        """The registered name of the space, when it is a built-in one."""
        return self.space if isinstance(self.space, str) else None

    @functools.cached_property
    def trial_trainer(self) -> Trainer:
        """The trainer of the trials (the fidelity's epochs, when given)."""
        epochs = self.fidelity.epochs
        if epochs is None:
            return self.trainer
        return Trainer(**{**self.trainer.get_params(), "epochs": epochs})

    @functools.cached_property
    def trial_data(self) -> tn_data.Data:
        """The data the trials train on (the fidelity's subset of the training split)."""
        seed = derive_seed(self.seed, "fidelity data") % 2**63
        return self.dataset.subset(self.fidelity.data, seed=seed)

    def train_seed(self, number: int, execution: int = 0) -> int:
        """The seed of trial ``number``'s weights and training (its retraining reuses it);
        each further execution (``executions_per_trial``) has its own."""
        if execution:
            return derive_seed(self.seed, "train", number, execution) % (2**31)
        return derive_seed(self.seed, "train", number) % (2**31)

    def build(self, arch: Mapping[str, Any], seed: int, width: float = 1.0) -> nn.Module:
        """The model of ``arch`` at ``width``, its weights initialised from ``seed``."""
        return self.build_hp(arch, seed, width)[0]

    def build_hp(self, arch: Mapping[str, Any], seed: int, width: float = 1.0
                 ) -> tuple[nn.Module, HP]:
        """The model of ``arch`` at ``width`` and the recorder that built it (whose source
        gives ``train_fn`` the rest of ``arch``: the values it decided in its trial).

        Raises:
            SpaceError: when ``arch`` has labels the space never met (without ``train_fn``,
                which decides labels of its own).
        """
        hp = HP(FixedSource(arch))
        hp.width = width
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = self.space_fn(hp)
        if self.train_fn is None and set(arch) - set(hp.arch):
            raise SpaceError(f"the architecture has labels this space never met: "
                             f"{sorted(set(arch) - set(hp.arch))}")
        return model, hp

    def fit_fn(self, model: nn.Module) -> TrainFn | None:
        """What trains ``model`` instead of the trainer: ``train_fn``; without one, for a
        ``lightning.LightningModule`` (Lightning imported by the space),
        :func:`torchnas.integrations.lightning.fit`; else ``None`` (the trainer)."""
        return self.train_fn if self.train_fn is not None else lightning_fit(model)

    def retrain(self, arch: Mapping[str, Any], seed: int
                ) -> tuple[nn.Module, dict[str, float], bool]:
        """The model of ``arch`` trained afresh at full fidelity on train+val, the metrics of
        that training, and whether :meth:`fit_fn` trained it: the trainer's metrics
        (``final=True``), or those the function returns when called with ``trial=None`` on
        :func:`~torchnas.search._train_fn.retrain_data` (its ``val_*`` metrics are then
        measured on the test split)."""
        model, hp = self.build_hp(arch, seed)
        fn = self.fit_fn(model)
        if fn is None:
            return model, self.trainer.fit(model, self.dataset, params=arch, seed=seed,
                                           final=True), False
        return model, call_train_fn(fn, model, retrain_data(self.dataset), hp, None,
                                    seed=seed), True

    def measure(self, model: nn.Module, names: Sequence[str] | None = None) -> dict[str, float]:
        """The model metrics among ``names`` (see :meth:`ModelMetrics.measure`)."""
        return self.metrics.measure(model, self.dataset, names)

    def keep_trained(self, number: int, model: nn.Module, seed: int, width: float = 1.0,
                     execution: int = 0) -> None:
        """Writes trial ``number``'s trained weights to :attr:`artifacts` (the search drops
        those of trials that leave the best ``keep_models``)."""
        if self.keep_models:
            self.artifacts.save(number, model, {"seed": seed, "width": width,
                                                "execution": execution})

    def keep_graph(self, number: int, model: nn.Module) -> None:
        """Writes trial ``number``'s model graph to :attr:`artifacts` (what the dashboard and
        ``torchnas plot --kind arch`` draw without running code), captured on one training
        sample; ``keep_models=0`` (no files) records none. Never fails the trial: a model it
        cannot capture gets no graph (logged at debug level)."""
        if not self.keep_models:
            return
        try:
            example = torch.as_tensor(self.dataset.train[0][0]).unsqueeze(0)
            graph = model_graph(model, example)
            if graph is not None:
                self.artifacts.save_graph(number, graph)
        except Exception as exc:
            log.debug("trial %d: its model graph was not kept (%s)", number, exc)

    def settings(self) -> dict[str, Any]:
        """What gives the trials their meaning, as stored with a new study and compared when
        it is reopened: the trainer (but where and how fast it runs), the data (name, shapes,
        split sizes), the space and its arguments, the fidelity and the executions."""
        bundle = self.dataset
        sizes: dict[str, int | None] = {}
        for split in ("train", "val", "test"):
            part = getattr(bundle, split)
            try:
                sizes[split] = None if part is None else len(part)
            except TypeError:  # a Dataset without a length
                sizes[split] = None
        space = self.space if isinstance(self.space, str) else (
            f"{getattr(self.space, '__module__', '?')}:{getattr(self.space, '__qualname__', '?')}")
        return trial_settings(
            trainer=None if self.train_fn is not None else self.trainer.get_params(),
            train_fn=None if self.train_fn is None else function_name(self.train_fn),
            space=space, space_kwargs=self.space_kwargs,
            data={"name": bundle.name, "input_shape": list(bundle.input_shape),
                  "num_classes": bundle.num_classes, **sizes,
                  **({"target_shape": list(bundle.target_shape)} if bundle.target_shape
                     else {})},
            fidelity=self.fidelity.to_dict(), executions_per_trial=self.executions_per_trial)

    # -- one trial ----------------------------------------------------------------------------
    def __call__(self, hp: HP) -> dict[str, float]:
        assert hp.trial is not None, "a ModelObjective runs trials of a study (hp.trial)"
        trial = hp.trial
        seed = self.train_seed(trial.number)
        for attempt in range(self.redraws + 1):
            hp.width = self.fidelity.width
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
        fit_fn = self.fit_fn(model)
        if hp.width == 1.0:  # train_fn returns what it likes: params is always measured
            self.keep_graph(trial.number, model)
            measured = self.measure(model, None if fit_fn is None
                                    else [*self.metrics.named, "params"])
        else:  # costs are those of the full-width model, the one deployed
            full = self.build(hp.arch, seed)
            self.keep_graph(trial.number, full)
            measured = self.measure(full, [*self.metrics.named, "params"])
            del full

        if (reason := self.metrics.rejection(measured)) is not None:
            return Rejected(measured, reason)
        if not self.metrics.trains:
            return measured

        def check_deadline(step: float) -> None:
            if self.deadline is not None and time.time() > self.deadline:
                raise TrialPruned(f"the search's timeout passed during epoch {step}")

        def report(step: int, metrics: Mapping[str, float]) -> None:
            # with the costs: schedulers rank on every objective, a pruned trial keeps them
            trial.report(step, {**metrics, **measured})
            check_deadline(step)

        runs: list[dict[str, float]] = []
        best: tuple[int, nn.Module, int] | None = None
        objective = next(iter(self.metrics.objectives.items()))
        for run in range(self.executions_per_trial):
            run_seed = self.train_seed(trial.number, run)
            if run:  # only the first execution reports to the scheduler
                model = self.build(hp.arch, run_seed, hp.width)
            if fit_fn is not None:
                view = TrialView(trial, measured, deadline=self.deadline,
                                 epochs=self.fidelity.epochs, reports=run == 0,
                                 objectives=list(self.metrics.objectives))
                metrics = call_train_fn(fit_fn, model, self.trial_data, hp, view,
                                        seed=run_seed, needed=[n for n in self.metrics.named
                                                               if n not in measured])
            else:
                metrics = self.trial_trainer.fit(
                    model, self.trial_data, params=hp.arch, seed=run_seed, budget=trial.budget,
                    report=report if run == 0 else lambda step, _: check_deadline(step))
            runs.append(metrics)
            if best is None or better(metrics, runs[best[0]], objective):
                best = (run, model, run_seed)
        assert best is not None
        self.keep_trained(trial.number, best[1], best[2], hp.width, best[0])
        return {**merge_executions(runs, self.metrics.objectives), **measured}
