"""``torchnas search`` runs its search in a child process and goes on when a trial kills it.

The command (``torchnas.cli.main`` run as a program) forks: the child goes on with the search
(nothing is imported again), and the parent replaces itself with this module run as a script
(``python -I .../_supervise.py search CONFIG ...``): a light parent that imports only the
standard library, never torch. stdout and stderr are shared, so the progress bar and the
leaderboard look the same. A child started again after a death is a fresh ``python -m
torchnas.cli`` with the same arguments. The child says over a pipe (its fd in
``TORCHNAS_SUPERVISED``) who it is, where its study is kept, which trials start and end, and
with which exit code it ends; it dies with its parent (``PR_SET_PDEATHSIG``).

A child that ends without saying so (a signal, ``os._exit``) died. When its study is kept in a
file, the parent notes how it ended in the child's crash record, says one line on stderr, and
starts it again: the new child's study takes up the trial that was running (see
``torchnas.study._orphans``: run again once, or recorded ``FAILED``) and the search goes on.
Three deaths in a row with no trial finished in between, a death before the search started or
a study kept nowhere end the command with a ``torchnas: error:`` line and a non-zero code.

Ctrl-C reaches the child from the terminal (the parent lets it handle it: rc 130); SIGINT,
SIGTERM and SIGHUP sent to the parent alone are passed on to the child, and nothing restarts.
Set ``TORCHNAS_SUPERVISE=0`` to run the search in the command's own process.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import sys
import time
from collections.abc import Sequence
from typing import Any

#: The child's end of the pipe to its supervisor (set by the supervisor in the child).
CHILD_FD = "TORCHNAS_SUPERVISED"
#: The supervisor's pid (read by ``torchnas.study._process.supervisor_token``).
SUPERVISOR_PID = "TORCHNAS_SUPERVISOR_PID"
#: ``0`` runs ``torchnas search`` without a supervisor.
OPT_OUT = "TORCHNAS_SUPERVISE"
#: Deaths in a row with no trial finished in between after which the parent gives up.
MAX_DEATHS = 3

_fd: int | None = None  # the child's pipe to its parent, once child_setup() ran
_SI_KERNEL = 0x80  # si_code of a signal the kernel sent (Ctrl-C at a terminal)


# -- the child's side ---------------------------------------------------------------------------
def wanted() -> bool:
    """Whether ``torchnas search`` should run under a supervisor here (Linux, not already a
    supervised child, not opted out)."""
    return (sys.platform.startswith("linux") and CHILD_FD not in os.environ
            and os.environ.get(OPT_OUT, "1") != "0")


def split(argv: Sequence[str]) -> bool:
    """Forks: the child goes on with the search (``True``, nothing imported again), this
    process becomes the light supervisor of a search run with ``argv`` (it never returns)."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    read, write = os.pipe()
    parent = os.getpid()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        _attach(write, parent)
        return True
    os.close(write)
    os.set_inheritable(read, True)
    os.execv(sys.executable, [sys.executable, "-I", os.path.abspath(__file__), "--child",
                              f"{pid}:{read}", *argv])
    raise AssertionError("unreachable")  # pragma: no cover


def child_setup() -> bool:
    """In a child the supervisor started again: see :func:`_attach`. ``False`` when this
    process is not such a child."""
    text = os.environ.pop(CHILD_FD, None)
    if text is None or not text.isdigit():
        return False
    _attach(int(text), int(os.environ.get(SUPERVISOR_PID, "0") or 0))
    return True


def _attach(fd: int, parent: int) -> None:
    """Keeps the pipe to the supervisor ``parent`` (not passed on to the processes this one
    starts), and dies with it."""
    global _fd
    _fd = fd
    os.environ[SUPERVISOR_PID] = str(parent)  # torchnas.study._process.supervisor_token
    with contextlib.suppress(OSError):
        os.set_inheritable(fd, False)
    with contextlib.suppress(Exception):  # Linux: SIGKILL when the parent dies
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:  # it died before prctl
        os._exit(1)


def tell(line: str) -> None:
    """Sends one line to the supervisor (nothing when there is none or it is gone)."""
    if _fd is not None:
        with contextlib.suppress(OSError):
            os.write(_fd, (line + "\n").encode("utf-8", "replace"))


def reporter() -> object:
    """The search callback that tells the supervisor who runs the study, where it is kept, and
    which trials start and end (imports torchnas: only in the child)."""
    from torchnas.evaluation._callbacks import Callback
    from torchnas.study._process import crash_path

    class Reporter(Callback):
        def on_search_start(self, study: Any) -> None:
            kept = getattr(study.journal, "path", None)
            tell(f"owner {study.owner}")
            tell(f"crash {crash_path(study.owner)}")
            tell(f"storage {kept or '-'}")
            tell(f"finished {sum(t.state.finished for t in study.records.values())}")

        def on_trial_start(self, study: Any, number: int) -> None:
            tell(f"start {number}")

        def on_trial_end(self, study: Any, trial: Any) -> None:
            tell(f"end {trial.number}")

    return Reporter()


# -- the parent's side --------------------------------------------------------------------------
def _how(status: int) -> tuple[str, str, int]:
    """What the shell would say of a child's wait status: ``("signal SIGSEGV", "killed by
    signal SIGSEGV", 139)`` or ``("exit code 0", "exited with code 0", 1)``."""
    if os.WIFSIGNALED(status):
        num = os.WTERMSIG(status)
        try:
            name = signal.Signals(num).name
        except ValueError:
            name = str(num)
        return f"signal {name}", f"killed by signal {name}", 128 + num
    code = os.waitstatus_to_exitcode(status)
    return f"exit code {code}", f"exited with code {code}", code or 1


