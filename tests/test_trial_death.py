"""A trial that calls ``sys.exit`` under the inline executor (the default for one worker) is
a failed trial, not the end of the search; Ctrl-C stays an interrupt."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import torchnas as tn

DRIVER = textwrap.dedent("""
    import sys
    import torchnas as tn

    def objective(hp):
        x = hp.int("x", 0, 4)
        if x == 2:
            sys.exit(3)
        return float(x)

    study = tn.Study(name="s", storage=sys.argv[1], objectives={"x": "max"}, strategy="grid",
                     seed=0)
    study.optimize(objective, trials=5)
    print("finished", flush=True)
""")


def test_sys_exit_in_an_inline_trial_is_a_failure_and_the_search_goes_on(tmp_path: Path) -> None:
    script, db = tmp_path / "driver.py", tmp_path / "s.db"
    script.write_text(DRIVER, encoding="utf-8")
    proc = subprocess.run([sys.executable, str(script), str(db)], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0 and "finished" in proc.stdout, proc.stderr
    trials = tn.load_study(db, read_only=True).trials
    failed = [t for t in trials if t.state is tn.TrialState.FAILED]
    assert [t.arch["x"] for t in failed] == [2]
    assert failed[0].error == "SystemExit: the trial called sys.exit(3)"
    assert sum(t.state is tn.TrialState.COMPLETE for t in trials) == 4


def test_keyboard_interrupt_in_an_inline_trial_still_interrupts() -> None:
    def objective(hp: tn.HP) -> float:
        raise KeyboardInterrupt

    study = tn.Study(objectives={"x": "max"})
    with pytest.raises(KeyboardInterrupt):
        study.optimize(objective, trials=3)
    assert [t.state for t in study.trials] == [tn.TrialState.INTERRUPTED]


# -- a trial that ends the driver's process (a segfault, os._exit, a kill) -----------------------
linux = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc, prctl")

CRASHER = textwrap.dedent("""
    import ctypes, os, sys
    import torchnas as tn

    MODE = sys.argv[2]

    def objective(hp):
        x = hp.int("x", 0, 4)
        hp.trial.commit()  # the decisions, written before the risky part
        if x == 2:
            if MODE == "segv":
                ctypes.string_at(0)
            os._exit(0)
        return float(x)

    study = tn.Study(name="s", storage=sys.argv[1], objectives={"x": "max"}, strategy="grid",
                     seed=0)
    study.optimize(objective, trials=5)
    print("finished", flush=True)
""")


def env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}


@linux
@pytest.mark.parametrize(("mode", "runs", "rcs", "reason"), [
    ("segv", 2, [-signal.SIGSEGV, 0], "its process crashed while it ran: Segmentation fault ("),
    ("exit", 3, [0, 0, 0], "the process running it died twice while it ran (last: no cause"),
])
def test_a_trial_that_ends_a_driver_script_fails_and_the_search_goes_on(
        tmp_path: Path, mode: str, runs: int, rcs: list[int], reason: str) -> None:
    script, db = tmp_path / "driver.py", tmp_path / "s.db"
    script.write_text(CRASHER, encoding="utf-8")
    done = []
    for _ in range(4):  # the same command again, as a user (or a job scheduler) would
        proc = subprocess.run([sys.executable, str(script), str(db), mode], capture_output=True,
                              text=True, timeout=120, env=env())
        done.append(proc)
        if "finished" in proc.stdout:
            break
    assert [p.returncode for p in done] == rcs, done[-1].stderr
    assert len(done) == runs
    trials = tn.load_study(db, read_only=True).trials
    failed = [t for t in trials if t.state is tn.TrialState.FAILED]
    assert [(t.number, t.arch) for t in failed] == [(2, {"x": 2})]
    assert failed[0].error is not None and failed[0].error.startswith(reason), failed[0].error
    if mode == "segv":  # where it crashed: the library call, and the caller in the objective
        assert "in string_at, from File" in failed[0].error and "in objective)" in failed[0].error
    assert [t.state for t in trials if t.number != 2] == [tn.TrialState.COMPLETE] * 4
    print(f"{mode}: {len(done)} runs, rcs {rcs}, trial 2: {failed[0].error}")


KILLABLE = textwrap.dedent("""
    import os, sys, time
    import torchnas as tn

    def objective(hp):
        x = hp.int("x", 0, 2)
        hp.trial.commit()
        open(os.path.join(sys.argv[2], f"{os.getpid()}-{hp.trial.number}"), "w").close()
        time.sleep(float(sys.argv[3]))
        return float(x)

    study = tn.Study(name="s", storage=sys.argv[1], objectives={"x": "max"}, strategy="grid",
                     seed=0)
    study.optimize(objective, trials=int(sys.argv[4]))
    print("finished", flush=True)
