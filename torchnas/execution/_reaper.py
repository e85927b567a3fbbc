"""A watchdog that ends the local Ray of a driver that died (``kill -9`` included).

A local Ray's head processes (gcs_server, raylet, ...) die with the driver (Ray sets their
parent-death signal), but their children, Ray's agents and idle workers, wait up to a minute
and more before they notice. :func:`start` spawns, before ``ray.init``, a small process (stdlib
and psutil only: it runs this file as a script, never the torchnas package; its folder, first
on its path, holds no standard module's name) in its own session, out of reach of a Ctrl-C,
with a pipe from the driver on its stdin. Every :data:`INTERVAL` seconds it records Ray's
processes: the driver's children that carry the token in their environment (set while Ray
starts) and all their descendants, by (pid, start time). When the driver dies (it is no longer
our parent, or the pipe says so) or Ray was shut down (no head process left), it ends what it
recorded that is still alive, and any process of this user with the token (a worker started
since the last look), with their descendants: SIGTERM, up to :data:`GRACE` seconds, then
SIGKILL; and exits. (Ray's agents overwrite their environment with their process title: only
the records find them.)
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import secrets
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

#: The environment variable carrying a watchdog's token into the Ray processes it watches.
VAR = "TORCHNAS_RAY_WATCHDOG"
#: Seconds between two looks at the driver's processes.
INTERVAL = 0.5
#: Seconds Ray's processes have between SIGTERM and SIGKILL.
GRACE = 1.5


class Watchdog:
    """The driver's side: the watchdog process and the pipe to it."""

    def __init__(self, token: str) -> None:
        self.token = token
        self.proc = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), str(os.getpid()), token],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, start_new_session=True,
            env={k: v for k, v in os.environ.items() if k != VAR})

    @contextlib.contextmanager
    def marked(self) -> Iterator[None]:
        """While Ray starts: its processes inherit the token in their environment."""
        old = os.environ.get(VAR)
        os.environ[VAR] = self.token
        try:
            yield
        finally:
            if old is None:
                os.environ.pop(VAR, None)
            else:
                os.environ[VAR] = old

    def stop(self, timeout: float = 5.0) -> None:
        """After ``ray.shutdown()``: it ends what is left of Ray, then exits; waits for that."""
        with contextlib.suppress(OSError, ValueError):
            assert self.proc.stdin is not None
            self.proc.stdin.write(b"x")
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def start() -> Watchdog | None:
    """A watchdog for a local Ray this process is about to start (``None``, with a warning,
    where it cannot run: psutil is missing, or the process does not start; none off POSIX)."""
    if os.name != "posix":
        return None
    if importlib.util.find_spec("psutil") is None:
        logging.getLogger("torchnas").warning(
            "no watchdog for the local Ray: psutil is missing (pip install psutil); if this "
            "process is killed, Ray's processes outlive it for a while")
        return None
    try:
        return Watchdog(secrets.token_hex(16))
    except OSError as exc:
        logging.getLogger("torchnas").warning("no watchdog for the local Ray: %s", exc)
        return None


#: The watchdog of the local Ray this process started last.
_current: Watchdog | None = None


@contextlib.contextmanager
def watched(ray: Any, init_kwargs: dict[str, Any]) -> Iterator[None]:
    """Around the ``ray.init(**init_kwargs)`` of a local Ray: a watchdog ends its processes
    should this process be killed. None where Ray runs already or joins a cluster (its
    processes are not ours; they would not carry the token anyway)."""
    global _current
    if ray.is_initialized() or init_kwargs.get("address") not in (None, "local") \
            or os.environ.get("RAY_ADDRESS"):
        yield
        return
    stop()  # that of an earlier local Ray, shut down since
    _current = start()
    if _current is None:
        yield
        return
    try:
        with _current.marked():
            yield
    except BaseException:
        stop()
        raise


