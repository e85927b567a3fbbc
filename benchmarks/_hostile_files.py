"""Hostile tries on files and inputs: storage faults, a lost -wal, read-only viewing, configs
that are code, YAML alias bombs, the dashboard and the Ray gate under stalled peers, fuzzing."""


from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import urllib.error
import urllib.request
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
    files,
    pyrun,
    ro_mount,
    stop,
    trials_of,
    wait_for,
)


# -- 5. storage faults -----------------------------------------------------------------------------
def _fault_drivers() -> tuple[str, str]:
    """The full-disk driver scripts of tests/test_storage_faults.py (Python API, CLI)."""
    sys.path.insert(0, str(ROOT / "tests"))
    from test_storage_faults import CLI_FULL, FULL  # type: ignore[import-not-found]

    return FULL, CLI_FULL


SMALL = """\
space: mlp
data: digits
trainer:
  epochs: 1
trials: {trials}
storage: {db}
progress: false
name: s
"""

SLOW_WRITER = textwrap.dedent("""
    import os, sys, time
    import torchnas as tn
    def objective(hp):
        x = hp.float("x", 0, 1)
        open(os.path.join(sys.argv[2], f"trial-{hp.trial.number}"), "w").close()
        time.sleep(0.3)
        return x
    try:
        study = tn.Study(name="s", storage=sys.argv[1], objectives={"x": "max"}, seed=0)
        study.optimize(objective, trials=int(sys.argv[3]))
    except tn.TorchnasError as exc:
        print(f"torchnas: error: {exc}", file=sys.stderr)
        sys.exit(2)
    print("finished", flush=True)
""")


