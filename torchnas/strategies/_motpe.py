"""MOTPE: the Tree-structured Parzen Estimator for several objectives (Ozaki et al., "Multiobjective
tree-structured Parzen estimator for computationally expensive optimization problems", GECCO
2020).

TPE needs the finished trials split into good and bad; with several objectives there is no
order, so the good ones are the first non-dominated fronts, and the front that does not fit
whole is cut by greedy hypervolume subset selection: members are added one at a time, each the
one that adds the most hypervolume to those already taken. The cut keeps members spread along
the front (a knee first, then on either side), where a cut by one objective would keep one end.
The greedy is lazy (each member's gain is an upper bound until it is on top) and each trial's
cut goes on from the previous one's, as far as that still holds, so a trial costs a few
exclusive hypervolumes (:mod:`torchnas.study._hypervolume`) rather than one per member and step.
Everything else (the Parzen estimators of each label, conditional labels, failed and infeasible
trials as bad ones, the constant liar) is :class:`~torchnas.strategies.TPEStrategy`'s.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping

import numpy as np

from torchnas.strategies._base import register
from torchnas.strategies._tpe import _FAILED, TPEStrategy
from torchnas.study._hypervolume import _exclusive, default_reference
from torchnas.study._objectives import nondominated_fronts

__all__ = ["MOTPEStrategy", "greedy_hypervolume_subset"]


def greedy_hypervolume_subset(values: np.ndarray, k: int, reference: np.ndarray) -> list[int]:
    """``k`` row indices of ``values`` (larger is better, all beating ``reference``) picked one
    at a time, each adding the most hypervolume to those already picked (ties: the first row).

    Lazy greedy (Minoux 1978): a row's gain only shrinks as rows are picked (hypervolume is
    submodular), so each row keeps an upper bound of its gain and only the row with the largest
    bound is brought up to date; it is picked when its gain is current. After each pick every
    bound is also cut, in one vectorized step, to the row's box less the union of what the
    (up to) three picked rows that cover most of it cover (inclusion-exclusion). A gain is the
    row's exclusive hypervolume against those picked, from its box and limit set (WFG), not
    the difference of two hypervolumes.
    """
    p, ref = _minimized(values, reference)
    return _greedy(p, k, ref, [], [])[0]


def _minimized(values: np.ndarray, reference: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows turned to be minimized, a row that does not beat the reference moved onto it (its
    box is empty), and the reference turned likewise."""
    p = -np.asarray(values, dtype=float).reshape(len(values), -1)
    ref = -np.asarray(reference, dtype=float)
    ok = np.isfinite(p).all(1) & (p < ref).all(1)
    return np.where(ok[:, None], p, ref), ref


def _greedy(p: np.ndarray, k: int, ref: np.ndarray, start: list[int], start_gains: list[float]
            ) -> tuple[list[int], list[float]]:
    """The greedy picks (rows of minimized ``p``) and their gains, going on from ``start``
    (a prefix of the greedy order, with its gains) until ``k`` rows are picked."""
    n = len(p)
    boxes = np.prod(ref - p, axis=1)
    picked, gains = list(start[:k]), list(start_gains[:k])
    left = np.ones(n, dtype=bool)
    left[picked] = False
    if picked:
        bound = boxes - _covered(p, p[picked], ref)  # upper bounds of the gains
        current = np.full(n, -1, dtype=np.int64)  # picks when a bound was exact
    else:
        bound = boxes.copy()
        current = np.zeros(n, dtype=np.int64)
    while left.any() and len(picked) < k:
        i = int(np.argmax(np.where(left, bound, -np.inf)))  # ties: the first row
        if current[i] != len(picked) and bound[i] > 0:
            bound[i] = _exclusive(p[i], p[picked], ref) if boxes[i] > 0 else 0.0
            current[i] = len(picked)
            continue
        picked.append(i)
        gains.append(max(float(bound[i]), 0.0))
        left[i] = False
        if len(picked) < k:
            bound = np.minimum(bound, boxes - _covered(p, p[picked], ref))
    return picked, gains


