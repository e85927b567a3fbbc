"""A worker: runs trials for a driver and asks it for every decision.

Spaces are define-by-run: decisions are made while the objective runs here, so the worker's
``hp`` source asks the driver for each label it meets (the driver's strategy decides and
records it). ``hp.trial`` is a :class:`RemoteTrial`: reports, commits and de-duplication go to
the driver too. A worker never touches storage.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Mapping
from multiprocessing.connection import Client, Connection
from typing import Any

from torchnas._util.errors import SpaceError, TrialPruned
from torchnas.execution._protocol import RemoteError, evaluate, recv, send
from torchnas.execution._threads import WORKER_THREADS
from torchnas.space import HP, Domain
from torchnas.study._process import owner_alive
from torchnas.study._trial import report_step

__all__ = ["RemoteTrial", "process_main", "ray_main", "serve"]


class DriverGone(BaseException):
    """The driver closed the connection: the worker stops (not an error of the trial)."""


class Link:
    """Requests to the driver over a connection (one at a time: the driver answers in order)."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def send(self, op: str, **fields: Any) -> None:
        try:
            send(self.conn, {"op": op, **fields})
        except (OSError, EOFError):
            raise DriverGone from None

    def call(self, op: str, **fields: Any) -> Any:
        self.send(op, **fields)
        try:
            reply = recv(self.conn)
        except (OSError, EOFError):
            raise DriverGone from None
        if "error" in reply:
            type_name, message = reply["error"]
            if type_name == "SpaceError":
                raise SpaceError(message)
            raise RemoteError(type_name, message)
        return reply.get("value")


class RemoteSource:
    """The values of a worker's decisions: each one is the driver's."""

    def __init__(self, link: Link) -> None:
        self.link = link

    def value(self, label: str, domain: Domain, met: Mapping[str, Any]) -> Any:
        return self.link.call("decide", label=label, domain=domain.to_json())


class RemoteTrial:
    """``hp.trial`` inside a worker: a :class:`~torchnas.space.TrialHandle` whose calls the
    driver answers (with the study's :class:`~torchnas.Trial`). There is no ``study`` here."""

    def __init__(self, link: Link, number: int, budget: float | None) -> None:
        self._link = link
        self.number = number
        self.budget = budget
        self.last_metrics: dict[str, float] = {}
        self.hp = self._new_hp()

    def _new_hp(self) -> HP:
        return HP(RemoteSource(self._link), trial=self)

    @property
    def arch(self) -> dict[str, Any]:
        """Decisions met so far."""
        return self.hp.arch

    def report(self, step: float, metrics: Mapping[str, float]) -> None:
        """Records intermediate metrics; raises :class:`TrialPruned` when the driver's
        scheduler says stop."""
        clean = {str(k): float(v) for k, v in metrics.items()}
        self.last_metrics = clean
        reason = self._link.call("report", step=report_step(step), metrics=clean)
        if reason is not None:
            raise TrialPruned(reason)

    def commit(self) -> None:
        """Makes the decisions so far durable (the driver writes them)."""
        self._link.send("commit")

    def should_prune(self) -> bool:
        """Whether the scheduler wants this trial stopped."""
        return bool(self._link.call("should_prune"))

    def duplicate_of(self) -> int | None:
        """Another trial (finished or running) with this same architecture, if any."""
        found = self._link.call("duplicate_of")
        return None if found is None else int(found)

    def redraw(self, uniform: bool = False) -> HP:
        """Draws the decisions again (see :meth:`torchnas.Trial.redraw`); returns the new ``hp``."""
        self._link.call("redraw", uniform=bool(uniform))
        self.hp = self._new_hp()
        return self.hp


def serve(conn: Connection, objective: Callable[[Any], Any]) -> None:
    """Runs the trials the driver sends until it says stop or goes away."""
    link = Link(conn)
    link.send("ready", pid=os.getpid())
    while True:
        try:
            message = recv(conn)
        except (OSError, EOFError):
            return
        if message.get("op") == "exit":  # retired for its memory: the process goes too
            conn.close()
            os._exit(0)
        if message.get("op") != "trial":
            return
        trial = RemoteTrial(link, int(message["number"]), message.get("budget"))
        outcome = evaluate(objective, trial.hp, str(message["first"]))
        del trial
        link.send("done", outcome=outcome, rss_mb=resident_mb())


def resident_mb() -> float | None:
    """This process's resident memory in MB (``None`` where ``/proc`` is missing)."""
    try:
        with open("/proc/self/statm") as fh:
            pages = int(fh.read().split()[1])
    except (OSError, IndexError, ValueError):
        return None
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def _setup(setup: Mapping[str, Any]) -> None:
    """Devices and threads of this worker, before anything touches CUDA. The threads are also
    recorded in :data:`~torchnas.execution._threads.WORKER_THREADS`: a trainer takes no more."""
    if setup.get("cuda_visible_devices") is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = str(setup["cuda_visible_devices"])
    import torch

    threads = int(setup.get("threads", 1))
    os.environ[WORKER_THREADS] = str(threads)
    torch.set_num_threads(threads)
    fraction = setup.get("memory_fraction")
    if fraction is not None and torch.cuda.is_available():
        torch.cuda.set_per_process_memory_fraction(float(fraction))


def _watch(driver: str, interval: float = 0.5) -> None:
    """Ends this process soon after the driver is gone (even mid-trial: ``kill -9`` of the
    driver leaves no worker behind)."""

    def loop() -> None:
        while True:
            time.sleep(interval)
            if owner_alive(driver) is False:
                os._exit(70)

    threading.Thread(target=loop, name="torchnas-watchdog", daemon=True).start()


def process_main(conn: Connection, payload: bytes, setup: dict[str, Any], driver: str) -> None:
    """Entry point of a local worker process (``multiprocessing``)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the driver's to handle
    _watch(driver)
    step = "set up its threads and devices"
    try:
        _setup(setup)
        step = "load the objective"
        # pickled by our own driver, for this process (module-level functions are references)
        objective = pickle.loads(payload)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            send(conn, {"op": "fatal", "error": f"a worker process cannot {step}: "
                                                f"{type(exc).__name__}: {exc}"})
        sys.exit(3)
    with contextlib.suppress(DriverGone):
        serve(conn, objective)


def ray_main(address: tuple[str, int], authkey: bytes, slot: int, token: str,
             objective: Callable[[Any], Any], threads: int) -> None:
    """Entry point of a worker running as a Ray task: connects back to the driver."""
    try:
        conn = Client((str(address[0]), int(address[1])), authkey=authkey)
    except (OSError, EOFError):
        return  # the driver is gone already (its search ended while this task started)
    with socket.socket(fileno=os.dup(conn.fileno())) as view:  # requests are small: no Nagle
        view.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        send(conn, {"op": "hello", "slot": slot, "token": token})
        _setup({"threads": threads})
        serve(conn, objective)
    except DriverGone:
        pass
    finally:
        conn.close()
