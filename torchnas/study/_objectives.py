"""Objectives (names and directions), constraints, ranking and the Pareto front."""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from torchnas._util.errors import ConfigError
from torchnas.study._trial import FrozenTrial

__all__ = [
    "crowding_distance",
    "dominates",
    "is_feasible",
    "nondominated_fronts",
    "pareto_front",
    "parse_constraints",
    "parse_objectives",
    "rank_key",
    "signed_values",
    "violation",
]

_MAX_HINTS = ("acc", "auc", "f1", "precision", "recall", "r2", "score", "reward", "hypervolume",
              "map", "iou", "bleu", "psnr", "ssim")
_MIN_HINTS = ("loss", "err", "param", "flop", "mac", "latency", "mse", "mae", "rmse", "time",
              "memory", "regret", "perplexity", "seconds", "energy", "size")
_OPS: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le, "<": operator.lt, ">=": operator.ge, ">": operator.gt, "==": operator.eq,
}


def _infer_direction(name: str) -> str:
    """``max`` or ``min`` from the words of ``name`` (``val_accuracy``, ``num_params``).

    A word matches a hint it starts with (``accuracy``: ``acc``; ``flops``: ``flop``); a name
    whose words point both ways, or nowhere, is an error.
    """
    spaced = re.sub(r"([a-z0-9])([A-Z][a-z])", r"\1_\2", name)  # valAccuracy: val, accuracy
    words = [w for w in re.split(r"[^a-z0-9]+", spaced.lower()) if w]
    found = {d for w in words
             for d, hints in (("max", _MAX_HINTS), ("min", _MIN_HINTS))
             if any(w.startswith(h) for h in hints)}
    if len(found) == 1:
        return found.pop()
    raise ConfigError(
        f"objective {name!r}: cannot tell whether to maximize or minimize it; "
        f"write {{{name!r}: 'max'}} or {{{name!r}: 'min'}}"
    )


def parse_objectives(spec: str | Sequence[str] | Mapping[str, str] | None) -> dict[str, str]:
    """``{"name": "max"|"min"}`` from a dict, a name or a list of names.

    A bare name gets its direction from its wording, as Keras Tuner does (``val_accuracy``:
    max; ``val_loss``, ``params``, ``latency_ms``: min); anything unclear is an error.
    """
    if spec is None:
        return {"value": "min"}
    if isinstance(spec, str):
        if not spec.strip():
            raise ConfigError(f"objectives: a name must be a non-empty string, got {spec!r}")
        return {spec: _infer_direction(spec)}
    if isinstance(spec, Mapping):
        out: dict[str, str] = {}
        for name, direction in spec.items():
            d = str(direction).lower()
            d = {"maximize": "max", "minimize": "min"}.get(d, d)
            if not isinstance(name, str) or not name.strip():
                raise ConfigError(f"objectives: names must be non-empty strings, got {name!r}")
            if d not in ("max", "min"):
                raise ConfigError(
                    f"objective {name!r}: direction must be 'max' or 'min', got {direction!r}"
                )
            out[name] = d
        if not out:
            raise ConfigError("objectives: at least one objective is needed")
        return out
    if isinstance(spec, Sequence) and not isinstance(spec, (bytes, bytearray)):
        bad = [n for n in spec if not isinstance(n, str) or not n.strip()]
        if bad or not spec:
            raise ConfigError(f"objectives: expected non-empty metric names, got {spec!r}")
        return parse_objectives({n: _infer_direction(n) for n in spec})
    raise ConfigError(f"objectives must be a dict {{name: 'max'|'min'}} or a name, got {spec!r}")


def parse_constraints(spec: Mapping[str, Any] | None) -> dict[str, tuple[str, float]]:
    """``{"metric": (op, bound)}`` with op one of ``<= < >= > ==`` and a finite bound (a rule
    may be written ``"<= 1e6"``); ``None`` is none.

    Raises:
        ConfigError: naming the constraint, or ``constraints`` when it is no mapping.
    """
    if spec is None:
        return {}
    if not isinstance(spec, Mapping):
        raise ConfigError(f"constraints must be a mapping {{metric: (op, bound)}}, got {spec!r}")
    out: dict[str, tuple[str, float]] = {}
    for name, rule in spec.items():
        if not isinstance(name, str) or not name.strip():
            raise ConfigError(f"constraints: metric names must be non-empty strings, got {name!r}")
        if isinstance(rule, str):
            rule = rule.split(maxsplit=1)
        if (not isinstance(rule, Sequence) or len(rule) != 2 or not isinstance(rule[0], str)
                or rule[0] not in _OPS):
            raise ConfigError(
                f"constraint {name!r}: expected (op, bound) with op in {list(_OPS)}, got {rule!r}"
            )
        try:
            bound = math.nan if isinstance(rule[1], bool) else float(rule[1])
        except (TypeError, ValueError):
            bound = math.nan
        if not math.isfinite(bound):
            raise ConfigError(f"constraint {name!r}: bound must be a number (not NaN or "
                              f"infinite), got {rule[1]!r}")
        out[name] = (rule[0], bound)
    return out


