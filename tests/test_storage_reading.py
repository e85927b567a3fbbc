"""Reading a study writes nothing: not beside the file (no new ``-wal``/``-shm``), not in it,
and works where nothing may be written (a user who may only read, a read-only mount). A lost
``-wal`` file can cost seconds of events, never the study, and never a silent fresh start."""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

import torchnas as tn
from torchnas.cli import main
from torchnas.storage import SQLiteJournal

ROOT = Path(tn.__file__).parents[1]

WRITER = textwrap.dedent("""
    import sys, time
    import torchnas as tn
    study = tn.Study(name="s", storage=sys.argv[1], objectives={"x": "max"}, seed=0)
    study.optimize(lambda hp: hp.float("x", 0, 1), trials=int(sys.argv[2]))
    print("done", flush=True)
    if len(sys.argv) > 3:
        time.sleep(600)  # killed here, so its -wal and -shm stay
""")


def _files(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir()}


def _write(db: Path, trials: int, killed: bool = False) -> None:
    """A study of ``trials`` trials in ``db``, by another process (killed with -9 at the end
    when ``killed``: its ``-wal``/``-shm`` files stay beside the database)."""
    args = [sys.executable, "-c", WRITER, str(db), str(trials)] + (["stay"] if killed else [])
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    assert proc.stdout is not None and proc.stdout.readline() == "done\n"
    if killed:
        proc.send_signal(signal.SIGKILL)
    proc.wait(60)


def _cli(*argv: str | Path) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        code = main([str(a) for a in argv])
    return code, out.getvalue()


def test_reading_a_closed_study_leaves_no_file_and_changes_no_byte(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    _write(db, 5)
    before = _files(tmp_path)
    assert list(before) == ["s.db"]
    study = tn.load_study(db, read_only=True)
    assert sum(t.state is tn.TrialState.COMPLETE for t in study.trials) == 5
    study.journal.close()
    for argv in (["trials", db], ["best", db]):
        code, out = _cli(*argv)
        assert code == 0, out
    pytest.importorskip("matplotlib")
    code, out = _cli("plot", db, tmp_path / "p.png")
    assert code == 0, out
    after = _files(tmp_path)
    after.pop("p.png")
    assert after == before


def test_a_reader_follows_a_live_writer_and_leaves_nothing_once_it_closes(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    writer = tn.Study(name="s", storage=db, objectives={"x": "max"}, seed=0)
    writer.optimize(lambda hp: hp.float("x", 0, 1), trials=2)
    looker = tn.load_study(db, read_only=True)
    assert len(looker.trials) == 2
    writer.optimize(lambda hp: hp.float("x", 0, 1), trials=3)
    assert len(looker.trials) == 5  # it reads the writer's WAL as it goes
    writer.journal.close()
    assert len(looker.trials) == 5
    looker.journal.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.db"]


@contextlib.contextmanager
def _shared_folder() -> Iterator[Path]:
    """A folder others may enter (tmp_path's parents are private to root)."""
    folder = Path(tempfile.mkdtemp(prefix="torchnas-ro-"))
    folder.chmod(0o755)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


READER = textwrap.dedent("""
    import os, sys
    import torchnas as tn
    from torchnas.study import _study, _trial  # noqa: F401 - before Python's own files close
    from torchnas.storage import _reader  # noqa: F401
    from torchnas.study._process import owner_token
    import encodings.ascii  # noqa: F401
    owner_token()
    load_study = tn.load_study
    if os.geteuid() == 0:
        os.setgid(65534); os.setuid(65534)  # nobody: may read, not write
    study = load_study(sys.argv[1], read_only=True)
    print(sum(t.state is tn.TrialState.COMPLETE for t in study.trials))
""")


def _read_as_other_user(db: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", READER, str(db)], capture_output=True,
                          text=True, timeout=120, cwd=ROOT)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux permissions")
def test_a_user_who_may_only_read_sees_every_trial_even_from_a_killed_writers_wal() -> None:
    with _shared_folder() as folder:
        db = folder / "s.db"
        _write(db, 4, killed=True)
        assert (folder / "s.db-wal").exists()  # the trials may be there only
        if os.geteuid() != 0:  # no other user to become: take the write permissions away
            for p in folder.iterdir():
                p.chmod(0o444)
            folder.chmod(0o555)
        before = _files(folder)
        try:
            proc = _read_as_other_user(db)
        finally:
            folder.chmod(0o755)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.split() == ["4"]
        assert _files(folder) == before


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("mount"), reason="mounts need root")
def test_a_read_only_mount_carrying_wal_and_shm_is_readable(tmp_path: Path) -> None:
    src, mnt = tmp_path / "src", tmp_path / "mnt"
    src.mkdir()
    mnt.mkdir()
    _write(src / "s.db", 3, killed=True)
    assert {"s.db-wal", "s.db-shm"} <= {p.name for p in src.iterdir()}
    if subprocess.run(["mount", "--bind", str(src), str(mnt)], capture_output=True).returncode:
        pytest.skip("this machine does not allow bind mounts")
    try:
        if subprocess.run(["mount", "-o", "remount,bind,ro", str(mnt)],
                          capture_output=True).returncode:
            pytest.skip("this machine does not allow read-only remounts")
        before = _files(src)
        study = tn.load_study(mnt / "s.db", read_only=True)
        assert sum(t.state is tn.TrialState.COMPLETE for t in study.trials) == 3
        study.journal.close()
        code, out = _cli("trials", mnt / "s.db")
        assert code == 0 and out.count("complete") == 3, out
        with pytest.raises(tn.StorageError, match="the file or its folder is read-only"):
            tn.Study(name="s", storage=mnt / "s.db")  # writing there: said as such
        assert _files(src) == before
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)  # lazy: even while busy


