"""The base of strategies that propose whole architectures: evolution, local search, NSGA-II,
SMAC and BANANAS.

Such a strategy fixes a trial's decisions up front in :meth:`~ArchProposer.propose` (a mutated
parent, a neighbour, the best candidate of a model) and draws the decisions its proposal does
not fix at random. What they all need is kept here, once: every finished architecture and the
domains met (rebuilt by replay), the running architectures of the moment, de-duplication
against both as a run would meet the proposal (:class:`Taken`), and a random proposal away
from them when a strategy has nothing new to offer.
"""

from __future__ import annotations

import random
from abc import abstractmethod
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from torchnas.space import Domain, arch_key
from torchnas.strategies._base import AskContext, Strategy
from torchnas.strategies._mutation import ArchIndex, Fill, fresh_random
from torchnas.study._trial import FrozenTrial

__all__ = ["TRIES", "ArchProposer", "Taken", "planned"]

TRIES = 20
"""Proposals tried (children bred, random draws) before one that may repeat is given up on."""


def planned(strategy: Strategy, ctx: AskContext) -> Fill:
    """What ``strategy.suggest`` will answer for each label of trial ``ctx.number`` (asked once
    per label: a strategy whose suggestions depend only on the trial and the label)."""
    cache: dict[str, Any] = {}

    def fill(label: str, domain: Domain) -> Any:
        if label not in cache:
            cache[label] = strategy.suggest(ctx, label, domain)
        return cache[label]

    return fill


@dataclass(frozen=True)
class Taken:
    """What one trial's proposal must not repeat: the finished architectures (``seen``) and the
    running ones (``pending``).

    A proposal repeats one of them when the run it fixes would meet the same decisions: labels
    it fixes but the run never meets are dropped, and labels the run meets but it does not fix
    take the values ``fill`` says the strategy will suggest.
    """

    seen: ArchIndex
    pending: ArchIndex
    fill: Fill

    def repeats(self, arch: Mapping[str, Any], *, loose: bool = False) -> bool:
        """Whether a run given ``arch`` would repeat a finished or running architecture.

        With ``loose``, a label the run would newly meet matches any recorded value (the
        proposal counts as tried whatever that label gets), instead of the planned one.
        """
        fill = None if loose else self.fill
        return self.seen.covers(arch, fill) or self.pending.covers(arch, fill)

    def new(self, archs: Iterable[dict[str, Any]], *,
            loose: bool = False) -> Iterator[dict[str, Any]]:
        """The distinct ones of ``archs`` that repeat nothing, in order (lazily: a generator of
        candidates stops being drawn from at the first one taken)."""
        tried: set[str] = set()
        for arch in archs:
            key = arch_key(arch)
            if key not in tried:
                tried.add(key)
                if not self.repeats(arch, loose=loose):
                    yield arch

    def random(self, rng: random.Random, tries: int = TRIES) -> dict[str, Any]:
        """Decisions that make a random trial new where possible (see
        :func:`~torchnas.strategies._mutation.fresh_random`)."""
        return fresh_random(self.seen, self.pending, self.fill, rng, tries)


class ArchProposer(Strategy):
    """Base class of strategies that propose whole architectures.

    Subclasses implement :meth:`propose`; they may extend :meth:`setup` and :meth:`tell`
    (calling these), which keep every finished architecture and the domains met. Decisions a
    proposal does not fix are drawn at random by :meth:`suggest`.
    """

    def setup(self, objectives: Mapping[str, str], seed: int) -> None:
        super().setup(objectives, seed)
        self._seen = ArchIndex()  # every finished architecture, as runs meet decisions
        self._domains: dict[str, Domain] = {}  # of finished trials (first seen wins)
        self._met: dict[str, Domain] = {}  # domains met in suggest (running trials')

    def tell(self, trial: FrozenTrial) -> None:
        self._seen.add(trial.arch, trial.domains)
        for label, domain in trial.domains.items():
            self._domains.setdefault(label, domain)

    def suggest(self, ctx: AskContext, label: str, domain: Domain) -> Any:
        self._met.setdefault(label, domain)
        return domain.sample(ctx.rng(label))

    def ask(self, ctx: AskContext) -> dict[str, Any]:
        fill = planned(self, ctx)
        # a running trial that has recorded nothing yet could be anything: it is left out
        pending = ArchIndex((a for a in ctx.pending if a), {**self._met, **self._domains})
        return self.propose(ctx, Taken(self._seen, pending, fill))

    @abstractmethod
    def propose(self, ctx: AskContext, taken: Taken) -> dict[str, Any]:
        """The decisions trial ``ctx.number`` fixes up front: preferably none of ``taken``
        (``taken.random(rng)`` when nothing better is new)."""
