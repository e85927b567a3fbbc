"""Hypervolume: the volume of objective space a set of points dominates, up to a reference.

The measure of a Pareto front that needs no true front to compare with (Zitzler & Thiele 1998):
larger is better, and a set that dominates another has at least its hypervolume. Computed
exactly, with the objectives turned so that all are minimized:

- two objectives: a sort and a running minimum, ``O(n log n)``;
- three: a sweep along the third objective over a sorted two-dimensional staircase, each point
  adding its exclusive area to it (Fonseca, Paquete & López-Ibáñez 2006, "HV3D"): a binary
  search per point in a sorted list;
- four and more: WFG (While, Bradstreet & Barone 2012). The points are sorted by the last
  objective, best first; each one adds the slab from its value to the reference times its
  exclusive hypervolume, in one objective fewer, against the points before it. That exclusive
  volume is its box less the hypervolume of the *limit set* (the earlier points each made no
  better than it), whose non-dominated part is small, so the recursion stays cheap.

A point's exclusive hypervolume (:func:`contributions`, and the gains of ``motpe``'s greedy
cut) is computed the same way, as its box less the hypervolume of its limit set, rather than as
the difference of two hypervolumes of the whole set.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping, Sequence

import numpy as np

from torchnas._util.errors import ConfigError

__all__ = ["contributions", "default_reference", "exclusive", "hypervolume"]

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
    """The rows of ``p`` no other row dominates (minimization; the first of equal rows kept)."""
    n = len(p)
    if n < 2:
        return p
    le = (p[:, None, :] <= p[None, :, :]).all(-1)  # [j, i]: row j is no worse than row i
    # j removes i when it is better somewhere, or equal and before it
    removes = le & (~le.T | np.triu(np.ones((n, n), dtype=bool), 1))
    return p[~removes.any(0)]


def _hv2(p: np.ndarray, ref: np.ndarray) -> float:
    """Two objectives, any rows strictly below ``ref``."""
    order = np.argsort(p[:, 0], kind="stable")
    x, y = p[order, 0], np.minimum.accumulate(p[order, 1])
    return float((np.diff(np.append(x, ref[0])) * (ref[1] - y)).sum())


def _hv3(p: np.ndarray, ref: np.ndarray) -> float:
    """Three objectives, any rows strictly below ``ref``: a sweep along the third over the
    staircase of the first two (x ascending, y descending) and its area."""
    order = np.lexsort((p[:, 1], p[:, 0], p[:, 2]))
    rows = p[order].tolist()
    rx, ry, rz = (float(v) for v in ref)
    xs: list[float] = []
    ys: list[float] = []
    area = volume = 0.0
    z_prev = rows[0][2]
    for x, y, z in rows:
        volume += area * (z - z_prev)
        z_prev = z
        i = bisect.bisect_left(xs, x)  # xs[:i] < x
        if (i and ys[i - 1] <= y) or (i < len(xs) and xs[i] == x and ys[i] <= y):
            continue  # dominated in the first two objectives by a point already swept
        y_left = ys[i - 1] if i else ry
        j = i
        while j < len(xs) and ys[j] >= y:
            j += 1  # points of the staircase the new one dominates: xs[i:j]
        x_right = xs[j] if j < len(xs) else rx
        if i == j:
            gain = (x_right - x) * (y_left - y)
        else:
            gain = (xs[i] - x) * (y_left - y)
            for k in range(i, j):
                gain += ((xs[k + 1] if k + 1 < j else x_right) - xs[k]) * (ys[k] - y)
        area += gain
        xs[i:j] = [x]
        ys[i:j] = [y]
    return volume + area * (rz - z_prev)


def _hv(p: np.ndarray, ref: np.ndarray) -> float:
    """Hypervolume of rows ``p`` (each strictly below ``ref`` in every objective)."""
    n, m = p.shape
    if n == 0:
        return 0.0
    if n == 1:
        return float(np.prod(ref - p[0]))
    if m == 1:
        return float(ref[0] - p[:, 0].min())
    if m == 2:
        return _hv2(p, ref)
    if m == 3:
        return _hv3(p, ref)
    p = _nondominated(p)
    if len(p) == 1:
        return float(np.prod(ref - p[0]))
    p = p[np.argsort(p[:, -1], kind="stable")]  # WFG: by the last objective, best first
    q, rq = p[:, :-1], ref[:-1]
    slab = ref[-1] - p[:, -1]
    total = float(slab[0] * np.prod(rq - q[0]))
    for k in range(1, len(p)):
        total += float(slab[k]) * _exclusive(q[k], q[:k], rq)
    return total


def _exclusive(point: np.ndarray, others: np.ndarray, ref: np.ndarray) -> float:
    """What ``others`` (any rows) lack of the box between ``point`` (strictly below ``ref``) and
    ``ref``: the box less the hypervolume of the limit set (each other row made no better than
    ``point``)."""
    box = float(np.prod(ref - point))
    if not len(others):
        return box
    limit = np.maximum(others, point)
    limit = limit[(limit < ref).all(1)]
    if not len(limit):
        return box
    if (limit == point).all(1).any():
        return 0.0  # a row no worse than ``point`` covers all of its box
    return max(0.0, box - _hv(limit, ref))


def exclusive(point: Sequence[float] | np.ndarray, others: Points,
              reference: Sequence[float] | np.ndarray) -> float:
    """The hypervolume ``point`` adds to ``others`` (all minimized; 0 when it does not beat
    ``reference``): ``hypervolume(others + [point]) - hypervolume(others)``, computed directly
    from its box and its limit set (WFG)."""
    x = np.asarray(point, dtype=float)
    ref = np.asarray(reference, dtype=float)
    if not (np.isfinite(x).all() and (x < ref).all()):
        return 0.0
    o = np.asarray(others, dtype=float).reshape(-1, len(ref))
    return _exclusive(x, o[np.isfinite(o).all(1)], ref)


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
    return _hv(p, ref)


def contributions(points: Points, reference: Sequence[float] | np.ndarray,
                  directions: Sequence[str] | None = None) -> list[float]:
    """Each point's exclusive hypervolume: what the set loses without it (0 for a dominated
    point or a copy of another, and for one that does not beat the reference)."""
    p, ref = _as_min(points, reference, directions)
    assert ref is not None
    out = [0.0] * len(p)
    ok = np.flatnonzero(np.isfinite(p).all(1) & (p < ref).all(1))
    if not len(ok):
        return out
    q = p[ok]
    le = np.asarray((q[:, None, :] <= q[None, :, :]).all(-1))  # [j, i]: j no worse than i
    np.fill_diagonal(le, False)
    alone = np.flatnonzero(~le.any(0))  # no other row dominates or equals it
    for k in alone:  # against every other row: a dominated one fills in when it is gone
        out[ok[k]] = _exclusive(q[k], np.delete(q, k, axis=0), ref)
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
