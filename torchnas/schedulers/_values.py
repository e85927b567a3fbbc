"""What schedulers read from trials (a metric by a step) and how they check their settings."""

from __future__ import annotations

import math
from typing import Any

from torchnas._util import checks
from torchnas.study._trial import FrozenTrial

__all__ = ["better", "check_int", "check_real", "reached", "rung_value", "value_by"]

#: Relative tolerance of step comparisons (budgets such as ``0.1 * 3**k`` are not exact).
_REL = 1e-9


def reached(step: float, target: float) -> bool:
    """Whether ``step`` is at or past ``target`` (up to rounding)."""
    return step >= target - _REL * abs(target)


def better(a: float, b: float, direction: str) -> bool:
    """Whether ``a`` is strictly better than ``b`` (``direction`` is ``"max"`` or ``"min"``)."""
    return a > b if direction == "max" else a < b


def value_by(trial: FrozenTrial, metric: str, step: float, direction: str,
             best: bool) -> float | None:
    """The trial's value of ``metric`` by ``step``.

    That is its last report at a step ``<= step`` or, with ``best``, the best of those reports
    (NaN counts as worst). ``None`` when the trial has no report at or past ``step`` (it has not
    got that far) or reported no ``metric`` by then.
    """
    if not trial.intermediate or not reached(trial.intermediate[-1][0], step):
        return None
    found: float | None = None
    for s, metrics in trial.intermediate:
        if s > step + _REL * abs(step):
            break
        v = metrics.get(metric)
        if v is None:
            continue
        v = float(v)
        if not best or found is None or math.isnan(found) or better(v, found, direction):
            found = v
    return found


def rung_value(trial: FrozenTrial, metric: str, rung: float) -> float | None:
    """The value of ``metric`` the trial reported when it first reached ``rung`` (``None``:
    not reached, or the metric missing from that report)."""
    for s, metrics in trial.intermediate:
        if reached(s, rung):
            v = metrics.get(metric)
            return None if v is None else float(v)
    return None


def check_real(owner: str, name: str, value: Any, *, low: float, open_low: bool = True,
               optional: bool = False) -> None:
    """A finite number above ``low`` (or ``None`` when ``optional``); else ConfigError."""
    checks.check_real(f"scheduler {owner!r}", name, value, low, open_low=open_low,
                      optional=optional)


def check_int(owner: str, name: str, value: Any, *, low: int) -> None:
    """An integer ``>= low``; else ConfigError."""
    checks.check_int(f"scheduler {owner!r}", name, value, low)
