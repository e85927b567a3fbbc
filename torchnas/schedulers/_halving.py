"""Successive halving: ASHA (Li et al. 2020) and its no-benefit-of-the-doubt variant."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from torchnas._util.errors import ConfigError
from torchnas.schedulers._base import Scheduler, register
from torchnas.schedulers._values import better, check_int, check_real, reached, rung_value
from torchnas.study._trial import FrozenTrial

__all__ = ["SuccessiveHalvingScheduler", "synchronous"]


@register("asha")
class SuccessiveHalvingScheduler(Scheduler):
    """Successive halving on rungs of growing budget, judged as each trial gets there.

    The rungs are the budgets ``min_budget * reduction_factor ** (min_early_stopping_rate + k)``
    for ``k = 0, 1, ...`` below ``max_budget`` (a budget is a report's ``step``: epochs, or the
    percentage of the data). A trial's value at a rung is the first objective it reported when
    it first got there (its first report at a step ``>=`` the rung; a report that jumps past
    several rungs counts for each). It then goes on only if it is among the best
    ``floor(n / reduction_factor)`` of the ``n`` trials that have reached the rung so far,
    itself included, whatever their state now. Ties go on; NaN is pruned; a report without the
    metric is not judged.

    ASHA promotes a trial once it is in the top ``1 / reduction_factor`` of its rung; with fewer
    than ``reduction_factor`` trials there it would wait, pausing the trial. torchnas never
    pauses a trial, so the two settings of ``asynchronous`` decide what happens instead:

    - ``True`` (``"asha"``): the trial goes on if it is the best so far (Optuna's
      ``SuccessiveHalvingPruner``). Early trials get the benefit of the doubt.
    - ``False`` (``"sha"``): the trial stops; it goes on only from ``reduction_factor`` trials
      up, in the top ``floor(n / reduction_factor)``, as a synchronous rung of ``n`` trials
      would promote. This is *not* synchronous SHA, which needs every trial of a rung to
      report before any goes on (and so paused trials): decisions are made at once, on the
      trials so far, and never revised. The first ``reduction_factor - 1`` trials to reach each
      rung stop there.

    Decisions read only the trials' reports, so a resumed study decides as an uninterrupted one.

    Args:
        min_budget: the first rung (before ``min_early_stopping_rate``), in steps.
        max_budget: the most steps a trial gets (``None``: no limit, rungs without end).
            :meth:`budget` hands it to every trial (``Trainer.fit(budget=...)``).
        reduction_factor: ``eta``, an integer ``>= 2``: one in ``eta`` trials goes on.
        min_early_stopping_rate: ``s``; the first rung is at ``min_budget * eta ** s``.
        asynchronous: see above.

    Example:
        >>> import torchnas as tn
        >>> sha = tn.schedulers.create("asha", min_budget=1, max_budget=27)
        >>> sha.rungs()
        [1, 3, 9]
    """

    def __init__(self, *, min_budget: float = 1, max_budget: float | None = None,
                 reduction_factor: int = 3, min_early_stopping_rate: int = 0,
                 asynchronous: bool = True) -> None:
        self.min_budget = min_budget
        self.max_budget = max_budget
        self.reduction_factor = reduction_factor
        self.min_early_stopping_rate = min_early_stopping_rate
        self.asynchronous = asynchronous

    def check(self) -> None:
        check_real(self.name, "min_budget", self.min_budget, low=0)
        check_real(self.name, "max_budget", self.max_budget, low=0, optional=True)
        check_int(self.name, "reduction_factor", self.reduction_factor, low=2)
        check_int(self.name, "min_early_stopping_rate", self.min_early_stopping_rate, low=0)
        if self.min_early_stopping_rate * math.log(self.reduction_factor) > 100:
            raise ConfigError(f"scheduler {self.name!r}: min_early_stopping_rate "
                              f"{self.min_early_stopping_rate} puts the first rung at "
                              f"min_budget * {self.reduction_factor} ** "
                              f"{self.min_early_stopping_rate}, past any budget")
        if self.max_budget is not None and self.max_budget < self.min_budget:
            raise ConfigError(f"scheduler {self.name!r}: max_budget ({self.max_budget}) is below "
                              f"min_budget ({self.min_budget})")
        if not isinstance(self.asynchronous, bool):
            raise ConfigError(f"scheduler {self.name!r}: asynchronous must be True or False, "
                              f"got {self.asynchronous!r}")

    def setup(self, objectives: Mapping[str, str], seed: int) -> None:
        super().setup(objectives, seed)
        self._memo: dict[tuple[int, int, float], float | None] = {}

    def budget(self, number: int) -> float | None:
        """``max_budget``, for every trial."""
        return self.max_budget

    def rungs(self, up_to: float | None = None) -> list[float]:
        """The rungs' budgets below ``max_budget`` (and at most ``up_to``), in order.

        With no ``max_budget``, ``up_to`` is needed (the rungs have no end).
        """
        if self.max_budget is None and up_to is None:
            raise ValueError("rungs without end: give up_to (or a max_budget)")
        out: list[float] = []
        k = self.min_early_stopping_rate
        while True:
            rung = self.min_budget * self.reduction_factor**k
            if (up_to is not None and not reached(up_to, rung)) or (
                    self.max_budget is not None and reached(rung, self.max_budget)):
                return out
            out.append(rung)
            k += 1

    def promoted(self, value: float, others: list[float]) -> bool:
        """Whether ``value`` goes on from a rung where ``others`` were reported before it."""
        keep = (len(others) + 1) // self.reduction_factor
        if self.asynchronous:
            keep = max(keep, 1)
        return sum(better(o, value, self.direction) for o in others) < keep

    def new_rungs(self, trial: FrozenTrial) -> list[float]:
        """The rungs the trial's last report reached that its earlier ones had not (where it
        is judged now); none once its whole budget is spent: it is finished, not stopped."""
        if not trial.intermediate:
            return []
        step = trial.intermediate[-1][0]
        if self.max_budget is not None and reached(step, self.max_budget):
            return []
        prev = trial.intermediate[-2][0] if len(trial.intermediate) > 1 else None
        return [r for r in self.rungs(up_to=step) if prev is None or not reached(prev, r)]

    def should_prune(self, trial: FrozenTrial, trials: Mapping[int, FrozenTrial]) -> bool:
        rungs = self.new_rungs(trial)
        if not rungs or trial.intermediate[-1][1].get(self.metric) is None:
            return False
        value = float(trial.intermediate[-1][1][self.metric])
        for rung in rungs:
            if math.isnan(value):
                return True
            others = [v for n, t in trials.items()
                      if n != trial.number and (v := self._value(t, rung)) is not None
                      and not math.isnan(v)]
            if not self.promoted(value, others):
                return True
        return False

    def _value(self, trial: FrozenTrial, rung: float) -> float | None:
        """:func:`rung_value`; remembered for finished trials (their records never change)."""
        if not trial.state.finished:
            return rung_value(trial, self.metric, rung)
        key = (trial.number, len(trial.intermediate), rung)
        if key not in self._memo:
            self._memo[key] = rung_value(trial, self.metric, rung)
        return self._memo[key]


@register("sha")
def synchronous(**kwargs: Any) -> SuccessiveHalvingScheduler:
    """``"sha"``: a :class:`SuccessiveHalvingScheduler` with ``asynchronous=False``."""
    kwargs.setdefault("asynchronous", False)
    return SuccessiveHalvingScheduler(**kwargs)
