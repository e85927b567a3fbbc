"""Multi-objective successive halving: rungs judged by non-dominated sorting of every objective
(MO-ASHA, Schmucker et al., "Multi-objective Asynchronous Successive Halving", 2021)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from torchnas.schedulers._base import register
from torchnas.schedulers._halving import SuccessiveHalvingScheduler
from torchnas.schedulers._values import reached
from torchnas.study._objectives import crowding_distance, nondominated_fronts
from torchnas.study._trial import FrozenTrial

__all__ = ["ParetoHalvingScheduler", "rung_vector"]


def rung_vector(trial: FrozenTrial, objectives: Sequence[str],
                rung: float) -> dict[str, float] | None:
    """The objectives a trial had reported when it first reached ``rung``.

    Each objective is taken from the first report at a step ``>=`` the rung, or, when that
    report lacks it, from the latest report before that has it (a cost such as ``params``
    reported once, at the start). ``None`` when the trial has not reached the rung or had
    reported none of the objectives by then.
    """
    found: dict[str, float] = {}
    for step, metrics in trial.intermediate:
        found.update({n: float(metrics[n]) for n in objectives if n in metrics})
        if reached(step, rung):
            return found or None
    return None


@register("mo_asha")
class ParetoHalvingScheduler(SuccessiveHalvingScheduler):
    """Successive halving whose rungs rank trials by every objective at once.

    The rungs, budgets and promotion rule are :class:`SuccessiveHalvingScheduler`'s (a trial
    goes on when it is among the best ``floor(n / reduction_factor)`` of the ``n`` trials that
    have reached the rung so far, itself included; with ``asynchronous`` at least the best one
    goes on). "Best" is the crowded comparison of NSGA-II, as MO-ASHA ranks: the non-dominated
    front of the trial's values at the rung (of all objectives, with their directions), then,
    within the front that does not fit whole, the crowding distance (larger goes on, so the
    ends and the sparse parts of the front survive). With one objective it ranks as ASHA does.

    A trial is compared on the objectives it has reported by the rung (see
    :func:`rung_vector`), with the trials that reported all of them; one that reported none is
    not judged; a NaN among them is pruned. Report every objective at each step (costs such as
    ``params`` or ``latency_ms`` can be reported once, first) for a truly multi-objective rung.

    Args:
        min_budget, max_budget, reduction_factor, min_early_stopping_rate, asynchronous: as
            for :class:`SuccessiveHalvingScheduler`.

    Example:
        >>> import torchnas as tn
        >>> def objective(hp: tn.HP) -> dict[str, float]:
        ...     quality, size = hp.float("quality", 0, 1), hp.int("size", 1, 100)
        ...     hp.trial.report(0, {"size": size})
        ...     for epoch in range(1, 10):
        ...         hp.trial.report(epoch, {"acc": quality * epoch / 9})
        ...     return {"acc": quality, "size": size}
        >>> study = tn.Study(objectives={"acc": "max", "size": "min"}, strategy="random",
        ...                  scheduler={"name": "mo_asha", "max_budget": 9})
        >>> study.optimize(objective, trials=30)
        >>> sum(t.state is tn.TrialState.PRUNED for t in study.trials) > 10
        True
    """

    def should_prune(self, trial: FrozenTrial, trials: Mapping[int, FrozenTrial]) -> bool:
        for rung in self.new_rungs(trial):
            own = rung_vector(trial, list(self.objectives), rung)
            if own is None:
                return False
            if any(math.isnan(v) for v in own.values()):
                return True
            names = list(own)
            others = [[v[n] for n in names] for k, t in trials.items() if k != trial.number
                      and (v := self._vector(t, rung)) is not None
                      and all(n in v and not math.isnan(v[n]) for n in names)]
            if not self.promoted_vector([own[n] for n in names], others, names):
                return True
        return False

    def promoted_vector(self, own: Sequence[float], others: Sequence[Sequence[float]],
                        names: Sequence[str] | None = None) -> bool:
        """Whether values ``own`` go on from a rung where ``others`` were reported before them
        (``names``: the objectives of the columns, by default all of them in order)."""
        keep = (len(others) + 1) // self.reduction_factor
        if self.asynchronous:
            keep = max(keep, 1)
        if keep <= 0:
            return False
        signs = np.array([1.0 if self.objectives[n] == "max" else -1.0
                          for n in (names if names is not None else self.objectives)])
        rows = np.asarray([own, *others], dtype=float).reshape(len(others) + 1, len(signs))
        rows = rows * signs
        # the rows that dominate it are all in earlier fronts: enough of them settle it at once
        better = (rows[1:] >= rows[0]).all(1) & (rows[1:] > rows[0]).any(1)
        if int(better.sum()) >= keep:
            return False
        # the rows it dominates are all in later fronts and change no earlier one: left out
        worse = (rows[1:] <= rows[0]).all(1) & (rows[1:] < rows[0]).any(1)
        rows = rows[np.concatenate([[True], ~worse])]
        ahead = 0  # others strictly ahead of row 0 in the crowded comparison
        for front in nondominated_fronts(rows, keep):
            if 0 not in front:
                ahead += len(front)
                continue
            crowd = crowding_distance(rows[front])
            mine = crowd[front.index(0)]
            ahead += sum(c > mine for c in crowd)
            return ahead < keep
        return False  # the first fronts hold `keep` rows or more without it

    def _vector(self, trial: FrozenTrial, rung: float) -> dict[str, float] | None:
        """:func:`rung_vector`; remembered for finished trials (their records never change)."""
        if not trial.state.finished:
            return rung_vector(trial, list(self.objectives), rung)
        key = (trial.number, len(trial.intermediate), rung)
        if key not in self._vectors:
            self._vectors[key] = rung_vector(trial, list(self.objectives), rung)
        return self._vectors[key]

    def setup(self, objectives: Mapping[str, str], seed: int) -> None:
        super().setup(objectives, seed)
        self._vectors: dict[tuple[int, int, float], dict[str, float] | None] = {}
