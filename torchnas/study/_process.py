"""Who runs a trial: a token naming this process, and whether such a process is still alive."""

from __future__ import annotations

import functools
import os
import re
import socket
import tempfile
from pathlib import Path

__all__ = ["crash_path", "owner_alive", "owner_token", "process_token", "supervisor_token"]

#: The environment variable a supervising ``torchnas search`` sets to its own pid in its child.
SUPERVISOR_PID = "TORCHNAS_SUPERVISOR_PID"


def _stat(pid: int) -> tuple[str, str]:
    """The process's state letter and start time in clock ticks since boot (Linux);
    ``("", "")`` where unknown."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return fields[0], fields[19]
    except (OSError, IndexError):
        return "", ""


def _start_ticks(pid: int) -> str:
    """The process's start time in clock ticks since boot (Linux); '' where unknown."""
    return _stat(pid)[1]


@functools.lru_cache(maxsize=1)
def _token(pid: int) -> str:
    return f"{socket.gethostname()}:{pid}:{_start_ticks(pid)}"


def owner_token() -> str:
    """``host:pid:start`` of this process (a reused pid has another start time)."""
    return _token(os.getpid())


def process_token(pid: int) -> str:
    """``host:pid:start`` of process ``pid`` on this host."""
    return f"{socket.gethostname()}:{pid}:{_start_ticks(pid)}"


@functools.lru_cache(maxsize=1)
def _supervisor(pid: int) -> str | None:
    text = os.environ.get(SUPERVISOR_PID, "")
    if not text.isdigit() or int(text) != os.getppid():
        return None
    return process_token(int(text))


def supervisor_token() -> str | None:
    """The token of the ``torchnas search`` process that supervises this one (``None``: none)."""
    return _supervisor(os.getpid())


def crash_path(owner: str) -> Path:
    """Where the process ``owner`` keeps the record of the trial it runs: the trial's number,
    its supervisor, and what :mod:`faulthandler` writes should a fatal signal end it (a folder
    of this user's in the temporary directory; see ``torchnas.study._orphans``)."""
    uid = os.getuid() if hasattr(os, "getuid") else 0
    return Path(tempfile.gettempdir()) / f"torchnas-{uid}" / (re.sub(r"[^\w.-]", "_", owner)
                                                               + ".trial")


def owner_alive(token: str) -> bool | None:
    """Whether the process named by ``token`` runs; ``None`` when it is on another host."""
    host, _, rest = token.partition(":")
    pid_text, _, start = rest.partition(":")
    if host != socket.gethostname() or not pid_text.isdigit():
        return None
    pid = int(pid_text)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    state, ticks = _stat(pid)
    if state in ("Z", "X"):
        return False  # killed, not yet reaped by its parent: it will never write again
    return not start or ticks == start
