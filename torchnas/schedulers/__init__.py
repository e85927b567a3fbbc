"""Early stopping and multi-fidelity schedulers, from trials' intermediate reports.

``median`` (the median stopping rule), ``asha`` (asynchronous successive halving), ``sha``
(successive halving without the benefit of the doubt; see :class:`SuccessiveHalvingScheduler`),
``hyperband`` (brackets of ASHA), ``curve`` (learning-curve extrapolation) and ``mo_asha``
(successive halving ranking every objective by non-dominated sorting). A budget is a
report's ``step``: epochs, or the percentage of the training data (``Trainer(budget=...)``).
"""

from __future__ import annotations

from typing import Any

from torchnas._util.errors import ConfigError
from torchnas._util.registry import Registry
from torchnas.schedulers._base import Scheduler
from torchnas.schedulers._curve import CurveScheduler, fit_power_law
from torchnas.schedulers._halving import SuccessiveHalvingScheduler, synchronous
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

REGISTRY: Registry[Any] = Registry("scheduler")
register = REGISTRY.register
REGISTRY.add("median", MedianScheduler)
REGISTRY.add("asha", SuccessiveHalvingScheduler)
REGISTRY.add("sha", synchronous)
REGISTRY.add("hyperband", HyperbandScheduler)
REGISTRY.add("curve", CurveScheduler)
REGISTRY.add("mo_asha", ParetoHalvingScheduler)


def available() -> list[str]:
    """Names accepted by :func:`create`."""
    return REGISTRY.names()


def create(name: str, **kwargs: Any) -> Scheduler:
    """Builds the scheduler registered as ``name``."""
    factory = REGISTRY.get(name)
    REGISTRY.check_settings(name, factory, kwargs)
    try:
        scheduler: Scheduler = factory(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"scheduler {name!r}: {exc}") from exc
    return scheduler


def resolve(spec: str | Scheduler | dict[str, Any] | None) -> tuple[Scheduler | None, Any]:
    """A scheduler from ``None``, a name, an object or ``{"name": ..., **kwargs}``, and the
    spec to store; its settings are checked (:class:`ConfigError` naming the bad one)."""
    if spec is None:
        return None, None
    if isinstance(spec, Scheduler):
        found, stored = spec, {"name": spec.name or type(spec).__name__, **spec.get_params()}
    elif isinstance(spec, str):
        found, stored = create(spec), {"name": spec}
    elif isinstance(spec, dict) and isinstance(spec.get("name"), str):
        found = create(spec["name"], **{k: v for k, v in spec.items() if k != "name"})
        stored = dict(spec)
    else:
        raise ConfigError(f"scheduler must be a name, a Scheduler or {{'name': ...}}, "
                          f"got {spec!r}")
    found.check()
    return found, stored
