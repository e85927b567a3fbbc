"""The driver's loop over a pool of workers (local processes or Ray tasks).

The driver owns storage and the strategy. It waits on every worker's connection and on what
tells it a worker is gone (``multiprocessing.connection.wait``), answers each request of a
running trial (a decision, a report, a commit), asks new trials as soon as a worker is free
while others run (asynchronous search: strategies see running trials in ``ctx.pending``), stops
a trial that runs past its timeout by stopping its worker, records a trial whose worker died
as FAILED with the reason before a fresh worker takes its place, and replaces a worker whose
resident memory keeps growing (native caches) by a fresh one between two trials.
"""

from __future__ import annotations

import contextlib
import logging
import time
from abc import ABC, abstractmethod
from multiprocessing.connection import Connection, wait
from typing import TYPE_CHECKING, Any

from torchnas._util.errors import TrialPruned
from torchnas.execution._base import Plan, Tally, conclude
from torchnas.execution._protocol import ExecutorError, Outcome, recv, send
from torchnas.space import domain_from_json

if TYPE_CHECKING:
    from torchnas.study import Study, Trial

__all__ = ["Backend", "Handle", "Pool", "Session"]

log = logging.getLogger("torchnas")

#: A slot whose workers die this many times in a row before taking a trial fails the search.
STARTUP_FAILURES = 3


class Handle(ABC):
    """One worker as the driver sees it: a connection once it is up, and what shows its end."""

    conn: Connection | None = None
    sentinel: Any = None  # a waitable ready once the worker is gone (None: poll the backend)
    closed: bool = False  # set by kill(): the driver is done with this worker

    @abstractmethod
    def kill(self) -> None:
        """Stops the worker now (its trial, if any, is abandoned)."""

    @abstractmethod
    def death(self) -> str:
        """Why the worker ended (``"killed by signal SIGSEGV"``, ``"exit code 1"``, ...)."""

    def request_stop(self) -> None:
        """Asks the worker to end after its trial (it is idle when this is called)."""
        if self.conn is not None:
            with contextlib.suppress(OSError):
                send(self.conn, {"op": "stop"})

    def join(self, timeout: float) -> None:  # noqa: B027 - optional
        """Waits up to ``timeout`` seconds for the worker to end (then it is killed)."""


class Backend(ABC):
    """Starts workers somewhere: local processes, Ray tasks."""

    workers: int = 1
    poll_interval: float = 1.0
    recycle_mb: float | None = None  # see Pool._recycle

    def open(self) -> None:  # noqa: B027 - optional
        """Gets ready to launch workers (before the first launch)."""

    @abstractmethod
    def launch(self, slot: int) -> Handle:
        """Starts the worker of ``slot``; it says ``ready`` once it can take trials."""

    def waitables(self) -> list[Any]:
        """Further things to wait on (a listening socket)."""
        return []

    def accept(self, ready: Any) -> None:  # noqa: B027 - optional
        """Handles a ready object of :meth:`waitables` (a worker connecting)."""

    def poll(self) -> list[Handle]:
        """Workers found gone by other means than their sentinel (checked periodically)."""
        return []

    def close(self) -> None:  # noqa: B027 - optional
        """Releases what :meth:`open` took."""


class Session:
    """The driver's side of one trial running in a worker: it answers the worker's requests
    with the study's :class:`~torchnas.Trial` (its ``hp`` records every decision here)."""

    def __init__(self, study: Study, trial: Trial, timeout: float | None) -> None:
        self.study = study
        self.trial = trial
        self.deadline = None if timeout is None else time.monotonic() + timeout

    def start(self) -> dict[str, Any]:
        return {"op": "trial", "number": self.trial.number, "budget": self.trial.budget,
                "first": next(iter(self.study.objectives))}

    def answer(self, message: dict[str, Any]) -> dict[str, Any] | None:
        """The reply to a request (``None`` for requests that need none)."""
        op, trial = message["op"], self.trial
        if op == "commit":
            trial.commit()
            return None
        try:
            if op == "decide":
                trial.refresh_pending()
                domain = domain_from_json(message["domain"])
                return {"value": trial.hp.decide(str(message["label"]), domain)}
            if op == "report":
                try:
                    trial.report(message["step"], message["metrics"])
                except TrialPruned as exc:
                    return {"value": str(exc) or "pruned"}
                return {"value": None}
            if op == "should_prune":
                return {"value": trial.should_prune()}
            if op == "duplicate_of":
                return {"value": trial.duplicate_of()}
            if op == "redraw":
                trial.redraw(bool(message.get("uniform", False)))
                return {"value": None}
        except Exception as exc:  # raised in the objective, as it would be inline
            return {"error": [type(exc).__name__, str(exc)]}
        raise ExecutorError(f"unknown request {op!r} from a worker")


