"""Storage faults with real faults: a full disk (a file size limit), a read-only folder, a
damaged file; each is one ``torchnas: error:`` line naming the file, what was recorded stays,
and ``torchnas repair`` saves what a damaged file still holds."""

from __future__ import annotations

import contextlib
import io
import os
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import torchnas as tn
from torchnas.cli import main

FULL = textwrap.dedent("""
    import resource, signal, sys
    import torchnas as tn

    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails, no kill
    study = tn.Study(name="f", storage=sys.argv[1], objectives={"x": "max"}, seed=0)
    study.optimize(lambda hp: hp.float("x", 0, 1), trials=5)
    resource.setrlimit(resource.RLIMIT_FSIZE, (1_000_000, 1_000_000))
    try:
        study.optimize(lambda hp: hp.float("x", 0, 1), trials=100_000)
    except tn.StorageError as exc:
        print(exc)
""")

CLI_FULL = textwrap.dedent("""
    import resource, signal, sys
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (120_000, 120_000))
    from torchnas.cli import main
    sys.exit(main(["search", sys.argv[1], "--set", "progress=false"]))
""")

SMALL = """\
space: mlp
data: digits
trainer:
  epochs: 1
trials: {trials}
storage: {db}
progress: false
"""


def run_cli(*argv: str | Path) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in argv])
    return code, out.getvalue(), err.getvalue()


def _errors(err: str) -> list[str]:
    """The lines of stderr that are not the busy-cores warning."""
    return [line for line in err.splitlines() if line and "cores are busy" not in line]


def test_a_full_disk_is_a_storage_error_and_what_was_recorded_stays(tmp_path: Path) -> None:
    db = tmp_path / "f.db"
    proc = subprocess.run([sys.executable, "-c", FULL, str(db)], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"storage {db}: writing it failed"), proc.stdout
    assert "is the disk full?" in proc.stdout and "Traceback" not in proc.stderr
    trials = tn.load_study(db, read_only=True).trials
    done = [t for t in trials if t.state is tn.TrialState.COMPLETE]
    assert len(done) > 5 and len(trials) - len(done) <= 1  # at most the one it was recording


def test_a_full_disk_under_the_cli_is_one_error_line(tmp_path: Path) -> None:
    db, config = tmp_path / "s.db", tmp_path / "s.yaml"
    config.write_text(SMALL.format(trials=400, db=db), encoding="utf-8")
    proc = subprocess.run([sys.executable, "-c", CLI_FULL, str(config)], capture_output=True,
                          text=True, timeout=300)
    lines = _errors(proc.stderr)  # a trial whose weights hit the limit first logs a warning
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert [line for line in lines if line.startswith("torchnas: error:")] == lines[-1:]
    assert lines[-1].startswith(f"torchnas: error: storage {db}: writing it failed")
    code, _, err = run_cli("trials", db)  # what was recorded is readable
    assert code == 0, err


def test_a_config_that_cannot_be_written_is_one_error_line(tmp_path: Path) -> None:
    db, config = tmp_path / "s.db", tmp_path / "s.yaml"
    config.write_text(SMALL.format(trials=2, db=db), encoding="utf-8")
    partial = tmp_path / "s.mlp-digits.config.yaml.partial"
    partial.mkdir()  # in its way: a fault that holds for root too
    code, _, err = run_cli("search", config)
    lines = _errors(err)
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith(f"torchnas: error: {partial}: cannot write the resolved config")
    assert "keeps every trial" in lines[0]
    study = tn.load_study(db, read_only=True)
    assert sum(t.state is tn.TrialState.COMPLETE for t in study.trials) == 2


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores a folder's permissions, so chmod "
                    "cannot make it read-only (the config test above covers the write fault)")
def test_a_read_only_folder_is_one_error_line(tmp_path: Path) -> None:
    folder = tmp_path / "runs"
    folder.mkdir()
    db, config = folder / "s.db", tmp_path / "s.yaml"
    config.write_text(SMALL.format(trials=1, db=db), encoding="utf-8")
    assert run_cli("search", config)[0] == 0
    config.write_text(SMALL.format(trials=2, db=db), encoding="utf-8")
    folder.chmod(0o555)
    try:
        code, _, err = run_cli("search", config)
    finally:
        folder.chmod(0o755)
    lines = _errors(err)
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
    # the open file stays writable (its -wal beside it), the config beside it cannot be made
    assert lines[0].startswith("torchnas: error:") and str(db) in lines[0]
    trials = tn.load_study(db, read_only=True).trials
    assert trials and all(t.state is tn.TrialState.COMPLETE for t in trials)


def _damaged(tmp_path: Path) -> tuple[Path, int]:
    """A real study file of 200 trials with a page in its middle overwritten, and how many
    trials plain SQL still reads both the create and the finish event of."""
    db = tmp_path / "d.db"
    study = tn.Study(name="d", storage=db, objectives={"x": "max"}, seed=0)
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
    return db, len(seen["create"] & seen["finish"])


def test_a_damaged_file_is_called_damaged_and_repair_saves_what_it_holds(
        tmp_path: Path) -> None:
    db, readable = _damaged(tmp_path)
    assert 150 < readable < 200
    code, _, err = run_cli("trials", db)
    lines = _errors(err)
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith(f"torchnas: error: storage {db}: the file is damaged")
    assert f"torchnas repair {db} NEW.db" in lines[0] and "not a torchnas" not in err
    new = tmp_path / "new.db"
    code, out, err = run_cli("repair", db, new)
    assert code == 0 and "events of 1 studies (d) copied" in out, err
    repaired = tn.load_study(new, read_only=True)
    done = [t for t in repaired.trials if t.state is tn.TrialState.COMPLETE]
    assert len(done) == readable
    assert repaired.name == "d" and run_cli("best", new)[0] == 0
    assert run_cli("repair", db, new)[0] == 2  # never over an existing file
    again = tn.load_study(new)  # writable: the search goes on in the new file
    again.optimize(lambda hp: hp.float("x", 0, 1), trials=2)
    assert sum(t.state is tn.TrialState.COMPLETE for t in again.trials) == readable + 2
