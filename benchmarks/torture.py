"""Crash torture: a real ``torchnas search`` killed with SIGKILL at random moments, then run again.

Each round starts the CLI on the same config and storage and kills it (``kill -9``) at a random
moment: a random delay after it started (often while it is still starting up), or a random
delay after its journal grew by a random number of events (while trials run). Every fourth round
uses the process executor (two workers), the others the inline one. After every kill these
invariants are checked on the SQLite file, and once more after a last run left to finish:

1. ``PRAGMA integrity_check`` is ``ok``;
2. no finished trial is lost: every trial finished before the kill is still there, unchanged
   (state, architecture, metrics, attempts, end time);
3. no finished trial is run again: each trial has at most one ``finish`` event and no event
   after it;
4. trial numbers are 0..n-1, each created once;
5. no worker process outlives the killed driver;
6. (at the end) the study holds exactly ``trials`` trials, all complete, and every trial that
   was running at a kill was interrupted and evaluated again (``attempts >= 2``).

    python benchmarks/torture.py [--kills 20] [--trials 80] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

CONFIG = """\
space: mlp
data: digits
trainer: {{epochs: 2, batch_size: 128}}
strategy: random
trials: {trials}
storage: {db}
name: torture
seed: {seed}
progress: false
max_failures: 3
"""


def _read(db: Path, sql: str) -> list[Any]:
    """``sql``'s rows, read without writing (as torchnas's reading commands do): through the
    file's WAL read-only, or, where that view of a killed writer's WAL fails (a read-only
    connection cannot recover it), from a copy of the file and its WAL, recovered in full."""
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
        try:
            return conn.execute(sql).fetchall()
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        if "malformed" not in str(exc):
            raise
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / db.name
        shutil.copyfile(db, copy)
        wal = db.with_name(db.name + "-wal")
        if wal.exists():
            shutil.copyfile(wal, copy.with_name(copy.name + "-wal"))
        conn = sqlite3.connect(copy, timeout=30)
        try:
            return conn.execute(sql).fetchall()
        finally:
            conn.close()


def _events(db: Path) -> list[dict[str, Any]]:
    rows = _read(db, "SELECT seq, data FROM events ORDER BY seq")
    return [{**json.loads(data), "seq": seq} for seq, data in rows]


def _integrity(db: Path) -> str:
    return str(_read(db, "PRAGMA integrity_check")[0][0])


def _trials(db: Path) -> dict[int, Any]:
    from torchnas.storage import SQLiteJournal, TrialLog

    journal = SQLiteJournal(db)
    try:
        found = journal.find_study("torture")
        if found is None:
            return {}
        log = TrialLog(journal, found[0])
        log.sync()
        return dict(log.trials)
    finally:
        journal.close()


def _record(t: Any) -> tuple[Any, ...]:
    return (t.state.value, json.dumps(t.arch, sort_keys=True), json.dumps(t.metrics,
            sort_keys=True), t.attempts, t.end)


def _survivors(marker: str) -> list[int]:
    """Processes (a forkserver, workers) that carry this run's marker in their environment."""
    needle = f"TORCHNAS_TORTURE={marker}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if needle in (entry / "environ").read_bytes():
                found.append(int(entry.name))
        except OSError:
            continue
    return found


