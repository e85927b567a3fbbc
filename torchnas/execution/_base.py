"""The executor interface, the plan of one ``optimize`` call, and how a trial is concluded.

An executor runs trials of a study; the study (the driver) owns storage and the strategy, and
an executor's workers only compute. Every executor shares :class:`Tally` (when to stop, failure
counting, callbacks) and :func:`conclude` (an outcome becomes a trial record, and a failed
architecture is queued again when retries are asked for).
"""

from __future__ import annotations

import logging
import math
import numbers
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from torchnas._util.errors import ConfigError, SpaceError, TooManyFailures
from torchnas._util.registry import Configurable, Registry
from torchnas.execution._protocol import BAD_INPUT, Outcome
from torchnas.study._trial import FrozenTrial, TrialState

if TYPE_CHECKING:
    from torchnas.study import Study, Trial

__all__ = ["REGISTRY", "Executor", "Plan", "Tally", "conclude", "register"]

log = logging.getLogger("torchnas")

Callback = Callable[["Study", FrozenTrial], None]


@dataclass(frozen=True)
class Plan:
    """What one ``Study.optimize`` call asks for (see its arguments)."""

    trials: int | None = None
    timeout: float | None = None
    callbacks: Sequence[Callback] = ()
    max_failures: int | None = None
    retries: int = 0
    trial_timeout: float | None = None

    def check(self) -> None:
        """Raises :class:`ConfigError` naming the first bad argument."""
        _count("trials", self.trials, low=0, optional=True)
        _count("max_failures", self.max_failures, low=1, optional=True)
        _count("retries", self.retries, low=0)
        for name in ("timeout", "trial_timeout"):
            value = getattr(self, name)
            if value is not None and not (
                isinstance(value, numbers.Real) and not isinstance(value, bool)
                and math.isfinite(value) and float(value) > 0
            ):
                raise ConfigError(f"{name} must be a number of seconds > 0 or None, got {value!r}")
        for cb in self.callbacks:
            if not callable(cb):
                raise ConfigError(f"callbacks must be functions cb(study, trial), got {cb!r}")


def _count(name: str, value: Any, *, low: int, optional: bool = False) -> None:
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or int(value) < low:
        extra = " or None" if optional else ""
        raise ConfigError(f"{name} must be an integer >= {low}{extra}, got {value!r}")


class Executor(Configurable, ABC):
    """Runs a study's trials: inline, in local processes, or on a Ray cluster.

    Constructor arguments (``workers`` among them) are stored as attributes of the same name
    and checked in :meth:`check`, once, when the registry hands the executor out
    (``Study.optimize`` resolves it so; see :class:`~torchnas._util.registry.Configurable`);
    :meth:`run` does not check again, and nothing starts before it. ``@register("name")``
    above the class makes it a named executor.
    """

    name: ClassVar[str] = ""
    workers: int = 1

    @abstractmethod
    def run(self, study: Study, objective: Callable[[Any], Any], plan: Plan) -> None:
        """Runs trials of ``study`` until ``plan`` says stop (see ``Study.optimize``)."""


REGISTRY: Registry[Executor] = Registry("executor", Executor)
"""The named executors (``tn.execution.available()``)."""

register = REGISTRY.register
"""``@register("name")`` above an executor class: an executor of that name."""


class Tally:
    """Counts finished trials of one ``optimize`` call and says whether another may start."""

    def __init__(self, study: Study, plan: Plan) -> None:
        self.study = study
        self.plan = plan
        self.deadline = None if plan.timeout is None else time.monotonic() + plan.timeout
        self.done = 0
        self.failures_in_row = 0

    def may_start(self, running: int) -> bool:
        """Whether a new trial may start while ``running`` of this call are in flight."""
        if self.plan.trials is not None and self.done + running >= self.plan.trials:
            return False
        if self.deadline is not None and time.monotonic() >= self.deadline:
            return False
        return not self.study.strategy.exhausted()

    def finished(self, frozen: FrozenTrial) -> None:
        """Counts a finished trial, calls the callbacks, and stops a hopeless search."""
        self.done += 1
        self.failures_in_row = self.failures_in_row + 1 if frozen.state is TrialState.FAILED else 0
        for cb in self.plan.callbacks:
            cb(self.study, frozen)
        limit = self.plan.max_failures
        if limit is not None and self.failures_in_row >= limit:
            raise TooManyFailures(
                f"the search stopped: {self.failures_in_row} trials failed in a row "
                f"(max_failures={limit}); last error: {frozen.error}"
            )


def conclude(study: Study, trial: Trial, outcome: Outcome, retries: int = 0) -> FrozenTrial:
    """Records a trial's outcome; queues a failed architecture again while it has failed at most
    ``retries`` times (atomically with the record, so a crash between them loses nothing).

    Raises:
        SpaceError: after recording, when the space itself is malformed (no trial can work);
            likewise ``DataError`` for the data and ``TrainFnError`` for a ``train_fn`` that
            broke its contract.
    """
    kind = outcome["kind"]
    with study.journal.exclusive():
        if kind == "result" and outcome.get("rejected"):
            frozen = study.tell(trial, outcome["metrics"], state=TrialState.REJECTED,
                                error=outcome["rejected"])
        elif kind == "result":
            frozen = study.tell(trial, outcome["metrics"])
        elif kind == "pruned":
            frozen = study.tell(trial, trial.last_metrics or None, state=TrialState.PRUNED,
                                error=outcome.get("error"))
        else:
            error = (f"{outcome['type']}: {outcome['message']}" if kind == "error"
                     else str(outcome["error"]))
            frozen = study.tell(trial, state=TrialState.FAILED, error=error)
        if frozen.state is TrialState.FAILED and retries and not outcome.get("bad_input"):
            key = frozen.key
            if study.failures(key) <= retries:
                study.enqueue(frozen.arch)
    if frozen.state is TrialState.FAILED:
        log.warning("trial %d failed: %s", frozen.number, frozen.error)
    if outcome.get("bad_input"):  # the space, the data or train_fn: no trial can do better
        culprit = {cls.__name__: cls for cls in BAD_INPUT}.get(outcome["type"], SpaceError)
        raise culprit(outcome["message"])
    return frozen