class _Slot:
    def __init__(self, index: int, handle: Handle) -> None:
        self.index = index
        self.handle = handle
        self.ready = False
        self.session: Session | None = None
        self.startup_failures = 0
        self.baseline_mb: float | None = None  # the worker's memory after its first trial


class Pool:
    """Runs a study's trials on ``backend``'s workers until ``plan`` says stop."""

    def __init__(self, study: Study, plan: Plan, backend: Backend) -> None:
        self.study = study
        self.plan = plan
        self.backend = backend
        self.tally = Tally(study, plan)
        self.slots: list[_Slot] = []
        self.last_poll = time.monotonic()

    def run(self) -> None:
        if not self.tally.may_start(0):
            return  # nothing to do: no worker is started
        self.backend.open()
        try:
            self.slots = [_Slot(i, self.backend.launch(i)) for i in range(self.backend.workers)]
            while True:
                self._start_trials()
                if not self._busy() and not self.tally.may_start(0):
                    break
                self._wait()
        except BaseException as exc:
            reason = ("interrupted" if isinstance(exc, KeyboardInterrupt)
                      else f"the search stopped ({type(exc).__name__})")
            for slot in self._busy():
                assert slot.session is not None
                slot.handle.kill()
                try:  # it runs again first when the search resumes
                    self.study.interrupt(slot.session.trial.number, reason)
                except Exception:  # the storage itself may be what failed
                    log.exception("could not mark trial %d interrupted",
                                  slot.session.trial.number)
                slot.session = None
            raise
        finally:
            self._shutdown()

    # -- starting trials ------------------------------------------------------------------------
    def _busy(self) -> list[_Slot]:
        return [s for s in self.slots if s.session is not None]

    def _start_trials(self) -> None:
        for slot in self.slots:
            if not slot.ready or slot.session is not None:
                continue
            running = len(self._busy())
            if not self.tally.may_start(running):
                return
            if running and self.study.strategy.saturated(self.study.pending()):
                return  # every proposal left would repeat a running trial: wait for one
            session = Session(self.study, self.study.ask(), self.plan.trial_timeout)
            assert slot.handle.conn is not None
            try:
                send(slot.handle.conn, session.start())
            except OSError:  # the worker just died; the trial never started: it runs next
                self.study.interrupt(session.trial.number, "its worker died before it started")
                self._lost(slot, slot.handle)
                continue
            slot.session = session

    # -- waiting --------------------------------------------------------------------------------
    def _wait(self) -> None:
        watched: dict[Any, tuple[_Slot, Handle, str]] = {}
        for slot in self.slots:
            if slot.handle.conn is not None:
                watched[slot.handle.conn] = (slot, slot.handle, "conn")
            if slot.handle.sentinel is not None:
                watched[slot.handle.sentinel] = (slot, slot.handle, "sentinel")
        extra = self.backend.waitables()
        ready = wait([*watched, *extra], timeout=self._wait_time())
        for obj in ready:
            if not any(obj is e for e in extra):
                continue
            self.backend.accept(obj)
        for kind in ("conn", "sentinel"):  # messages first: a worker may answer, then end
            for obj in ready:
                if obj not in watched or watched[obj][2] != kind:
                    continue
                slot, handle, _ = watched[obj]
                if slot.handle is not handle:
                    continue  # that worker was already replaced in this round
                self._drain(slot)
                if kind == "sentinel":
                    self._lost(slot, handle)
        now = time.monotonic()
        if now - self.last_poll < self.backend.poll_interval:
            self._enforce_timeouts()
            return
        self.last_poll = now
        for handle in self.backend.poll():
            owner = next((s for s in self.slots if s.handle is handle), None)
            if owner is not None:
                self._drain(owner)
                self._lost(owner, handle)
        self._enforce_timeouts()

    def _wait_time(self) -> float:
        now = time.monotonic()
        limits = [self.backend.poll_interval]
        limits += [s.session.deadline - now for s in self.slots
                   if s.session is not None and s.session.deadline is not None]
        if self.tally.deadline is not None and self.tally.deadline > now:
            limits.append(self.tally.deadline - now)  # then no new trial may start
        return max(0.0, min(limits))

    def _drain(self, slot: _Slot) -> None:
        handle = slot.handle
        while handle.conn is not None and slot.handle is handle:
            try:
                if not handle.conn.poll():
                    return
                message = recv(handle.conn)
            except (OSError, EOFError, ValueError):
                self._lost(slot, handle)
                return
            self._dispatch(slot, message)

    def _dispatch(self, slot: _Slot, message: dict[str, Any]) -> None:
        op = message.get("op")
        if op == "ready":
            slot.ready = True
            slot.startup_failures = 0
        elif op == "fatal":
            raise ExecutorError(str(message.get("error")))
        elif slot.session is None:
            return  # a late message of a trial already recorded
        elif op == "done":
            self._finish(slot, message["outcome"])
            self._recycle(slot, message.get("rss_mb"))
        else:
            reply = slot.session.answer(message)
            if reply is not None and slot.handle.conn is not None:
                try:
                    send(slot.handle.conn, reply)
                except OSError:
                    self._lost(slot, slot.handle)

    def _finish(self, slot: _Slot, outcome: Outcome) -> None:
        session, slot.session = slot.session, None
        assert session is not None
        self.tally.finished(conclude(self.study, session.trial, outcome, self.plan.retries))

    # -- workers that die or run too long --------------------------------------------------------
    def _lost(self, slot: _Slot, handle: Handle, why: str | None = None) -> None:
        """The worker of ``slot`` is gone (or stopped by us): record its trial, start another."""
        if slot.handle is not handle or handle.closed:
            return
        reason = why or f"its worker process died ({handle.death()})"
        handle.kill()
        slot.baseline_mb = None
        was_ready, slot.ready = slot.ready, False
        if slot.session is not None:
            self._finish(slot, {"kind": "lost", "error": reason})
        elif not was_ready:
            slot.startup_failures += 1
            if slot.startup_failures >= STARTUP_FAILURES:
                raise ExecutorError(f"worker processes die as they start: {reason}")
        if self.tally.may_start(len(self._busy())):
            slot.handle = self.backend.launch(slot.index)

    def _recycle(self, slot: _Slot, rss: Any) -> None:
        """Replaces the (now idle) worker of ``slot`` by a fresh process once its resident
        memory is ``backend.recycle_mb`` above what it was after its first trial. Memory that
        no Python object holds grows with every new architecture in some native libraries
        (oneDNN keeps compiled kernels for every layer shape it met, up to 1024 of them); a
        fresh worker starts from nothing."""
        limit = self.backend.recycle_mb
        if limit is None or isinstance(rss, bool) or not isinstance(rss, (int, float)):
            return
        if slot.baseline_mb is None:
            slot.baseline_mb = float(rss)
            return
        if rss - slot.baseline_mb <= limit:
            return
        log.info("worker %d grew from %.0f to %.0f MB: a fresh process replaces it",
                 slot.index, slot.baseline_mb, rss)
        # killed, not asked to stop: it is idle (nothing is lost), and Ray would give the
        # process of a task that returned, grown memory and all, to the next task
        slot.handle.kill()
        slot.ready, slot.baseline_mb = False, None
        if self.tally.may_start(len(self._busy())):
            slot.handle = self.backend.launch(slot.index)

    def _enforce_timeouts(self) -> None:
        now = time.monotonic()
        for slot in self.slots:
            session = slot.session
            if session is not None and session.deadline is not None and now >= session.deadline:
                limit = self.plan.trial_timeout
                self._lost(slot, slot.handle,
                           f"timeout after {limit:g}s (its worker process was stopped)")

    def _shutdown(self) -> None:
        for slot in self.slots:
            if slot.session is None:
                slot.handle.request_stop()
        deadline = time.monotonic() + 5.0
        for slot in self.slots:
            slot.handle.join(max(0.0, deadline - time.monotonic()))
            slot.handle.kill()
        self.slots = []
        self.backend.close()
