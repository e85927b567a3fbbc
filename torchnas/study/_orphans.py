"""Trials whose process died while they ran: taken up again, or failed when the trial itself
ended the process.

A process that runs trials inline keeps a *crash record* while each trial runs
(:class:`CrashRecord`, at :func:`~torchnas.study._process.crash_path` of its owner token): the
trial's number, the ``torchnas search`` process supervising it, and what :mod:`faulthandler`
writes should a fatal signal (a segfault, an abort) end the process. The supervisor adds how its
child ended (``ended exited with code 0``, ``ended killed by signal SIGKILL``). When a study
finds a trial still ``RUNNING`` whose owner is dead on this host (:func:`take_up`), that record
decides:

- a fatal signal, or a process that exited by itself, during that trial: the trial did it;
  it is recorded ``FAILED`` with the reason at once;
- no word from a supervisor that is itself gone: the whole command was stopped (a ``kill -9``
  of ``torchnas search``); the trial is interrupted and runs again, whatever happened before;
- otherwise (a ``kill -9``, the OOM killer, a driver script with no supervisor): the trial is
  interrupted (``"its process died"``) and runs again first; the second such death of the same
  trial records it ``FAILED``, so that a trial that kills its process cannot stop the search.
"""

from __future__ import annotations

import contextlib
import dataclasses
import faulthandler
import logging
import re
import sys
import sysconfig
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING

from torchnas._util.process import _start_ticks
from torchnas.storage import EventKind, events
from torchnas.study._process import crash_path, owner_alive, supervisor_token
from torchnas.study._trial import TrialState

if TYPE_CHECKING:
    from torchnas.study._study import Study

__all__ = ["DIED", "STOPPED", "CrashRecord", "Evidence", "read_evidence", "take_up"]

log = logging.getLogger("torchnas")

#: The reason of an interrupt that counts as a death of the trial's process.
DIED = "its process died"
#: The reason of an interrupt of a trial whose ``torchnas search`` command was stopped.
STOPPED = "its process was stopped with the torchnas command that ran it"


class CrashRecord:
    """The crash record of this process, kept while each trial of one run goes (see the
    module). A record that cannot be written is said once; the trials still run."""

    def __init__(self, owner: str) -> None:
        self.owner = owner
        self.path = crash_path(owner)
        self._fh: IO[str] | None = None

    def __enter__(self) -> CrashRecord:
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            _sweep(self.path.parent)
            self._fh = open(self.path, "w", encoding="utf-8")
        except OSError as exc:
            log.warning("cannot keep a crash record in %s (%s): a trial that crashes this "
                        "process runs once more before it is recorded failed", self.path, exc)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
            with contextlib.suppress(OSError):
                self.path.unlink()

    @contextlib.contextmanager
    def trial(self, number: int) -> Iterator[None]:
        """While trial ``number`` runs: its number in the record, :mod:`faulthandler` on it."""
        fh = self._fh
        if fh is None:
            yield
            return
        was = faulthandler.is_enabled()
        fh.seek(0)
        fh.truncate()
        fh.write(f"trial {number}\nowner {self.owner}\nsupervisor {supervisor_token() or '-'}\n")
        fh.flush()
        faulthandler.enable(file=fh, all_threads=True)
        try:
            yield
        finally:
            faulthandler.disable()
            if was and sys.__stderr__ is not None:  # as the user (or -X faulthandler) had it
                with contextlib.suppress(Exception):
                    faulthandler.enable(file=sys.__stderr__, all_threads=True)
            fh.seek(0)
            fh.truncate()  # empty: no trial runs


#: Seconds after which the crash record of a dead process is no longer worth keeping.
KEEP_RECORDS = 7 * 24 * 3600.0


def _sweep(folder: Path) -> None:
    """Removes the crash records of dead processes that say nothing (no trial was running) or
    that nobody read within :data:`KEEP_RECORDS` (a study never opened again)."""
    now = time.time()
    for path in folder.glob("*.trial"):
        *_, pid, start = path.stem.rsplit("_", 2)
        if not pid.isdigit() or _start_ticks(int(pid)) == start:
            continue  # its process runs (or the name is none of ours)
        with contextlib.suppress(OSError):
            info = path.stat()
            if info.st_size == 0 or now - info.st_mtime > KEEP_RECORDS:
                path.unlink()


