"""What the scenarios of ``benchmarks/hostile.py`` share: the outcome row, running the CLI
and Python in subprocesses, reading a study, read-only bind mounts."""


from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
OUTCOMES = ("clear", "recorded", "raw", "silent", "lost", "leftovers")


@dataclass
class Row:
    scenario: str
    tries: int = 0
    counts: Counter[str] = field(default_factory=Counter)
    notes: list[str] = field(default_factory=list)
    details: list[Any] = field(default_factory=list)
    skipped: str | None = None
    seconds: float = 0.0

    def add(self, outcome: str, detail: Any = None) -> None:
        self.tries += 1
        self.counts[outcome] += 1
        if detail is not None:
            self.details.append(detail)

    def as_dict(self) -> dict[str, Any]:
        return {"scenario": self.scenario, "tries": self.tries,
                **{k: self.counts.get(k, 0) for k in OUTCOMES}, "skipped": self.skipped,
                "seconds": round(self.seconds, 1), "notes": self.notes, "details": self.details}


def env(**extra: str) -> dict[str, str]:
    e = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore", **extra}
    e.pop("TORCHNAS_SUPERVISE", None)
    return e


def cli(*argv: Any, cwd: Path | None = None, timeout: float = 300,
        prefix: list[str] | None = None, **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*(prefix or []), PY, "-m", "torchnas.cli", *map(str, argv)],
                          cwd=cwd or ROOT, env=kw.pop("env", None) or env(),
                          capture_output=True, text=True, timeout=timeout, **kw)


def pyrun(code: str, *argv: Any, cwd: Path | None = None, timeout: float = 300,
          **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PY, "-c", code, *map(str, argv)], cwd=cwd or ROOT, env=env(),
                          capture_output=True, text=True, timeout=timeout, **kw)


def error_lines(err: str) -> list[str]:
    """stderr without warnings (the busy-cores one, Python warnings, log lines)."""
    return [line for line in err.splitlines() if line.strip() and "cores are busy" not in line
            and "Warning" not in line and not line.startswith(("WARNING", "INFO", "  warn"))]


def classify(proc: subprocess.CompletedProcess[str]) -> str:
    """A command that failed: ``clear`` (its last line is one ``torchnas: error:`` line and no
    traceback) or ``raw``."""
    if "Traceback (most recent call last)" in proc.stderr:
        return "raw"
    lines = error_lines(proc.stderr)
    errors = [line for line in lines if line.startswith("torchnas: error:")]
    return "clear" if errors and lines[-1] == errors[-1] else "raw"


def files(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in folder.iterdir() if p.is_file()}


def trials_of(db: Path, name: str | None = None) -> list[Any]:
    import torchnas as tn

    study = tn.load_study(db, name, read_only=True) if name else tn.load_study(db,
                                                                               read_only=True)
    try:
        return list(study.trials)
    finally:
        study.journal.close()


def wait_for(folder: Path, pattern: str, timeout: float = 120,
             proc: subprocess.Popen[Any] | None = None) -> list[Path]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = sorted(folder.glob(pattern))
        if found:
            return found
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process ended (rc {proc.returncode}) before {pattern}")
        time.sleep(0.02)
    raise TimeoutError(f"nothing like {pattern} in {folder} after {timeout} s")


def stop(*procs: subprocess.Popen[Any] | None) -> None:
    for proc in procs:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def ro_mount(src: Path, mnt: Path) -> Any:
    """``mnt``: ``src`` bind-mounted read-only, or ``None`` where mounts are not allowed."""
    mnt.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0 or not shutil.which("mount"):
        yield None
        return
    if subprocess.run(["mount", "--bind", str(src), str(mnt)], capture_output=True).returncode:
        yield None
        return
    try:
        if subprocess.run(["mount", "-o", "remount,bind,ro", str(mnt)],
                          capture_output=True).returncode:
            yield None
        else:
            yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False, capture_output=True)
