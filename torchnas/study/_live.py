"""A running trial: its number, its ``hp`` recorder (the study's strategy fills it), reporting
and de-duplication. :class:`~torchnas.Study` creates them (``ask``) and closes them (``tell``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from torchnas._util.errors import TrialPruned
from torchnas.space import HP, Domain, arch_key
from torchnas.storage import events
from torchnas.strategies import AskContext, Strategy
from torchnas.study._trial import report_step

if TYPE_CHECKING:
    from torchnas.study import Study

__all__ = ["Trial"]


class _StudySource:
    """Values for one trial: fixed ones first, then the strategy's suggestions.

    A fixed value outside its label's domain (a mutated child whose domain depends on another
    decision that changed, e.g. ``hp.int("x", 0, n)``) is suggested afresh instead.
    """

    def __init__(self, fixed: Mapping[str, Any], strategy: Strategy, ctx: AskContext,
                 uniform: bool = False) -> None:
        self.fixed = fixed
        self.strategy = strategy
        self.ctx = ctx
        self.uniform = uniform

    def value(self, label: str, domain: Domain, met: Mapping[str, Any]) -> Any:
        if label in self.fixed and domain.contains(self.fixed[label]):
            return self.fixed[label]
        if self.uniform:
            return domain.sample(self.ctx.rng(label))
        return self.strategy.suggest(self.ctx, label, domain)


class Trial:
    """A running trial: its number, its ``hp`` recorder, and reporting.

    Decisions are written to storage when :meth:`commit` is called (``ModelSearch`` does so once
    the model is built, before training), when a metric is reported, and when the trial ends.
    """

    def __init__(
        self, study: Study, number: int, fixed: Mapping[str, Any], ctx: AskContext
    ) -> None:
        self.study = study
        self.number = number
        self._ctx = ctx
        self._imposed = dict(fixed)
        self.hp = self._new_hp({**study.strategy.ask(ctx), **fixed})
        self._committed: set[str] = set()
        self.last_metrics: dict[str, float] = {}

    def _new_hp(self, fixed: Mapping[str, Any], uniform: bool = False) -> HP:
        hp = HP(_StudySource(fixed, self.study.strategy, self._ctx, uniform), trial=self)
        self._ctx.params = hp._values  # the strategy sees decisions as they are made
        return hp

    def duplicate_of(self) -> int | None:
        """The number of another trial (finished, or running) with this same architecture.

        ``None`` when every decision met was imposed (an enqueued architecture, a retry, an
        interrupted trial taken up again): such a trial runs what it was asked to run.
        """
        arch = self.hp.arch
        if self._imposed and all(k in self._imposed for k in arch):
            return None
        study = self.study
        study.sync()
        key = arch_key(arch)
        found = study.finished_with(key)
        if found is not None:
            return found
        return next((n for n, a in study.running_archs().items()
                     if n != self.number and arch_key(a) == key), None)

    def redraw(self, uniform: bool = False) -> HP:
        """Draws this trial's decisions again with fresh randomness (the strategy is asked again;
        imposed decisions stay): for an architecture that repeats one already evaluated.
        ``uniform``: draw them uniformly at random instead of asking the strategy (a model
        that has converged can propose the same architecture whatever the randomness).
        Only before anything is committed; returns the new ``hp``."""
        if self._committed:
            raise RuntimeError(f"trial {self.number}: decisions already committed")
        self._ctx.attempt += 1
        proposed = {} if uniform else self.study.strategy.ask(self._ctx)
        self.hp = self._new_hp({**proposed, **self._imposed}, uniform)
        return self.hp

    @property
    def arch(self) -> dict[str, Any]:
        """Decisions met so far."""
        return self.hp.arch

    def uncommitted(self) -> dict[str, Any]:
        """The decisions not yet written to storage (``arch``) and their domains as JSON
        (``domains``); they count as written from now on (the caller journals them)."""
        arch = {k: v for k, v in self.hp.arch.items() if k not in self._committed}
        doms = self.hp.domains
        self._committed.update(arch)
        return {"arch": arch, "domains": {k: doms[k].to_json() for k in arch}}

    def commit(self) -> None:
        """Writes the decisions made so far to storage (to re-run them after a crash)."""
        fresh = self.uncommitted()
        if fresh["arch"]:
            self.study.record(events.arch(self.number, self.study.owner, fresh["arch"],
                                          fresh["domains"]))

    def report(self, step: float, metrics: Mapping[str, float]) -> None:
        """Records intermediate metrics (e.g. per epoch; a step may be fractional: 0.5 is
        half an epoch); raises :class:`TrialPruned` when the study's scheduler says to stop."""
        step = report_step(step)
        self.commit()
        clean = {k: float(v) for k, v in metrics.items()}
        self.last_metrics = clean
        self.study.record(events.report(self.number, self.study.owner, step, clean))
        calls = self.study.callbacks
        if calls is not None:  # in the driver, for every executor: workers report through it
            calls.report(self.study, self.number, step, clean)
        if self.should_prune():
            raise TrialPruned(f"stopped by the scheduler at step {step}")

    def should_prune(self) -> bool:
        """Whether the scheduler wants this trial stopped (always ``False`` without one)."""
        scheduler = self.study.scheduler
        if scheduler is None:
            return False
        self.study.sync()  # the scheduler must see the report just appended
        trials = self.study.records
        return bool(scheduler.should_prune(trials[self.number], trials))

    @property
    def budget(self) -> float | None:
        """The most steps (epochs, ...) the scheduler grants this trial; ``None``: no limit."""
        return self.study.records[self.number].budget

    def refresh_pending(self) -> None:
        """Brings what the strategy sees as running (``ctx.pending``) up to date: trials
        started or finished since this one was asked."""
        self._ctx.pending = self.study.pending(self.number)
