"""Hyperband (Li et al. 2018) as brackets of asynchronous successive halving."""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping

from torchnas._util.errors import ConfigError
from torchnas.schedulers._base import Scheduler, register
from torchnas.schedulers._halving import SuccessiveHalvingScheduler
from torchnas.schedulers._values import check_int, check_real, reached
from torchnas.study._trial import FrozenTrial, TrialState

__all__ = ["HyperbandScheduler"]


@register("hyperband")
class HyperbandScheduler(Scheduler):
    """Hyperband: successive halving in several brackets, from aggressive to none at all.

    With ``s_max = floor(log_eta(max_budget / min_budget))`` there are ``s_max + 1`` brackets.
    Bracket ``b`` is :class:`SuccessiveHalvingScheduler` (asynchronous) with its first rung at
    ``min_budget * eta ** b``: bracket 0 stops trials from ``min_budget`` on, the last bracket
    hardly ever. A trial's bracket comes from its number alone: in every cycle of
    ``sum(bracket_sizes())`` numbers, bracket ``b`` gets ``ceil((s_max + 1) * eta ** s / (s +
    1))`` of them, ``s = s_max - b`` (Hyperband's ``n`` per bracket, the weights of Optuna's
    ``HyperbandPruner``), interleaved by smooth weighted round robin, so the first trials
    already visit every bracket. Trials are compared only with trials of their own bracket.
    Every trial's budget is ``max_budget`` (each bracket runs its best trials to the end).

    Args:
        max_budget: the most steps a trial gets. ``None`` (as Optuna's ``"auto"``): the last
            step of the lowest-numbered complete trial that reported; until such a trial
            exists nothing is pruned, and trials get no budget (they run their full length).
        min_budget: the first rung of the most aggressive bracket.
        reduction_factor: ``eta``, an integer ``>= 2``.

    Example:
        >>> import torchnas as tn
        >>> hb = tn.schedulers.create("hyperband", min_budget=1, max_budget=9)
        >>> hb.bracket_sizes(), [hb.rungs(b) for b in range(3)]
        ([9, 5, 3], [[1, 3], [3], []])
        >>> [hb.bracket(n) for n in range(8)]
        [0, 1, 0, 2, 0, 1, 0, 2]
    """

    def __init__(self, *, max_budget: float | None = None, min_budget: float = 1,
                 reduction_factor: int = 3) -> None:
        self.max_budget = max_budget
        self.min_budget = min_budget
        self.reduction_factor = reduction_factor

    def check(self) -> None:
        check_real(self.name, "max_budget", self.max_budget, low=0, optional=True)
        check_real(self.name, "min_budget", self.min_budget, low=0)
        check_int(self.name, "reduction_factor", self.reduction_factor, low=2)
        if self.max_budget is not None and self.max_budget < self.min_budget:
            raise ConfigError(f"scheduler 'hyperband': max_budget ({self.max_budget}) is below "
                              f"min_budget ({self.min_budget})")

    def setup(self, objectives: Mapping[str, str], seed: int) -> None:
        super().setup(objectives, seed)
        self._brackets: dict[tuple[int, float], SuccessiveHalvingScheduler] = {}

    def budget(self, number: int) -> float | None:
        """``max_budget``, for every trial (``None`` when it is inferred)."""
        return self.max_budget

    def _max(self, max_budget: float | None) -> float:
        found = self.max_budget if max_budget is None else max_budget
        if found is None:
            raise ValueError("max_budget is inferred from the trials: pass it")
        return found

    def s_max(self, max_budget: float | None = None) -> int:
        """The number of brackets less one."""
        top, s = self._max(max_budget), 0
        while reached(top, self.min_budget * self.reduction_factor ** (s + 1)):
            s += 1
        return s

    def bracket_sizes(self, max_budget: float | None = None) -> list[int]:
        """How many of each cycle's trial numbers each bracket gets (bracket 0 first)."""
        s_max = self.s_max(max_budget)
        return [math.ceil((s_max + 1) * self.reduction_factor ** (s_max - b) / (s_max - b + 1))
                for b in range(s_max + 1)]

    def rungs(self, bracket: int, max_budget: float | None = None) -> list[float]:
        """The rungs of ``bracket`` (below ``max_budget``)."""
        return self._new_bracket(bracket, self._max(max_budget)).rungs()

    def bracket(self, number: int, max_budget: float | None = None) -> int:
        """The bracket of trial ``number`` (smooth weighted round robin over the sizes)."""
        return _cycle(tuple(self.bracket_sizes(max_budget)))[number]

    def inferred_max(self, trials: Mapping[int, FrozenTrial]) -> float | None:
        """``max_budget``, or when it is ``None`` the last step of the lowest-numbered complete
        trial that reported (``None`` while there is none)."""
        if self.max_budget is not None:
            return self.max_budget
        done = (t for n, t in sorted(trials.items())
                if t.state is TrialState.COMPLETE and t.intermediate)
        first = next(done, None)
        return None if first is None else float(max(s for s, _ in first.intermediate))

    def should_prune(self, trial: FrozenTrial, trials: Mapping[int, FrozenTrial]) -> bool:
        top = self.inferred_max(trials)
        if top is None or top < self.min_budget:
            return False
        cycle = _cycle(tuple(self.bracket_sizes(top)))
        b = cycle[trial.number]
        peers = {n: t for n, t in trials.items() if cycle[n] == b}
        return self._bracket(b, top).should_prune(trial, peers)

    def _bracket(self, b: int, top: float) -> SuccessiveHalvingScheduler:
        """Bracket ``b``'s scheduler, set up and kept (it remembers finished trials' rungs)."""
        if (b, top) not in self._brackets:
            sha = self._new_bracket(b, top)
            sha.setup(self.objectives, self.seed)
            self._brackets[(b, top)] = sha
        return self._brackets[(b, top)]

    def _new_bracket(self, b: int, top: float) -> SuccessiveHalvingScheduler:
        return SuccessiveHalvingScheduler(min_budget=self.min_budget, max_budget=top,
                                          reduction_factor=self.reduction_factor,
                                          min_early_stopping_rate=b)


class _RoundRobin:
    """Smooth weighted round robin over brackets: in each cycle of ``sum(sizes)`` numbers,
    bracket ``b`` appears ``sizes[b]`` times, spread out (each step, the bracket with the most
    credit is picked and pays the total). Picks are made as far as they are looked up: a
    cycle can be astronomically long (``max_budget / min_budget`` in the millions)."""

    def __init__(self, sizes: tuple[int, ...]) -> None:
        self.sizes = sizes
        self.total = sum(sizes)
        self._credit = [0] * len(sizes)
        self._picks: list[int] = []

    def __getitem__(self, number: int) -> int:
        i = number % self.total
        while len(self._picks) <= i:
            self._credit = [c + w for c, w in zip(self._credit, self.sizes, strict=True)]
            pick = max(range(len(self.sizes)), key=lambda b: (self._credit[b], -b))
            self._credit[pick] -= self.total
            self._picks.append(pick)
        return self._picks[i]


@functools.lru_cache(maxsize=64)
def _cycle(sizes: tuple[int, ...]) -> _RoundRobin:
    """The round robin of ``sizes`` (kept: its picks are reused)."""
    return _RoundRobin(sizes)
