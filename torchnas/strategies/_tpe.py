"""Tree-structured Parzen Estimators: TPE (Bergstra et al. 2011) and BOHB (Falkner et al. 2018).

Finished trials are split into the good ones (the best ``gamma`` of them) and the rest; for each
label, a Parzen estimator ``l(x)`` is fitted on the good trials that met it and ``g(x)`` on the
others; the value proposed is the one, among candidates drawn from ``l``, that maximizes
``l(x) / g(x)``. A conditional label is fitted on the trials where it exists, so define-by-run
spaces need nothing special. Failed trials and, with the constant liar, the trials still running
count as bad. Observations are kept per label and grown as trials are told, so a suggestion
costs a few vectorized passes over the observations of one label.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from torchnas.space import Domain, Float
from torchnas.strategies._base import (
    AskContext,
    Strategy,
    check_bool,
    check_int,
    check_real,
    derive_seed,
    register,
    warn_first_objective,
)
from torchnas.strategies._parzen import Column, logsumexp
from torchnas.study._objectives import nondominated_fronts
from torchnas.study._trial import FrozenTrial, TrialState

__all__ = ["BOHBStrategy", "TPEStrategy"]

_FAILED = 3
"""Rank group of trials that are always bad (failed, or without a usable value)."""


def _ramp(n: int) -> np.ndarray:
    """Weights of the bad trials, oldest first: older ones fade once there are more than 25."""
    if n <= 25:
        return np.ones(n)
    return np.concatenate([np.linspace(1.0 / n, 1.0, n - 25), np.ones(25)])


def _single(domain: Domain) -> bool:
    """Whether a domain has one value only (nothing to model)."""
    return domain.size == 1 or (isinstance(domain, Float) and domain.low == domain.high)


def _front_ranks(y: np.ndarray, enough: int) -> np.ndarray:
    """Non-domination ranks of the rows of ``y`` (larger is better), peeled until ``enough``
    rows are ranked; the others get a rank past the last front peeled."""
    ranks = np.full(len(y), len(y), dtype=np.int64)
    for rank, front in enumerate(nondominated_fronts(y, limit=enough)):
        ranks[front] = rank
    return ranks


@register("tpe")
class TPEStrategy(Strategy):
    """Tree-structured Parzen Estimator over mixed, conditional, define-by-run spaces.

    Args:
        startup: trials drawn at random before the model is used (complete or pruned ones).
        candidates: values drawn from ``l(x)`` per decision; the best ratio wins.
        gamma: the fraction of trials taken as good; ``None``: Optuna's ``min(ceil(0.1 n),
            25)``.
        prior_weight: the weight of the prior kernel (uniform-like) in each estimator.
        multivariate: draw the labels every finished trial met jointly (in :meth:`ask`), from
            kernels shared across labels, so that interactions between them are modelled.
        constant_liar: count the trials still running as bad, so parallel trials differ.
    """

    def __init__(self, startup: int = 10, candidates: int = 24, gamma: float | None = None,
                 prior_weight: float = 1.0, multivariate: bool = False,
                 constant_liar: bool = True) -> None:
        self.startup = startup
        self.candidates = candidates
        self.gamma = gamma
        self.prior_weight = prior_weight
        self.multivariate = multivariate
        self.constant_liar = constant_liar

    def check(self) -> None:
        check_int(f"strategy {self.name!r}", "startup", self.startup, 0)
        self._check_model()

    def _check_model(self) -> None:
        """:class:`ConfigError` naming a bad setting of the estimators (BOHB's too)."""
        owner = f"strategy {self.name!r}"
        check_int(owner, "candidates", self.candidates, 1)
        check_real(owner, "gamma", self.gamma, 0.0, 1.0, open_low=True, optional=True)
        check_real(owner, "prior_weight", self.prior_weight, 0.0, open_low=True)
        check_bool(owner, "multivariate", self.multivariate)
        check_bool(owner, "constant_liar", self.constant_liar)

    def setup(self, objectives: Mapping[str, str], seed: int) -> None:
        super().setup(objectives, seed)
        self._group: list[int] = []  # per told trial: 0 complete, 1 pruned, 2 infeasible, 3 bad
        self._step: list[float] = []
        self._signed: list[tuple[float, ...]] = []  # objectives turned so that larger is better
        self._columns: dict[tuple[str, Domain], Column] = {}
        self._labels: dict[str, Domain] = {}
        self._cache: tuple[int, tuple[np.ndarray, np.ndarray] | None] = (-1, None)

    # -- learning ---------------------------------------------------------------------------
    def tell(self, trial: FrozenTrial) -> None:
        row = len(self._group)
        signed = tuple(trial.value(n) if d == "max" else -trial.value(n)
                       for n, d in self.objectives.items())
        finite = all(math.isfinite(v) for v in signed)
        if trial.state is TrialState.COMPLETE and finite:
            group = 2 if trial.feasible is False else 0
        elif trial.state is TrialState.PRUNED and math.isfinite(signed[0]):
            group = 1
        else:
            group = _FAILED
        self._group.append(group)
        self._step.append(max((s for s, _ in trial.intermediate), default=0))
        self._signed.append(signed)
        for label, value in trial.arch.items():
            dom = trial.domains.get(label)
            if dom is None:
                continue
            self._labels.setdefault(label, dom)
            col = self._columns.get((label, dom))
            if col is None:
                col = self._columns[(label, dom)] = Column(dom)
            col.add(row, value)
        self._observe(row, trial)

    def _observe(self, row: int, trial: FrozenTrial) -> None:
        """A hook for subclasses that learn more of a trial (BOHB: its reports)."""

    def _n_below(self, n: int) -> int:
        if self.gamma is None:
            return min(math.ceil(0.1 * n), 25)
        return max(1, math.ceil(self.gamma * n))

    def _fit_split(self) -> tuple[np.ndarray, np.ndarray] | None:
        """Masks over told trials: the good ones and the bad ones (``None``: still random)."""
        group = np.asarray(self._group)
        n = int((group < _FAILED).sum())
        if n < max(self.startup, 1):
            return None
        step = np.asarray(self._step, dtype=float)
        signed = np.asarray(self._signed, dtype=float).reshape(len(group), -1)
        value = np.where(group < _FAILED, signed[:, 0], -np.inf)
        n_below = self._n_below(n)
        keys = [-value, np.where(group == 1, -step, 0.0)]  # pruned: the furthest first
        if signed.shape[1] > 1:  # several objectives: Pareto fronts first
            ranks = np.full(len(group), len(group))
            done = np.flatnonzero(group == 0)
            ranks[done] = _front_ranks(signed[done], n_below)
            keys.append(ranks)
        order = np.lexsort([*keys, group])
        below = np.zeros(len(group), dtype=bool)
        below[order[:n_below]] = True
        return below, ~below

    def _split(self) -> tuple[np.ndarray, np.ndarray] | None:
        if self._cache[0] != len(self._group):
            self._cache = (len(self._group), self._fit_split())
        return self._cache[1]

    # -- proposing --------------------------------------------------------------------------
    def _random(self, ctx: AskContext) -> bool:
        """Whether this trial is drawn at random although the model is ready."""
        return False

    def _estimators(self, label: str, col: Column, split: tuple[np.ndarray, np.ndarray],
                    pending: list[dict[str, Any]], rows: np.ndarray | None = None
                    ) -> tuple[Any, Any]:
        """``l`` and ``g`` of one label over all its rows, or over ``rows`` (a subset of them);
        the ``pending`` architectures that name the label count as bad."""
        below, above = split
        pos = np.arange(col.n) if rows is None else np.searchsorted(col.rows, rows)
        at = col.rows[pos]
        good, bad = col.values[pos[below[at]]], col.values[pos[above[at]]]
        liars = [col.internal(p[label]) for p in pending if label in p]
        bad = np.append(bad, [x for x in liars if x is not None])
        merge = rows is None
        return (col.estimator(good, np.ones(len(good)), self.prior_weight, merge),
                col.estimator(bad, _ramp(len(bad)), self.prior_weight, merge))

    def _pick(self, ctx: AskContext, salt: str, pairs: list[tuple[Any, Any]]) -> list[Any]:
        """Draws candidates from the ``l`` kernels (shared when several labels), keeps the best
        ``l / g``; returns the chosen value of each label."""
        rng = ctx.rng(salt)
        nrng = np.random.default_rng(rng.getrandbits(64))
        p = np.exp(pairs[0][0].log_w)
        which = nrng.choice(len(p), size=self.candidates, p=p / p.sum())
        drawn = [good.sample(which, nrng, rng) for good, _ in pairs]
        score = (logsumexp(pairs[0][0].log_w + sum(g.log_kernel(x) for (g, _), (x, _) in
                                                   zip(pairs, drawn, strict=True)))
                 - logsumexp(pairs[0][1].log_w + sum(b.log_kernel(x) for (_, b), (x, _) in
                                                     zip(pairs, drawn, strict=True))))
        best = int(np.argmax(score))
        return [values[best] for _, values in drawn]

    def suggest(self, ctx: AskContext, label: str, domain: Domain) -> Any:
        if _single(domain):
            return domain.grid(1)[0]
        split = self._split()
        if split is None or self._random(ctx):
            return domain.sample(ctx.rng(label))
        col = self._columns.get((label, domain)) or Column(domain)
        pending = ctx.pending if self.constant_liar else []
        good, bad = self._estimators(label, col, split, pending)
        return self._pick(ctx, label, [(good, bad)])[0]

    def ask(self, ctx: AskContext) -> dict[str, Any]:
        """Multivariate: the labels met by every trial the model sees, drawn jointly."""
        split = self._split() if self.multivariate else None
        if split is None or self._random(ctx):
            return {}
        rows = np.flatnonzero(split[0] | split[1])
        ran = rows[np.asarray(self._group)[rows] != _FAILED]
        cols = {lb: self._columns[(lb, d)] for lb, d in self._labels.items()
                if not _single(d) and np.isin(ran, self._columns[(lb, d)].rows).all()}
        if len(cols) < 2:
            return {}
        for col in cols.values():
            rows = np.intersect1d(rows, col.rows, assume_unique=True)
        pending = [p for p in ctx.pending if all(
            lb in p and col.internal(p[lb]) is not None for lb, col in cols.items())]
        pairs = [self._estimators(lb, col, split, pending if self.constant_liar else [], rows)
                 for lb, col in cols.items()]
        return dict(zip(cols, self._pick(ctx, "tpe:multivariate", pairs), strict=True))


@register("bohb")
class BOHBStrategy(TPEStrategy):
    """BOHB's model: TPE fitted at the largest budget with enough observations.

    A trial's observations are its reports (``step`` is the budget, the first objective's value
    at that step); a complete trial that reported nothing is observed at its final value. The
    model is fitted on the largest budget observed for at least ``min_points`` trials; until
    then, and for a ``random_fraction`` of trials, architectures are drawn at random. Failed
    trials count as bad at every budget. Studies pair it with the Hyperband scheduler.

    Args:
        min_points: observations a budget needs (``None``: the number of labels plus one).
        random_fraction: the share of trials drawn at random (BOHB's ``rho``).
        candidates, gamma, prior_weight, multivariate, constant_liar: as for
            :class:`TPEStrategy` (multivariate by default, as BOHB's kernel density is).
    """

    default_scheduler: ClassVar[str] = "hyperband"

    def __init__(self, min_points: int | None = None, random_fraction: float = 1 / 3,
                 candidates: int = 24, gamma: float | None = 0.15, prior_weight: float = 1.0,
                 multivariate: bool = True, constant_liar: bool = True) -> None:
        self.min_points = min_points
        self.random_fraction = random_fraction
        self.candidates = candidates
        self.gamma = gamma
        self.prior_weight = prior_weight
        self.multivariate = multivariate
        self.constant_liar = constant_liar

    def check(self) -> None:
        self._check_model()
        check_int("strategy 'bohb'", "min_points", self.min_points, 1, optional=True)
        check_real("strategy 'bohb'", "random_fraction", self.random_fraction, 0.0, 1.0)

    def setup(self, objectives: Mapping[str, str], seed: int) -> None:
        super().setup(objectives, seed)
        warn_first_objective(self.name, objectives)
        self._reports: dict[float, dict[int, float]] = {}

    def _observe(self, row: int, trial: FrozenTrial) -> None:
        name, direction = next(iter(self.objectives.items()))
        sign = 1.0 if direction == "max" else -1.0
        for step, metrics in trial.intermediate:
            value = metrics.get(name)
            if value is not None and math.isfinite(value):
                self._reports.setdefault(float(step), {})[row] = sign * value
        if not trial.intermediate and self._group[row] in (0, 2):
            self._reports.setdefault(math.inf, {})[row] = self._signed[row][0]

    def model_budget(self) -> float | None:
        """The budget the model is fitted at now (``None``: none has enough observations)."""
        need = self.min_points if self.min_points is not None else len(self._labels) + 1
        ready = [b for b, seen in self._reports.items() if len(seen) >= max(need, 2)]
        return max(ready, default=None)

    def _fit_split(self) -> tuple[np.ndarray, np.ndarray] | None:
        budget = self.model_budget()
        if budget is None:
            return None
        seen = self._reports[budget]
        rows = np.fromiter(seen, dtype=np.int64, count=len(seen))
        value = np.fromiter(seen.values(), dtype=float, count=len(seen))
        good = rows[np.lexsort([rows, -value])[: self._n_below(len(rows))]]
        below = np.zeros(len(self._group), dtype=bool)
        below[good] = True
        above = np.asarray(self._group) == _FAILED
        above[rows] = True
        return below, above & ~below

    def _random(self, ctx: AskContext) -> bool:
        return random.Random(derive_seed(self.seed, ctx.number, "bohb")).random() < (
            self.random_fraction)