def stop() -> None:
    """After ``ray.shutdown()``: the watchdog ends what is left of the local Ray, and exits."""
    global _current
    if _current is not None:
        _current.stop()
        _current = None


# ---- the watchdog process (stdlib and psutil only) ----

def _table(psutil: Any) -> dict[int, tuple[int, float]]:
    """pid -> (parent pid, start time) of every process, zombies left out."""
    found = {}
    for p in psutil.process_iter(["ppid", "create_time", "status"]):
        info = p.info
        if info["ppid"] is not None and info["create_time"] is not None \
                and info["status"] != psutil.STATUS_ZOMBIE:
            found[p.pid] = (info["ppid"], info["create_time"])
    return found


def _descendants(table: dict[int, tuple[int, float]], roots: set[int]) -> set[int]:
    kids: dict[int, list[int]] = {}
    for pid, (ppid, _) in table.items():
        kids.setdefault(ppid, []).append(pid)
    found, stack = set(roots), list(roots)
    while stack:
        for kid in kids.get(stack.pop(), ()):
            if kid not in found:
                found.add(kid)
                stack.append(kid)
    return found


def _has_token(psutil: Any, pid: int, token: str) -> bool:
    try:
        return bool(psutil.Process(pid).environ().get(VAR) == token)
    except (psutil.Error, OSError):
        return False


def _targets(psutil: Any, members: dict[int, float], token: str) -> dict[int, float]:
    """Recorded processes still alive, this user's processes with the token, and descendants."""
    table = _table(psutil)
    me, uid = os.getpid(), os.getuid()
    roots = {pid for pid, ct in members.items() if table.get(pid, (0, -1.0))[1] == ct}
    for p in psutil.process_iter(["uids"]):
        uids = p.info["uids"]
        if p.pid not in roots and uids is not None and uids.real == uid \
                and _has_token(psutil, p.pid, token):
            roots.add(p.pid)
    return {pid: table[pid][1] for pid in _descendants(table, roots) - {me} if pid in table}


def _end(psutil: Any, members: dict[int, float], token: str) -> None:
    """SIGTERM to Ray's processes (each once), SIGKILL to those left after :data:`GRACE` s."""
    deadline = time.monotonic() + GRACE
    termed: set[tuple[int, float]] = set()
    kills = 0
    while kills < 3:  # a process started while the others end is found by the next round
        targets = _targets(psutil, members, token)
        members.update(targets)
        if not targets:
            return
        late = time.monotonic() >= deadline
        for pid, ct in targets.items():
            if late or (pid, ct) not in termed:
                termed.add((pid, ct))
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL if late else signal.SIGTERM)
        kills += late
        time.sleep(0.1)


def watch(driver: int, token: str) -> None:
    """Records Ray's processes while the driver lives and Ray runs; then ends what is left."""
    import psutil

    me = os.getpid()
    members: dict[int, float] = {}  # pid -> start time
    heads: dict[int, float] = {}  # the driver's children that carry the token
    checked: set[tuple[int, float]] = set()
    while os.getppid() == driver:
        table = _table(psutil)
        for pid, (ppid, ct) in table.items():
            if ppid == driver and pid != me and (pid, ct) not in checked:
                checked.add((pid, ct))
                if _has_token(psutil, pid, token):
                    heads[pid] = ct
        alive = {pid for pid, ct in {**members, **heads}.items()
                 if table.get(pid, (0, -1.0))[1] == ct}
        members = {pid: table[pid][1] for pid in _descendants(table, alive) - {me}}
        if heads and not any(table.get(pid, (0, -1.0))[1] == ct for pid, ct in heads.items()):
            break  # ray.shutdown(): its head processes have ended
        ready, _, _ = select.select([sys.stdin], [], [], INTERVAL)
        if ready:  # a byte (Ray was shut down) or the end of the pipe (the driver ended)
            break
    _end(psutil, members, token)


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    watch(int(sys.argv[1]), sys.argv[2])
