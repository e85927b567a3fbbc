"""Folding a study's journal into trial records (the one place that knows event semantics)."""

from __future__ import annotations

import dataclasses
from typing import Any

from torchnas.space import Domain, domain_from_json
from torchnas.storage._base import Event, Journal
from torchnas.study._trial import FrozenTrial, TrialState, report_step

__all__ = ["TrialLog"]


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
            if trial is not None and trial.state.finished and event["kind"] == "finish":
                finished.append(trial)
        return finished

    def apply(self, event: Event) -> FrozenTrial | None:
        """Applies one event; returns the trial it changed (``None`` if it was ignored)."""
        kind, n, t = event["kind"], int(event.get("trial", -1)), event.get("time")
        if kind == "enqueue":
            self.queue[str(event["id"])] = dict(event["arch"])
            return None
        if kind == "create":
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
        if kind in ("arch", "report", "finish") and event.get("owner", old.owner) != old.owner:
            return None  # from an attempt declared dead; the trial was restarted elsewhere
        changes: dict[str, Any]
        if kind == "arch":
            changes = {"arch": {**old.arch, **event["arch"]},
                       "domains": {**old.domains, **self._domains(event.get("domains", {}))}}
        elif kind == "report":
            step = (report_step(event["step"]), dict(event["metrics"]))
            changes = {"intermediate": (*old.intermediate, step)}
        elif kind == "finish":
            changes = {
                "state": TrialState(event["state"]), "metrics": dict(event.get("metrics", {})),
                "feasible": event.get("feasible"), "error": event.get("error"), "end": t,
            }
            if "arch" in event:
                changes["arch"] = {**old.arch, **event["arch"]}
                changes["domains"] = {**old.domains, **self._domains(event.get("domains", {}))}
        elif kind == "interrupt":
            if old.state is not TrialState.RUNNING:
                return None
            changes = {"state": TrialState.INTERRUPTED, "error": event.get("reason"), "end": t}
        elif kind == "restart":
            if old.state is not TrialState.INTERRUPTED:
                return None
            changes = {
                "state": TrialState.RUNNING, "attempts": old.attempts + 1, "start": t, "end": None,
                "owner": event.get("owner", ""), "intermediate": (),
            }
        else:
            return None  # unknown kinds from newer versions are skipped
        trial = dataclasses.replace(old, **changes)
        self._store(trial)
        return trial

    def _store(self, trial: FrozenTrial) -> None:
        n = trial.number
        self.trials[n] = trial
        self.running.pop(n, None)
        self.interrupted.pop(n, None)
        if trial.state is TrialState.RUNNING:
            self.running[n] = None
        elif trial.state is TrialState.INTERRUPTED:
            self.interrupted[n] = None
        elif trial.state.finished and trial.arch:
            self.finished_keys.setdefault(trial.key, n)
