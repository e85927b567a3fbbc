"""Where trials run: inline, in local processes, or on a Ray cluster.

``Study.optimize(objective, workers=N, executor=...)`` hands its trials to an executor. The
driver (the process that called ``optimize``) owns storage and the strategy; workers only
compute, asking the driver for each decision their objective meets.

- ``"inline"``: one trial at a time in this process (the default for ``workers=1``).
- ``"process"``: ``workers`` local processes (the default for ``workers > 1``); see
  :class:`ProcessExecutor`.
- ``"ray"``: Ray tasks on an existing cluster or a local one (``pip install torchnas[ray]``);
  see :class:`RayExecutor`.

An executor registers where it is defined (``@register("name")`` above its class); importing
its module makes it available by name.
"""

from __future__ import annotations

from typing import Any

from torchnas._util.errors import ConfigError
from torchnas.execution._base import REGISTRY, Executor, Plan, Tally, conclude, register
from torchnas.execution._inline import InlineExecutor
from torchnas.execution._process import ProcessExecutor, device_plan
from torchnas.execution._protocol import ExecutorError
from torchnas.execution._ray import RayExecutor

__all__ = [
    "REGISTRY",
    "Executor",
    "ExecutorError",
    "InlineExecutor",
    "Plan",
    "ProcessExecutor",
    "RayExecutor",
    "Tally",
    "available",
    "conclude",
    "create",
    "device_plan",
    "register",
    "resolve",
]


def available() -> list[str]:
    """Names accepted by :func:`create`."""
    return REGISTRY.available()


def create(name: str, **kwargs: Any) -> Executor:
    """Builds the executor registered as ``name``, its settings checked (:class:`ConfigError`
    naming the bad one)."""
    return REGISTRY.create(name, **kwargs)


def resolve(spec: str | Executor | dict[str, Any] | None, workers: int = 1) -> Executor:
    """The executor ``optimize`` uses.

    Args:
        spec: a name, ``{"name": ..., **kwargs}``, an :class:`Executor`, or ``None``
            (``"inline"`` for one worker, ``"process"`` for several).
        workers: trials at once (for a name or a mapping without ``workers``).
    """
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ConfigError(f"workers must be an integer >= 1, got {workers!r}")
    if isinstance(spec, Executor):
        if workers != 1 and workers != spec.workers:
            raise ConfigError(f"workers={workers} but the executor object has "
                              f"workers={spec.workers}; set it on the executor")
        return REGISTRY.resolve(spec)
    if spec is None or isinstance(spec, str):
        return create(spec or ("inline" if workers == 1 else "process"), workers=workers)
    if isinstance(spec, dict) and isinstance(spec.get("name"), str):
        kwargs = {k: v for k, v in spec.items() if k != "name"}
        kwargs.setdefault("workers", workers)
        return create(spec["name"], **kwargs)
    raise ConfigError(
        f"executor must be a name ({', '.join(available())}), {{'name': ..., ...}} or an "
        f"Executor, got {spec!r}"
    )