class Torture:
    """Runs the rounds and checks the invariants (an ``AssertionError`` names the one broken)."""

    def __init__(self, root: Path, trials: int = 40, seed: int = 0) -> None:
        self.root = root
        self.db = root / "torture.db"
        self.config = root / "search.yaml"
        self.config.write_text(CONFIG.format(trials=trials, db=self.db, seed=seed))
        self.trials = trials
        self.rng = random.Random(seed)
        self.marker = f"{os.getpid()}-{seed}-{time.time_ns()}"
        self.finished: dict[int, tuple[Any, ...]] = {}
        self.interrupted: set[int] = set()
        self.checks = 0
        self.kills = 0
        self.mid_trial = 0
        self.during_startup = 0

    def _command(self, executor: str) -> list[str]:
        workers = "2" if executor == "process" else "1"
        return [sys.executable, "-m", "torchnas.cli", "search", str(self.config),
                "--set", f"executor={executor}", "--set", f"workers={workers}",
                "--set", f"trials={self.trials}"]

    def _env(self) -> dict[str, str]:
        return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore",
                "TORCHNAS_TORTURE": self.marker}

    def _size(self) -> int:
        if not self.db.exists():
            return 0
        try:
            with sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=5) as conn:
                return int(conn.execute("SELECT COUNT(*) FROM events").fetchone()[0])
        except sqlite3.Error:
            return 0

    def round(self, executor: str) -> bool:
        """Starts the search and kills it; ``False`` when it finished before the kill."""
        log = (self.root / f"round{self.kills}.log").open("w")
        proc = subprocess.Popen(self._command(executor), env=self._env(), stdout=log,
                                stderr=subprocess.STDOUT)
        try:
            if self.rng.random() < 0.3:  # any moment, startup included
                deadline = time.monotonic() + self.rng.uniform(0.1, 6.0)
            else:  # a moment while trials run: after the journal grew by a few events
                size = self._size() + self.rng.randint(1, 8)
                deadline = time.monotonic() + 120
                while proc.poll() is None and self._size() < size and time.monotonic() < deadline:
                    time.sleep(0.05)
                deadline = time.monotonic() + self.rng.uniform(0.0, 1.0)
            while proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.02)
            if proc.poll() is not None:
                assert proc.returncode == 0, (self.root / f"round{self.kills}.log").read_text()
                return False
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            log.close()
        self.kills += 1
        self.check()
        return True

    def _has_schema(self) -> bool:
        if not self.db.exists():
            return False
        return bool(_read(self.db, "SELECT 1 FROM sqlite_master WHERE name = 'events'"))

    def check(self, final: bool = False) -> None:
        """The invariants, on the file as the killed (or finished) search left it."""
        if not self._has_schema():  # killed before the storage was created
            assert not self.finished and not final, "the storage file is gone"
            self.during_startup += 1
            return
        assert _integrity(self.db) == "ok"
        events = _events(self.db)
        trials = _trials(self.db)
        self.checks += 1
        assert sorted(trials) == list(range(len(trials))), "trial numbers are not 0..n-1"
        created = [e["trial"] for e in events if e["kind"] == "create"]
        assert len(created) == len(set(created)) == len(trials), "a trial was created twice"
        self.checks += 1
        last: dict[int, int] = {}
        finishes: dict[int, int] = {}
        for e in events:
            if "trial" in e:
                last[e["trial"]] = e["seq"]
            if e["kind"] == "finish":
                finishes[e["trial"]] = finishes.get(e["trial"], 0) + 1
                assert finishes[e["trial"]] == 1, f"trial {e['trial']} finished twice"
        for n, count in finishes.items():
            finish_seq = next(e["seq"] for e in events
                              if e["kind"] == "finish" and e["trial"] == n)
            assert count == 1 and last[n] == finish_seq, f"trial {n} ran again after finishing"
        self.checks += 1
        for n, record in self.finished.items():
            assert _record(trials[n]) == record, f"finished trial {n} was lost or changed"
        self.checks += 1
        running = [n for n, t in trials.items() if not t.state.finished]
        if not final:
            if running:
                self.mid_trial += 1
            else:
                self.during_startup += 1
            self.interrupted.update(running)
            deadline = time.monotonic() + 15
            while _survivors(self.marker) and time.monotonic() < deadline:
                time.sleep(0.1)
            assert not _survivors(self.marker), "worker processes outlived the killed driver"
            self.checks += 1
        for n, t in trials.items():
            if t.state.finished:
                self.finished.setdefault(n, _record(t))
        if final:
            assert len(trials) == self.trials, f"{len(trials)} trials, not {self.trials}"
            assert all(t.state.value == "complete" for t in trials.values()), \
                [(n, t.state.value, t.error) for n, t in trials.items()]
            for n in self.interrupted:
                assert trials[n].attempts >= 2, f"interrupted trial {n} was not run again"
                assert any(e["kind"] == "interrupt" and e["trial"] == n for e in events)
            self.checks += 2

    def finish(self) -> float:
        """The last run, left to finish; returns its duration."""
        start = time.monotonic()
        done = subprocess.run(self._command("process"), env=self._env(), capture_output=True,
                              text=True, timeout=900)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "database is locked" not in done.stderr
        self.check(final=True)
        return time.monotonic() - start


def torture(root: Path, kills: int = 10, trials: int = 40, seed: int = 0) -> dict[str, Any]:
    """Kills a search ``kills`` times, runs it to the end, and returns the figures."""
    start = time.monotonic()
    t = Torture(root, trials=trials, seed=seed)
    extended = 0
    while t.kills < kills:
        if not t.round("process" if t.kills % 4 == 0 else "inline"):
            # a fast machine finished the search before this kill: the study's total grows
            # (a resumed search runs the rest), as a user raising --set trials would
            extended += 1
            if extended > 4 * kills:
                raise AssertionError(f"the search keeps finishing first ({t.kills} kills)")
            t.trials += max(10, t.trials // 4)
    last = t.finish()
    return {"kills": t.kills, "kills_mid_trial": t.mid_trial,
            "kills_before_first_event": t.during_startup,
            "interrupted_then_rerun": len(t.interrupted), "invariant_checks": t.checks,
            "trials": t.trials, "extended": extended, "last_run_seconds": round(last, 1),
            "seconds": round(time.monotonic() - start, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--trials", type=int, default=None, help="default: 4 x kills")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        figures = torture(Path(tmp), kills=args.kills, trials=args.trials or 4 * args.kills,
                          seed=args.seed)
    for k, v in figures.items():
        print(f"{k}: {v}")


if __name__ == "__main__":
    main()