class _Child:
    """One run of the search in a child process, and what it said."""

    def __init__(self, argv: Sequence[str], adopt: tuple[int, int] | None = None) -> None:
        if adopt is not None:  # the child split() forked, and the read end of its pipe
            self.pid, read = adopt
        else:
            read, write = os.pipe()
            os.set_inheritable(write, True)
            env = {**os.environ, CHILD_FD: str(write), SUPERVISOR_PID: str(os.getpid())}
            try:
                self.pid = os.posix_spawn(
                    sys.executable, [sys.executable, "-m", "torchnas.cli", *argv], env,
                    setsigmask=(), setsigdef=(signal.SIGINT, signal.SIGTERM, signal.SIGHUP,
                                              signal.SIGPIPE, signal.SIGXFSZ))
            finally:
                os.close(write)
        os.set_blocking(read, False)
        self.pipe = read
        self.buffer = b""
        self.said: dict[str, str] = {}
        self.running: dict[int, None] = {}
        self.finished = -1
        self.exit: int | None = None
        self.eof = False

    def read(self) -> None:
        """Takes in what the child said so far."""
        while True:
            try:
                chunk = os.read(self.pipe, 65536)
            except OSError:  # nothing more for now
                return
            if not chunk:  # the child (and whatever it started) closed its end
                self.eof = True
                return
            self.buffer += chunk
            *lines, self.buffer = self.buffer.split(b"\n")
            for raw in lines:
                self._hear(raw.decode("utf-8", "replace"))

    def _hear(self, line: str) -> None:
        key, _, value = line.partition(" ")
        if key == "start" and value.isdigit():
            self.running[int(value)] = None
        elif key == "end" and value.isdigit():
            self.running.pop(int(value), None)
            self.finished += 1
        elif key == "finished" and value.isdigit():
            self.finished = int(value)
        elif key == "exit":
            with contextlib.suppress(ValueError):
                self.exit = int(value)
        else:
            self.said[key] = value

    def wait(self, forward: set[signal.Signals], stop: list[int]) -> int:
        """Waits for the child to end, passing on the signals sent to this process alone;
        returns its wait status (``stop`` gets the signals this process received)."""
        while True:
            if self.eof:
                time.sleep(0.1)
            elif select.select([self.pipe], [], [], 0.1)[0]:
                self.read()
            while True:
                info = signal.sigtimedwait(forward | {signal.SIGCHLD}, 0)
                if info is None:
                    break
                num = info.si_signo
                if num == signal.SIGCHLD:
                    continue
                stop.append(num)
                if not (num == signal.SIGINT and info.si_code == _SI_KERNEL):
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(self.pid, num)  # a terminal's Ctrl-C reached the child itself
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.read()
                os.close(self.pipe)
                return status


def _say(message: str) -> None:
    # on a line of its own, after a progress bar the death may have cut short
    print(f"\ntorchnas: {message}", file=sys.stderr, flush=True)


def _note(child: _Child, ended: str) -> None:
    """Adds how the child ended to its crash record, which the next study reads."""
    path = child.said.get("crash")
    if not path:
        return
    with contextlib.suppress(OSError):
        if os.path.getsize(path) > 0:  # a trial was running
            with open(path, "a", encoding="utf-8") as fh:
                fh.write(f"ended {ended}\n")


def supervise(argv: Sequence[str], first: tuple[int, int] | None = None) -> int:
    """Runs the search ``torchnas <argv>`` in a child (``first``: the pid and pipe of one
    already started), again after each death (see the module); returns the command's exit
    code."""
    forward = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}
    signal.pthread_sigmask(signal.SIG_BLOCK, forward | {signal.SIGCHLD})
    in_a_row, seen = 0, -1  # deaths with no trial finished in between; most seen finished
    while True:
        stop: list[int] = []
        child, first = _Child(argv, first), None
        status = child.wait(forward, stop)
        if child.exit is not None:  # it ended as a search ends (done, an error, Ctrl-C)
            return child.exit
        how, ended, code = _how(status)
        running = sorted(child.running)
        during = f" while running trial {', '.join(map(str, running))}" if running else ""
        if stop:  # stopped by the user: the study takes the trial up next time
            return 130 if signal.SIGINT in stop else 128 + stop[0]
        _note(child, ended)
        storage = child.said.get("storage")
        if storage is None:
            _say(f"error: the search's process died ({how}) before the search started")
            return code
        if storage == "-":
            _say(f"error: the search's process died ({how}){during}; its study was kept "
                 f"nowhere (no storage file), so it cannot go on: give the config a storage "
                 f"file to make the search resumable")
            return code
        in_a_row = 1 if child.finished > seen else in_a_row + 1
        seen = max(seen, child.finished)
        if in_a_row >= MAX_DEATHS:
            _say(f"error: the search's process died {in_a_row} times in a row with no trial "
                 f"finished in between (last: {how}{during}); the study in {storage} keeps "
                 f"every finished trial")
            return code
        _say(f"the search's process died ({how}){during}; going on")
        time.sleep(0.1)


def _main(args: list[str]) -> int:
    first = None
    if args[:1] == ["--child"]:  # pid:fd of the child split() forked
        pid, _, fd = args[1].partition(":")
        first, args = (int(pid), int(fd)), args[2:]
    return supervise(args, first)


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
