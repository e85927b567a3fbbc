"""The scheduler interface: stop trials early from their intermediate reports."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import ClassVar

from torchnas._util.registry import Configurable, Registry
from torchnas.study._trial import FrozenTrial

__all__ = ["REGISTRY", "Scheduler", "register"]


class Scheduler(Configurable, ABC):
    """Decides, after each report of a running trial, whether to stop it (``PRUNED``).

    A scheduler sees frozen records only: the trial (its ``intermediate`` reports, ``(step,
    metrics)`` with step the budget spent so far: epochs, or data seen) and every trial of the
    study. Constructor arguments are stored as attributes of the same name and checked in
    :meth:`check` (see :class:`~torchnas._util.registry.Configurable`); ``@register("name")``
    above the class makes it a named scheduler.
    """

    name: ClassVar[str] = ""

    def setup(self, objectives: Mapping[str, str], seed: int) -> None:
        """Called once by the study: the objectives (the first one is what is compared)."""
        self.objectives = dict(objectives)
        self.metric, self.direction = next(iter(self.objectives.items()))
        self.seed = seed

    @abstractmethod
    def should_prune(self, trial: FrozenTrial, trials: Mapping[int, FrozenTrial]) -> bool:
        """Whether to stop ``trial`` now, given everything the study knows."""

    def budget(self, number: int) -> float | None:
        """The maximum budget (steps) trial ``number`` gets, or ``None`` for no limit."""
        return None


REGISTRY: Registry[Scheduler] = Registry("scheduler", Scheduler)
"""The named schedulers (``tn.schedulers.available()``)."""

register = REGISTRY.register
"""``@register("name")`` above a scheduler class (or a function returning one): a scheduler
of that name."""