class _LastCut:
    """The greedy order of the last front cut (as told-trial rows), to go on from.

    A front told one more trial keeps the greedy order of the one before as long as no new
    row would have won a step (its gain against the rows picked before that step, at most the
    gain of the row picked there, ties to the earlier row) and no picked row left the front:
    the gains of the rows that stay do not change. The order is checked, cut where it stops
    holding, and the greedy goes on from there, so the result is that of
    :func:`greedy_hypervolume_subset` on the whole front.
    """

    def __init__(self) -> None:
        self.reference: np.ndarray | None = None
        self.rows: set[int] = set()
        self.picked: list[int] = []  # told-trial rows, in greedy order
        self.gains: list[float] = []

    def cut(self, values: np.ndarray, rows: np.ndarray, k: int, reference: np.ndarray
            ) -> list[int]:
        """:func:`greedy_hypervolume_subset` of ``values`` (one per told-trial row of
        ``rows``, ascending), resumed from the last cut where it still holds."""
        p, ref = _minimized(values, reference)
        at = {int(r): i for i, r in enumerate(rows)}
        start: list[int] = []
        if self.reference is not None and np.array_equal(self.reference, ref):
            for r in self.picked[:k]:
                if r not in at:
                    break  # a picked row left the front
                start.append(at[r])
            for i in (at[r] for r in at if r not in self.rows):
                start = start[: self._holds_until(p, i, start, ref)]
        picked, gains = _greedy(p, k, ref, start, self.gains[: len(start)])
        self.reference, self.rows = ref, set(at)
        self.picked, self.gains = [int(rows[i]) for i in picked], gains
        return picked

    def _holds_until(self, p: np.ndarray, i: int, start: list[int], ref: np.ndarray) -> int:
        """How many steps of ``start`` new row ``i`` does not win."""
        box = float(np.prod(ref - p[i]))
        if not start:
            return 0
        covers = np.prod(ref - np.maximum(p[start], p[i]), axis=1)
        bound = box - np.concatenate([[0.0], np.maximum.accumulate(covers)[:-1]])
        upper = box
        for j, g in enumerate(self.gains[: len(start)]):
            if min(upper, float(bound[j])) < g:
                continue  # cannot win this step
            upper = _exclusive(p[i], p[start[:j]], ref) if j else box
            if upper > g or (upper == g and i < start[j]):
                return j
        return len(start)


def _covered(p: np.ndarray, picked: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Per row of ``p``, the volume of its box that the union of the (up to) three ``picked``
    rows covering most of it covers: a lower bound of what all of them cover."""
    limit = np.maximum(p[:, None, :], picked[None, :, :])  # (rows, picked, objectives)
    if len(picked) > 3:
        covers = np.prod(ref - limit, axis=2)
        limit = np.take_along_axis(limit, np.argsort(-covers, axis=1)[:, :3, None], axis=1)
    t = limit.shape[1]
    union = np.zeros(len(p))
    for r in range(1, t + 1):  # inclusion-exclusion over the subsets of the t rows
        for subset in itertools.combinations(range(t), r):
            part = np.prod(ref - limit[:, list(subset), :].max(axis=1), axis=1)
            union = union + part if r % 2 else union - part
    return union


@register("motpe")
class MOTPEStrategy(TPEStrategy):
    """TPE whose good trials are the first non-dominated fronts, cut by hypervolume.

    With one objective it is :class:`~torchnas.strategies.TPEStrategy`. Why MOTPE rather than
    ParEGO: it reuses TPE's per-label estimators, which take define-by-run, conditional spaces
    and mixed domains as they come, where ParEGO needs a fixed-width encoding, a surrogate and an
    acquisition search over it; and it is the peer's choice (Optuna's ``TPESampler`` with
    several objectives), with the same per-trial cost as TPE.

    Args:
        startup, candidates, gamma, prior_weight, multivariate, constant_liar: as for
            :class:`~torchnas.strategies.TPEStrategy` (the good trials are ``gamma`` of the
            finished ones; ``None``: ``min(ceil(0.1 n), 25)``).

    Example:
        >>> import torchnas as tn
        >>> def objective(hp: tn.HP) -> dict[str, float]:
        ...     x, y = hp.float("x", 0, 1), hp.float("y", 0, 1)
        ...     return {"f1": x, "f2": (1 + 9 * y) * (1 - (x / (1 + 9 * y)) ** 0.5)}
        >>> study = tn.Study(objectives={"f1": "min", "f2": "min"}, strategy="motpe")
        >>> study.optimize(objective, trials=40)
        >>> len(study.pareto_front()) > 3
        True
    """

    def setup(self, objectives: Mapping[str, str], seed: int) -> None:
        super().setup(objectives, seed)
        self._last_cut = _LastCut()

    def _fit_split(self) -> tuple[np.ndarray, np.ndarray] | None:
        if len(self.objectives) == 1:
            return super()._fit_split()
        group = np.asarray(self._group)
        n = int((group < _FAILED).sum())
        if n < max(self.startup, 1):
            return None
        n_below = self._n_below(n)
        done = np.flatnonzero(group == 0)  # complete and feasible
        if len(done) < n_below:  # pruned or infeasible ones are among the good: TPE's order
            return super()._fit_split()
        signed = np.asarray(self._signed, dtype=float).reshape(len(group), -1)[done]
        reference = np.asarray(default_reference(signed, ["max"] * signed.shape[1]))
        chosen: list[int] = []
        for front in nondominated_fronts(signed, limit=n_below):
            if len(chosen) + len(front) > n_below:
                cut = self._last_cut.cut(signed[front], done[front], n_below - len(chosen),
                                         reference)
                front = [front[i] for i in cut]
            chosen += front
        below = np.zeros(len(group), dtype=bool)
        below[done[chosen]] = True
        return below, ~below
