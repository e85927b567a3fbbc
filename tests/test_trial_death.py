"""A trial that calls ``sys.exit`` under the inline executor (the default for one worker) is
a failed trial, not the end of the search; Ctrl-C stays an interrupt."""

from __future__ import annotations

import subprocess
import sys
import textwrap
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
