"""Regularized (aging) evolution, after Real et al., "Regularized Evolution for Image Classifier
Architecture Search" (AAAI 2019).

The population is the last ``population`` finished trials: each new trial is a mutated copy of
the winner of a tournament among ``sample_size`` members drawn at random, and the oldest member
dies when a trial finishes, however good it was. Everything is rebuilt from the trials the
strategy is told, so a study resumed by replay breeds exactly what an uninterrupted one would.
"""

from __future__ import annotations

import math
import random
from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any

from torchnas.space import Domain
from torchnas.strategies._base import AskContext, check_int, check_real, register
from torchnas.strategies._mutation import crossover, mutate
from torchnas.strategies._proposer import TRIES, ArchProposer, Taken
from torchnas.study._objectives import crowding_distance, nondominated_fronts
from torchnas.study._trial import FrozenTrial, TrialState

__all__ = ["EvolutionStrategy", "Score", "improves", "rank_keys", "score"]

Score = tuple[int, tuple[float, ...]]


def score(trial: FrozenTrial, objectives: Mapping[str, str]) -> Score | None:
    """How good a finished trial is: ``(tier, values)``, both larger-is-better.

    ``values`` are the objectives turned so that larger is better. The tier puts failed trials
    (0) below infeasible ones (1, e.g. a violated constraint) below the rest (2). ``None`` when
    the trial says nothing usable (a pruned trial without the objectives, an unfinished one).
    """
    if trial.state is TrialState.FAILED:
        return 0, tuple(-math.inf for _ in objectives)
    if not trial.state.finished:
        return None
    values = tuple(trial.value(n) if d == "max" else -trial.value(n)
                   for n, d in objectives.items())
    if trial.feasible is False:
        return 1, tuple(v if math.isfinite(v) else -math.inf for v in values)
    if all(math.isfinite(v) for v in values):
        return 2, values
    return None


def rank_keys(scores: Sequence[Score]) -> list[tuple[float, ...]]:
    """A sort key per score, larger is better: tier, then the value for one objective, or for
    several the non-dominated front (first is best) and the crowding distance (NSGA-II)."""
    if not scores:
        return []
    if len(scores[0][1]) == 1:
        return [(tier, values[0]) for tier, values in scores]
    keys: list[tuple[float, ...]] = [(0.0,)] * len(scores)
    for tier in {s[0] for s in scores}:
        members = [i for i, s in enumerate(scores) if s[0] == tier]
        for depth, front in enumerate(nondominated_fronts([scores[i][1] for i in members])):
            crowd = crowding_distance([scores[members[j]][1] for j in front])
            for j, c in zip(front, crowd, strict=True):
                keys[members[j]] = (tier, -depth, c)
    return keys


def improves(a: Score, b: Score) -> bool:
    """Whether ``a`` is better than ``b``: a higher tier, or the same tier and dominating (with
    one objective: a larger value)."""
    return a[0] > b[0] or (a[0] == b[0] and _dominates(a[1], b[1]))


def _dominates(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    return all(x >= y for x, y in zip(a, b, strict=True)) and a != b


@register("evolution")
class EvolutionStrategy(ArchProposer):
    """Regularized (aging) evolution with tournament selection.

    The first ``startup`` trials are random. After that, each trial's parent wins a tournament
    among ``sample_size`` members of the population (the last ``population`` finished trials
    with a usable objective; failed trials are members and rank worst). With probability
    ``crossover`` a second winner is drawn and the two are mixed label by label; the child then
    has ``mutations`` decisions changed. The child is handed to the study as fixed decisions:
    labels it no longer meets are dropped, and labels it newly meets (a deeper network's extra
    layers) are suggested at random. A child that would repeat a finished or running
    architecture is bred again (up to 20 times, then drawn at random away from what was seen).

    With one objective, members rank by it; with several, by non-dominated front and crowding
    distance (feasible before infeasible before failed, in both cases).

    Args:
        population: how many of the most recent finished trials form the population.
        sample_size: members drawn for each tournament.
        mutations: decisions changed in each child.
        crossover: probability of a uniform crossover of two tournament winners.
        startup: random trials before evolution starts (``None``: ``population``).

    Example:
        >>> import torchnas as tn
        >>> study = tn.Study(objectives={"score": "max"}, strategy=tn.strategies.create(
        ...     "evolution", population=10, sample_size=3))
        >>> study.optimize(lambda hp: -abs(hp.int("x", 0, 100) - 42), trials=60)
        >>> study.best_trial.value("score") > -10
        True
    """

    def __init__(self, population: int = 20, sample_size: int = 5, mutations: int = 1,
                 crossover: float = 0.0, startup: int | None = None) -> None:
        self.population = population
        self.sample_size = sample_size
        self.mutations = mutations
        self.crossover = crossover
        self.startup = startup

    def check(self) -> None:
        for key, low in (("population", 1), ("sample_size", 1), ("mutations", 0),
                         ("startup", 0)):
            check_int("evolution", key, getattr(self, key), low, optional=key == "startup")
        check_real("evolution", "crossover", self.crossover, 0.0, 1.0)

    def setup(self, objectives: Mapping[str, str], seed: int) -> None:
        super().setup(objectives, seed)
        self._members: deque[tuple[FrozenTrial, Score]] = deque(maxlen=self.population)

    @property
    def members(self) -> list[FrozenTrial]:
        """The population, oldest first."""
        return [t for t, _ in self._members]

    def tell(self, trial: FrozenTrial) -> None:
        super().tell(trial)
        s = score(trial, self.objectives)
        if s is not None:
            self._members.append((trial, s))  # the oldest member dies

    def parents(self, ctx: AskContext) -> list[FrozenTrial]:
        """The tournament winners trial ``ctx.number`` is bred from: one, or two for a
        crossover; none while the trial is one of the random ``startup`` ones."""
        startup = self.population if self.startup is None else self.startup
        if ctx.number < startup or not self._members:
            return []
        rng = ctx.rng("evolution", "parents")
        pool = list(self._members)
        keys = rank_keys([s for _, s in pool])
        first = self._tournament(range(len(pool)), keys, rng)
        out = [pool[first][0]]
        if len(pool) > 1 and rng.random() < self.crossover:
            others = [i for i in range(len(pool)) if i != first]
            out.append(pool[self._tournament(others, keys, rng)][0])
        return out

    def _tournament(self, indices: Sequence[int], keys: list[tuple[float, ...]],
                    rng: random.Random) -> int:
        drawn = rng.sample(list(indices), min(self.sample_size, len(indices)))
        return max(drawn, key=lambda i: keys[i])  # ties: the first drawn

    def propose(self, ctx: AskContext, taken: Taken) -> dict[str, Any]:
        parents = self.parents(ctx)
        rng = ctx.rng("evolution", "breed")
        if parents:
            domains: dict[str, Domain] = {}
            for p in reversed(parents):
                domains.update(p.domains)
            base = (crossover(parents[0].arch, parents[1].arch, rng) if len(parents) == 2
                    else dict(parents[0].arch))
            # more changes as the near ones turn out to be taken
            children = (mutate(base, domains, rng, k=self.mutations + attempt // 5)
                        for attempt in range(TRIES))
            child = next(taken.new(children), None)
            if child is not None:
                return child
        return taken.random(rng)
