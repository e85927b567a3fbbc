"""Objectives (names and directions), constraints, ranking and the Pareto front."""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from torchnas._errors import ConfigError
from torchnas._trial import FrozenTrial

__all__ = [
    "dominates",
    "is_feasible",
    "pareto_front",
    "parse_constraints",
    "parse_objectives",
    "rank_key",
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
        return {spec: _infer_direction(spec)}
    if isinstance(spec, Mapping):
        out: dict[str, str] = {}
        for name, direction in spec.items():
            d = str(direction).lower()
            d = {"maximize": "max", "minimize": "min"}.get(d, d)
            if not isinstance(name, str) or not name:
                raise ConfigError(f"objectives: names must be non-empty strings, got {name!r}")
            if d not in ("max", "min"):
                raise ConfigError(
                    f"objective {name!r}: direction must be 'max' or 'min', got {direction!r}"
                )
            out[name] = d
        if not out:
            raise ConfigError("objectives: at least one objective is needed")
        return out
    if isinstance(spec, Sequence):
        return parse_objectives({n: _infer_direction(n) for n in spec})
    raise ConfigError(f"objectives must be a dict {{name: 'max'|'min'}} or a name, got {spec!r}")


def parse_constraints(spec: Mapping[str, Any] | None) -> dict[str, tuple[str, float]]:
    """``{"metric": (op, bound)}`` with op one of ``<= < >= > ==``."""
    out: dict[str, tuple[str, float]] = {}
    for name, rule in (spec or {}).items():
        if isinstance(rule, str):
            rule = rule.split(maxsplit=1)
        if not isinstance(rule, Sequence) or len(rule) != 2 or rule[0] not in _OPS:
            raise ConfigError(
                f"constraint {name!r}: expected (op, bound) with op in {list(_OPS)}, got {rule!r}"
            )
        try:
            bound = float(rule[1])
        except (TypeError, ValueError):
            raise ConfigError(
                f"constraint {name!r}: bound must be a number, got {rule[1]!r}"
            ) from None
        out[name] = (rule[0], bound)
    return out


def is_feasible(metrics: Mapping[str, float], constraints: Mapping[str, tuple[str, float]]) -> bool:
    """Whether every constraint holds; a constrained metric that is missing or NaN fails."""
    for name, (op, bound) in constraints.items():
        v = metrics.get(name)
        if v is None or not math.isfinite(v) or not _OPS[op](v, bound):
            return False
    return True


def _signed(trial: FrozenTrial, objectives: Mapping[str, str]) -> tuple[float, ...]:
    """Objective values turned so that larger is better."""
    return tuple(
        trial.value(n) if d == "max" else -trial.value(n) for n, d in objectives.items()
    )


def rank_key(objectives: Mapping[str, str]) -> Callable[[FrozenTrial], tuple[float, ...]]:
    """A sort key putting the best trial (first objective, then the next) first."""

    def key(trial: FrozenTrial) -> tuple[float, ...]:
        return tuple(-v if math.isfinite(v) else math.inf for v in _signed(trial, objectives))

    return key


def dominates(a: FrozenTrial, b: FrozenTrial, objectives: Mapping[str, str]) -> bool:
    """Whether ``a`` is at least as good as ``b`` in every objective and better in one."""
    va, vb = _signed(a, objectives), _signed(b, objectives)
    return all(x >= y for x, y in zip(va, vb, strict=True)) and va != vb


def pareto_front(trials: Iterable[FrozenTrial], objectives: Mapping[str, str]) -> list[FrozenTrial]:
    """The non-dominated trials (ties kept), sorted by the first objective, best first."""
    pool = [t for t in trials if all(math.isfinite(v) for v in _signed(t, objectives))]
    pool.sort(key=rank_key(objectives))
    front: list[FrozenTrial] = []
    for t in pool:
        if not any(dominates(f, t, objectives) for f in front):
            front = [f for f in front if not dominates(t, f, objectives)]
            front.append(t)
    return sorted(front, key=rank_key(objectives))
