"""Early stopping and multi-fidelity schedulers, from trials' intermediate reports.

``median`` (the median stopping rule), ``asha`` (asynchronous successive halving), ``sha``
(successive halving without the benefit of the doubt; see :class:`SuccessiveHalvingScheduler`),
``hyperband`` (brackets of ASHA), ``curve`` (learning-curve extrapolation) and ``mo_asha``
(successive halving ranking every objective by non-dominated sorting). A budget is a
report's ``step``: epochs, or the percentage of the training data (``Trainer(budget=...)``).

A scheduler registers where it is defined (``@register("name")`` above its class); importing
its module makes it available by name.
"""

from __future__ import annotations

from typing import Any

from torchnas.schedulers._base import REGISTRY, Scheduler, register
from torchnas.schedulers._curve import CurveScheduler, fit_power_law
from torchnas.schedulers._halving import SuccessiveHalvingScheduler
from torchnas.schedulers._hyperband import HyperbandScheduler
from torchnas.schedulers._median import MedianScheduler
from torchnas.schedulers._pareto import ParetoHalvingScheduler

__all__ = [
    "REGISTRY",
    "CurveScheduler",
    "HyperbandScheduler",
    "MedianScheduler",
    "ParetoHalvingScheduler",
    "Scheduler",
    "SuccessiveHalvingScheduler",
    "available",
    "create",
    "fit_power_law",
    "register",
    "resolve",
]


def available() -> list[str]:
    """Names accepted by :func:`create`."""
    return REGISTRY.available()


def create(name: str, **kwargs: Any) -> Scheduler:
    """Builds the scheduler registered as ``name``, its settings checked (:class:`ConfigError`
    naming the bad one)."""
    return REGISTRY.create(name, **kwargs)


def resolve(spec: str | Scheduler | dict[str, Any] | None) -> tuple[Scheduler | None, Any]:
    """A scheduler from ``None``, a name, an object or ``{"name": ..., **kwargs}``, and the
    spec to store; its settings are checked (:class:`ConfigError` naming the bad one)."""
    if spec is None:
        return None, None
    return REGISTRY.resolve(spec), REGISTRY.spec_of(spec)