def storage_faults(root: Path, quick: bool) -> Row:
    import torchnas as tn

    row = Row("5 storage faults (disk full, read-only folder, damaged file)")
    # a. disk full, Python API
    db = root / "f.db"
    full, cli_full = _fault_drivers()
    proc = pyrun(full, db, timeout=180)
    trials = trials_of(db)
    done = sum(t.state is tn.TrialState.COMPLETE for t in trials)
    ok = proc.stdout.startswith(f"storage {db}: writing it failed") and "Traceback" not in \
        proc.stderr
    row.add("clear" if ok else classify(proc),
            {"fault": "disk full (RLIMIT_FSIZE 1 MB), API", "message": proc.stdout.strip()[:200],
             "complete": done, "not_finished": len(trials) - done})
    row.notes.append(f"disk full (API): {'StorageError' if ok else 'NOT a clear error'}, "
                     f"{done} trials kept, {len(trials) - done} unfinished")
    # b. disk full under the CLI
    if not quick:
        folder = root / "clifull"
        folder.mkdir()
        db, config = folder / "s.db", folder / "s.yaml"
        config.write_text(SMALL.format(trials=400, db=db))
        start = time.monotonic()
        proc = pyrun(cli_full, config, timeout=300, cwd=folder)
        took = time.monotonic() - start
        outcome = classify(proc) if proc.returncode else "silent"
        listing = cli("trials", db)
        row.add(outcome, {"fault": "disk full (RLIMIT_FSIZE 300 kB), torchnas search",
                          "rc": proc.returncode, "seconds": round(took, 1),
                          "last_line": (error_lines(proc.stderr) or [""])[-1][:200],
                          "trials_readable_after": listing.returncode == 0})
        row.notes.append(f"disk full (CLI): rc {proc.returncode}, {outcome}, trials readable "
                         f"after: {listing.returncode == 0}")
    # c. folder made read-only mid-run (bind mount), then the same command
    src, mnt, marks = root / "rw-src", root / "rw-mnt", root / "rw-marks"
    src.mkdir()
    marks.mkdir()
    mnt.mkdir()
    if os.geteuid() != 0 or not shutil.which("mount") or subprocess.run(
            ["mount", "--bind", str(src), str(mnt)], capture_output=True).returncode:
        row.notes.append("read-only folder: skipped (bind mounts need root / are not allowed)")
    else:
        writer = None
        try:
            writer = subprocess.Popen([PY, "-c", SLOW_WRITER, str(mnt / "s.db"), str(marks),
                                       "40"], cwd=ROOT, env=env(), stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True)
            wait_for(marks, "trial-3", proc=writer)
            remount = subprocess.run(["mount", "-o", "remount,bind,ro", str(mnt)],
                                     capture_output=True, text=True)
            mid_run = remount.returncode == 0
            if not mid_run:  # the kernel refuses while a file is open for writing (EBUSY)
                said = " ".join(remount.stderr.split())[:60]
                row.notes.append("read-only mid-run: the kernel refused to remount the folder "
                                 f"read-only while the driver wrote to it ({said}"
                                 "): the driver was stopped (SIGINT) and the folder made "
                                 "read-only between runs instead")
                writer.send_signal(signal.SIGINT)
                writer.communicate(timeout=60)
                remount = subprocess.run(["mount", "-o", "remount,bind,ro", str(mnt)],
                                         capture_output=True, text=True)
                again = subprocess.run([PY, "-c", SLOW_WRITER, str(mnt / "s.db"), str(marks),
                                        "40"], cwd=ROOT, env=env(), capture_output=True,
                                       text=True, timeout=120)
                out, err, rc = again.stdout, again.stderr, again.returncode
            else:
                out, err = writer.communicate(timeout=120)
                rc = writer.returncode
            ended = subprocess.CompletedProcess([], rc, out, err)
            outcome = classify(ended) if rc else "silent"
            kept = trials_of(src / "s.db")
            row.add(outcome, {"fault": "read-only folder " + ("mid-run" if mid_run else
                                                              "between runs"),
                              "rc": rc, "last_line": (error_lines(err) or [""])[-1][:200],
                              "trials_kept": len(kept)})
            row.notes.append(f"read-only folder ({'mid-run' if mid_run else 'between runs'}): "
                             f"rc {rc}, {outcome}: {(error_lines(err) or [''])[-1][:110]}")
        finally:
            stop(writer)
            subprocess.run(["umount", "-l", str(mnt)], check=False, capture_output=True)
    # d. a damaged file: trials, repair
    db = root / "d.db"
    study = tn.Study(name="d", storage=str(db), objectives={"x": "max"}, seed=0)
    study.optimize(lambda hp: hp.float("x", 0, 1), trials=200)
    study.journal.close()
    size = db.stat().st_size
    with open(db, "r+b") as fh:
        fh.seek(size // 4096 // 2 * 4096)
        fh.write(b"\xff" * 4096)
    seen: dict[str, set[int]] = {"create": set(), "finish": set()}
    with contextlib.closing(sqlite3.connect(db)) as conn:
        for seq in range(1, 1000):
            with contextlib.suppress(sqlite3.DatabaseError):
                for trial, kind in conn.execute("SELECT trial, kind FROM events WHERE seq = ?",
                                                (seq,)):
                    seen.get(kind, set()).add(trial)
    readable = len(seen["create"] & seen["finish"])
    for argv in (["trials", db], ["best", db]):
        proc = cli(*argv)
        outcome = "silent" if proc.returncode == 0 else classify(proc)
        row.add(outcome, {"fault": f"damaged file, torchnas {argv[0]}", "rc": proc.returncode,
                          "stderr": proc.stderr.strip()[-300:]})
    new = root / "repaired.db"
    proc = cli("repair", db, new)
    saved = 0
    if proc.returncode == 0:
        saved = sum(t.state is tn.TrialState.COMPLETE for t in trials_of(new))
        row.add("recorded" if saved >= readable else "lost",
                {"fault": "damaged file, torchnas repair", "finished_saved": saved,
                 "readable_by_sql": readable, "stdout": proc.stdout.strip()[-200:]})
        row.counts["lost"] += max(readable - saved, 0)
    else:
        row.add(classify(proc), {"fault": "damaged file, torchnas repair",
                                 "stderr": proc.stderr[-300:]})
    row.notes.append(f"damaged file: repair saved {saved} finished trials, plain SQL reads "
                     f"{readable} (of 200 written)")
    return row


# -- 6. lost -wal ----------------------------------------------------------------------------------
WAL_WRITER = textwrap.dedent("""
    import sys, time
    import torchnas as tn
    try:
        study = tn.Study(name="s", storage=sys.argv[1], objectives={"x": "max"}, seed=0)
        before = len(study.trials)
        study.optimize(lambda hp: hp.float("x", 0, 1), trials=int(sys.argv[2]))
    except tn.TorchnasError as exc:
        print(f"torchnas: error: {exc}", file=sys.stderr)
        sys.exit(2)
    print("done", before, len(study.trials), flush=True)
    if len(sys.argv) > 3:
        time.sleep(600)  # killed here: its -wal and -shm stay
""")


def lost_wal(root: Path, quick: bool) -> Row:
    row = Row("6 lost -wal after kill -9, same command again")
    for n in ((20,) if quick else (20, 400)):
        folder = root / f"wal{n}"
        folder.mkdir()
        db = folder / "s.db"
        proc = subprocess.Popen([PY, "-c", WAL_WRITER, str(db), str(n), "stay"], cwd=ROOT,
                                env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            proc.kill()
            proc.wait()
        finally:
            stop(proc)
        if not line.startswith("done"):
            row.add("raw", {"trials": n, "writer": proc.stderr.read()[-300:] if proc.stderr
                            else ""})
            continue
        wal = (folder / "s.db-wal").stat().st_size if (folder / "s.db-wal").exists() else 0
        for suffix in ("-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                (folder / f"s.db{suffix}").unlink()
        try:
            again = pyrun(WAL_WRITER, db, n, timeout=300)
        except subprocess.TimeoutExpired:
            row.add("silent", {"trials": n, "result": "the rerun hung (300 s)"})
            continue
        if again.returncode == 0:
            before = int(again.stdout.split()[1])
            outcome = "recorded" if before > 0 else "silent"
            what = f"resumed with {before} of {n} trials" if before else "silent fresh start"
            said = error_lines(again.stderr)
            if said:
                what += f" (it said: {said[-1][:100]})"
            if before:  # the trials only in the deleted -wal are gone with it (storage.md)
                what += f"; {n - before} trials were only in the deleted -wal"

        else:
            outcome = classify(again)
            what = (error_lines(again.stderr) or ["(no message)"])[-1][:150]
        row.add(outcome, {"trials": n, "wal_bytes_deleted": wal, "rerun_rc": again.returncode,
                          "result": what})
        row.notes.append(f"{n} trials, {wal} B of -wal deleted: {what}")
    return row


# -- 7. read-only viewing --------------------------------------------------------------------------
READ_API = textwrap.dedent("""
    import sys
    import torchnas as tn
    try:
        study = tn.load_study(sys.argv[1], read_only=True)
        print(sum(t.state is tn.TrialState.COMPLETE for t in study.trials))
    except tn.TorchnasError as exc:
        print(f"torchnas: error: {exc}", file=sys.stderr)
        sys.exit(2)
""")

STAY_WRITER = textwrap.dedent("""
    import sys, time
    import torchnas as tn
    study = tn.Study(name="s", storage=sys.argv[1], objectives={"x": "max"}, seed=0)
    study.optimize(lambda hp: hp.float("x", 0, 1), trials=int(sys.argv[2]))
    print("done", flush=True)
    if len(sys.argv) > 3:
        time.sleep(600)
""")


def _make(db: Path, trials: int, killed: bool) -> None:
    args = [PY, "-c", STAY_WRITER, str(db), str(trials)] + (["stay"] if killed else [])
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True, cwd=ROOT, env=env())
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "done\n"
        if killed:
            proc.send_signal(signal.SIGKILL)
        proc.wait(60)
    finally:
        stop(proc)


def read_only_viewing(root: Path, quick: bool) -> Row:
    row = Row("7 read-only viewing (trials, best, plot, load_study)")
    shared = Path(tempfile.mkdtemp(prefix="torchnas-hostile-ro-"))
    out = Path(tempfile.mkdtemp(prefix="torchnas-hostile-out-"))
    try:
        shared.chmod(0o755)
        out.chmod(0o777)
        places = {}
        for kind, killed in (("closed", False), ("killed-writer", True)):
            folder = shared / kind
            folder.mkdir()
            folder.chmod(0o755)
            _make(folder / "s.db", 4, killed)
            for p in folder.iterdir():
                p.chmod(0o644)
            places[kind] = folder
        nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"] \
            if os.geteuid() == 0 and shutil.which("setpriv") else None
        if nobody is None:
            row.notes.append("as user nobody: skipped (not root or no setpriv)")
        envs: list[tuple[str, list[str] | None, bool]] = [("writable folder", [], False),
                                                          ("ro bind mount", [], True)]
        if nobody:
            envs.append(("user nobody", nobody, False))
        for where, prefix, mount in envs:
            for kind, folder in places.items():
                with contextlib.ExitStack() as stack:
                    target = folder
                    if mount:
                        target = stack.enter_context(ro_mount(folder, root / f"mnt-{kind}"))
                        if target is None:
                            row.notes.append("ro bind mount: skipped (mounts not allowed)")
                            continue
                    before = files(folder)
                    db = target / "s.db"
                    e = env(MPLCONFIGDIR=str(out), HOME=str(out))
                    plot = out / f"{where.replace(' ', '-')}-{kind}.png"
                    commands = {"trials": ["trials", db], "best": ["best", db],
                                "plot": ["plot", db, plot]}
                    fails = []
                    for name, argv in commands.items():
                        proc = cli(*argv, prefix=prefix, env=e, cwd=out, timeout=180)
                        ok = proc.returncode == 0 and (name != "trials" or
                                                       proc.stdout.count("complete") == 4)
                        row.add("recorded" if ok else classify(proc) if proc.returncode
                                else "silent")
                        if not ok:
                            fails.append(f"{name}: rc {proc.returncode} "
                                         f"{(error_lines(proc.stderr) or [''])[-1][:200]}")
                    proc = subprocess.run([*(prefix or []), PY, "-c", READ_API, str(db)],
                                          cwd=out, env=e, capture_output=True, text=True,
                                          timeout=120)
                    ok = proc.returncode == 0 and proc.stdout.split() == ["4"]
                    row.add("recorded" if ok else classify(proc) if proc.returncode
                            else "silent")
                    if not ok:
                        fails.append(f"load_study: rc {proc.returncode} {proc.stdout.strip()} "
                                     f"{(error_lines(proc.stderr) or [''])[-1][:200]}")
                    after = files(folder)
                    changed = sorted(k for k in set(before) | set(after)
                                     if before.get(k) != after.get(k))
                    new = [k for k in changed if k not in before]
                    # a changed database or -wal is a write a reader must not make; SQLite
                    # rebuilding the wal-index in an -shm that was there is noted apart
                    written = [k for k in changed if k in before and not k.endswith("-shm")]
                    shm = [k for k in changed if k in before and k.endswith("-shm")]
                    row.counts["leftovers"] += len(new)
                    row.counts["silent"] += len(written)
                    row.details.append({"where": where, "db": kind, "failures": fails,
                                        "files_left": new, "files_written": written,
                                        "shm_rewritten": shm})
                    if fails or changed:
                        row.notes.append(f"{where}, {kind}: failures {fails}, files left {new},"
                                         f" files written {written}, -shm rewritten {shm}")
    finally:
        shutil.rmtree(shared, ignore_errors=True)
        shutil.rmtree(out, ignore_errors=True)
    return row


# -- 9. configs are code ---------------------------------------------------------------------------
LOADER = """\
from pathlib import Path

import torchnas as tn


def load(marker):
    Path(marker).write_text("ran")
    return tn.data.load("digits")
"""


def configs_are_code(root: Path, quick: bool) -> Row:
    row = Row("9 configs are code (os:system, a module beside the DB)")
    folder = root / "code"
    folder.mkdir()
    marker = folder / "MARKER"
    bad = folder / "bad.yaml"
    bad.write_text(f"space: mlp\ndata: {{name: 'os:system', command: 'touch {marker}'}}\n"
                   f"storage: {folder / 'x.db'}\ntrials: 1\nprogress: false\n")
    tries = [("search os:system", ["search", bad]), ("space os:system", ["space", bad])]
    db = folder / "s.db"
    (folder / "c.yaml").write_text(f"space: mlp\ndata: digits\ntrainer: {{epochs: 1}}\n"
                                   f"strategy: random\ntrials: 1\nprogress: false\n"
                                   f"storage: {db}\nname: s\n")
    made = cli("search", folder / "c.yaml", cwd=folder)
    beside = folder / "s.s.config.yaml"
    if made.returncode or not beside.exists():
        row.notes.append(f"export: could not make the study ({made.stderr[-200:]})")
    else:
        text = beside.read_text()
        (folder / "marker_loader.py").write_text(LOADER)
        for label, data in (("export, os:system beside the DB",
                             f"{{name: 'os:system', command: 'touch {marker}'}}"),
                            ("export, marker_loader:load beside the DB",
                             f"{{name: 'marker_loader:load', marker: '{marker}'}}")):
            beside.write_text(text.replace("data: digits", f"data: {data}"))
            tries.append((label, ["export", db, folder / "best.pt"]))
            proc = cli(*tries[-1][1], cwd=folder)
            tries[-1] = (label, proc)  # type: ignore[assignment]
    for label, what in tries:
        proc = what if isinstance(what, subprocess.CompletedProcess) else cli(*what, cwd=folder)
        ran = marker.exists()
        with contextlib.suppress(FileNotFoundError):
            marker.unlink()
        outcome = "silent" if ran else "clear" if proc.returncode and classify(proc) == \
            "clear" else "raw" if proc.returncode else "silent"
        row.add(outcome, {"try": label, "rc": proc.returncode, "marker_created": ran,
                          "message": (error_lines(proc.stderr) or [""])[-1][:200]})
        if ran:
            row.notes.append(f"{label}: MARKER created")
    row.notes.append(f"MARKER files created: {sum(d['marker_created'] for d in row.details)} "
                     f"of {row.tries} tries (no --trust-config)")
    return row


# -- 10. YAML alias bombs --------------------------------------------------------------------------
def bomb(levels: int = 9) -> str:
    lines = ['x: &l0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, levels):
        lines.append(f"x{i}: &l{i} [" + ",".join([f"*l{i - 1}"] * 9) + "]")
    return "{" + ", ".join(lines) + "}"


def alias_bombs(root: Path, quick: bool) -> Row:
    row = Row("10 YAML alias bombs (~500 B, 9**9 values)")
    for key in ("trainer", "cost", "data", "space_kwargs", "strategy"):
        for command in (("search",) if quick else ("search", "space")):
            config = root / f"bomb-{key}.yaml"
            text = f"space: mlp\ndata: digits\nstorage: {root / 'bomb.db'}\n{key}: {bomb()}\n"
            config.write_text(text.replace("data: digits\n", "") if key == "data" else text)
            start = time.monotonic()
            try:
                proc = cli(command, config, timeout=30)
                took = time.monotonic() - start
                outcome = classify(proc) if proc.returncode else "silent"
                msg = (error_lines(proc.stderr) or [""])[-1][:160]
            except subprocess.TimeoutExpired:
                took, outcome, msg = 30.0, "silent", "no answer within 30 s (killed)"
            row.add(outcome, {"key": key, "command": command, "bytes": len(config.read_bytes()),
                              "seconds": round(took, 2), "message": msg})
    row.counts["leftovers"] += (root / "bomb.db").exists()
    times = [d["seconds"] for d in row.details]
    said = sorted({re.sub(r"^torchnas: error: \S+: ", "", d["message"])[:60]
                   for d in row.details})
    row.notes.append(f"answer in {min(times):.1f}-{max(times):.1f} s (the CLI's start "
                     f"included); answers: {said}")
    return row


# -- 11. dashboard ---------------------------------------------------------------------------------
def _http(port: int, path: str, host: str = "127.0.0.1", timeout: float = 30) -> tuple[int,
                                                                                        str]:
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers={"Host": host})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def dashboard(root: Path, quick: bool) -> Row:
    import torchnas as tn

    row = Row("11 dashboard (stalled clients, Host header, 404 paths)")
    db = root / "dash" / "s.db"
    db.parent.mkdir()
    study = tn.Study("demo", storage=str(db), objectives={"x": "max"}, seed=0)
    study.optimize(lambda hp: hp.float("x", 0, 1), trials=10)
    study.journal.close()
    proc = subprocess.Popen([PY, "-m", "torchnas.cli", "dashboard", str(db), "--port", "0"],
                            cwd=ROOT, env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    socks: list[socket.socket] = []
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        port = int(re.search(r":(\d+)/", line).group(1))  # type: ignore[union-attr]
        start = time.monotonic()
        status, _ = _http(port, "/api/studies")
        alone = time.monotonic() - start
        idle = socket.create_connection(("127.0.0.1", port))
        half = socket.create_connection(("127.0.0.1", port))
        half.sendall(b"GET /api/studies HT")
        socks += [idle, half]
        time.sleep(0.2)
        start = time.monotonic()
        status, body = _http(port, "/api/studies")
        took = time.monotonic() - start
        row.add("recorded" if status == 200 and took < 2 else "silent",
                {"try": "GET beside an idle and a half-sent connection", "status": status,
                 "seconds": round(took, 3), "alone_seconds": round(alone, 3)})
        row.notes.append(f"GET with stalled peers: {status} in {took * 1000:.0f} ms "
                         f"(alone: {alone * 1000:.0f} ms)")
        status, body = _http(port, "/api/studies", host="evil.example.com")
        row.add("clear" if status == 403 else "silent",
                {"try": "Host: evil.example.com", "status": status})
        for path in ("/nope", "/api/study?name=nope", "/../../etc/passwd"):
            status, body = _http(port, path)
            leak = str(db.parent) in body or str(root) in body
            row.add("clear" if status == 404 and not leak else "silent",
                    {"try": f"GET {path}", "status": status, "absolute_path_in_body": leak,
                     "body": body[:200]})
        # a stalled client is cut (10 s); check that the half-sent connection was closed
        half.settimeout(15)
        start = time.monotonic()
        with contextlib.suppress(OSError):
            while half.recv(4096):
                pass
        cut = time.monotonic() - start + 0.2
        row.add("recorded" if cut < 14 else "silent",
                {"try": "half-sent request cut", "after_s": round(cut, 1)})
        clean = sum(not d.get("absolute_path_in_body", 0) for d in row.details[2:5])
        row.notes.append(f"Host evil.example.com -> {row.details[1]['status']}; 404 bodies "
                         f"without absolute paths: {clean}/3; "
                         f"half-sent request cut after {cut:.1f} s")
    finally:
        for s in socks:
            s.close()
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                row.counts["leftovers"] += 1
                row.notes.append("the dashboard did not stop on SIGINT within 10 s")
        stop(proc)
    return row


# -- 12. the Ray driver's socket (the gate) --------------------------------------------------------
def ray_gate(root: Path, quick: bool) -> Row:
    import secrets
    from multiprocessing.connection import Client, wait

    from torchnas.execution._gate import Gate
    from torchnas.execution._protocol import send

    row = Row("12 Ray driver socket: idle/trickling unauthenticated peers")
    row.notes.append("measured on the gate alone (tests/test_gate.py's setup, real sockets, no "
                     "Ray): time for a worker to be let in, without peers and beside 5 idle + 2 "
                     "trickling peers")
    deadline = 0.5

    def admit(g: Gate, slot: int) -> float:
        host, port = g.sock.getsockname()[:2]
        start = time.monotonic()
        conn = Client((host, port), authkey=g.key)
        send(conn, {"op": "hello", "slot": slot, "token": "t"})
        got: list[Any] = []
        end = start + 5
        while not got and time.monotonic() < end:
            if wait([g.ready], timeout=end - time.monotonic()):
                got += g.take()
        took = time.monotonic() - start
        conn.close()
        for c, _ in got:
            c.close()
        return took if got else float("inf")

    g = Gate(socket.create_server(("127.0.0.1", 0)), secrets.token_bytes(32), deadline)
    g.start()
    stop_ev = threading.Event()
    peers: list[socket.socket] = []
    try:
        base = [admit(g, i) for i in range(8)]
        where = g.sock.getsockname()[:2]
        peers = [socket.create_connection(where) for _ in range(7)]
        opened = time.monotonic()

        def trickle(s: socket.socket) -> None:
            while not stop_ev.wait(0.1):
                try:
                    s.sendall(b"\x00")
                except OSError:
                    return

        for s in peers[5:]:
            threading.Thread(target=trickle, args=(s,), daemon=True).start()
        time.sleep(0.1)
        loaded = [admit(g, 10 + i) for i in range(8)]
        for t in loaded:
            row.add("recorded" if t < 1.0 else "silent")
        cut = []
        for s in peers:
            s.settimeout(deadline + 3)
            with contextlib.suppress(OSError):
                while s.recv(4096):
                    pass
            cut.append(time.monotonic() - opened)  # since the peer connected
        row.details.append({"admit_ms_alone": [round(t * 1000, 1) for t in base],
                            "admit_ms_beside_peers": [round(t * 1000, 1) for t in loaded],
                            "peer_cut_s": [round(t, 2) for t in cut]})
        row.notes.append(f"8 workers let in: median {sorted(base)[4] * 1000:.1f} ms alone, "
                         f"{sorted(loaded)[4] * 1000:.1f} ms beside 7 stalled peers; stalled "
                         f"peers cut {max(cut):.2f} s after they connected at the latest (deadline "
                         f"{deadline} s; the 8 admissions ran meanwhile)")
    finally:
        stop_ev.set()
        for s in peers:
            s.close()
        g.close()
    return row


# -- 13. fuzzed inputs -----------------------------------------------------------------------------
def fuzzed_inputs(root: Path, quick: bool) -> Row:
    row = Row("13 fuzzed inputs (tests/test_inputs.py)")
    proc = subprocess.run([PY, str(ROOT / "tests" / "test_inputs.py")], cwd=root, env=env(),
                          capture_output=True, text=True, timeout=600)
    found = re.search(r"\{.*\}", proc.stdout)
    if proc.returncode or not found:
        row.add("raw", {"rc": proc.returncode, "stderr": proc.stderr[-500:]})
        return row
    counts = {k: int(v) for k, v in re.findall(r"'(\w+)': (\d+)", found.group(0))}
    row.tries = sum(counts.values())
    row.counts["clear"] = counts.get("clear", 0)
    row.counts["recorded"] = counts.get("ok", 0)  # a valid value accepted
    row.counts["raw"] = counts.get("raw", 0) + counts.get("refused", 0)
    row.counts["silent"] = counts.get("silent", 0)
    row.details.append(counts)
    row.notes.append(f"fuzz counts {counts} (ok = valid value accepted, counted as recorded; "
                     "refused = a valid value refused, counted as raw)")
    return row
