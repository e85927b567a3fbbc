"""``torchnas search`` runs the search in a supervised child: a trial that kills the process
(a segfault, ``os._exit``) is recorded FAILED and the search goes on; the command never exits 0
on an unfinished search. And how a study takes up the trials of a process that died
(``torchnas.study._orphans``), unit by unit."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import ClassVar

import pytest

import torchnas as tn
from torchnas.storage import events
from torchnas.study._orphans import DIED, STOPPED
from torchnas.study._process import crash_path, process_token

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl, /proc")

CRASHY = textwrap.dedent('''
    import ctypes, os, time
    import torch
    import torch.nn.functional as F
    from torch import nn

    MODE = os.environ.get("CRASH_MODE", "segv")


    def space(hp):
        units = hp.choice("units", [24, 8, 16, 32])  # the grid runs 24 first
        if MODE == "build":
            ctypes.string_at(0)
        return nn.Sequential(nn.Flatten(), nn.Linear(64, units), nn.ReLU(), nn.Linear(units, 10))


    def fit(model, data, hp, trial):
        if model[1].out_features == 24:
            if MODE in ("segv", "nowhere"):
                ctypes.string_at(0)
            elif MODE == "exit":
                os._exit(0)
            elif MODE == "slow":
                open("running-24", "w").close()
                time.sleep(60)
        x, y = data.train.tensors
        opt = torch.optim.Adam(model.parameters(), lr=1e-2)
        for i in range(0, len(x), 256):
            loss = F.cross_entropy(model(x[i:i + 256]), y[i:i + 256])
            opt.zero_grad()
            loss.backward()
            opt.step()
        xv, yv = data.val.tensors
        with torch.no_grad():
            return {"val_accuracy": float((model(xv).argmax(1) == yv).float().mean())}
''')

CONFIG = """\
space: crashy_mod:space
data: digits
train_fn: crashy_mod:fit
strategy: grid
trials: 4
name: c
progress: false
"""


def search(tmp_path: Path, mode: str, storage: bool = True,
           **popen: object) -> subprocess.Popen[str]:
    (tmp_path / "crashy_mod.py").write_text(CRASHY, encoding="utf-8")
    (tmp_path / "c.yaml").write_text(CONFIG + ("storage: runs/c.db\n" if storage else ""),
                                     encoding="utf-8")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore",
           "CRASH_MODE": mode}
    env.pop("TORCHNAS_SUPERVISE", None)
    return subprocess.Popen([sys.executable, "-m", "torchnas.cli", "search", "c.yaml"],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **popen)  # type: ignore[call-overload]


def run(tmp_path: Path, mode: str, storage: bool = True) -> subprocess.CompletedProcess[str]:
    proc = search(tmp_path, mode, storage)
    out, err = proc.communicate(timeout=300)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


@pytest.mark.parametrize(("mode", "how", "reason"), [
    ("segv", "signal SIGSEGV", "its process crashed while it ran: Segmentation fault ("),
    ("exit", "exit code 0", "its process exited with code 0 while it ran"),
])
def test_the_command_goes_on_past_a_trial_that_kills_its_process(
        tmp_path: Path, mode: str, how: str, reason: str) -> None:
    start = time.monotonic()
    done = run(tmp_path, mode)
    assert done.returncode == 0, done.stderr
    trials = tn.load_study(tmp_path / "runs" / "c.db", read_only=True).trials
    failed = [t for t in trials if t.state is tn.TrialState.FAILED]
    assert [t.arch for t in failed] == [{"units": 24}]
    assert (failed[0].error or "").startswith(reason), failed[0].error
    assert sorted(t.arch["units"] for t in trials if t.state is tn.TrialState.COMPLETE) == [
        8, 16, 32]
    said = f"torchnas: the search's process died ({how}) while running trial {failed[0].number}"
    assert f"{said}; going on" in done.stderr.splitlines()
    assert "Resolved config written to" in done.stdout
    print(f"{mode}: rc 0 in {time.monotonic() - start:.1f} s; {failed[0].error}")


def test_a_study_kept_nowhere_cannot_go_on(tmp_path: Path) -> None:
    done = run(tmp_path, "nowhere", storage=False)
    assert done.returncode == 128 + signal.SIGSEGV
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("torchnas: error: the search's process died (signal SIGSEGV) while "
                           "running trial "), done.stderr
    assert "kept nowhere (no storage file)" in last


def test_a_death_before_the_search_starts_is_not_retried(tmp_path: Path) -> None:
    done = run(tmp_path, "build")  # the space crashes as the search checks it
    assert done.returncode == 128 + signal.SIGSEGV
    assert done.stderr.strip().splitlines()[-1] == (
        "torchnas: error: the search's process died (signal SIGSEGV) before the search started")


def _descendant(pid: int) -> int | None:
    children = Path(f"/proc/{pid}/task/{pid}/children")
    text = children.read_text().split() if children.exists() else []
    return int(text[0]) if text else None


def test_the_supervisor_is_light_and_passes_sigint_on(tmp_path: Path) -> None:
    proc = search(tmp_path, "slow")
    try:
        deadline = time.monotonic() + 240
        while not (tmp_path / "running-24").exists() and time.monotonic() < deadline:
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.05)
        maps = Path(f"/proc/{proc.pid}/maps").read_text()
        rss = next(int(line.split()[1]) for line in
                   Path(f"/proc/{proc.pid}/status").read_text().splitlines()
                   if line.startswith("VmRSS"))
        child = _descendant(proc.pid)
        assert child is not None and "libtorch" in Path(f"/proc/{child}/maps").read_text()
        proc.send_signal(signal.SIGINT)  # to the supervisor alone (not a terminal's Ctrl-C)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "libtorch" not in maps and rss < 60_000, rss  # kB: no torch in the parent
    assert proc.returncode == 130, err
    assert "torchnas: interrupted; 1 running trial(s) marked interrupted" in err
    trials = tn.load_study(tmp_path / "runs" / "c.db", read_only=True).trials
    assert [t.state for t in trials if t.arch.get("units") == 24] == [tn.TrialState.INTERRUPTED]
    print(f"supervisor: {rss / 1024:.0f} MB resident, no torch")


def test_kill_9_of_the_command_never_fails_the_trial(tmp_path: Path) -> None:
    """A ``kill -9`` of ``torchnas search`` (its child dies with it) stops the trial, however
    often: it runs again, as after Ctrl-C; only deaths of the child alone count."""
    db = tmp_path / "runs" / "c.db"
    for _ in range(2):
        proc = search(tmp_path, "slow")
        deadline = time.monotonic() + 240
        while not (tmp_path / "running-24").exists() and time.monotonic() < deadline:
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.05)
        (tmp_path / "running-24").unlink()
        child = _descendant(proc.pid)
        proc.kill()
        proc.communicate()
        while child is not None and Path(f"/proc/{child}").exists() and (
                Path(f"/proc/{child}/stat").read_text().split()[2] not in ("Z", "X")):
            time.sleep(0.01)
    trials = tn.load_study(db, read_only=True).trials
    stuck = [t for t in trials if t.arch.get("units") == 24]
    assert [t.state for t in stuck] == [tn.TrialState.RUNNING]
    study = tn.load_study(db)
    assert study.trials[stuck[0].number].state is tn.TrialState.INTERRUPTED
    assert study.trials[stuck[0].number].error == STOPPED
    study.journal.close()


# -- the verdicts, unit by unit -------------------------------------------------------------------
def dead() -> str:
    """The token of a process that has ended."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    token = process_token(proc.pid)
    proc.wait()
    return token


