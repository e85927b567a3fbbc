"""Parzen estimators of one label: the densities ``l(x)`` and ``g(x)`` of TPE.

A :class:`Column` holds one label's observations under one domain, grown trial by trial. An
estimator is a weighted mixture of kernels, one per observation plus a prior one: truncated
Gaussians for numbers (in log space on log domains, integrated over a step's bin on discrete
ones), "that value, or anything with a small probability" for finite labels. Kernels are what a
multivariate TPE needs (one kernel per trial, shared across labels); an independent estimator
merges equal kernels (a finite label has at most one per value, a small integer domain few).

The bandwidth follows Bergstra et al. (2011) as Optuna's ``TPESampler`` does: the larger gap to a
neighbouring observation (the outermost observations have one neighbour; bounds do not count),
clipped to ``[range / min(100, 1 + kernels), range]``; the prior kernel is centred with the
range as its width.
"""

from __future__ import annotations

import functools
import importlib
import math
import random
from dataclasses import dataclass
from typing import Any

import numpy as np

from torchnas.space import Domain, Float, Int

__all__ = ["Categorical", "Column", "Numeric", "logsumexp", "special"]


@functools.cache
def special() -> Any:
    """``scipy.special`` (it comes with scikit-learn), imported on first use (once: TPE asks
    for it at every suggestion)."""
    try:
        return importlib.import_module("scipy.special")
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("the TPE strategies need scipy: pip install scipy") from exc


def logsumexp(x: np.ndarray) -> np.ndarray:
    """``log(sum(exp(x), axis=1))``, stable (scipy's spends more on array-API dispatch than
    on these small matrices)."""
    top = x.max(axis=1, keepdims=True)
    top[~np.isfinite(top)] = 0.0
    return np.asarray(np.log(np.exp(x - top).sum(axis=1)) + top[:, 0])


def _key(value: Any) -> Any:
    """A hashable identity of a finite domain's value (``True`` and ``1`` differ)."""
    return tuple(value) if isinstance(value, list) else (type(value), value)


class Column:
    """One label's observations under one domain: internal values and the rows they came from.

    Numbers are stored transformed (``log`` on log domains); finite values as codes into a
    vocabulary of the values seen, in order of first appearance.
    """

    def __init__(self, domain: Domain) -> None:
        self.domain = domain
        self.numeric = isinstance(domain, (Int, Float))
        self.log = bool(getattr(domain, "log", False))
        self.vocab: dict[Any, int] = {}
        self.choices: list[Any] = []
        self.n = 0
        self._rows = np.empty(16, dtype=np.int64)
        self._values = np.empty(16)

    @property
    def rows(self) -> np.ndarray:
        """The rows (told trials, in order) that met the label."""
        return self._rows[: self.n]

    @property
    def values(self) -> np.ndarray:
        """The internal values, aligned with :attr:`rows`."""
        return self._values[: self.n]

    def add(self, row: int, value: Any) -> None:
        """Records ``value`` of row ``row`` (ignored when outside the domain)."""
        if not self.domain.contains(value):
            return
        if self.numeric:
            x = float(value)
            internal = math.log(x) if self.log else x
        else:
            internal = self.vocab.setdefault(_key(value), len(self.vocab))
            if internal == len(self.choices):
                self.choices.append(self.domain.normalize(value))
        if self.n == len(self._rows):
            self._rows = np.resize(self._rows, 2 * self.n)
            self._values = np.resize(self._values, 2 * self.n)
        self._rows[self.n] = row
        self._values[self.n] = internal
        self.n += 1

    def internal(self, value: Any) -> float | None:
        """The internal value of ``value`` without recording it (``None``: outside the domain, or
        a finite value never recorded)."""
        if not self.domain.contains(value):
            return None
        if self.numeric:
            return math.log(float(value)) if self.log else float(value)
        code = self.vocab.get(_key(value))
        return None if code is None else float(code)

    def estimator(self, values: np.ndarray, weights: np.ndarray, prior_weight: float,
                  merge: bool = True) -> Numeric | Categorical:
        """The mixture over ``values`` (internal, with ``weights``) plus the prior kernel, the
        last one. ``merge``: equal kernels merged into one (not for a multivariate model, whose
        kernels are trials shared across labels)."""
        w = np.append(weights, prior_weight) if len(values) else np.ones(1)
        w = w / w.sum()
        if self.numeric:
            return Numeric.fit(self.domain, values, w, merge)  # type: ignore[arg-type]
        eps = prior_weight / (len(values) + 1)
        if not merge:
            return Categorical(self, np.append(values, -1.0), np.log(w), eps)
        per_code = np.bincount(values.astype(np.int64), w[:-1], minlength=len(self.choices))
        codes = np.flatnonzero(per_code)
        return Categorical(self, np.append(codes, -1.0), np.log(np.append(per_code[codes],
                                                                           w[-1])), eps)


