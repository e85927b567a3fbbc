"""Hypervolume: the volume of objective space a set of points dominates, up to a reference.

The measure of a Pareto front that needs no true front to compare with (Zitzler & Thiele 1998):
larger is better, and a set that dominates another has at least its hypervolume. Computed
exactly by slicing objectives (While et al. 2006, "HSO"): the points are swept along the last
objective, and each slab's volume is the hypervolume of the points below it in one objective
fewer; two objectives are a sort and a running minimum. Two objectives cost ``O(n log n)``,
three ``O(n^2 log n)``; each further objective multiplies by ``n``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from torchnas._util.errors import ConfigError

__all__ = ["contributions", "default_reference", "hypervolume"]

Points = Sequence[Sequence[float]] | np.ndarray


def _as_min(points: Points, reference: Sequence[float] | np.ndarray | None,
            directions: Sequence[str] | None) -> tuple[np.ndarray, np.ndarray | None]:
    """Points (and the reference) turned so that every objective is minimized."""
    p = np.asarray(points, dtype=float)
    m = p.shape[1] if p.ndim == 2 else (len(reference) if reference is not None else 0)
    p = p.reshape(len(p), m)
    dirs = list(directions) if directions is not None else ["min"] * m
    if len(dirs) != m or any(d not in ("min", "max") for d in dirs):
        raise ConfigError(f"hypervolume: directions must be {m} of 'min'/'max', got {directions!r}")
    sign = np.array([1.0 if d == "min" else -1.0 for d in dirs])
    if reference is None:
        return p * sign, None
    ref = np.asarray(reference, dtype=float)
    if ref.shape != (m,) or not np.isfinite(ref).all():
        raise ConfigError(f"hypervolume: the reference point must be {m} finite numbers, "
                          f"got {list(reference)!r}")
    return p * sign, ref * sign


def _nondominated(p: np.ndarray) -> np.ndarray:
    """The rows of ``p`` no other row dominates (minimization; one of equal rows kept)."""
    p = np.unique(p, axis=0)
    le = (p[:, None, :] <= p[None, :, :]).all(-1)
    return np.asarray(p[~(le & ~le.T).any(0)])


def _sweep(p: np.ndarray, ref: np.ndarray) -> float:
    """Hypervolume of rows ``p`` (each strictly below ``ref`` in every objective)."""
    n, m = p.shape
    if n == 0:
        return 0.0
    if m == 1:
        return float(ref[0] - p[:, 0].min())
    if m == 2:
        order = np.argsort(p[:, 0], kind="stable")
        x, y = p[order, 0], np.minimum.accumulate(p[order, 1])
        return float((np.diff(np.append(x, ref[0])) * (ref[1] - y)).sum())
    p = _nondominated(p)
    p = p[np.argsort(p[:, -1], kind="stable")]
    z = np.append(p[:, -1], ref[-1])
    total = 0.0
    for i in range(len(p)):
        if z[i + 1] > z[i]:
            total += (z[i + 1] - z[i]) * _sweep(p[: i + 1, :-1], ref[:-1])
    return total


def hypervolume(points: Points, reference: Sequence[float] | np.ndarray,
                directions: Sequence[str] | None = None) -> float:
    """The volume dominated by ``points`` and bounded by ``reference``.

    Args:
        points: objective vectors, one per row (any number of objectives; exact for all).
        reference: a point every counted point must beat in each objective: one no better
            than the worst acceptable value (see :func:`default_reference`). Points that do not
            beat it in every objective add nothing; NaN or infinite rows are ignored.
        directions: ``"min"`` or ``"max"`` per objective (default: all minimized).

    Example:
        >>> hypervolume([(1, 3), (2, 2), (3, 1)], reference=(4, 4))
        6.0
        >>> hypervolume([(0.75, 100), (0.5, 20)], (0.25, 1000), ["max", "min"])
        470.0
    """
    p, ref = _as_min(points, reference, directions)
    assert ref is not None
    p = p[np.isfinite(p).all(1) & (p < ref).all(1)]
    return _sweep(p, ref)


def contributions(points: Points, reference: Sequence[float] | np.ndarray,
                  directions: Sequence[str] | None = None) -> list[float]:
    """Each point's exclusive hypervolume: what the set loses without it (0 for a dominated
    point or a copy of another, and for one that does not beat the reference)."""
    p, ref = _as_min(points, reference, directions)
    assert ref is not None
    ok = np.isfinite(p).all(1) & (p < ref).all(1)
    total = _sweep(p[ok], ref)
    out = [0.0] * len(p)
    for i in np.flatnonzero(ok):
        rest = ok.copy()
        rest[i] = False
        out[i] = max(0.0, total - _sweep(p[rest], ref))
    return out


def default_reference(points: Points, directions: Sequence[str] | None = None,
                      margin: float = 0.1) -> list[float]:
    """A reference point just past the worst of ``points`` in each objective: the worst value
    moved away by ``margin`` times the objective's range (by ``margin`` times its size, or by
    ``margin``, when all points agree), so that every non-dominated point counts.

    It depends on the points: to compare two sets, give both the same explicit reference.

    Example:
        >>> default_reference([(0.9, 100.0), (0.7, 300.0)], ["max", "min"])
        [0.68, 320.0]
    """
    p, _ = _as_min(points, None, directions)
    p = p[np.isfinite(p).all(1)]
    if not len(p):
        raise ValueError("default_reference: no finite point to place a reference after")
    worst, best = p.max(0), p.min(0)
    span = worst - best
    pad = np.where(span > 0, margin * span, margin * np.maximum(np.abs(worst), 1.0))
    ref = worst + pad
    if directions is not None:
        ref = ref * np.array([1.0 if d == "min" else -1.0 for d in directions])
    return [float(round(v, 12)) if math.isfinite(v) else float(v) for v in ref]


def ordered_reference(reference: Mapping[str, float] | Sequence[float],
                      names: Sequence[str]) -> list[float]:
    """A reference point given by objective name or in the objectives' order, as a list in that
    order (:class:`ConfigError` naming a missing or unknown objective)."""
    if isinstance(reference, Mapping):
        missing = [n for n in names if n not in reference]
        unknown = [n for n in reference if n not in names]
        if missing or unknown:
            raise ConfigError(f"hypervolume reference: objectives {names}; missing {missing}, "
                              f"unknown {unknown}")
        return [float(reference[n]) for n in names]
    values = [float(v) for v in reference]
    if len(values) != len(names):
        raise ConfigError(f"hypervolume reference: {len(names)} values expected (one per "
                          f"objective {names}), got {len(values)}")
    return values
