"""Which process this is, as a token that names it across hosts and pid reuse
(``host:pid:start``), and whether the process a token names still runs."""

from __future__ import annotations

import functools
import os
import socket

__all__ = ["owner_alive", "owner_token", "process_token"]


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
