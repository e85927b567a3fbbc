"""Hostile tries on processes: kill -9 of drivers (inline, process, Ray executors), several
drivers on one study, trials that end their process, a shared study whose driver dies."""


from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path
from typing import Any

from _hostile_common import (
    PY,
    ROOT,
    Row,
    classify,
    cli,
    env,
    error_lines,
    stop,
    trials_of,
    wait_for,
)


# -- 1. kill -9 of the driver (benchmarks/torture.py) ---------------------------------------------
def kill_driver(root: Path, quick: bool) -> Row:
    """``benchmarks/torture.py``'s rounds and invariants, one kill at a time: a read of the file
    that fails right after a kill is counted (raw) and read again a second later, and the
    rounds go on."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from torture import Torture

    row = Row("1 kill -9 of the driver (process + inline executors)")
    kills = 4 if quick else 12
    t = Torture(root, trials=4 * kills, seed=0)
    extended = 0

    def checked(action: Any, what: str) -> Any:
        try:
            return action()
        except sqlite3.DatabaseError as exc:  # a read of the file right after the kill
            time.sleep(1.0)
            try:
                t.check(final=what == "final run")
                again = "read again 1 s later: every invariant held"
            except (sqlite3.DatabaseError, AssertionError) as later:
                again = f"read again 1 s later: {type(later).__name__}: {later}"[:300]
            row.add("raw", {"after": what, "error": f"{type(exc).__name__}: {exc}",
                            "then": again})
            row.notes.append(f"{what}: sqlite3 {exc} on reading the file; {again}")
            return True

    start = time.monotonic()
    try:
        while t.kills < kills:
            executor = "process" if t.kills % 4 == 0 else "inline"
            before = len(row.details)
            went = checked(lambda e=executor: t.round(e), f"kill {t.kills + 1} ({executor})")
            if not went:  # the search finished before this kill: the study's total grows
                extended += 1
                if extended > 4 * kills:
                    raise AssertionError(f"the search keeps finishing first ({t.kills} kills)")
                t.trials += max(10, t.trials // 4)
            elif len(row.details) == before:
                row.add("recorded")
        last = time.monotonic()
        checked(t.finish, "final run")
        last = time.monotonic() - last
    except AssertionError as exc:
        text = str(exc)
        outcome = "lost" if "lost" in text else "leftovers" if "outlived" in text else "silent"
        row.add(outcome, {"broken_invariant": text[-1500:], "kills_so_far": t.kills})
        row.notes.append(f"after {t.kills} kills an invariant broke: {text[:300]}")
        return row
    figures = {"kills": t.kills, "kills_mid_trial": t.mid_trial,
               "kills_before_first_event": t.during_startup,
               "interrupted_then_rerun": len(t.interrupted), "invariant_checks": t.checks,
               "trials": t.trials, "extended": extended, "last_run_seconds": round(last, 1),
               "seconds": round(time.monotonic() - start, 1)}
    row.details.append(figures)
    row.notes.append(f"{t.kills} kills ({t.mid_trial} mid-trial), {t.checks} invariant checks "
                     f"held, {len(t.interrupted)} interrupted trials run again; {t.trials} "
                     "trials all complete")
    return row


# -- 2. several drivers on one SQLite study --------------------------------------------------------
MANY = textwrap.dedent("""
    import sys
    import torchnas as tn
    study = tn.Study(name="m", storage=sys.argv[1], objectives={"x": "max"}, strategy="random",
                     seed=int(sys.argv[3]))
    study.optimize(lambda hp: hp.float("x", 0, 1) + hp.int("y", 0, 9), trials=int(sys.argv[2]))
    print("finished", flush=True)