def test_a_lost_wal_costs_seconds_of_events_not_the_study(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    code = textwrap.dedent("""
        import sys, time
        from torchnas.storage import SQLiteJournal
        j = SQLiteJournal(sys.argv[1])
        sid = j.create_study("s", {"seed": 0})
        t0 = time.monotonic()
        while time.monotonic() - t0 < 5:
            j.append(sid, [{"kind": "note", "trial": None}])
            time.sleep(0.05)  # a trial's events now and then: SQLite's own checkpoints wait
        print(len(j.read(sid)), flush=True)
        time.sleep(600)
    """)
    proc = subprocess.Popen([sys.executable, "-c", code, str(db)], stdout=subprocess.PIPE,
                            text=True, cwd=ROOT)
    assert proc.stdout is not None
    written = int(proc.stdout.readline())
    proc.kill()
    proc.wait(30)
    (tmp_path / "s.db-wal").unlink()
    (tmp_path / "s.db-shm").unlink()
    with pytest.raises(tn.StorageError, match="was writing to it when it died"):
        SQLiteJournal(db)  # said, not glossed over; the file keeps what was checkpointed:
    code, out = _cli("repair", db, tmp_path / "new.db")
    assert code == 0, out
    journal = SQLiteJournal(tmp_path / "new.db")
    kept = len(journal.read(1))
    assert journal.study_names() == ["s"]
    per_second = written / 5
    assert kept >= written - 3 * per_second, (kept, written)  # at most ~2 s lost (of 5)


def test_a_database_whose_wal_held_everything_is_not_silently_started_again(
        tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    code = textwrap.dedent("""
        import sqlite3, sys, time
        conn = sqlite3.connect(sys.argv[1], isolation_level=None)
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("CREATE TABLE studies (id INTEGER PRIMARY KEY)")  # only in the WAL
        print("ok", flush=True)
        time.sleep(600)
    """)
    proc = subprocess.Popen([sys.executable, "-c", code, str(db)], stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout is not None and proc.stdout.readline() == "ok\n"
    proc.kill()
    proc.wait(30)
    (tmp_path / "s.db-wal").unlink()
    before = db.read_bytes()
    with pytest.raises(tn.StorageError, match=r"s\.db-wal file is gone"):
        tn.Study(name="s", storage=db, objectives={"x": "max"})
    assert db.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.db"]


def test_the_cli_refuses_a_fresh_start_where_its_config_says_a_study_finished(
        tmp_path: Path) -> None:
    db, config = tmp_path / "s.db", tmp_path / "s.yaml"
    config.write_text(f"space: mlp\ndata: digits\nname: s\ntrainer: {{epochs: 1}}\ntrials: 2\n"
                      f"storage: {db}\nprogress: false\n", encoding="utf-8")
    code, out = _cli("search", config)
    assert code == 0, out
    assert (tmp_path / "s.s.config.yaml").is_file()
    for p in tmp_path.glob("s.db*"):  # the file lost its events: here, replaced by an empty one
        p.unlink()
    SQLiteJournal(db).close()
    before = db.read_bytes()
    code, out = _cli("search", config)
    assert code == 2
    assert out.startswith(f"torchnas: error: storage {db} holds no study 's', but "), out
    assert "move s.s.config.yaml away" in out
    assert db.read_bytes() == before


def test_a_killed_writers_lost_wal_is_an_error_not_a_fresh_start(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    _write(db, 20, killed=True)  # killed at once: its events may be in its -wal only
    (tmp_path / "s.db-wal").unlink()
    (tmp_path / "s.db-shm").unlink()
    before = db.read_bytes()
    with pytest.raises(tn.StorageError, match=r"was writing to it when it died, and the "
                                              r"s\.db-wal file it left is gone"):
        tn.Study(name="s", storage=db, objectives={"x": "max"})
    assert db.read_bytes() == before
    code, out = _cli("repair", db, tmp_path / "new.db")  # the way on with what it holds
    assert code == 0, out
    study = tn.Study(name="s", storage=tmp_path / "new.db", objectives={"x": "max"})
    assert len(study.trials) <= 20


def test_writers_that_close_or_exit_leave_no_trace(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    _write(db, 3)  # a process that exits without closing the study
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.db"]
    study = tn.Study(name="s", storage=db, objectives={"x": "max"})  # opens without complaint
    study.optimize(lambda hp: hp.float("x", 0, 1), trials=5)
    study.journal.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.db"]
    _write(db, 7, killed=True)  # a killed writer whose -wal stays: the next one goes on
    assert len(tn.Study(name="s", storage=db, objectives={"x": "max"}).trials) == 3 + 5 + 7
