"""Objectives of the executor contract, at module level so that worker processes (local or
Ray) import them by name; nothing here imports pytest."""

from __future__ import annotations

import math
import os
import signal
import time
from pathlib import Path
from typing import Any

import torch

import torchnas as tn

__all__ = ["FAULTS", "KILLS", "always_fails", "faulty", "flaky", "plain", "stall"]

FAULTS: dict[str, tuple[tn.TrialState, str | None]] = {
    "ok": (tn.TrialState.COMPLETE, None),
    "raise": (tn.TrialState.FAILED, "ValueError: boom"),
    "nan": (tn.TrialState.FAILED, "objective 'acc' is nan"),
    "inf": (tn.TrialState.FAILED, "objective 'acc' is inf"),
    "oom": (tn.TrialState.FAILED,
            "OutOfMemoryError: CUDA out of memory. Tried to allocate 20.00 GiB"),
    "not-a-number": (tn.TrialState.FAILED, "metric 'acc' is not a number: 'high'"),
}
"""What :func:`faulty` does, by kind: the state and the start of the error it is recorded with."""

KILLS: dict[str, tuple[tn.TrialState, str | None]] = {
    "sleep": (tn.TrialState.FAILED, "timeout after 3s (its worker process was stopped)"),
    "segv": (tn.TrialState.FAILED, "its worker process died"),
    "exit": (tn.TrialState.FAILED, "its worker process died"),
}
"""Faults that only an executor running trials in other processes survives (with
``trial_timeout=3``)."""


def plain(hp: tn.HP) -> dict[str, float]:
    """Three decisions (one scoped), a report, and its worker's process id."""
    x = hp.int("x", 0, 1000)
    act = hp.choice("act", ["relu", "gelu", "tanh"])
    with hp.scope("block"):
        lr = hp.float("lr", 1e-4, 1e-1, log=True)
    assert hp.trial is not None
    hp.trial.report(1, {"acc": x / 2000})
    return {"acc": x / 1000 + lr + (act == "gelu"), "pid": os.getpid()}


def faulty(hp: tn.HP) -> Any:
    """Does what its ``kind`` says (see :data:`FAULTS` and :data:`KILLS`)."""
    kind = hp.choice("kind", [*FAULTS, *KILLS])
    if kind == "raise":
        raise ValueError("boom")
    if kind == "nan":
        return math.nan
    if kind == "inf":
        return {"acc": math.inf}
    if kind == "oom":
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
    if kind == "not-a-number":
        return {"acc": "high"}
    if kind == "sleep":
        time.sleep(60)
    if kind == "segv":
        os.kill(os.getpid(), signal.SIGSEGV)
    if kind == "exit":
        os._exit(7)
    return 1.0


def always_fails(hp: tn.HP) -> float:
    hp.int("x", 0, 9)
    time.sleep(0.05)
    raise RuntimeError("this block is broken")


def flaky(marks: str, hp: tn.HP) -> float:
    """Fails the first two times an architecture runs (counted in files under ``marks``)."""
    x = hp.int("x", 0, 10**6)
    mark = Path(marks) / str(x)
    runs = int(mark.read_text()) if mark.exists() else 0
    mark.write_text(str(runs + 1))
    if runs < 2:
        raise RuntimeError(f"transient failure {runs + 1}")
    return x / 10**6


def stall(marks: str, hp: tn.HP) -> float:
    """Decides, says so (a file ``started-N`` under ``marks``), then waits up to 60 s for a file
    ``go`` there."""
    x = hp.int("x", 0, 1000)
    assert hp.trial is not None
    folder = Path(marks)
    (folder / f"started-{hp.trial.number}").touch()
    deadline = time.monotonic() + 60
    while not (folder / "go").exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    return x / 1000
