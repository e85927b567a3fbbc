"""Local search: first-improvement hill climbing over one-decision moves, with random restarts.

Simple and, on tabular NAS benchmarks, a hard baseline to beat (White et al., "Local Search is
State of the Art for Neural Architecture Search Benchmarks", 2020). The state (incumbent, what
was evaluated) is rebuilt from the trials the strategy is told, so a resumed study goes on
exactly where an uninterrupted one would.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

from torchnas.strategies._base import AskContext, check_int, derive_seed, register
from torchnas.strategies._evolution import Score, improves, score
from torchnas.strategies._mutation import neighbours
from torchnas.strategies._proposer import ArchProposer, Taken
from torchnas.study._trial import FrozenTrial

__all__ = ["LocalSearchStrategy"]


@register("local")
class LocalSearchStrategy(ArchProposer):
    """Starts from the best of ``startup`` random trials and climbs.

    The neighbours of the incumbent (every architecture one decision away) are evaluated in a
    seeded random order; the first finished trial that improves on the incumbent becomes the
    new incumbent. When every neighbour has been evaluated without improvement (a local
    optimum), the search restarts from a random architecture not seen before, which becomes
    the incumbent once it has finished. Proposals avoid finished and running architectures (a
    random one that would repeat is drawn again, up to 20 times). With several objectives, a
    trial improves on the incumbent when it dominates it.

    A neighbour that changes a conditional decision (a deeper network) gets the labels it
    newly meets at random; it counts as evaluated whatever they got.

    Args:
        startup: random trials before the climb starts.
        float_points: for a decision with more values than this (or a continuous one), the
            neighbours take this many values spread over its range, and the two next to it.

    Example:
        >>> import torchnas as tn
        >>> study = tn.Study(objectives={"score": "max"}, strategy="local")
        >>> study.optimize(lambda hp: -abs(hp.int("x", 0, 9) - 7), trials=20)
        >>> study.best_trial.arch
        {'x': 7}
    """

    def __init__(self, startup: int = 10, float_points: int = 8) -> None:
        self.startup = startup
        self.float_points = float_points

    def check(self) -> None:
        check_int("local", "startup", self.startup, 0)
        check_int("local", "float_points", self.float_points, 2)

    def setup(self, objectives: Mapping[str, str], seed: int) -> None:
        super().setup(objectives, seed)
        self._incumbent: tuple[FrozenTrial, Score] | None = None
        self._moves: list[dict[str, Any]] = []  # the incumbent's neighbours, in visiting order
        self._next = 0  # the moves before this one were evaluated (the index only grows)

    @property
    def incumbent(self) -> FrozenTrial | None:
        """The architecture the search is climbing from (``None`` before any usable trial)."""
        return None if self._incumbent is None else self._incumbent[0]

    def _skip_evaluated(self) -> None:
        while self._next < len(self._moves) and self._seen.covers(self._moves[self._next]):
            self._next += 1

    def tell(self, trial: FrozenTrial) -> None:
        stuck = False
        if self._incumbent is not None and trial.number >= self.startup:
            self._skip_evaluated()  # as the proposal of this trial saw it
            stuck = self._next == len(self._moves)
        super().tell(trial)
        s = score(trial, self.objectives)
        if s is None:
            return
        restart = stuck and s[0] == 2  # a failed restart is not climbed from: restart again
        if self._incumbent is None or restart or improves(s, self._incumbent[1]):
            self._incumbent = (trial, s)
            self._moves = neighbours(trial.arch, trial.domains, self.float_points)
            random.Random(derive_seed(self.seed, "local", trial.number)).shuffle(self._moves)
            self._next = 0

    def propose(self, ctx: AskContext, taken: Taken) -> dict[str, Any]:
        if ctx.number >= self.startup and self._incumbent is not None:
            self._skip_evaluated()
            move = next(taken.new(self._moves[self._next:], loose=True), None)
            if move is not None:
                return move
        return taken.random(ctx.rng("local", "restart"))