""")


def many_drivers(root: Path, quick: bool) -> Row:
    import torchnas as tn

    row = Row("2 several drivers on one SQLite study")
    per = 10 if quick else 30
    for n in (4, 8):
        db = root / f"m{n}.db"
        tn.Study(name="m", storage=str(db), objectives={"x": "max"}, strategy="random",
                 seed=0).journal.close()
        start = time.monotonic()
        procs = [subprocess.Popen([PY, "-c", MANY, str(db), str(per), str(i)], cwd=ROOT,
                                  env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True) for i in range(n)]
        try:
            outs = [p.communicate(timeout=300) for p in procs]
        finally:
            stop(*procs)
        took = time.monotonic() - start
        locked = sum("locked" in err for _, err in outs)
        failed = [(p.returncode, err[-400:]) for p, (out, err) in zip(procs, outs, strict=True)
                  if p.returncode or "finished" not in out]
        trials = trials_of(db, "m")
        numbers = [t.number for t in trials]
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
            kinds = [(json.loads(d)["kind"], json.loads(d).get("trial"))
                     for (d,) in conn.execute("SELECT data FROM events")]
        creates = Counter(t for k, t in kinds if k == "create")
        finishes = Counter(t for k, t in kinds if k == "finish")
        dup = sum(c - 1 for c in creates.values() if c > 1) + sum(
            c - 1 for c in finishes.values() if c > 1)
        complete = sum(t.state is tn.TrialState.COMPLETE for t in trials)
        lost = n * per - complete
        detail = {"drivers": n, "trials_each": per, "seconds": round(took, 1),
                  "complete": complete, "expected": n * per, "lock_errors": locked,
                  "duplicated": dup, "numbers_0_to_n": sorted(numbers) == list(range(len(trials))),
                  "failed_drivers": failed}
        for _ in range(n):
            row.tries += 1
        if failed:
            row.counts["raw"] += len(failed)
        row.counts["recorded"] += n - len(failed)
        row.counts["silent"] += dup
        row.counts["lost"] += max(lost, 0)
        row.details.append(detail)
        row.notes.append(f"{n} drivers x {per} trials: {complete}/{n * per} complete, "
                         f"{locked} lock errors, {dup} duplicates, {took:.1f} s")
    return row


# -- 3. Ray: kill -9 of a driver, its processes 5 s later ------------------------------------------
def ray_kill(root: Path, quick: bool) -> Row:
    import importlib.util

    row = Row("3 Ray: kill -9 of a driver, its processes alive 5 s later")
    if importlib.util.find_spec("ray") is None or importlib.util.find_spec("psutil") is None:
        row.skipped = "Ray or psutil is not installed"
        return row
    if os.environ.get("RAY_ADDRESS"):
        row.skipped = "RAY_ADDRESS is set"
        return row
    sys.path.insert(0, str(ROOT / "tests"))
    from test_ray_reaper import (  # type: ignore[import-not-found]
        _kill_a_driver,  # the test's own driver, tree and kill
    )

    for i in range(1 if quick else 2):
        try:
            seen, alive, watchdog = _kill_a_driver(root / f"ray{i}")
        except AssertionError as exc:
            row.add("raw", {"error": str(exc)[-1500:]})
            continue
        row.add("recorded" if not alive else "leftovers",
                {"processes_seen": seen, "alive_5s_later": alive, "watchdog": watchdog})
        row.counts["leftovers"] += len(alive) - (1 if alive else 0)
        row.notes.append(f"kill {i}: {seen} processes in the tree, {len(alive)} alive 5 s later")
    return row


# -- 4. inline trials that end the process ---------------------------------------------------------
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
            elif MODE == "exit":
                os._exit(0)
            raise SystemExit(3)
        return float(x)

    study = tn.Study(name="s", storage=sys.argv[1], objectives={"x": "max"}, strategy="grid",
                     seed=0)
    study.optimize(objective, trials=5)
    print("finished", flush=True)
""")

