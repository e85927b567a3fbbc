"""The process executor: one trial per local worker process, threads and GPUs split among them."""

from __future__ import annotations

import logging
import math
import multiprocessing
import os
import pickle
import signal
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any

from torchnas._util.errors import ConfigError
from torchnas.execution._base import Executor, Plan, register
from torchnas.execution._pool import Backend, Handle, Pool
from torchnas.execution._threads import cores, warn_if_busy
from torchnas.execution._worker import process_main
from torchnas.study._process import owner_token

if TYPE_CHECKING:
    from torchnas.study import Study

__all__ = ["ProcessExecutor", "device_plan", "visible_gpus"]

log = logging.getLogger("torchnas")


def _cores() -> int:
    return cores()


def visible_gpus(count: int, visible: str | None) -> list[str]:
    """The names of the ``count`` GPUs CUDA shows, as ``CUDA_VISIBLE_DEVICES`` spells them
    (``visible``: its value, or ``None`` when unset): indices, UUIDs or MIG names, which a
    worker's own ``CUDA_VISIBLE_DEVICES`` then picks from."""
    if count <= 0:
        return []
    if visible is not None and visible.strip():
        names = [v.strip() for v in visible.split(",")]
        return names[:count]
    return [str(i) for i in range(count)]


def _gpu_ids() -> list[str]:
    """The GPUs this process may use (CUDA is asked for their number only)."""
    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    return visible_gpus(count, os.environ.get("CUDA_VISIBLE_DEVICES"))