@dataclass
class Numeric:
    """Truncated Gaussian kernels in the transformed space (the last one is the prior)."""

    domain: Int | Float
    mu: np.ndarray
    sigma: np.ndarray
    log_w: np.ndarray
    low: float
    high: float
    half: float  # half a step in the original space; 0 when continuous

    @classmethod
    def fit(cls, domain: Int | Float, values: np.ndarray, w: np.ndarray,
            merge: bool) -> Numeric:
        """Kernels at ``values`` (weights ``w``, the prior's last) with bandwidths from the gaps
        to neighbours (the magic clip); on a discrete domain, equal kernels merged if asked."""
        step = domain.step if domain.step is not None else 0
        half = 0.5 * step
        top = domain.low + (domain.size - 1) * step if domain.size is not None else domain.high
        lo, hi = domain.low - half, top + half
        if domain.log:
            lo, hi = math.log(lo), math.log(hi)
        span = hi - lo
        order = np.argsort(values, kind="stable")
        mu = values[order]
        gaps = np.diff(np.concatenate(([lo], mu, [hi])))
        sigma = np.maximum(gaps[:-1], gaps[1:])
        if len(mu) > 1:  # the outermost kernels are not widened by the bounds
            sigma[0], sigma[-1] = gaps[1], gaps[-2]
        sigma = np.clip(sigma, span / min(100.0, len(values) + 2.0), span)
        weight = w[:-1][order]
        if merge and half and len(mu) > 1:  # equal kernels are neighbours once sorted
            starts = np.flatnonzero(np.concatenate(([True], (mu[1:] != mu[:-1]) | (
                sigma[1:] != sigma[:-1]))))
            mu, sigma, weight = mu[starts], sigma[starts], np.add.reduceat(weight, starts)
        elif not merge:  # keep the kernels in the order of the values (trials)
            back = np.empty_like(order)
            back[order] = np.arange(len(order))
            mu, sigma, weight = mu[back], sigma[back], weight[back]
        return cls(domain, np.append(mu, 0.5 * (lo + hi)), np.append(sigma, span),
                   np.log(np.append(weight, w[-1])), lo, hi, half)

    def _log_norm(self) -> np.ndarray:
        sp = special()
        mass = sp.ndtr((self.high - self.mu) / self.sigma) - sp.ndtr((self.low - self.mu) /
                                                                      self.sigma)
        return np.asarray(np.log(np.maximum(mass, 1e-300)))

    def sample(self, which: np.ndarray, rng: np.random.Generator,
               pyrng: random.Random) -> tuple[np.ndarray, list[Any]]:
        """One value from each kernel in ``which``: internal values and domain values."""
        sp = special()
        mu, sigma = self.mu[which], self.sigma[which]
        a, b = sp.ndtr((self.low - mu) / sigma), sp.ndtr((self.high - mu) / sigma)
        u = np.clip(a + rng.random(len(which)) * (b - a), 1e-300, 1 - 1e-16)
        t = np.clip(mu + sigma * sp.ndtri(u), self.low, self.high)
        x = np.exp(t) if self.domain.log else t
        dom = self.domain
        if self.half:
            assert dom.size is not None
            step = dom.step if dom.step is not None else 1
            i = np.clip(np.round((x - dom.low) / step), 0, dom.size - 1)
            x = dom.low + i * step
        else:
            x = np.clip(x, dom.low, dom.high)
        out = [int(v) for v in x] if isinstance(dom, Int) else [dom.normalize(v) for v in x]
        return (np.log(x) if dom.log else x), out

    def log_kernel(self, x: np.ndarray) -> np.ndarray:
        """``log k_j(x_i)``: densities, or a step's bin mass on discrete domains."""
        sp = special()
        if not self.half:
            z = (x[:, None] - self.mu) * (1.0 / self.sigma)
            return np.asarray((-0.5 * z * z) - (np.log(self.sigma * math.sqrt(2 * math.pi)) +
                                                self._log_norm()))
        uniq, inverse = np.unique(x, return_inverse=True)  # few distinct values on a grid
        raw = np.exp(uniq) if self.domain.log else uniq
        left, right = raw - self.half, raw + self.half
        if self.domain.log:
            left, right = np.log(left), np.log(right)
        zl = (left[:, None] - self.mu) / self.sigma
        zr = (right[:, None] - self.mu) / self.sigma
        upper = zl > 0  # integrate an upper tail from the other side (no cancellation)
        mass = sp.ndtr(np.where(upper, -zl, zr)) - sp.ndtr(np.where(upper, -zr, zl))
        return np.asarray(np.log(np.maximum(mass, 1e-300)) - self._log_norm())[inverse]


@dataclass
class Categorical:
    """Kernels "this code, or any value with weight ``eps``" (code -1: the uniform prior)."""

    column: Column
    code: np.ndarray
    log_w: np.ndarray
    eps: float

    def sample(self, which: np.ndarray, rng: np.random.Generator,
               pyrng: random.Random) -> tuple[np.ndarray, list[Any]]:
        """One value from each kernel in ``which``: codes (unseen values: new ones) and values."""
        col = self.column
        size = col.domain.size or 1
        keep = rng.random(len(which)) * (1 + size * self.eps) < 1
        codes, values = np.empty(len(which)), []
        extra: dict[Any, int] = {}
        for i, k in enumerate(which):
            c = int(self.code[k])
            if c < 0 or not keep[i]:
                value = col.domain.sample(pyrng)
                key = _key(value)
                c = col.vocab.get(key, -1)
                if c < 0:
                    c = extra.setdefault(key, len(col.vocab) + len(extra))
            else:
                value = col.choices[c]
            codes[i] = c
            values.append(value)
        return codes, values

    def log_kernel(self, x: np.ndarray) -> np.ndarray:
        """``log k_j(x_i)`` for codes ``x``."""
        size = self.column.domain.size or 1
        with np.errstate(divide="ignore"):
            hit = np.log(np.where(x[:, None] == self.code, 1 + self.eps, self.eps))
        out = hit - math.log1p(size * self.eps)
        out[:, self.code < 0] = -math.log(size)
        return np.asarray(out)
