"""Where trials run: inline, in local processes, or on a Ray cluster.

``Study.optimize(objective, workers=N, executor=...)`` hands its trials to an executor. The
driver (the process that called ``optimize``) owns storage and the strategy; workers only
compute, asking the driver for each decision their objective meets.

- ``"inline"``: one trial at a time in this process (the default for ``workers=1``).
- ``"process"``: ``workers`` local processes (the default for ``workers > 1``); see
  :class:`ProcessExecutor`.
- ``"ray"``: Ray tasks on an existing cluster or a local one (``pip install torchnas[ray]``);
  see :class:`RayExecutor`.
"""

from __future__ import annotations

from typing import Any

from torchnas._util.errors import ConfigError
from torchnas._util.registry import Registry
from torchnas.execution._base import Executor, Plan, Tally, conclude
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
    "resolve",
]

REGISTRY: Registry[type[Executor]] = Registry("executor")
REGISTRY.add("inline", InlineExecutor)
REGISTRY.add("process", ProcessExecutor)
REGISTRY.add("ray", RayExecutor)


def available() -> list[str]:
    """Names accepted by :func:`create`."""
    return REGISTRY.names()


def create(name: str, **kwargs: Any) -> Executor:
    """Builds the executor registered as ``name``."""
    cls = REGISTRY.get(name)
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"executor {name!r}: {exc}") from exc


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
        executor = spec
    elif spec is None or isinstance(spec, str):
        executor = create(spec or ("inline" if workers == 1 else "process"), workers=workers)
    elif isinstance(spec, dict) and isinstance(spec.get("name"), str):
        kwargs = {k: v for k, v in spec.items() if k != "name"}
        kwargs.setdefault("workers", workers)
        executor = create(spec["name"], **kwargs)
    else:
        raise ConfigError(
            f"executor must be a name ({', '.join(available())}), {{'name': ..., ...}} or an "
            f"Executor, got {spec!r}"
        )
    executor.check()
    return executor

