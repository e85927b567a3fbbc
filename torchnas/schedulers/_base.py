"""The scheduler interface: stop trials early from their intermediate reports."""

from __future__ import annotations

import inspect
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any, ClassVar

from torchnas.study._trial import FrozenTrial

__all__ = ["Scheduler"]


class Scheduler(ABC):
    """Decides, after each report of a running trial, whether to stop it (``PRUNED``).

    A scheduler sees frozen records only: the trial (its ``intermediate`` reports, ``(step,
    metrics)`` with step the budget spent so far: epochs, or data seen) and every trial of the
    study. Constructor arguments are stored as attributes of the same name.
    """

    name: ClassVar[str] = ""

    def check(self) -> None:
        """Raises :class:`~torchnas.ConfigError` naming a bad setting (the study calls it
        before it touches storage); the default checks nothing."""
        return None

    def setup(self, objectives: Mapping[str, str], seed: int) -> None:
        """Called once by the study: the objectives (the first one is what is compared)."""
        self.check()
        self.objectives = dict(objectives)
        self.metric, self.direction = next(iter(self.objectives.items()))
        self.seed = seed

    @abstractmethod
    def should_prune(self, trial: FrozenTrial, trials: Mapping[int, FrozenTrial]) -> bool:
        """Whether to stop ``trial`` now, given everything the study knows."""

    def budget(self, number: int) -> float | None:
        """The maximum budget (steps) trial ``number`` gets, or ``None`` for no limit."""
        return None

    def get_params(self) -> dict[str, Any]:
        """The constructor's keyword arguments, read back from attributes of the same name."""
        kinds = (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
        params = inspect.signature(type(self).__init__).parameters.values()
        return {p.name: getattr(self, p.name) for p in params
                if p.kind in kinds and p.name != "self"}
