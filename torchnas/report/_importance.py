"""Which decisions mattered: importance of each label for a metric, conditional labels included.

A random forest (scikit-learn's) is fitted to the finished trials: each label a column, a
categorical label by the index of its value, a numeric one by its value (log for a log domain),
and a label absent from a trial (a decision that only exists under a condition) as a missing
value, which the forest's splits send one way as a level of its own. A label's importance is
the variance of the forest's partial dependence on it (its first-order effect, as in
functional ANOVA, averaged over the trials' own values of the other labels), shared out so that
the labels' importances sum to 1. Optuna's fANOVA leaves out a label that is absent from some
trials; here it keeps its share.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from torchnas.space._domains import Categorical, Float, Int
from torchnas.study._trial import FrozenTrial, TrialState

if TYPE_CHECKING:
    from torchnas.study import Study

__all__ = ["importance", "trial_table"]

#: Values a numeric label is set to when its partial dependence is computed (quantiles).
LEVELS = 10


def trial_table(trials: Sequence[FrozenTrial], metric: str
                ) -> tuple[list[str], np.ndarray, np.ndarray]:
    """The labels, the encoded decisions (NaN: absent) and the ``metric`` of each complete
    trial with a finite value."""
    done = [t for t in trials if t.state is TrialState.COMPLETE
            and isinstance(t.metrics.get(metric), (int, float))
            and math.isfinite(t.metrics[metric])]
    labels: list[str] = []
    for t in done:
        labels += [k for k in t.arch if k not in labels]
    x = np.full((len(done), len(labels)), np.nan)
    for j, label in enumerate(labels):
        codes: dict[str, int] = {}
        for i, t in enumerate(done):
            if label in t.arch:
                x[i, j] = _encode(t.arch[label], t.domains.get(label), codes)
    return labels, x, np.array([float(t.metrics[metric]) for t in done])


def _key(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=repr)  # a tuple and its JSON list agree


def _encode(value: Any, domain: Any, codes: dict[str, int]) -> float:
    """A categorical value's index among its domain's choices (else a code of its own), a
    numeric one's value (its log on a log domain)."""
    if isinstance(domain, Categorical) or isinstance(value, bool) or not isinstance(
            value, (int, float)):
        if isinstance(domain, Categorical):
            index = [_key(c) for c in domain.choices]
            if _key(value) in index:
                return float(index.index(_key(value)))
        return float(codes.setdefault(_key(value), len(codes) + 1000))
    log = isinstance(domain, (Int, Float)) and domain.log and value > 0
    return math.log(value) if log else float(value)


def importance(study: Study, metric: str | None = None, *, trees: int = 64, seed: int = 0,
               trials: Sequence[FrozenTrial] | None = None) -> dict[str, float]:
    """Each decision label's importance for ``metric`` (default: the first objective), largest
    first, summing to 1 (see the module).

    Args:
        study: the study whose complete trials are read.
        metric: the metric explained.
        trees: trees in the forest.
        seed: the forest's seed (the result is reproducible).
        trials: these trials instead of all the study's.

    Raises:
        ValueError: fewer than 4 complete trials with a finite ``metric``, or no decisions.
    """
    metric = metric or next(iter(study.objectives))
    labels, x, y = trial_table(study.trials if trials is None else trials, metric)
    if len(y) < 4 or not labels:
        raise ValueError(f"importance of {metric!r} needs at least 4 complete trials with a "
                         f"finite {metric!r} and some decisions; study {study.name!r} has "
                         f"{len(y)} such trial(s)")
    if float(np.var(y)) == 0.0:
        return {label: 0.0 for label in labels}
    from sklearn.ensemble import RandomForestRegressor

    forest = RandomForestRegressor(n_estimators=trees, min_samples_leaf=2, max_features=0.7,
                                   random_state=seed).fit(x, y)
    effects = {label: _effect(forest, x, j) for j, label in enumerate(labels)}
    total = sum(effects.values())
    shares = {k: (v / total if total > 0 else 0.0) for k, v in effects.items()}
    return dict(sorted(shares.items(), key=lambda kv: -kv[1]))


def _effect(forest: Any, x: np.ndarray, j: int) -> float:
    """Variance of the forest's mean prediction as column ``j`` takes each of its levels
    (absent included), weighted by how often the trials had that level."""
    column = x[:, j]
    present = column[~np.isnan(column)]
    levels, weights = [], []
    if len(present):
        distinct = np.unique(present)
        if len(distinct) > LEVELS:  # a numeric label: its quantiles, equally weighted
            distinct = np.quantile(present, np.linspace(0.05, 0.95, LEVELS))
            counts = np.full(LEVELS, len(present) / LEVELS)
        else:
            counts = np.array([np.sum(present == v) for v in distinct], dtype=float)
        levels += list(distinct)
        weights += list(counts)
    if np.isnan(column).any():
        levels.append(np.nan)
        weights.append(float(np.isnan(column).sum()))
    if len(levels) < 2:
        return 0.0
    grid = np.repeat(x[None], len(levels), axis=0)
    grid[:, :, j] = np.array(levels)[:, None]
    means = forest.predict(grid.reshape(-1, x.shape[1])).reshape(len(levels), -1).mean(axis=1)
    w = np.array(weights) / np.sum(weights)
    return float(np.sum(w * (means - np.sum(w * means)) ** 2))