def is_feasible(metrics: Mapping[str, float], constraints: Mapping[str, tuple[str, float]]) -> bool:
    """Whether every constraint holds; a constrained metric that is missing or NaN fails."""
    for name, (op, bound) in constraints.items():
        v = metrics.get(name)
        if v is None or not math.isfinite(v) or not _OPS[op](v, bound):
            return False
    return True


def violation(metrics: Mapping[str, float], constraints: Mapping[str, tuple[str, float]]) -> float:
    """How far ``metrics`` are from meeting every constraint (0 when they do): the sum over
    violated constraints of the gap to the bound, relative to the bound's size (at least 1),
    so that constraints in different units add up; a constrained metric that is missing or
    NaN is infinitely far (Deb's rules rank infeasible candidates by this amount).
    """
    total = 0.0
    for name, (op, bound) in constraints.items():
        v = metrics.get(name)
        if v is None or not math.isfinite(v):
            return math.inf
        if not _OPS[op](v, bound):
            total += max(abs(v - bound), 1e-12) / max(abs(bound), 1.0)
    return total


def signed_values(trial: FrozenTrial, objectives: Mapping[str, str]) -> tuple[float, ...]:
    """Objective values turned so that larger is better (NaN where missing)."""
    return tuple(
        trial.value(n) if d == "max" else -trial.value(n) for n, d in objectives.items()
    )


def nondominated_fronts(values: Sequence[Sequence[float]] | np.ndarray,
                        limit: int | None = None) -> list[list[int]]:
    """Non-dominated sorting (Deb et al. 2002): row indices by front, the best front first.

    Rows are objective vectors, larger is better in every column (see :func:`signed_values`).
    With ``limit``, fronts are peeled until at least ``limit`` rows are sorted and the rest is
    left out. Ties (equal rows) share a front.

    Example:
        >>> nondominated_fronts([(1, 1), (2, 0), (0, 0), (1, 1)])
        [[0, 1, 3], [2]]
    """
    y = np.asarray(values, dtype=float)
    if y.size == 0:
        return []
    y = y.reshape(len(y), -1)
    n = len(y)
    ge = np.ones((n, n), dtype=bool)  # built one objective at a time: no n x n x k array
    gt = np.zeros((n, n), dtype=bool)
    for col in y.T:
        ge &= col[:, None] >= col[None, :]
        gt |= col[:, None] > col[None, :]
    beats = ge & gt  # [i, j]: row i dominates row j
    count = beats.sum(0)  # how many rows dominate each row
    left = np.ones(len(y), dtype=bool)
    fronts: list[list[int]] = []
    done = 0
    while left.any() and (limit is None or done < limit):
        front = np.flatnonzero(left & (count == 0))
        fronts.append(front.tolist())
        left[front] = False
        count = count - beats[front].sum(0)
        done += len(front)
    return fronts


def crowding_distance(values: Sequence[Sequence[float]] | np.ndarray) -> list[float]:
    """NSGA-II crowding distance of each row within one front: the sum over objectives of the
    gap between its neighbours, relative to the front's range (the extremes are infinitely far,
    as are all rows of a front of two or fewer)."""
    y = np.asarray(values, dtype=float)
    n = len(y)
    if n <= 2:
        return [math.inf] * n
    y = y.reshape(n, -1)
    dist = np.zeros(n)
    for m in range(y.shape[1]):
        order = np.argsort(y[:, m], kind="stable")
        col = y[order, m]
        dist[order[0]] = dist[order[-1]] = math.inf
        span = col[-1] - col[0]
        if not (span > 0 and math.isfinite(span)):
            continue
        dist[order[1:-1]] += (col[2:] - col[:-2]) / span
    return dist.tolist()


def rank_key(objectives: Mapping[str, str]) -> Callable[[FrozenTrial], tuple[float, ...]]:
    """A sort key putting the best trial (first objective, then the next) first."""

    def key(trial: FrozenTrial) -> tuple[float, ...]:
        return tuple(-v if math.isfinite(v) else math.inf
                     for v in signed_values(trial, objectives))

    return key


def dominates(a: FrozenTrial, b: FrozenTrial, objectives: Mapping[str, str]) -> bool:
    """Whether ``a`` is at least as good as ``b`` in every objective and better in one."""
    va, vb = signed_values(a, objectives), signed_values(b, objectives)
    return all(x >= y for x, y in zip(va, vb, strict=True)) and va != vb


def pareto_front(trials: Iterable[FrozenTrial], objectives: Mapping[str, str]) -> list[FrozenTrial]:
    """The non-dominated trials (ties kept), sorted by the first objective, best first."""
    pool = [t for t in trials if all(math.isfinite(v) for v in signed_values(t, objectives))]
    pool.sort(key=rank_key(objectives))
    front: list[FrozenTrial] = []
    for t in pool:
        if not any(dominates(f, t, objectives) for f in front):
            front = [f for f in front if not dominates(t, f, objectives)]
            front.append(t)
    return sorted(front, key=rank_key(objectives))
