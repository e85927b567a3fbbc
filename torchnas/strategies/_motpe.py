"""MOTPE: the Tree-structured Parzen Estimator for several objectives (Ozaki et al., "Multiobjective
tree-structured Parzen estimator for computationally expensive optimization problems", GECCO
2020).

TPE needs the finished trials split into good and bad; with several objectives there is no
order, so the good ones are the first non-dominated fronts, and the front that does not fit
whole is cut by greedy hypervolume subset selection: members are added one at a time, each the
one that adds the most hypervolume to those already taken. The cut keeps members spread along
the front (a knee first, then on either side), where a cut by one objective would keep one end.
Everything else (the Parzen estimators of each label, conditional labels, failed and infeasible
trials as bad ones, the constant liar) is :class:`~torchnas.strategies.TPEStrategy`'s.
"""

from __future__ import annotations

import numpy as np

from torchnas.strategies._base import register
from torchnas.strategies._tpe import TPEStrategy
from torchnas.study._hypervolume import default_reference, hypervolume
from torchnas.study._objectives import nondominated_fronts

__all__ = ["MOTPEStrategy", "greedy_hypervolume_subset"]


def greedy_hypervolume_subset(values: np.ndarray, k: int, reference: np.ndarray) -> list[int]:
    """``k`` row indices of ``values`` (larger is better, all beating ``reference``) picked one
    at a time, each adding the most hypervolume to those already picked (ties: the first row).
    """
    directions = ["max"] * values.shape[1]
    picked: list[int] = []
    left = list(range(len(values)))
    base = 0.0
    while left and len(picked) < k:
        gains = [hypervolume(values[[*picked, i]], reference, directions) - base for i in left]
        best = left.pop(int(np.argmax(gains)))
        picked.append(best)
        base += max(gains)
    return picked


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

    def _fit_split(self) -> tuple[np.ndarray, np.ndarray] | None:
        split = super()._fit_split()
        if split is None or len(self.objectives) == 1:
            return split
        group = np.asarray(self._group)
        done = np.flatnonzero(group == 0)  # complete and feasible
        n_below = int(split[0].sum())
        if len(done) < n_below:  # pruned or infeasible ones are among the good: TPE's order
            return split
        signed = np.asarray(self._signed, dtype=float).reshape(len(group), -1)[done]
        reference = np.asarray(default_reference(signed, ["max"] * signed.shape[1]))
        chosen: list[int] = []
        for front in nondominated_fronts(signed, limit=n_below):
            if len(chosen) + len(front) > n_below:
                cut = greedy_hypervolume_subset(signed[front], n_below - len(chosen), reference)
                front = [front[i] for i in cut]
            chosen += front
        below = np.zeros(len(group), dtype=bool)
        below[done[chosen]] = True
        return below, ~below
