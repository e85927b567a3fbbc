"""Crash safety and concurrency against real processes: a CLI search killed with SIGKILL at
random moments (benchmarks/torture.py), and several driver processes on one SQLite study."""

from __future__ import annotations

import importlib.util
import os
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

import torchnas as tn

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")


def load_torture() -> Any:
    spec = importlib.util.spec_from_file_location("torture", ROOT / "benchmarks" / "torture.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_a_search_killed_at_random_moments_loses_nothing(tmp_path: Path) -> None:
    figures = load_torture().torture(tmp_path, kills=10, trials=80, seed=1)
    print("torture:", figures)
    assert figures["kills"] >= 10
    assert figures["kills_mid_trial"] >= 3  # most kills land while trials run
    assert figures["interrupted_then_rerun"] >= 1
    assert figures["invariant_checks"] >= 40


DRIVER = textwrap.dedent("""
    import sys, time
    import torchnas as tn

    def objective(hp):
        x = hp.int("x", 0, 10**6)
        hp.choice("act", ["relu", "gelu"])
        time.sleep(0.01)
        return x / 10**6

    study = tn.Study(name="shared", storage=sys.argv[1], objectives={"acc": "max"},
                     strategy="random", seed=0)
    study.optimize(objective, trials=int(sys.argv[2]))
    print("owner", study.owner)
""")


def test_several_drivers_share_one_sqlite_study(tmp_path: Path) -> None:
    db, drivers, each = tmp_path / "shared.db", 4, 15
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    procs = [subprocess.Popen([sys.executable, "-c", DRIVER, str(db), str(each)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(drivers)]
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (_, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err
        assert "database is locked" not in err and "Traceback" not in err, err
    owners = {line.split()[1] for out, _ in outs for line in out.splitlines()
              if line.startswith("owner")}
    assert len(owners) == drivers
    study = tn.load_study(db)
    trials = study.trials
    assert [t.number for t in trials] == list(range(drivers * each))  # none lost, none twice
    assert all(t.state is tn.TrialState.COMPLETE and t.attempts == 1 for t in trials)
    assert {t.owner for t in trials} == owners  # every driver ran some
    study.journal.close()
    with sqlite3.connect(str(db)) as conn:
        kinds = dict(conn.execute("SELECT kind, COUNT(*) FROM events GROUP BY kind").fetchall())
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert kinds["create"] == kinds["finish"] == drivers * each
