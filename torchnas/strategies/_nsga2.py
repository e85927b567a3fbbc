"""NSGA-II, after Deb et al., "A fast and elitist multiobjective genetic algorithm: NSGA-II"
(IEEE TEVC 2002), with Deb's constraint-domination rules (Deb 2000).

Generations are blocks of ``population`` trial numbers. Generation 0 is drawn at random; the
parents of generation ``g`` are the best ``population`` of the parents of generation ``g - 1``
and the finished trials of generation ``g - 1`` (elitism), ranked by the crowded comparison:
feasible trials first, by non-dominated front then crowding distance; infeasible ones (a
violated constraint, or rejected before evaluation) next, by how far they miss the constraints;
failed ones last. Each child crosses two winners of binary tournaments and mutates the result.
Populations are functions of the set of finished trials (taken in trial-number order), so a study
resumed by replay breeds exactly what an uninterrupted one would.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from torchnas.strategies._base import AskContext, check_int, check_real, register
from torchnas.strategies._mutation import crossover, mutate
from torchnas.strategies._proposer import TRIES, ArchProposer, Taken
from torchnas.study._objectives import (
    crowding_distance,
    nondominated_fronts,
    signed_values,
    violation,
)
from torchnas.study._trial import FrozenTrial, TrialState

__all__ = ["Member", "NSGA2Strategy", "crowded_keys"]


@dataclass(frozen=True)
class Member:
    """A finished trial as NSGA-II ranks it.

    Attributes:
        trial: the record.
        tier: 2 feasible, 1 infeasible (a violated constraint, or rejected), 0 failed.
        violation: how far an infeasible trial misses the constraints (``inf`` if unknown).
        values: the objectives turned so that larger is better.
    """

    trial: FrozenTrial
    tier: int
    violation: float
    values: tuple[float, ...]


def crowded_keys(members: Sequence[Member]) -> list[tuple[float, float, float]]:
    """A key per member, larger is better: the crowded comparison with Deb's rules.

    Feasible members rank by ``(-front, crowding distance)`` among the feasible ones;
    infeasible ones below them by their violation (smaller is better); failed ones last.
    """
    keys: list[tuple[float, float, float]] = [(0.0, 0.0, 0.0)] * len(members)
    feasible = [i for i, m in enumerate(members) if m.tier == 2]
    for depth, front in enumerate(nondominated_fronts([members[i].values for i in feasible])):
        crowd = crowding_distance([members[feasible[j]].values for j in front])
        for j, c in zip(front, crowd, strict=True):
            keys[feasible[j]] = (2.0, -float(depth), c)
    for i, m in enumerate(members):
        if m.tier == 1:
            keys[i] = (1.0, -m.violation, 0.0)
    return keys


@register("nsga2")
class NSGA2Strategy(ArchProposer):
    """NSGA-II: elitist non-dominated sorting with crowding distance, for one or more objectives.

    Each child of generation ``g`` (trials ``g * population`` to ``(g + 1) * population - 1``)
    is bred from two winners of binary tournaments among generation ``g``'s parents: with
    probability ``crossover`` a uniform crossover of the two, else a copy of the first; then each
    decision changes with probability ``mutation``. Labels a child no longer meets are dropped
    and labels it newly meets are drawn at random, so conditional spaces need nothing more. A
    child that would repeat a finished or running architecture is bred again (up to 20 times,
    with more changes as it goes), then drawn at random away from what was seen.

    Trials that are pruned (stopped early) say little about their final objectives and do not
    join the population; they still count as seen. Infeasible trials rank by their constraint
    violation when the study passes its constraints (:meth:`set_constraints`), so a population
    with no feasible member moves toward feasibility.

    The default population is small because searches are short: on ZDT1 (5 decisions of 11
    values each, 6 seeds) a population of 10 reached a larger hypervolume than 20, and 20 than
    40, at 100 and at 300 trials (Optuna's default is 50).

    Args:
        population: trials per generation, and parents kept.
        crossover: probability of crossing two parents (else one parent is copied).
        mutation: probability of changing each decision of a child (``None``: one over the
            number of decisions, so one change on average).

    Example:
        >>> import torchnas as tn
        >>> def objective(hp: tn.HP) -> dict[str, float]:
        ...     x, y = hp.int("x", 0, 50), hp.int("y", 0, 50)
        ...     return {"acc": x, "cost": y + x * x / 50}
        >>> study = tn.Study(objectives={"acc": "max", "cost": "min"}, strategy="nsga2")
        >>> study.optimize(objective, trials=60)
        >>> len(study.pareto_front()) > 1
        True
    """

    def __init__(self, population: int = 10, crossover: float = 0.9,
                 mutation: float | None = None) -> None:
        self.population = population
        self.crossover = crossover
        self.mutation = mutation

    def check(self) -> None:
        check_int("nsga2", "population", self.population, 2)
        check_real("nsga2", "crossover", self.crossover, 0.0, 1.0)
        check_real("nsga2", "mutation", self.mutation, 0.0, 1.0, optional=True)

    def setup(self, objectives: Mapping[str, str], seed: int) -> None:
        super().setup(objectives, seed)
        self.constraints: dict[str, tuple[str, float]] = {}
        self._generations: dict[int, list[Member]] = {}
        self._parents: list[list[Member]] = []  # parents of generation 1, 2, ... (valid prefix)

    def set_constraints(self, constraints: Mapping[str, tuple[str, float]]) -> None:
        """The study's constraints (``{"metric": (op, bound)}``), to rank infeasible trials."""
        self.constraints = dict(constraints)

    def member(self, trial: FrozenTrial) -> Member | None:
        """How NSGA-II sees a finished trial (``None``: it does not join the population)."""
        values = signed_values(trial, self.objectives)
        if trial.state is TrialState.FAILED:
            return Member(trial, 0, math.inf, values)
        if trial.state is TrialState.REJECTED or (trial.state is TrialState.COMPLETE
                                                  and trial.feasible is False):
            gap = violation(trial.metrics, self.constraints) if self.constraints else math.inf
            return Member(trial, 1, gap if gap > 0 else math.inf, values)
        if trial.state is TrialState.COMPLETE and all(math.isfinite(v) for v in values):
            return Member(trial, 2, 0.0, values)
        return None

    def tell(self, trial: FrozenTrial) -> None:
        super().tell(trial)
        m = self.member(trial)
        if m is None:
            return
        g = trial.number // self.population
        members = self._generations.setdefault(g, [])
        members.append(m)
        members.sort(key=lambda x: x.trial.number)  # finish order does not matter
        del self._parents[g:]  # the parents of generations after g change

    def parents(self, generation: int) -> list[Member]:
        """The parents of ``generation`` (none for generation 0), best first."""
        while len(self._parents) < generation:
            k = len(self._parents)  # the parents of generation k + 1, from generation k
            pool = [*(self._parents[-1] if self._parents else []),
                    *self._generations.get(k, [])]
            keys = crowded_keys(pool)
            order = sorted(range(len(pool)), key=lambda i: (
                tuple(-x for x in keys[i]), pool[i].trial.number))
            self._parents.append([pool[i] for i in order[: self.population]])
        return self._parents[generation - 1] if generation else []

    def _tournament(self, pool: list[Member], keys: list[tuple[float, float, float]],
                    rng: random.Random) -> Member:
        if len(pool) == 1:
            return pool[0]
        a, b = rng.sample(range(len(pool)), 2)
        return pool[b] if keys[b] > keys[a] else pool[a]

    def _children(self, pool: list[Member], rng: random.Random) -> Iterator[dict[str, Any]]:
        """Children bred from ``pool`` (with more mutation every 5), drawn as they are needed."""
        keys = crowded_keys(pool)
        for attempt in range(TRIES):
            first, second = (self._tournament(pool, keys, rng) for _ in range(2))
            domains = {**second.trial.domains, **first.trial.domains}
            child = (crossover(first.trial.arch, second.trial.arch, rng)
                     if first is not second and rng.random() < self.crossover
                     else dict(first.trial.arch))
            labels = [lb for lb in child if lb in domains and (domains[lb].size or 2) > 1]
            p = self.mutation if self.mutation is not None else 1 / max(len(labels), 1)
            k = sum(rng.random() < p for _ in labels) + attempt // 5
            yield mutate(child, domains, rng, k=k) if k else child

    def propose(self, ctx: AskContext, taken: Taken) -> dict[str, Any]:
        rng = ctx.rng("nsga2")
        pool = self.parents(ctx.number // self.population)
        if pool:
            child = next(taken.new(self._children(pool, rng)), None)
            if child is not None:
                return child
        return taken.random(rng)