""")


def wait_for(path: Path, pattern: str, timeout: float = 120) -> list[Path]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = sorted(path.glob(pattern))
        if found:
            return found
        time.sleep(0.02)
    raise AssertionError(f"nothing like {pattern} in {path} after {timeout} s")


@linux
def test_kill_9_of_the_driver_once_still_runs_the_trial_again(tmp_path: Path) -> None:
    script, db, marks = tmp_path / "driver.py", tmp_path / "s.db", tmp_path / "marks"
    script.write_text(KILLABLE, encoding="utf-8")
    marks.mkdir()
    proc = subprocess.Popen([sys.executable, str(script), str(db), str(marks), "30", "3"],
                            env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_for(marks, f"{proc.pid}-0")
        proc.kill()
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    again = subprocess.run([sys.executable, str(script), str(db), str(marks), "0", "3"],
                           env=env(), capture_output=True, text=True, timeout=120)
    assert again.returncode == 0 and "finished" in again.stdout, again.stderr
    assert "trials [0] were left running by a dead process" in again.stderr
    trials = tn.load_study(db, read_only=True).trials
    assert [(t.number, t.state, t.attempts) for t in trials] == [
        (0, tn.TrialState.COMPLETE, 2), (1, tn.TrialState.COMPLETE, 1),
        (2, tn.TrialState.COMPLETE, 1)]


@linux
def test_a_live_driver_takes_up_the_trial_of_a_driver_that_died(tmp_path: Path) -> None:
    script, db, marks = tmp_path / "driver.py", tmp_path / "s.db", tmp_path / "marks"
    script.write_text(KILLABLE.replace('strategy="grid"', 'strategy="random"'), encoding="utf-8")
    marks.mkdir()
    tn.Study(name="s", storage=str(db), objectives={"x": "max"}, strategy="random",
             seed=0).journal.close()  # created once: both drivers open it
    victim = subprocess.Popen([sys.executable, str(script), str(db), str(marks), "60", "1"],
                              env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    survivor = subprocess.Popen([sys.executable, str(script), str(db), str(marks), "1", "8"],
                                env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
    try:
        number = int(wait_for(marks, f"{victim.pid}-*")[0].name.split("-")[1])
        wait_for(marks, f"{survivor.pid}-*")  # the survivor runs trials of its own
        victim.kill()
        victim.wait()
        killed = time.monotonic()
        wait_for(marks, f"{survivor.pid}-{number}", timeout=60)
        taken = time.monotonic() - killed
        out, err = survivor.communicate(timeout=120)
    finally:
        for proc in (victim, survivor):
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert survivor.returncode == 0 and "finished" in out, err
    study = tn.load_study(db, read_only=True)
    trial = study.trials[number]
    assert trial.state is tn.TrialState.COMPLETE and trial.attempts == 2
    assert trial.owner.split(":")[1] == str(survivor.pid)  # the same number, by the survivor
    assert f"trials [{number}] were left running by a dead process" in err
    print(f"kill -9 of one of two drivers: trial {number} taken up after {taken:.1f} s")
    assert taken < 20