def orphan(db: Path, number: int, record: str | None, restart: bool = False) -> tn.FrozenTrial:
    """Trial ``number`` left running by a dead process with crash record ``record``; the
    trial as the next study to open finds it."""
    owner = dead()
    study = tn.Study("s", storage=str(db), objectives={"x": "max"})
    study.record(events.restart(number, owner) if restart else events.create(number, owner,
                                                                             None, None))
    study.journal.close()
    if record is not None:
        crash_path(owner).parent.mkdir(parents=True, exist_ok=True)
        crash_path(owner).write_text(record, encoding="utf-8")
    again = tn.Study("s", storage=str(db))
    found = again.trials[number]
    again.journal.close()
    assert not crash_path(owner).exists()  # read once, then removed
    return found


def test_how_a_dead_process_s_trial_is_judged(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    stopped = orphan(db, 0, f"trial 0\nowner x\nsupervisor {dead()}\n")
    assert (stopped.state, stopped.error) == (tn.TrialState.INTERRUPTED, STOPPED)
    killed = orphan(db, 1, "trial 1\nowner x\nsupervisor -\nended killed by signal SIGKILL\n")
    assert (killed.state, killed.error) == (tn.TrialState.INTERRUPTED,
                                            f"{DIED} (killed by signal SIGKILL)")
    twice = orphan(db, 1, None, restart=True)
    assert (twice.state, twice.error) == (
        tn.TrialState.FAILED, "the process running it died twice while it ran (last: no cause "
                              "known)")
    again = orphan(db, 0, f"trial 0\nowner x\nsupervisor {dead()}\n", restart=True)
    assert again.state is tn.TrialState.INTERRUPTED  # a stopped command never counts
    exited = orphan(db, 2, "trial 2\nsupervisor -\nended exited with code 3\n")
    assert exited.state is tn.TrialState.FAILED
    assert exited.error == ("its process exited with code 3 while it ran (the trial, or a "
                            "library it called, ended the process: os._exit?)")
    other = orphan(db, 3, "trial 9\nsupervisor -\nFatal Python error: Aborted\n")
    assert (other.state, other.error) == (tn.TrialState.INTERRUPTED, DIED)  # not its record
    crashed = orphan(db, 4, 'trial 4\nsupervisor -\nFatal Python error: Aborted\n\n'
                     'Current thread 0x1 (most recent call first):\n'
                     '  File "/x/lib.py", line 3 in boom\n  File "/x/site-packages/t.py", '
                     'line 2 in f\n\nExtension modules: a, b\n')
    assert crashed.state is tn.TrialState.FAILED
    assert crashed.error == ('its process crashed while it ran: Aborted (File "/x/lib.py", '
                             'line 3 in boom)')


# -- the supervisor's bound on restarts, with made-up children ------------------------------------
class FakeChild:
    """A child that reports ``finished`` trials at its start and dies of SIGSEGV while running
    trial 7, or ends as a search ends with ``exit``."""

    script: ClassVar[list[tuple[int, int | None]]] = []

    def __init__(self, argv: object, adopt: object = None) -> None:
        self.finished, self.exit = FakeChild.script.pop(0)
        self.said = {"storage": "runs/c.db"}
        self.running = {7: None}

    def wait(self, forward: object, stop: object) -> int:
        return signal.SIGSEGV  # a wait status: killed by that signal


@pytest.mark.parametrize(("script", "code", "deaths"), [
    ([(3, None), (3, None), (3, None)], 128 + signal.SIGSEGV, 3),  # no progress: gives up
    ([(3, None), (3, None), (4, None), (4, None), (5, None), (5, 0)], 0, 5),  # goes on
])
def test_restarts_are_bounded_by_deaths_with_no_trial_finished(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        script: list[tuple[int, int | None]], code: int, deaths: int) -> None:
    from torchnas import _supervise

    monkeypatch.setattr(_supervise, "_Child", FakeChild)
    monkeypatch.setattr(_supervise.time, "sleep", lambda s: None)
    FakeChild.script = list(script)
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, [])
    try:
        assert _supervise.supervise(["search", "c.yaml"]) == code
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
    lines = [line for line in capsys.readouterr().err.splitlines() if line]
    said = "torchnas: the search's process died (signal SIGSEGV) while running trial 7"
    assert lines.count(f"{said}; going on") == (deaths if code == 0 else deaths - 1)
    if code:
        assert lines[-1] == ("torchnas: error: the search's process died 3 times in a row with "
                             "no trial finished in between (last: signal SIGSEGV while running "
                             "trial 7); the study in runs/c.db keeps every finished trial")


def test_crash_records_that_say_nothing_are_swept() -> None:
    from torchnas.study._orphans import CrashRecord
    from torchnas.study._process import owner_token

    empty, kept = crash_path(dead()), crash_path(dead())
    empty.parent.mkdir(parents=True, exist_ok=True)
    empty.write_text("")
    kept.write_text("trial 3\nsupervisor -\n")  # a study not opened again yet needs it
    with CrashRecord(owner_token()) as record:
        assert record.path.exists()
        assert not empty.exists() and kept.exists()
    assert not record.path.exists()
    kept.unlink()