def device_plan(workers: int, gpus_per_trial: float | None, gpu_ids: list[str], cores: int,
                threads: int | None = None) -> list[dict[str, Any]]:
    """Each worker's setup: torch threads, the GPUs it sees, its share of a GPU's memory.

    Every worker gets ``cores // workers`` threads (at least 1), or ``threads``. With GPUs a
    trial gets one GPU by default (``gpus_per_trial=1``); a fraction shares a GPU (``0.5``: two
    trials per GPU, each capped to half its memory); an integer above 1 gives a trial several
    GPUs; ``0`` hides the GPUs.

    Raises:
        ConfigError: when ``threads`` (given) times ``workers`` exceeds the cores
            (oversubscribed threads slow each other down many times over), or the GPUs
            cannot hold ``workers`` trials at once.
    """
    check_threads(threads, workers, cores)
    per_worker = threads if threads is not None else max(1, cores // workers)
    base: dict[str, Any] = {"threads": per_worker, "cuda_visible_devices": None,
                            "memory_fraction": None}
    g = (1.0 if gpu_ids else 0.0) if gpus_per_trial is None else float(gpus_per_trial)
    if g == 0:
        hidden = "" if gpu_ids else None
        return [{**base, "cuda_visible_devices": hidden} for _ in range(workers)]
    if not gpu_ids:
        raise ConfigError(f"gpus_per_trial={gpus_per_trial} but no CUDA GPU is visible")
    if g < 1:
        per_gpu = math.floor(1 / g + 1e-9)
        capacity = len(gpu_ids) * per_gpu
        fraction = g if per_gpu > 1 else None
        plans = [{**base, "cuda_visible_devices": gpu_ids[i % len(gpu_ids)],
                  "memory_fraction": fraction} for i in range(min(workers, capacity))]
    else:
        if not float(g).is_integer():
            raise ConfigError(f"gpus_per_trial above 1 must be a whole number, got {g}")
        n = int(g)
        capacity = len(gpu_ids) // n
        plans = [{**base, "cuda_visible_devices": ",".join(gpu_ids[i * n:(i + 1) * n])}
                 for i in range(min(workers, capacity))]
    if workers > capacity:
        share = 1 / math.ceil(workers / len(gpu_ids))
        raise ConfigError(f"workers={workers} but {len(gpu_ids)} GPU(s) at gpus_per_trial={g:g} "
                          f"hold {capacity} trial(s) at a time; use fewer workers, share GPUs "
                          f"(gpus_per_trial={share:.4g}), or train on CPUs (gpus_per_trial=0)")
    return plans


def check_threads(threads: int | None, workers: int, cores: int) -> None:
    """Raises :class:`ConfigError` when ``threads`` per worker (``None``: the default share)
    times ``workers`` exceeds ``cores``."""
    if threads is not None and threads * workers > cores:
        fit = f"threads_per_worker={cores // workers}" if cores >= workers else \
            f"workers={cores} with threads_per_worker=1"
        raise ConfigError(
            f"threads_per_worker={threads} x workers={workers} is {threads * workers} threads "
            f"on {cores} cores: threads without a core wait on each other (an epoch ran 17x "
            f"slower); use {fit}, or leave threads_per_worker unset (cores // workers)")


def check_recycle_mb(value: Any) -> None:
    """Raises :class:`ConfigError` unless ``value`` is ``None`` or a number of MB > 0."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                              or not math.isfinite(value) or value <= 0):
        raise ConfigError(f"recycle_mb must be a number of MB > 0 or None, got {value!r}")


@register("process")
class ProcessExecutor(Executor):
    """Runs trials in ``workers`` local processes, one trial each at a time.

    The objective is pickled to the workers once (a module-level function, or an object such as
    :class:`~torchnas.ModelSearch`; not a lambda or a local function). Workers start with the
    ``forkserver`` method where there is one (``spawn`` elsewhere): never ``fork``, which is
    unsafe once threads run. Each worker uses ``cores // workers`` torch threads (the cores
    this process may run on: its CPU affinity), so that trials never compete for cores, and,
    when there are GPUs, its own GPU (see :func:`device_plan`); a trainer in a worker takes at
    most its worker's threads (``Trainer(threads=8)`` trains with fewer, saying so in an info
    log). With more workers than cores each has one thread, and a warning says they share
    cores; when other processes keep the cores busy as the search starts, a warning says
    trials will be slower and timings noisy. A worker that dies (a segfault, a kill)
    fails its trial with the signal and a fresh worker takes its place; a trial past
    ``trial_timeout`` has its worker stopped. A worker whose resident memory grew ``recycle_mb``
    above its level after its first trial is replaced by a fresh process between two trials.
    Workers end soon after the driver does, even if it is killed.

    Args:
        workers: how many trials run at once.
        gpus_per_trial: GPUs a trial gets (``None``: 1 when there are GPUs, else 0; a fraction
            shares a GPU).
        threads_per_worker: torch threads of each worker (default ``cores // workers``; more
            than that is refused).
        start_method: ``"forkserver"`` or ``"spawn"`` (default: forkserver where available).
        recycle_mb: MB of growth after which a worker is replaced (``None``: never). No Python
            object of a trial outlives it, but native caches grow with every new architecture
            (oneDNN compiles kernels for each new layer shape on CPU and keeps up to 1024).
    """

    def __init__(self, workers: int = 1, gpus_per_trial: float | None = None,
                 threads_per_worker: int | None = None, start_method: str | None = None,
                 recycle_mb: float | None = 50.0) -> None:
        self.workers = workers
        self.gpus_per_trial = gpus_per_trial
        self.threads_per_worker = threads_per_worker
        self.start_method = start_method
        self.recycle_mb = recycle_mb

    def check(self) -> None:
        """Checks the settings (before any worker starts)."""
        if isinstance(self.workers, bool) or not isinstance(self.workers, int) or self.workers < 1:
            raise ConfigError(f"workers must be an integer >= 1, got {self.workers!r}")
        t = self.threads_per_worker
        if t is not None and (isinstance(t, bool) or not isinstance(t, int) or t < 1):
            raise ConfigError(f"threads_per_worker must be an integer >= 1, got {t!r}")
        check_threads(t, self.workers, _cores())
        g = self.gpus_per_trial
        if g is not None and (isinstance(g, bool) or not isinstance(g, (int, float))
                              or not math.isfinite(g) or g < 0):
            raise ConfigError(f"gpus_per_trial must be a number >= 0 or None, got {g!r}")
        check_recycle_mb(self.recycle_mb)
        methods = multiprocessing.get_all_start_methods()
        if self.start_method is not None and (self.start_method not in methods
                                              or self.start_method == "fork"):
            safe = [m for m in methods if m != "fork"]
            raise ConfigError(f"start_method must be one of {safe}, got {self.start_method!r}")

    def run(self, study: Study, objective: Callable[[Any], Any], plan: Plan) -> None:
        n = _cores()
        setups = device_plan(self.workers, self.gpus_per_trial, _gpu_ids(), n,
                             self.threads_per_worker)
        if len(setups) > n:
            log.warning("workers=%d on %d cores: each worker has 1 thread and they share the "
                        "cores, so trials run slower (and timings are noisy) than with "
                        "workers=%d", len(setups), n, n)
        else:
            warn_if_busy(sum(s["threads"] for s in setups), len(setups))
        try:
            payload = pickle.dumps(objective)
        except Exception as exc:
            raise ConfigError(
                f"executor={self.name!r} sends the objective to worker processes, and it cannot "
                f"be pickled ({type(exc).__name__}: {exc}); define it at module level (not a "
                "lambda or a local function), or use executor='inline'"
            ) from None
        method = self.start_method or (
            "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn")
        backend = _ProcessBackend(method, payload, setups)
        backend.recycle_mb = self.recycle_mb
        Pool(study, plan, backend).run()


class _ProcessHandle(Handle):
    def __init__(self, process: Any, conn: Connection) -> None:
        self.process = process
        self.conn = conn
        self.sentinel = process.sentinel

    def kill(self) -> None:
        self.closed = True
        if self.process.exitcode is None:
            self.process.kill()
        self.process.join(5)
        if self.conn is not None:
            self.conn.close()
        self.conn = self.sentinel = None

    def join(self, timeout: float) -> None:
        self.process.join(timeout)

    def death(self) -> str:
        self.process.join(1)
        code = self.process.exitcode
        if code is None:
            return "it stopped answering"
        if code < 0:
            try:
                return f"killed by signal {signal.Signals(-code).name}"
            except ValueError:
                return f"killed by signal {-code}"
        return f"exit code {code}"


class _ProcessBackend(Backend):
    def __init__(self, method: str, payload: bytes, setups: list[dict[str, Any]]) -> None:
        self.context: Any = multiprocessing.get_context(method)
        if method == "forkserver":  # workers fork from a server that imported torch once
            self.context.set_forkserver_preload(["torchnas.execution._worker"])
        self.payload = payload
        self.setups = setups
        self.workers = len(setups)
        self.driver = owner_token()

    def launch(self, slot: int) -> Handle:
        parent, child = self.context.Pipe()
        process = self.context.Process(
            target=process_main, args=(child, self.payload, self.setups[slot], self.driver),
            name=f"torchnas-worker-{slot}",
        )
        process.start()
        child.close()
        return _ProcessHandle(process, parent)