CRASHY = textwrap.dedent('''
    import ctypes, os
    import torch
    import torch.nn.functional as F
    from torch import nn

    MODE = os.environ.get("CRASH_MODE", "segv")


    def space(hp):
        units = hp.choice("units", [8, 16, 24, 32])
        return nn.Sequential(nn.Flatten(), nn.Linear(64, units), nn.ReLU(), nn.Linear(units, 10))


    def fit(model, data, hp, trial):
        if model[1].out_features == 24:
            if MODE == "segv":
                ctypes.string_at(0)
            elif MODE == "exit":
                os._exit(0)
            raise SystemExit(3)
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

CRASH_CONFIG = """\
space: crashy_mod:space
data: digits
train_fn: crashy_mod:fit
strategy: grid
trials: 4
name: c
progress: false
storage: runs/c.db
"""


def inline_deaths(root: Path, quick: bool) -> Row:
    import torchnas as tn

    row = Row("4 inline trial ends the process (segfault, os._exit, SystemExit)")
    for mode in ("segv", "exit", "sysexit"):
        folder = root / f"api-{mode}"
        folder.mkdir()
        (folder / "driver.py").write_text(CRASHER)
        db = folder / "s.db"
        rcs: list[int] = []
        raw = False
        for _ in range(4):  # the same command again, as a user (or a job scheduler) would
            proc = subprocess.run([PY, str(folder / "driver.py"), str(db), mode], cwd=folder,
                                  env=env(), capture_output=True, text=True, timeout=120)
            rcs.append(proc.returncode)
            raw = raw or ("Traceback" in proc.stderr and proc.returncode not in (0,))
            if "finished" in proc.stdout:
                break
        trials = trials_of(db)
        failed = [t for t in trials if t.state is tn.TrialState.FAILED]
        done = sum(t.state is tn.TrialState.COMPLETE for t in trials)
        ok = "finished" in proc.stdout and [t.number for t in failed] == [2] and done == 4 \
            and bool(failed[0].error)
        row.add("recorded" if ok else "raw" if raw else "silent",
                {"how": "python API", "mode": mode, "runs": len(rcs), "rcs": rcs,
                 "complete": done, "failed": [(t.number, t.error) for t in failed]})
        row.notes.append(f"API {mode}: {len(rcs)} run(s) until complete, rcs {rcs}, trial 2 "
                         f"{'FAILED: ' + (failed[0].error or '')[:70] if failed else 'not failed'}")
    for mode in ("segv", "exit", "sysexit")[: 2 if quick else 3]:
        folder = root / f"cli-{mode}"
        folder.mkdir()
        (folder / "crashy_mod.py").write_text(CRASHY)
        (folder / "c.yaml").write_text(CRASH_CONFIG)
        start = time.monotonic()
        proc = cli("search", "c.yaml", cwd=folder, env=env(CRASH_MODE=mode), timeout=300)
        took = time.monotonic() - start
        db = folder / "runs" / "c.db"
        trials = trials_of(db) if db.exists() else []
        failed = [t for t in trials if t.state is tn.TrialState.FAILED]
        states = sorted((t.arch.get("units"), t.state.value) for t in trials)
        ok = proc.returncode == 0 and [t.arch.get("units") for t in failed] == [24] and \
            bool(failed[0].error) and len(trials) == 4
        if ok:
            outcome = "recorded"
        elif proc.returncode != 0:
            outcome = classify(proc)
        else:
            outcome = "silent"
        row.add(outcome, {"how": "torchnas search", "mode": mode, "rc": proc.returncode,
                          "seconds": round(took, 1), "states": states,
                          "failed": [(t.number, t.error) for t in failed],
                          "stderr_tail": error_lines(proc.stderr)[-3:]})
        row.notes.append(f"CLI {mode}: rc {proc.returncode} in {took:.0f} s, states {states}")
    return row


# -- 8. shared study, dead driver ------------------------------------------------------------------
KILLABLE = textwrap.dedent("""
    import os, sys, time
    import torchnas as tn

    def objective(hp):
        x = hp.int("x", 0, 2)
        hp.trial.commit()
        open(os.path.join(sys.argv[2], f"{os.getpid()}-{hp.trial.number}"), "w").close()
        time.sleep(float(sys.argv[3]))
        return float(x)

    study = tn.Study(name="s", storage=sys.argv[1], objectives={"x": "max"}, strategy="random",
                     seed=0)
    study.optimize(objective, trials=int(sys.argv[4]))
    print("finished", flush=True)
""")


def shared_dead_driver(root: Path, quick: bool) -> Row:
    import torchnas as tn

    row = Row("8 shared study: kill -9 of one of two drivers mid-trial")
    for i in range(1 if quick else 2):
        folder = root / f"shared{i}"
        marks = folder / "marks"
        marks.mkdir(parents=True)
        script, db = folder / "driver.py", folder / "s.db"
        script.write_text(KILLABLE)
        tn.Study(name="s", storage=str(db), objectives={"x": "max"}, strategy="random",
                 seed=0).journal.close()
        victim = subprocess.Popen([PY, str(script), str(db), str(marks), "60", "1"], env=env(),
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        survivor = subprocess.Popen([PY, str(script), str(db), str(marks), "1", "8"], env=env(),
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        taken = None
        try:
            number = int(wait_for(marks, f"{victim.pid}-*", proc=victim)[0].name.split("-")[1])
            wait_for(marks, f"{survivor.pid}-*", proc=survivor)
            victim.kill()
            victim.wait()
            killed = time.monotonic()
            with contextlib.suppress(TimeoutError, RuntimeError):
                wait_for(marks, f"{survivor.pid}-{number}", timeout=60)
                taken = time.monotonic() - killed
            _, err = survivor.communicate(timeout=120)
        finally:
            stop(victim, survivor)
        trial = trials_of(db)[number]
        if taken is not None and trial.state is tn.TrialState.COMPLETE:
            outcome = "recorded"
        elif trial.state is tn.TrialState.RUNNING:
            outcome = "silent"
        else:
            outcome = "raw" if "Traceback" in err else "silent"
        row.add(outcome, {"trial": number, "taken_up_after_s": None if taken is None
                          else round(taken, 1), "state": trial.state.value,
                          "attempts": trial.attempts, "survivor_rc": survivor.returncode})
        row.notes.append(f"try {i}: trial {number} " + (f"taken up by the survivor after "
                         f"{taken:.1f} s" if taken is not None else f"left {trial.state.value}"))
    return row
