"""The inline executor: one trial at a time, in the calling process."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from torchnas._util.errors import ConfigError
from torchnas.execution._base import Executor, Plan, Tally, conclude, register
from torchnas.execution._protocol import evaluate
from torchnas.execution._threads import warn_if_busy
from torchnas.storage import MemoryJournal
from torchnas.study._orphans import CrashRecord

if TYPE_CHECKING:
    from torchnas.study import Study

__all__ = ["InlineExecutor"]


@register("inline")
class InlineExecutor(Executor):
    """Runs each trial in this process, one after the other (the default).

    The objective can be anything callable (a lambda, a closure) and ``hp.trial.study`` is the
    live study. A per-trial timeout needs a process to stop, so it is refused here: use the
    ``"process"`` executor. Trials use this process's torch threads (a ``Trainer(threads=n)``
    at most the cores it may run on); a warning says when other processes keep the cores busy
    as the search starts.
    """

    def __init__(self, workers: int = 1) -> None:
        self.workers = workers

    def check(self) -> None:
        if self.workers != 1:
            raise ConfigError(
                f"the inline executor runs one trial at a time (workers={self.workers!r}); "
                "use executor='process' or 'ray' for several"
            )

    def run(self, study: Study, objective: Callable[[Any], Any], plan: Plan) -> None:
        if plan.trial_timeout is not None:
            raise ConfigError(
                "trial_timeout stops a trial's process: use executor='process' or 'ray'"
            )
        import torch

        warn_if_busy(torch.get_num_threads())
        tally = Tally(study, plan)
        first = next(iter(study.objectives))
        # a trial that crashes this process (a segfault, an abort) leaves its word there: the
        # study that finds it failed it at once (nothing is kept of an in-memory study)
        record = (contextlib.nullcontext(None) if isinstance(study.journal, MemoryJournal)
                  else CrashRecord(study.owner))
        with record as crash:
            while tally.may_start(0):
                self._one(study, objective, plan, tally, first, crash)

    @staticmethod
    def _one(study: Study, objective: Callable[[Any], Any], plan: Plan, tally: Tally,
             first: str, crash: CrashRecord | None) -> None:
        trial = None
        try:
            trial = study.ask()
            with contextlib.nullcontext() if crash is None else crash.trial(trial.number):
                outcome = evaluate(objective, trial.hp, first)
        except KeyboardInterrupt:
            if trial is not None:
                study.interrupt(trial.number, "interrupted")
            raise
        except SystemExit as exc:  # sys.exit in a trial is its failure, not the user's
            if trial is None:
                raise
            outcome = {"kind": "error", "type": "SystemExit", "bad_input": False,
                       "message": f"the trial called sys.exit({exc.code!r})"}
        tally.finished(conclude(study, trial, outcome, plan.retries))
