"""The Ray executor: trials as Ray tasks on a cluster (or a local Ray), the driver owning storage.

Each worker is a long-running Ray task holding ``cpus_per_trial`` CPUs and ``gpus_per_trial``
GPUs as Ray resources. It connects back to the driver over an authenticated socket (a random
key travels with the task) and speaks the same JSON requests as a local worker process, so the
driver's loop is the same for both.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import re
import secrets
import socket
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from torchnas._util.errors import ConfigError
from torchnas.execution import _reaper
from torchnas.execution._base import Executor, Plan, register
from torchnas.execution._gate import Gate
from torchnas.execution._pool import Backend, Handle, Pool
from torchnas.execution._process import check_recycle_mb
from torchnas.execution._protocol import send
from torchnas.execution._threads import cores, warn_if_busy
from torchnas.execution._worker import ray_main

if TYPE_CHECKING:
    from torchnas.study import Study

__all__ = ["RayExecutor"]

#: Seconds a retired Ray worker has to end itself before its task is cancelled by force.
EXIT_GRACE = 2.0

log = logging.getLogger("torchnas")

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def import_ray() -> Any:
    """The ``ray`` module, or a :class:`ConfigError` saying how to install it."""
    try:
        import ray
    except ImportError as exc:
        raise ConfigError(
            f"executor='ray' needs Ray: pip install 'torchnas[ray]' ({exc})"
        ) from None
    return ray


@contextlib.contextmanager
def _loopback_only(ray: Any) -> Iterator[None]:
    """While a local Ray starts: every Ray process binds to 127.0.0.1, not to the network.

    Ray replaces a loopback node address by the machine's network address unless clusters are
    disabled (``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``, read by Ray's processes and, as a module
    constant, by this one).
    """
    var = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
    constants = getattr(getattr(ray, "_private", None), "ray_constants", None)
    old_env, old_flag = os.environ.get(var), getattr(constants, "ENABLE_RAY_CLUSTER", None)
    os.environ[var] = "0"
    if old_flag is not None:
        constants.ENABLE_RAY_CLUSTER = False  # type: ignore[union-attr]
    try:
        yield
    finally:
        if old_env is None:
            os.environ.pop(var, None)
        else:
            os.environ[var] = old_env
        if old_flag is not None:
            constants.ENABLE_RAY_CLUSTER = old_flag  # type: ignore[union-attr]


def start_local_ray(num_cpus: int | None = None, **kwargs: Any) -> None:
    """Starts a local Ray bound to 127.0.0.1, without its dashboard (what
    :class:`RayExecutor` does when Ray is not running and no address is given); its CPUs are
    the cores this process may run on (its affinity) unless ``num_cpus`` says otherwise."""
    ray = import_ray()
    kwargs.setdefault("include_dashboard", False)
    kwargs.setdefault("_node_ip_address", "127.0.0.1")
    kwargs.setdefault("num_cpus", num_cpus if num_cpus is not None else cores())
    with _loopback_only(ray), _reaper.watched(ray, kwargs):
        ray.init(**kwargs)


@register("ray")
class RayExecutor(Executor):
    """Runs trials as Ray tasks: on the running Ray, on the cluster at ``address``, or on a
    local Ray it starts (bound to 127.0.0.1, no dashboard) and stops at the end.

    Workers connect back to the driver: it listens on ``listen`` (127.0.0.1 by default, so on a
    local Ray only). For workers on other machines, set ``listen=("0.0.0.0", port)`` or the
    driver's address; connections must prove the random per-search key, and all messages are
    JSON (nothing is unpickled). The objective travels with Ray's own serialization.

    Args:
        workers: trials at once (``None``: the cluster's CPUs // ``cpus_per_trial``).
        address: a Ray cluster's address (``"auto"``, ``"ray://host:10001"``) or ``None``.
        cpus_per_trial: Ray CPUs a trial holds (its torch threads too, at least 1; a trainer
            in the trial takes no more).
        gpus_per_trial: Ray GPUs a trial holds (fractions share a GPU).
        listen: ``(host, port)`` the driver listens on for its workers (port 0: any free one).
        init_kwargs: further arguments of ``ray.init``.
        recycle_mb: MB of memory growth after which a worker task is replaced by a fresh one
            between two trials (``None``: never; see :class:`ProcessExecutor`).
    """

    def __init__(self, workers: int | None = 1, address: str | None = None,
                 cpus_per_trial: float = 1.0, gpus_per_trial: float = 0.0,
                 listen: tuple[str, int] | list[Any] = ("127.0.0.1", 0),
                 init_kwargs: dict[str, Any] | None = None,
                 recycle_mb: float | None = 50.0) -> None:
        self.workers = workers  # type: ignore[assignment]
        self.address = address
        self.cpus_per_trial = cpus_per_trial
        self.gpus_per_trial = gpus_per_trial
        self.listen = listen
        self.init_kwargs = init_kwargs
        self.recycle_mb = recycle_mb

    def check(self) -> None:
        """Checks the settings (before Ray is touched)."""
        w = self.workers
        if w is not None and (isinstance(w, bool) or not isinstance(w, int) or w < 1):
            raise ConfigError(f"workers must be an integer >= 1 or None, got {w!r}")
        for name, low in (("cpus_per_trial", 0.0), ("gpus_per_trial", 0.0)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) \
                    or v < low:
                raise ConfigError(f"{name} must be a number >= 0, got {v!r}")
        if not (isinstance(self.listen, (tuple, list)) and len(self.listen) == 2
                and isinstance(self.listen[0], str) and isinstance(self.listen[1], int)):
            raise ConfigError(f"listen must be (host, port), got {self.listen!r}")
        check_recycle_mb(self.recycle_mb)

    def run(self, study: Study, objective: Callable[[Any], Any], plan: Plan) -> None:
        ray = import_ray()
        started = False
        if not ray.is_initialized():
            if self.address is None:
                start_local_ray(**(self.init_kwargs or {}))
            else:
                try:
                    ray.init(address=self.address, **(self.init_kwargs or {}))
                except ConnectionError as exc:  # before any trial: nothing is lost
                    raise ConfigError(f"executor 'ray': no Ray cluster reachable at address "
                                      f"{self.address!r} ({exc})") from exc
            started = True
        try:
            workers = self.workers
            if workers is None:
                cpus = ray.cluster_resources().get("CPU", 1)
                workers = max(1, int(cpus // self.cpus_per_trial)) if self.cpus_per_trial else 1
            if started and self.address is None:  # a Ray of this machine's cores
                warn_if_busy(workers * max(1, int(self.cpus_per_trial)), workers)
            backend = _RayBackend(ray, objective, workers, self.cpus_per_trial,
                                  self.gpus_per_trial, (self.listen[0], self.listen[1]))
            backend.recycle_mb = self.recycle_mb
            Pool(study, plan, backend).run()
        finally:
            if started:
                ray.shutdown()
                _reaper.stop()  # the watchdog of a local Ray ends what is left of it


class _RayHandle(Handle):
    def __init__(self, ray: Any, ref: Any, token: str) -> None:
        self.ray = ray
        self.ref = ref
        self.token = token

    def kill(self) -> None:
        self.closed = True
        asked = False
        if self.conn is not None:
            # an idle worker ends its own process: a task that returned, or one that
            # ray.cancel(force=True) reaches too late, would hand its process (grown memory
            # and all) to the next task; a busy one is cancelled by force
            with contextlib.suppress(OSError, ValueError):
                send(self.conn, {"op": "exit"})
                asked = True
            self.conn.close()
            self.conn = None
        with contextlib.suppress(Exception):
            # a force-cancel that races the exit of a worker ending itself trips a check in
            # Ray's task manager, which aborts the driver ("Tried to complete task that was
            # not pending"): cancel only a task still running after a moment
            if asked and self.ray.wait([self.ref], timeout=EXIT_GRACE)[0]:
                return
            self.ray.cancel(self.ref, force=True)

    def join(self, timeout: float) -> None:
        with contextlib.suppress(Exception):
            self.ray.wait([self.ref], timeout=timeout)

    def death(self) -> str:
        try:
            ready, _ = self.ray.wait([self.ref], timeout=1.0)
            if not ready:
                return "its connection closed"
            self.ray.get(self.ref)
        except Exception as exc:  # the last line of Ray's report names the cause
            lines = [ln.strip() for ln in re.sub(r"\x1b\[[0-9;]*m", "", str(exc)).splitlines()]
            lines = [ln for ln in lines if ln]
            return lines[-1] if lines else type(exc).__name__
        return "it ended"


class _RayBackend(Backend):
    poll_interval = 0.5

    def __init__(self, ray: Any, objective: Callable[[Any], Any], workers: int, cpus: float,
                 gpus: float, listen: tuple[str, int]) -> None:
        self.ray = ray
        self.objective = objective
        self.workers = workers
        self.cpus = cpus
        self.gpus = gpus
        self.listen = listen
        self.handles: dict[int, _RayHandle] = {}

    def open(self) -> None:
        host, port = self.listen
        self.sock = socket.create_server((host, port))
        bound = self.sock.getsockname()[1]
        reach = (self.ray.util.get_node_ip_address() if host in ("0.0.0.0", "", "::")
                 else host)
        self.address = (reach, bound)
        self.key = secrets.token_bytes(32)
        self.objective_ref = self.ray.put(self.objective)
        self.task = self.ray.remote(ray_main)
        # connecting workers are authenticated off the main loop: a peer that sends nothing
        # cannot delay the running trials
        self.gate = Gate(self.sock, self.key)
        self.gate.start()
        log.info("ray executor: workers connect to %s:%d", *self.address)

    def launch(self, slot: int) -> Handle:
        token = secrets.token_hex(8)
        threads = max(1, int(self.cpus))
        ref = self.task.options(num_cpus=self.cpus, num_gpus=self.gpus, max_retries=0).remote(
            self.address, self.key, slot, token, self.objective_ref, threads)
        handle = self.handles[slot] = _RayHandle(self.ray, ref, token)
        return handle

    def waitables(self) -> list[Any]:
        return [self.gate.ready]

    def accept(self, ready: Any) -> None:
        for conn, hello in self.gate.take():  # authenticated already, by the gate's threads
            try:
                handle = self.handles.get(int(hello.get("slot", -1)))
            except (TypeError, ValueError):
                handle = None
            if hello.get("op") != "hello" or handle is None \
                    or handle.token != hello.get("token") or handle.conn is not None:
                conn.close()
                continue
            handle.conn = conn

    def poll(self) -> list[Handle]:
        live = [h for h in self.handles.values() if not h.closed]
        if not live:
            return []
        ready, _ = self.ray.wait([h.ref for h in live], num_returns=len(live), timeout=0)
        ended = set(ready)
        return [h for h in live if h.ref in ended]

    def close(self) -> None:
        self.gate.close()  # and the listening socket
        self.handles.clear()
