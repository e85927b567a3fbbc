"""A study's journal events and the fold that turns them into trial records: the one place
that knows event semantics.

Events are JSON dicts with a ``kind`` (:class:`EventKind`; a ``str`` enum, so stored journals
read back as they were written); build them with the constructors below (:func:`create`,
:func:`finish`, ...), never by hand, and :meth:`TrialLog.apply` folds them, in order.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from typing import Any

from torchnas.space import Domain, domain_from_json
from torchnas.storage._base import Event, Journal
from torchnas.study._trial import FrozenTrial, TrialState, report_step

__all__ = ["EventKind", "TrialLog", "arch", "create", "enqueue", "finish", "interrupt",
           "report", "restart"]


class EventKind(str, enum.Enum):
    """What a journal event records."""

    ENQUEUE = "enqueue"      #: an architecture queued for a coming trial
    CREATE = "create"        #: a new trial numbered, owned by a process, with its budget
    ARCH = "arch"            #: decisions a running trial committed
    REPORT = "report"        #: intermediate metrics at a step
    FINISH = "finish"        #: the trial ended: state, metrics, feasibility, error
    INTERRUPT = "interrupt"  #: a running trial stopped without a result (it runs again first)
    RESTART = "restart"      #: an interrupted trial taken up again by a process


def enqueue(queue_id: str, decisions: Mapping[str, Any]) -> Event:
    """An architecture (whole or partial) queued under ``queue_id``."""
    return {"kind": EventKind.ENQUEUE.value, "id": queue_id, "arch": dict(decisions)}


def create(trial: int, owner: str, budget: float | None, queued: str | None) -> Event:
    """Trial ``trial`` starts in process ``owner`` (taking queued architecture ``queued``)."""
    return {"kind": EventKind.CREATE.value, "trial": trial, "owner": owner, "budget": budget,
            "queued": queued}


def restart(trial: int, owner: str) -> Event:
    """Interrupted trial ``trial`` runs again in process ``owner``."""
    return {"kind": EventKind.RESTART.value, "trial": trial, "owner": owner}


def arch(trial: int, owner: str, decisions: Mapping[str, Any],
         domains: Mapping[str, Any]) -> Event:
    """Decisions (and their domains as JSON) a running trial commits."""
    return {"kind": EventKind.ARCH.value, "trial": trial, "owner": owner,
            "arch": dict(decisions), "domains": dict(domains)}


def report(trial: int, owner: str, step: int | float, metrics: Mapping[str, float]) -> Event:
    """Intermediate ``metrics`` of a running trial at ``step``."""
    return {"kind": EventKind.REPORT.value, "trial": trial, "step": step,
            "metrics": dict(metrics), "owner": owner}


def finish(trial: int, state: TrialState, metrics: Mapping[str, float], feasible: bool | None,
           error: str | None, owner: str | None = None,
           committed: Mapping[str, Any] | None = None) -> Event:
    """Trial ``trial`` ended in ``state``; ``committed``: its last decisions (``arch`` and
    ``domains``) when the running process finishes it (``owner``: that process)."""
    event: Event = {"kind": EventKind.FINISH.value, "trial": trial, "state": state.value,
                    "metrics": dict(metrics), "feasible": feasible, "error": error}
    if committed is not None:
        event.update(committed)
    if owner is not None:
        event["owner"] = owner
    return event


def interrupt(trial: int, reason: str) -> Event:
    """Running trial ``trial`` stopped without a result, for ``reason``."""
    return {"kind": EventKind.INTERRUPT.value, "trial": trial, "reason": reason}


class TrialLog:
    """The trials of one study, kept up to date by reading only new events.

    ``sync()`` costs O(new events), so a long study does not slow down per trial.
    """

    def __init__(self, journal: Journal, study_id: int) -> None:
        self.journal = journal
        self.study_id = study_id
        self.cursor = 0
        self.trials: dict[int, FrozenTrial] = {}
        # numbers by state, kept so that asking stays O(1) however long the study
        self.running: dict[int, None] = {}
        self.interrupted: dict[int, None] = {}
        self.finished_keys: dict[str, int] = {}  # architecture key -> first finished trial
        self.queue: dict[str, dict[str, Any]] = {}  # enqueued architectures not yet started
        self.next_number = 0  # past every trial (a repaired journal may have lost some)
        self._domain_cache: dict[str, Domain] = {}

    def _domains(self, data: dict[str, Any]) -> dict[str, Domain]:
        out = {}
        for label, spec in data.items():
            key = repr(sorted(spec.items()))
            dom = self._domain_cache.get(key)
            if dom is None:
                dom = self._domain_cache[key] = domain_from_json(spec)
            out[label] = dom
        return out

    def sync(self) -> list[FrozenTrial]:
        """Reads new events; returns the trials that became finished, in journal order."""
        finished: list[FrozenTrial] = []
        for seq, event in self.journal.read(self.study_id, self.cursor):
            self.cursor = seq
            trial = self.apply(event)
            if (trial is not None and trial.state.finished
                    and event["kind"] == EventKind.FINISH.value):
                finished.append(trial)
        return finished

    def apply(self, event: Event) -> FrozenTrial | None:
        """Applies one event; returns the trial it changed (``None`` if it was ignored)."""
        try:
            kind = EventKind(event["kind"])
        except ValueError:
            return None  # unknown kinds from newer versions are skipped
        n, t = int(event.get("trial", -1)), event.get("time")
        if kind is EventKind.ENQUEUE:
            self.queue[str(event["id"])] = dict(event["arch"])
            return None
        if kind is EventKind.CREATE:
            self.queue.pop(str(event.get("queued")), None)
            trial = FrozenTrial(
                number=n, arch=dict(event.get("arch", {})), start=t,
                domains=self._domains(event.get("domains", {})), owner=event.get("owner", ""),
                budget=event.get("budget"),
            )
            self._store(trial)
            return trial
        old = self.trials.get(n)
        if old is None or old.state.finished:
            return None  # a late event for a trial another process already closed
        owned = (EventKind.ARCH, EventKind.REPORT, EventKind.FINISH)
        if kind in owned and event.get("owner", old.owner) != old.owner:
            return None  # from an attempt declared dead; the trial was restarted elsewhere
        changes: dict[str, Any]
        if kind is EventKind.ARCH:
            changes = {"arch": {**old.arch, **event["arch"]},
                       "domains": {**old.domains, **self._domains(event.get("domains", {}))}}
        elif kind is EventKind.REPORT:
            step = (report_step(event["step"]), dict(event["metrics"]))
            changes = {"intermediate": (*old.intermediate, step)}
        elif kind is EventKind.FINISH:
            changes = {
                "state": TrialState(event["state"]), "metrics": dict(event.get("metrics", {})),
                "feasible": event.get("feasible"), "error": event.get("error"), "end": t,
            }
            if "arch" in event:
                changes["arch"] = {**old.arch, **event["arch"]}
                changes["domains"] = {**old.domains, **self._domains(event.get("domains", {}))}
        elif kind is EventKind.INTERRUPT:
            if old.state is not TrialState.RUNNING:
                return None
            changes = {"state": TrialState.INTERRUPTED, "error": event.get("reason"), "end": t}
        elif kind is EventKind.RESTART:
            if old.state is not TrialState.INTERRUPTED:
                return None
            changes = {
                "state": TrialState.RUNNING, "attempts": old.attempts + 1, "start": t, "end": None,
                "owner": event.get("owner", ""), "intermediate": (),
            }
        else:  # pragma: no cover - every EventKind is handled above
            return None
        trial = dataclasses.replace(old, **changes)
        self._store(trial)
        return trial

    def _store(self, trial: FrozenTrial) -> None:
        n = trial.number
        self.trials[n] = trial
        self.next_number = max(self.next_number, n + 1)
        self.running.pop(n, None)
        self.interrupted.pop(n, None)
        if trial.state is TrialState.RUNNING:
            self.running[n] = None
        elif trial.state is TrialState.INTERRUPTED:
            self.interrupted[n] = None
        elif trial.state.finished and trial.arch:
            self.finished_keys.setdefault(trial.key, n)
