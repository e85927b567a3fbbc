"""Your own training loop in a search: ``ModelSearch(train_fn=...)``.

A ``train_fn`` replaces the :class:`~torchnas.Trainer` in every trial and in the retraining:

    train_fn(model, data, hp, trial) -> {"val_accuracy": 0.93, ...}

- ``model``: the built model, untrained (at the fidelity's width: ``hp.width``, ``hp.scale``).
  Its cost metrics (``params``, ``flops``, ``latency_ms``, ...) and the constraints on them
  were measured and checked before: a refused architecture never reaches ``train_fn``.
- ``data``: a :class:`~torchnas.data.Data` (the fidelity's subset of the training split in
  the trials; in the retraining, ``train`` is train+val and ``val`` the test split).
- ``hp``: the trial's recorder. Values the space did not decide can be decided here
  (``hp.float("lr", 1e-4, 1e-2, log=True)``): they are part of the architecture, searched by
  the strategy, recorded, and given back on the retraining.
- ``trial``: a :class:`TrialView` (``report(step, metrics)``, which raises
  :class:`~torchnas.TrialPruned` when the scheduler stops the trial, ``should_prune()``,
  ``budget``), or ``None`` outside a trial (the retraining).

It returns the metrics by name: every objective and constraint torchnas does not measure
itself. A result without one of them, or not a mapping of numbers, is a :class:`TrainFnError`
at the first trial, which stops the search. torch's random generator is seeded with the
trial's training seed before the call (and restored after), so a loop that draws from it
(initial weights are already drawn; shuffling, dropout) is reproducible.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import pickle
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

import torch
from torch import nn

from torchnas import data as tn_data
from torchnas._util.config import resolve_object
from torchnas._util.errors import ConfigError, TrainFnError, TrialPruned
from torchnas.space import HP, TrialHandle

__all__ = ["TrainFn", "TrialView", "as_test_metrics", "call_train_fn", "check_train_fn",
           "function_name", "lightning_fit", "resolve_train_fn", "retrain_data"]


TrainFn = Callable[[nn.Module, tn_data.Data, HP, TrialHandle | None], Mapping[str, float]]
"""``train_fn(model, data, hp, trial) -> metrics``: see :mod:`torchnas.search._train_fn`."""


#: The executors that pickle the objective (and so ``train_fn``) to other processes.
PICKLING_EXECUTORS = ("process", "ray")


def function_name(fn: Any) -> str:
    """``module:qualname`` of a function (what a YAML config writes and a study stores)."""
    inner = getattr(fn, "func", fn)  # a functools.partial names its function
    return (f"{getattr(inner, '__module__', None) or '?'}:"
            f"{getattr(inner, '__qualname__', None) or type(inner).__qualname__}")


def resolve_train_fn(spec: TrainFn | str | None) -> TrainFn | None:
    """``spec`` as a function: ``"package.module:function"`` is imported (only the module it
    names); anything else is returned as it is (:func:`check_train_fn` checks it).

    Raises:
        ConfigError: naming ``train_fn`` when the module or the function cannot be found.
    """
    if isinstance(spec, str):
        fn: TrainFn = resolve_object("train_fn", spec)
        return fn
    return spec


def lightning_fit(model: nn.Module) -> TrainFn | None:
    """:func:`torchnas.integrations.lightning.fit` when ``model`` is a ``LightningModule``
    (Lightning is then imported already: its module is not imported here otherwise), else
    ``None``."""
    lightning = sys.modules.get("lightning")
    module_type = getattr(lightning, "LightningModule", None)
    if module_type is None or not isinstance(model, module_type):
        return None
    from torchnas.integrations.lightning import fit

    return cast(TrainFn, fit)  # it takes a LightningModule, which model is


def check_train_fn(fn: Any, executor: str | None) -> None:
    """Refuses, before any trial, a ``train_fn`` that is not a function of ``(model, data, hp,
    trial)``, or that the ``executor`` cannot send to its workers (a lambda or a local function
    with ``process`` or ``ray``).

    Raises:
        ConfigError: naming ``train_fn`` and what is wrong with it.
    """
    if not callable(fn):
        raise ConfigError(f"train_fn must be a function train_fn(model, data, hp, trial) -> "
                          f"metrics or its name package.module:function, got {fn!r}")
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):  # a builtin without a signature: it will tell at the call
        signature = None
    if signature is not None:
        try:
            signature.bind(None, None, None, None)
        except TypeError as exc:
            raise ConfigError(f"train_fn {function_name(fn)} must take the four arguments "
                              f"(model, data, hp, trial); its signature {signature} does not "
                              f"({exc})") from None
    if executor not in PICKLING_EXECUTORS:
        return
    name = function_name(fn)
    try:
        pickle.dumps(fn)
    except Exception as exc:
        local = "<lambda>" in name or "<locals>" in name
        raise ConfigError(
            f"train_fn {name} cannot be sent to executor={executor!r}'s worker processes: "
            + ("a lambda or a function defined inside another is not picklable"
               if local else f"it cannot be pickled ({type(exc).__name__}: {exc})")
            + "; define it at module level (train_fn: package.module:function in YAML), or "
              "use executor='inline'") from None


class TrialView:
    """``trial`` as ``train_fn`` sees it: the running trial (a
    :class:`~torchnas.space.TrialHandle`) whose reports carry the model metrics torchnas
    measured before training (schedulers rank on every objective, and a pruned trial keeps
    them), that stops once the search's ``timeout`` has passed, and whose :attr:`budget` is
    at most the fidelity's epochs.

    Args:
        trial: the running trial.
        measured: the model metrics measured on the built model.
        deadline: ``time.time()`` after which a report stops the trial (``None``: never).
        epochs: the fidelity's epochs (``None``: not set).
        reports: whether reports reach the scheduler (only the first of several executions
            of a trial reports; the others only check the deadline).
        objectives: the names of the search's objectives (what a bridge such as
            :func:`torchnas.integrations.lightning.fit` checks the model logs).
    """

    def __init__(self, trial: TrialHandle, measured: Mapping[str, float], *,
                 deadline: float | None = None, epochs: int | None = None,
                 reports: bool = True, objectives: Sequence[str] = ()) -> None:
        self._trial = trial
        self._measured = dict(measured)
        self._deadline = deadline
        self._epochs = epochs
        self._reports = reports
        #: The trial's number in its study.
        self.number = trial.number
        #: The trial's recorder (the ``hp`` ``train_fn`` receives).
        self.hp = trial.hp
        #: The names of the search's objectives.
        self.objectives = tuple(objectives)

    @property
    def last_metrics(self) -> dict[str, float]:
        """The metrics of the last :meth:`report` (with the measured model metrics)."""
        return self._trial.last_metrics

    @last_metrics.setter
    def last_metrics(self, value: dict[str, float]) -> None:
        self._trial.last_metrics = value

    @property
    def arch(self) -> dict[str, Any]:
        """The decisions met so far."""
        return self._trial.arch

    @property
    def budget(self) -> float | None:
        """The most steps (epochs) this trial may train: the scheduler's budget, at most
        ``fidelity["epochs"]``; ``None``: no limit (train your own number)."""
        budget = self._trial.budget
        if self._epochs is None:
            return budget
        return float(self._epochs) if budget is None else min(budget, float(self._epochs))

    def _late(self) -> bool:
        return self._deadline is not None and time.time() > self._deadline

    def report(self, step: float, metrics: Mapping[str, float]) -> None:
        """Records intermediate metrics at ``step`` (an epoch, say).

        Raises:
            TrialPruned: when the scheduler stops the trial, or the search's timeout passed.
        """
        if self._reports:
            self._trial.report(step, {**metrics, **self._measured})
        if self._late():
            raise TrialPruned(f"the search's timeout passed during step {step}")

    def should_prune(self) -> bool:
        """Whether the scheduler wants this trial stopped (or the search's timeout passed)."""
        return self._late() or (self._reports and self._trial.should_prune())

    def commit(self) -> None:
        """Makes the decisions made so far durable."""
        self._trial.commit()

    def duplicate_of(self) -> int | None:
        """Another trial with this same architecture, if any."""
        return self._trial.duplicate_of()

    def redraw(self, uniform: bool = False) -> HP:
        """Not available: the model ``train_fn`` trains is built."""
        raise RuntimeError("train_fn cannot redraw the decisions: its model is already built")


def call_train_fn(fn: TrainFn, model: nn.Module, data: tn_data.Data, hp: HP,
                  trial: TrialHandle | None, *, seed: int, needed: Sequence[str] = (),
                  ) -> dict[str, float]:
    """Runs ``fn(model, data, hp, trial)`` with torch's generator seeded from ``seed`` and
    checks its result; adds ``train_seconds`` (the call's wall time) unless it returned one.

    Args:
        needed: the metrics the result must have (the objectives and constraints torchnas
            did not measure).

    Raises:
        TrainFnError: when the result is not a mapping of numbers, or lacks a ``needed``
            metric; the message names ``fn``, the metric and what it returned.
    """
    devices = [torch.cuda.current_device()] if torch.cuda.is_initialized() else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        start = time.perf_counter()
        result = fn(model, data, hp, trial)
        seconds = time.perf_counter() - start
    name = function_name(fn)
    if not isinstance(result, Mapping):
        raise TrainFnError(f"train_fn {name} returned {type(result).__name__} {result!r:.80}: "
                           f"it must return the metrics by name, e.g. {{'val_accuracy': 0.9}}")
    metrics: dict[str, float] = {}
    for key, value in result.items():
        try:
            metrics[str(key)] = float(value)
        except (TypeError, ValueError):
            raise TrainFnError(f"train_fn {name} returned metric {key!r} = {value!r:.80}, "
                               f"not a number") from None
    missing = [n for n in needed if n not in metrics]
    if missing:
        raise TrainFnError(
            f"train_fn {name} returned no {', '.join(map(repr, missing))} (it returned "
            f"{sorted(metrics) or 'no metric'}): it must return every objective and "
            f"constraint metric the search names that torchnas does not measure itself "
            f"({', '.join(map(repr, needed))}), or the search must name the metrics it "
            f"returns (objectives={{'metric': 'max'}})")
    if "train_seconds" not in metrics and math.isfinite(seconds):
        metrics["train_seconds"] = seconds
    return metrics


def retrain_data(bundle: tn_data.Data) -> tn_data.Data:
    """The data of a retraining by ``train_fn``: ``train`` is train+val and ``val`` the test
    split (so the ``val_*`` metrics it returns are test metrics); without a test split, ``val``
    stays the validation split (now trained on too: its metrics are not reported)."""
    return dataclasses.replace(bundle, train=bundle.train_val(),
                               val=bundle.test if bundle.test is not None else bundle.val,
                               test=None)


def as_test_metrics(metrics: Mapping[str, float]) -> dict[str, float]:
    """A retraining's ``val_*`` metrics (measured on the test split) as ``test_*``."""
    return {f"test_{k[4:]}": v for k, v in metrics.items() if k.startswith("val_")}
