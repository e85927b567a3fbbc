#!/usr/bin/env python3
"""Set up the development environment and run the main job or the tests.

    python3 dev.py search   # set up .venv, then run the README's main job (examples/mnist1d.yaml)
    python3 dev.py test     # set up .venv, then ruff, mypy, the import layers and every test
    python3 dev.py test --fast   # the same without the tests marked slow (the inner loop)

Needs nothing but Python >= 3.10: the virtual environment, PyTorch (CPU build, pinned) and the
project with its dev extras are installed on first use and refreshed when pyproject.toml changes.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PY = BIN / ("python.exe" if os.name == "nt" else "python")
TORCH = "torch==2.13.0"  # pinned: an unpinned torch pulls gigabytes of CUDA packages


def run(*cmd: str | Path) -> None:
    print("+", " ".join(map(str, cmd)), flush=True)
    subprocess.run([str(c) for c in cmd], cwd=ROOT, check=True)


def setup() -> None:
    """Creates .venv and installs torch + torchnas[dev] unless they are up to date."""
    stamp = VENV / ".torchnas-setup"
    want = hashlib.sha256((ROOT / "pyproject.toml").read_bytes() + TORCH.encode()).hexdigest()
    if stamp.exists() and stamp.read_text() == want and PY.exists():
        return
    if not PY.exists():
        print(f"+ creating {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    pip = (PY, "-m", "pip", "install", "--disable-pip-version-check", "-q")
    run(*pip, TORCH)
    run(*pip, "-e", ".[dev]")
    stamp.write_text(want)


def browser() -> None:
    """Installs Debian's chromium for the dashboard's browser test when it is missing and
    apt-get can (as root, or through sudo); otherwise that one test is skipped, with a note."""
    if shutil.which("chromium") or shutil.which("google-chrome") or not shutil.which("apt-get"):
        return
    sudo = [] if os.geteuid() == 0 else ["sudo", "-n"] if shutil.which("sudo") else None
    if sudo is None:
        print("+ no chromium and no root: the dashboard's browser test will be skipped")
        return
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    try:
        for cmd in (["apt-get", "update", "-qq"],
                    ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "chromium"]):
            print("+", " ".join(sudo + cmd), flush=True)
            subprocess.run(sudo + cmd, check=True, env=env, stdout=subprocess.DEVNULL)
    except subprocess.CalledProcessError:
        print("+ could not install chromium: the dashboard's browser test will be skipped")


def main() -> int:
    task = sys.argv[1] if len(sys.argv) > 1 else ""
    if task not in ("search", "test"):
        print(__doc__)
        return 2
    setup()
    env_bin = str(BIN)
    os.environ["PATH"] = env_bin + os.pathsep + os.environ.get("PATH", "")
    try:
        if task == "search":
            run(BIN / "torchnas", "search", "examples/mnist1d.yaml", *sys.argv[2:])
        else:
            args = sys.argv[2:]
            browser()
            fast = "--fast" in args
            if fast:
                args = [a for a in args if a != "--fast"] + ["-m", "not slow"]
            run(BIN / "ruff", "check", "torchnas", "tests", "benchmarks", "examples", "dev.py")
            run(BIN / "mypy")
            run(BIN / "lint-imports")  # the layer order in pyproject.toml's importlinter
            # Ray starts its own cluster processes: its tests run apart from the xdist workers
            run(PY, "-m", "pytest", "-n", "2", "-q", "--ignore=tests/test_ray.py", *args)
            if not fast:  # every Ray test is marked slow
                run(PY, "-m", "pytest", "-q", "tests/test_ray.py", *args)
    except subprocess.CalledProcessError as exc:
        return exc.returncode or 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
