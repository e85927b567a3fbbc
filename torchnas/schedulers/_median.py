"""The median stopping rule (Golovin et al. 2017, Google Vizier; Optuna's MedianPruner)."""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping

from torchnas._util.errors import ConfigError
from torchnas.schedulers._base import Scheduler, register
from torchnas.schedulers._values import better, check_int, check_real, value_by
from torchnas.study._trial import FrozenTrial, TrialState

__all__ = ["MedianScheduler"]

_DONE = (TrialState.COMPLETE, TrialState.PRUNED)


@register("median")
class MedianScheduler(Scheduler):
    """Stops a trial whose value at step ``s`` is worse than the median of other trials' at ``s``.

    A trial's value at step ``s`` is, for every trial alike, its best report of the first
    objective at a step ``<= s`` (``compare="best"``, the median stopping rule) or its last one
    (``compare="current"``). The median is taken over the finished (complete or pruned) trials
    that got as far as ``s``; running and failed trials do not count, so the same trials give
    the same decisions when a study is resumed. A report of NaN is pruned (when judged); a
    report without the metric is not judged.

    Args:
        startup_trials: no pruning until this many trials have finished (complete or pruned).
        warmup_steps: no pruning at steps ``<= warmup_steps``.
        interval: judge once every ``interval`` steps after the warm-up (at ``warmup_steps +
            k * interval``, or at the first report past it when steps jump).
        compare: ``"best"`` or ``"current"`` (see above).

    Example:
        >>> import torchnas as tn
        >>> study = tn.Study(objectives={"acc": "max"}, strategy="random",
        ...                  scheduler=tn.schedulers.MedianScheduler(startup_trials=2))
        >>> def objective(hp: tn.HP) -> float:
        ...     top = hp.float("top", 0.1, 1.0)
        ...     for step in range(1, 11):
        ...         hp.trial.report(step, {"acc": top * step / 10})
        ...     return top
        >>> study.optimize(objective, trials=8)
        >>> any(t.state is tn.TrialState.PRUNED for t in study.trials)
        True
    """

    def __init__(self, *, startup_trials: int = 5, warmup_steps: float = 0, interval: int = 1,
                 compare: str = "best") -> None:
        self.startup_trials = startup_trials
        self.warmup_steps = warmup_steps
        self.interval = interval
        self.compare = compare

    def check(self) -> None:
        check_int(self.name, "startup_trials", self.startup_trials, low=0)
        check_real(self.name, "warmup_steps", self.warmup_steps, low=0, open_low=False)
        check_int(self.name, "interval", self.interval, low=1)
        if self.compare not in ("best", "current"):
            raise ConfigError(f"scheduler 'median': compare must be 'best' or 'current', "
                              f"got {self.compare!r}")

    def setup(self, objectives: Mapping[str, str], seed: int) -> None:
        super().setup(objectives, seed)
        self._memo: dict[tuple[int, int, float], float | None] = {}

    def should_prune(self, trial: FrozenTrial, trials: Mapping[int, FrozenTrial]) -> bool:
        if not trial.intermediate or not self._due(trial):
            return False
        step = trial.intermediate[-1][0]
        done = [t for t in trials.values() if t.number != trial.number and t.state in _DONE]
        if len(done) < self.startup_trials:
            return False
        current = trial.intermediate[-1][1].get(self.metric)
        if current is not None and math.isnan(current):
            return True
        own = value_by(trial, self.metric, step, self.direction, self.compare == "best")
        if own is None:
            return False
        others = [v for t in done if (v := self._value(t, step)) is not None and not math.isnan(v)]
        if not others:
            return False
        return better(statistics.median(others), own, self.direction)

    def _due(self, trial: FrozenTrial) -> bool:
        """Whether this report is one the rule judges (past the warm-up, on the interval)."""
        w, step = float(self.warmup_steps), trial.intermediate[-1][0]
        if step <= w:
            return False
        prev = max(trial.intermediate[-2][0], w) if len(trial.intermediate) > 1 else w
        return (step - w) // self.interval > (prev - w) // self.interval

    def _value(self, trial: FrozenTrial, step: float) -> float | None:
        """:func:`value_by` of a finished trial, remembered (a finished record never changes)."""
        key = (trial.number, len(trial.intermediate), step)
        if key not in self._memo:
            self._memo[key] = value_by(trial, self.metric, step, self.direction,
                                       self.compare == "best")
        return self._memo[key]
