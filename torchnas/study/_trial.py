"""Trial states and frozen trial records (read by strategies, written through storage)."""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field
from typing import Any

from torchnas.space import Domain, arch_key

__all__ = ["FrozenTrial", "TrialState", "report_step"]


def report_step(step: Any) -> int | float:
    """A report's step as recorded: an int when it is whole (epochs, percentages), else the
    float (half an epoch is step 0.5, not 0).

    Raises:
        ValueError: for a step that is not a finite number >= 0.
    """
    try:
        value = float(step)
    except (TypeError, ValueError):
        value = math.nan
    if isinstance(step, bool) or not math.isfinite(value) or value < 0:
        raise ValueError(f"a report's step must be a finite number >= 0, got {step!r}")
    return int(value) if value.is_integer() else value


class TrialState(enum.Enum):
    """Where a trial stands. ``RUNNING`` and ``INTERRUPTED`` are not finished."""

    RUNNING = "running"
    COMPLETE = "complete"
    PRUNED = "pruned"
    FAILED = "failed"
    REJECTED = "rejected"  # refused before evaluation (a constraint measurable on the model)
    INTERRUPTED = "interrupted"

    @property
    def finished(self) -> bool:
        """Whether the trial reached a final state (complete, pruned, failed or rejected)."""
        return self in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAILED,
                        TrialState.REJECTED)


@dataclass(frozen=True)
class FrozenTrial:
    """An immutable record of one trial, as storage holds it.

    Attributes:
        number: the trial's number in its study (0, 1, ...).
        state: see :class:`TrialState`.
        arch: the architecture (decisions met, in the order met) as far as it was recorded.
        domains: the domain of each decision in ``arch``.
        metrics: final metrics (for a pruned trial: its last reported ones).
        intermediate: ``(step, metrics)`` reported while it ran.
        feasible: whether the constraints hold (``None`` until finished).
        error: why it failed or was interrupted.
        start, end: wall-clock times (seconds since the epoch).
        attempts: how many times it was started (an interrupted trial is run again).
        budget: the budget it was evaluated with, if any (epochs, data fraction, ...).
        owner: the process that runs it (``host:pid:start``).
    """

    number: int
    state: TrialState = TrialState.RUNNING
    arch: dict[str, Any] = field(default_factory=dict)
    domains: dict[str, Domain] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    intermediate: tuple[tuple[int | float, dict[str, float]], ...] = ()
    feasible: bool | None = None
    error: str | None = None
    start: float | None = None
    end: float | None = None
    attempts: int = 1
    budget: float | None = None
    owner: str = ""

    @property
    def key(self) -> str:
        """The architecture's stable key (for de-duplication)."""
        return arch_key(self.arch)

    @property
    def duration(self) -> float | None:
        """Seconds from (last) start to end, when finished."""
        if self.start is None or self.end is None:
            return None
        return self.end - self.start

    def value(self, name: str) -> float:
        """A metric, NaN when absent."""
        v = self.metrics.get(name)
        return float(v) if v is not None else math.nan
