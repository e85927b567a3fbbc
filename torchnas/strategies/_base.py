"""The strategy interface: ``ask`` a partial assignment, ``suggest`` the rest, ``tell`` results.

A strategy never sees models, trainers or storage: it sees domains, decisions and frozen trial
records. It rebuilds its state by being told every finished trial again (replay), and draws its
randomness from streams derived from ``(seed, trial number)``, so a resumed study proposes
exactly what an uninterrupted one would.
"""

from __future__ import annotations

import hashlib
import random
import warnings
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from torchnas._util.checks import check_bool, check_int, check_real
from torchnas._util.registry import Configurable, Registry
from torchnas.space import Domain
from torchnas.study._trial import FrozenTrial

__all__ = ["REGISTRY", "AskContext", "Strategy", "check_bool", "check_int", "check_real",
           "derive_seed", "register", "warn_first_objective"]


def derive_seed(*parts: Any) -> int:
    """A 64-bit seed derived from any parts (stable across processes and platforms)."""
    text = "\x1f".join(repr(p) for p in parts).encode()
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "little")


def warn_first_objective(name: str, objectives: Mapping[str, str]) -> None:
    """Warns that strategy ``name`` models only the first of several ``objectives``."""
    if len(objectives) > 1:
        first, *rest = objectives
        warnings.warn(f"strategy {name!r} optimizes the first objective only ({first!r}); "
                      f"{', '.join(map(repr, rest))} are ignored by it (for several objectives "
                      f"use 'motpe', 'nsga2' or 'auto')", UserWarning, stacklevel=4)


@dataclass
class AskContext:
    """What a strategy knows when it decides for one trial.

    Attributes:
        number: the trial number.
        seed: the study seed.
        params: decisions already made in this trial, in the order met.
        pending: architectures (as far as known) of other trials still running.
        attempt: how many times this trial's decisions were drawn again because they repeated
            an architecture already evaluated (0 at first; see ``Trial.redraw``).
    """

    number: int
    seed: int
    params: Mapping[str, Any] = field(default_factory=dict)
    pending: list[dict[str, Any]] = field(default_factory=list)
    attempt: int = 0

    def rng(self, *salt: Any) -> random.Random:
        """A random stream of this trial, independent of the order decisions are met."""
        if self.attempt:
            salt = (*salt, "attempt", self.attempt)
        return random.Random(derive_seed(self.seed, self.number, *salt))


class Strategy(Configurable, ABC):
    """Base class of search strategies.

    Subclasses implement :meth:`suggest`; they may override :meth:`ask` (fix several decisions
    at once, e.g. a whole mutated architecture), :meth:`tell` (learn from a finished trial) and
    :meth:`exhausted` (a finite strategy that has nothing left to propose). Constructor
    arguments are stored as attributes of the same name (the constructor is the config;
    see :class:`~torchnas._util.registry.Configurable`) and checked in :meth:`check`, which the
    registry calls once when it hands the strategy out; :meth:`setup` builds the state.
    ``@register("name")`` above the class makes it a named strategy.
    """

    name: ClassVar[str] = ""

    def setup(self, objectives: Mapping[str, str], seed: int) -> None:
        """Called once by the study before any replay: directions (``"max"``/``"min"``), seed."""
        self.objectives = dict(objectives)
        self.seed = seed

    def set_constraints(self, constraints: Mapping[str, tuple[str, float]]) -> None:
        """Called once by the study after :meth:`setup` with its constraints (``{"metric":
        (op, bound)}``), for strategies that rank infeasible trials by how far they miss them
        (NSGA-II's constraint domination); the others ignore them."""

    def ask(self, ctx: AskContext) -> dict[str, Any]:
        """Decisions fixed up front for trial ``ctx.number`` (default: none)."""
        return {}

    @abstractmethod
    def suggest(self, ctx: AskContext, label: str, domain: Domain) -> Any:
        """The value of a decision the space met that :meth:`ask` did not fix."""

    def tell(self, trial: FrozenTrial) -> None:
        """Learns from a finished trial (complete, pruned or failed)."""

    def exhausted(self) -> bool:
        """Whether there is nothing left to propose (a finished grid)."""
        return False

    def saturated(self, pending: Sequence[Mapping[str, Any]]) -> bool:
        """Whether every proposal left would repeat one of the ``pending`` (running)
        architectures: a parallel search then waits for a running trial to end before asking
        for another (a grid whose last points are all being evaluated)."""
        return False


REGISTRY: Registry[Strategy] = Registry("strategy", Strategy)
"""The named strategies (``tn.strategies.available()``)."""

register = REGISTRY.register
"""``@register("name")`` above a strategy class: a strategy of that name (``cls.name``)."""
