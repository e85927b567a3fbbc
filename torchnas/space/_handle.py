"""What ``hp.trial`` is: the running trial as an objective sees it, in the driver's process or
in a worker's."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from torchnas.space._hp import HP

__all__ = ["TrialHandle"]


@runtime_checkable
class TrialHandle(Protocol):
    """The running trial an objective reaches through ``hp.trial``.

    :class:`torchnas.Trial` (in the driver's process: inline executor, ``Study.ask``)
    and the worker's remote trial (process and Ray executors, each call answered by the
    driver) both implement it, so an objective runs the same under every executor.

    Attributes:
        number: the trial's number in its study.
        budget: the most steps (epochs, ...) the scheduler grants it; ``None``: no limit.
        hp: the recorder of its decisions (replaced by :meth:`redraw`).
        last_metrics: the metrics of its last :meth:`report` (empty before the first).
    """

    number: int
    hp: HP
    last_metrics: dict[str, float]

    @property
    def budget(self) -> float | None: ...

    @property
    def arch(self) -> dict[str, Any]:
        """The decisions met so far."""
        ...

    def report(self, step: float, metrics: Mapping[str, float]) -> None:
        """Records intermediate metrics at ``step``; raises
        :class:`~torchnas.TrialPruned` when the scheduler says to stop."""
        ...

    def should_prune(self) -> bool:
        """Whether the scheduler wants this trial stopped."""
        ...

    def commit(self) -> None:
        """Makes the decisions made so far durable (to run them again after a crash)."""
        ...

    def duplicate_of(self) -> int | None:
        """Another trial, finished or running, with this same architecture (``None``: none,
        or every decision was imposed)."""
        ...

    def redraw(self, uniform: bool = False) -> HP:
        """Draws the decisions again (before anything is committed); returns the new ``hp``."""
        ...
