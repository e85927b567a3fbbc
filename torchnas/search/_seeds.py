"""One architecture trained with several seeds: the executions of a trial (their mean and
spread) and the retraining of the chosen one, tried again when it ends clearly worse than its
trial did."""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from torch import nn

__all__ = ["RetrainAttempt", "RetrainReport", "better", "clearly_worse", "merge_executions",
           "retrain_with_retries"]

#: A retrain is clearly worse when its final training loss exceeds ``FACTOR`` times the
#: trial's plus ``MARGIN`` (the trial of the issue that motivated it: 0.02, its retrain 1.33).
FACTOR, MARGIN = 2.0, 0.15
#: Metrics of several executions that add up instead of averaging.
SUMMED = ("train_seconds",)


def better(a: Mapping[str, float], b: Mapping[str, float], objective: tuple[str, str]) -> bool:
    """Whether metrics ``a`` beat ``b`` on ``objective`` (``(name, "max"|"min")``; a NaN or
    missing value never wins)."""
    name, direction = objective
    x, y = a.get(name, math.nan), b.get(name, math.nan)
    if not math.isfinite(x):
        return False
    if not math.isfinite(y):
        return True
    return x > y if direction == "max" else x < y


def merge_executions(runs: Sequence[Mapping[str, float]], objectives: Mapping[str, str]
                     ) -> dict[str, float]:
    """One trial's metrics from its executions: the mean of each metric every run has
    (``train_seconds`` summed), ``<objective>_std`` (the sample standard deviation) per
    objective, and ``executions``. A single run is returned as is."""
    if len(runs) == 1:
        return dict(runs[0])
    names = [k for k in runs[0] if all(k in r for r in runs[1:])]
    out: dict[str, float] = {}
    for name in names:
        values = [float(r[name]) for r in runs]
        out[name] = sum(values) if name in SUMMED else statistics.fmean(values)
    for name in objectives:
        if name in names:
            out[f"{name}_std"] = statistics.stdev(float(r[name]) for r in runs)
    out["executions"] = float(len(runs))
    return out


def clearly_worse(loss: float, trial_loss: float | None) -> bool:
    """Whether a retrain's final training loss is clearly worse than its trial's: above
    ``FACTOR * trial_loss + MARGIN`` (a NaN loss always is; no trial loss: never)."""
    if trial_loss is None or not math.isfinite(trial_loss):
        return False
    return not math.isfinite(loss) or loss > FACTOR * trial_loss + MARGIN


@dataclass(frozen=True)
class RetrainAttempt:
    """One retraining: its seed and final training loss."""

    seed: int
    train_loss: float


@dataclass
class RetrainReport:
    """How the chosen architecture was retrained on train+val.

    Attributes:
        trial: the trial's number.
        trial_train_loss: the trial's own final training loss (``None``: not recorded).
        attempts: every retraining, in order.
        chosen: ``"retrained"`` (the best attempt) or ``"trial"`` (every attempt stayed
            clearly worse and the trial's own trained model was kept instead).
        seconds: wall time of all attempts.
        test_metrics: test metrics of the returned model (empty without a test split).
        trial_test_metrics: test metrics of the trial's own trained model, when its weights
            were kept.
    """

    trial: int
    trial_train_loss: float | None
    attempts: list[RetrainAttempt] = field(default_factory=list)
    chosen: str = "retrained"
    seconds: float = 0.0
    test_metrics: dict[str, float] = field(default_factory=dict)
    trial_test_metrics: dict[str, float] | None = None

    @property
    def best_attempt(self) -> RetrainAttempt:
        return min(self.attempts, key=lambda a: (not math.isfinite(a.train_loss), a.train_loss))

    @property
    def failed(self) -> bool:
        """Whether every attempt ended clearly worse than the trial."""
        return bool(self.attempts) and clearly_worse(self.best_attempt.train_loss,
                                                     self.trial_train_loss)


def retrain_with_retries(
    train: Callable[[int], tuple[nn.Module, float]], seeds: Sequence[int],
    trial_loss: float | None, on_retry: Callable[[RetrainAttempt], None] | None = None,
) -> tuple[nn.Module, list[RetrainAttempt]]:
    """Retrains with ``seeds[0]``, then the next seeds while the result is clearly worse than
    ``trial_loss``; returns the model of the lowest final training loss and every attempt.

    Args:
        train: ``train(seed) -> (model, final training loss)``.
        seeds: the seeds to try, in order (at least one).
        trial_loss: the trial's own final training loss.
        on_retry: called with each attempt that is retried.
    """
    attempts: list[RetrainAttempt] = []
    best: nn.Module | None = None
    best_loss = math.inf
    for i, seed in enumerate(seeds):
        model, loss = train(seed)
        attempt = RetrainAttempt(seed, float(loss))
        if best is None or loss < best_loss:  # NaN never wins
            best, best_loss = model, (loss if math.isfinite(loss) else math.inf)
        attempts.append(attempt)
        if not clearly_worse(attempt.train_loss, trial_loss):
            break
        if on_retry is not None and i + 1 < len(seeds):
            on_retry(attempt)
    assert best is not None
    return best, attempts