@dataclasses.dataclass(frozen=True)
class Evidence:
    """What a dead process's crash record says."""

    trial: int | None
    supervisor: str | None
    fatal: str | None  # "Segmentation fault": faulthandler saw a fatal signal
    where: str | None  # the innermost frame faulthandler wrote
    ended: str | None  # how the supervisor saw the process end
    text: str

    @classmethod
    def parse(cls, text: str) -> Evidence:
        def first(pattern: str) -> str | None:
            found = re.search(pattern, text, re.MULTILINE)
            return None if found is None else found.group(1).strip()

        number = first(r"^trial (\d+)$")
        supervisor = first(r"^supervisor (\S+)$")
        fatal = first(r"^Fatal Python error: (.+)$")
        frames = _frames(text)
        return cls(trial=None if number is None else int(number),
                   supervisor=None if supervisor in (None, "-") else supervisor,
                   fatal=fatal, where=_where(frames), ended=first(r"^ended (.+)$"),
                   text="\n".join([f"Fatal Python error: {fatal}", *frames]) if fatal else "")


def _frames(text: str) -> list[str]:
    """The frames of the thread that crashed, innermost first, as faulthandler wrote them."""
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith("Current thread ")),
                 None)
    if start is None:  # one thread only: "Stack (most recent call first):"
        start = next((i for i, line in enumerate(lines) if line.startswith("Stack ")), None)
    frames = []
    for line in lines[start + 1:] if start is not None else []:
        if not line.strip().startswith("File "):
            break
        frames.append(line.rstrip())
    return frames


def _where(frames: list[str]) -> str | None:
    """The innermost frame, and the innermost outside Python's library and site-packages
    when that is another (most often the user's code that called into a library)."""
    if not frames:
        return None
    library = (sysconfig.get_paths()["stdlib"], "site-packages", "dist-packages", "<frozen ")
    own = next((f for f in frames if not any(part in f for part in library)), None)
    inner = frames[0].strip()
    return inner if own is None or own == frames[0] else f"{inner}, from {own.strip()}"


def read_evidence(owner: str) -> Evidence | None:
    """The crash record the process ``owner`` left (``None``: none)."""
    try:
        return Evidence.parse(crash_path(owner).read_text(encoding="utf-8", errors="replace"))
    except OSError:
        return None


def take_up(study: Study) -> list[int]:
    """Fails or interrupts the trials left ``RUNNING`` by a process that is gone (the caller
    holds the journal's exclusive lock and has synced); returns the numbers interrupted (they
    run again first)."""
    dead = [study.records[n] for n in study._log.running
            if study.records[n].owner != study.owner and owner_alive(study.records[n].owner)
            is False]
    if not dead:
        return []
    deaths: dict[int, int] = {}
    for _, event in study.journal.read(study._id, 0):  # only when a process died
        if (event.get("kind") == EventKind.INTERRUPT.value
                and str(event.get("reason", "")).startswith(DIED)):
            deaths[int(event["trial"])] = deaths.get(int(event["trial"]), 0) + 1
    interrupted = []
    for trial in dead:
        found = read_evidence(trial.owner)
        ev = found if found is not None and found.trial == trial.number else None
        failed = _verdict(ev, deaths.get(trial.number, 0))
        if failed is None:
            reason = _interrupt_reason(ev)
            study.record(events.interrupt(trial.number, reason))
            interrupted.append(trial.number)
        else:
            study.tell(trial.number, state=TrialState.FAILED, error=failed)
            log.warning("trial %d failed: %s", trial.number, failed)
            if ev is not None and ev.text:
                log.warning("trial %d: what faulthandler wrote as the process died:\n%s",
                            trial.number, ev.text)
        if found is not None:
            with contextlib.suppress(OSError):
                Path(crash_path(trial.owner)).unlink()
    study.sync()
    if interrupted:
        log.warning("trials %s were left running by a dead process; they run again first",
                    interrupted)
    return interrupted


def _verdict(ev: Evidence | None, deaths: int) -> str | None:
    """Why the trial failed, or ``None``: it runs again."""
    if ev is not None and ev.fatal:
        at = f" ({ev.where})" if ev.where else ""
        return f"its process crashed while it ran: {ev.fatal}{at}"
    if ev is not None and ev.ended and ev.ended.startswith("exited"):
        return (f"its process {ev.ended} while it ran (the trial, or a library it called, "
                f"ended the process: os._exit?)")
    if ev is not None and not ev.ended and ev.supervisor and owner_alive(ev.supervisor) is False:
        return None  # the whole torchnas command was stopped: not the trial's doing
    if deaths >= 1:
        last = ev.ended if ev is not None and ev.ended else "no cause known"
        return f"the process running it died twice while it ran (last: {last})"
    return None


def _interrupt_reason(ev: Evidence | None) -> str:
    if ev is not None and not ev.ended and ev.supervisor and owner_alive(ev.supervisor) is False:
        return STOPPED
    return f"{DIED} ({ev.ended})" if ev is not None and ev.ended else DIED
