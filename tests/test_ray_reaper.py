"""The local Ray a search starts ends with its driver: within 5 s of a ``kill -9`` of the
driver, none of the driver's processes (Ray's agents, workers, raylet and gcs_server, the
watchdog) is left; after a search that ends normally, neither the watchdog nor any Ray process
is. Real processes and signals (the watchdog: torchnas/execution/_reaper.py)."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import torchnas as tn

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(importlib.util.find_spec("ray") is None,
                       reason="Ray is not installed (pip install 'torchnas[ray]')"),
    pytest.mark.skipif(bool(os.environ.get("RAY_ADDRESS")), reason="RAY_ADDRESS is set"),
]

psutil = pytest.importorskip("psutil")

DRIVER = textwrap.dedent("""
    import os, sys, time
    from pathlib import Path

    import torchnas as tn

    MARKS = Path(sys.argv[1])  # travels with the objective (by value: it is in __main__)

    def sleepy(hp):
        hp.int("x", 0, 1000)
        (MARKS / f"running-{os.getpid()}").touch()
        time.sleep(60)
        return {"acc": 1.0}

    if __name__ == "__main__":
        study = tn.Study(objectives={"acc": "max"}, strategy="random", seed=0)
        study.optimize(sleepy, trials=20, executor=tn.execution.RayExecutor(workers=2))
""")


def _tree(pid: int) -> dict[tuple[int, float], psutil.Process]:
    """The descendants of ``pid``, by (pid, start time)."""
    found = {}
    try:
        kids = psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return {}
    for p in kids:
        try:
            found[(p.pid, p.create_time())] = p
        except psutil.Error:
            continue
    return found


def _alive(procs: dict[tuple[int, float], psutil.Process]) -> list[str]:
    """Those still running (same pid and start time; a zombie is dead)."""
    alive = []
    for p in procs.values():
        try:
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                alive.append(f"{p.pid} {p.name()}")
        except psutil.Error:
            continue
    return alive


def _is_watchdog(p: psutil.Process) -> bool:
    try:
        return any(part.endswith("_reaper.py") for part in p.cmdline())
    except psutil.Error:
        return False


def _kill_a_driver(tmp_path: Path) -> tuple[int, list[str], bool]:
    """Starts a driver, kills it (SIGKILL) while its 2 Ray workers run trials: the number of
    its processes seen, those alive 5 s later, whether a watchdog was among them."""
    marks = tmp_path / "marks"
    marks.mkdir(parents=True)
    (tmp_path / "driver.py").write_text(DRIVER)
    with (tmp_path / "driver.log").open("w") as out:
        driver = subprocess.Popen([sys.executable, str(tmp_path / "driver.py"), str(marks)],
                                  stdout=out, stderr=subprocess.STDOUT)
    seen: dict[tuple[int, float], psutil.Process] = {}
    try:
        deadline = time.monotonic() + 180
        while len(list(marks.iterdir())) < 2:  # both workers run a trial
            seen.update(_tree(driver.pid))
            assert driver.poll() is None, (tmp_path / "driver.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "no trial ran within 180 s"
            time.sleep(0.1)
        seen.update(_tree(driver.pid))
        names = set()
        for p in _tree(driver.pid).values():
            with contextlib.suppress(psutil.Error):
                names.add(p.name())
        assert {"raylet", "gcs_server"} <= names, names
        watchdog = any(_is_watchdog(p) for p in seen.values())
        os.kill(driver.pid, signal.SIGKILL)
        driver.wait()
        killed = time.monotonic()
        while _alive(seen) and time.monotonic() - killed < 5:
            time.sleep(0.1)
        return len(seen), _alive(seen), watchdog
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.wait()
        for p in seen.values():  # whatever the test fails on, leave nothing behind
            with contextlib.suppress(psutil.Error):
                if p.is_running():
                    p.kill()


def test_a_killed_driver_leaves_no_ray_process_5_s_later(tmp_path: Path) -> None:
    kills = int(os.environ.get("TORCHNAS_TEST_KILLS", "1"))  # more to measure
    alive: list[str] = []
    watchdogs = 0
    for i in range(kills):
        _, left, watchdog = _kill_a_driver(tmp_path / str(i))
        alive += left
        watchdogs += watchdog
    print(f"kills: {kills}, processes alive 5 s later: {len(alive)} {alive}")
    assert not alive, f"alive 5 s after the driver's kill: {alive}"
    assert watchdogs == kills


def nap(hp: tn.HP) -> dict[str, float]:
    hp.int("x", 0, 1000)
    time.sleep(0.2)
    return {"acc": 1.0}


def test_a_search_that_ends_leaves_no_watchdog_and_no_ray_process() -> None:
    import ray

    if ray.is_initialized():
        ray.shutdown()
    before = set(_tree(os.getpid()))
    seen: dict[tuple[int, float], psutil.Process] = {}
    names: set[str] = set()
    watchdogs = []

    def look(study: tn.Study, trial: tn.FrozenTrial) -> None:  # in the driver, Ray running
        for k, p in _tree(os.getpid()).items():
            if k not in before and k not in seen:
                seen[k] = p
                watchdogs.extend([p] if _is_watchdog(p) else [])
                with contextlib.suppress(psutil.Error):
                    names.add(p.name())

    here = os.path.dirname(__file__)  # Ray's workers import this module's functions by name
    executor = tn.execution.RayExecutor(workers=2, init_kwargs={
        "num_cpus": 2, "runtime_env": {"env_vars": {"PYTHONPATH": here}}})
    study = tn.Study(objectives={"acc": "max"}, strategy="random", seed=0)
    study.optimize(nap, trials=4, executor=executor, callbacks=[look])
    assert [t.state for t in study.trials] == [tn.TrialState.COMPLETE] * 4
    assert {"raylet", "gcs_server"} <= names, names
    assert watchdogs, "no watchdog started"
    assert not _alive(seen), f"alive after the search: {_alive(seen)}"
