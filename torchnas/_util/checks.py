"""Checks of settings shared by the rooms (strategies, schedulers): a :class:`ConfigError`
that names the owner and the setting, and says what it must be."""

from __future__ import annotations

import math
import numbers
from typing import Any

from torchnas._util.config import short_repr
from torchnas._util.errors import ConfigError

__all__ = ["check_bool", "check_int", "check_real"]


def check_int(owner: str, key: str, value: Any, low: int, *, optional: bool = False) -> None:
    """:class:`ConfigError` naming ``key`` unless ``value`` is an integer ``>= low`` (or
    ``None`` when ``optional``); ``owner`` starts the message (``"strategy 'tpe'"``)."""
    if optional and value is None:
        return
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        extra = " or None" if optional else ""
        raise ConfigError(f"{owner}: {key} must be an integer >= {low}{extra}, "
                          f"got {short_repr(value)}")


def check_real(owner: str, key: str, value: Any, low: float = -math.inf, high: float = math.inf,
               *, open_low: bool = False, open_high: bool = False,
               optional: bool = False) -> None:
    """:class:`ConfigError` naming ``key`` unless ``value`` is a finite number in the interval
    from ``low`` to ``high`` (open at either end as told; ``None`` allowed when ``optional``)."""
    if optional and value is None:
        return
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if ok:
        x = float(value)
        ok = (math.isfinite(x) and (x > low if open_low else x >= low)
              and (x < high if open_high else x <= high))
    if not ok:
        if high == math.inf:
            need = f"> {low}" if open_low else f">= {low}"
        else:
            need = f"in {'(' if open_low else '['}{low}, {high}{')' if open_high else ']'}"
        extra = " or None" if optional else ""
        raise ConfigError(f"{owner}: {key} must be a number {need}{extra}, got {short_repr(value)}")


def check_bool(owner: str, key: str, value: Any) -> None:
    """:class:`ConfigError` naming ``key`` unless ``value`` is ``True`` or ``False``."""
    if not isinstance(value, bool):
        raise ConfigError(f"{owner}: {key} must be True or False, got {short_repr(value)}")
