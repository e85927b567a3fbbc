"""The Ray executor against a local Ray (``pip install torchnas[ray]``): the local Ray it starts
listens on loopback only and is stopped after; a worker whose memory grows is replaced; a
cluster address without a cluster. (Faults, retries, Ctrl-C and the same trials as inline:
tests/test_contract_executors.py, on one local Ray.)"""

from __future__ import annotations

import importlib.util
import ipaddress
import os
import socket
import time
from pathlib import Path
from typing import Any

import pytest

import torchnas as tn

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(importlib.util.find_spec("ray") is None,
                       reason="Ray is not installed (pip install 'torchnas[ray]')"),
]

COMPLETE = tn.TrialState.COMPLETE


def objective(hp: tn.HP) -> dict[str, float]:
    x = hp.int("x", 0, 1000)
    assert hp.trial is not None
    hp.trial.report(1, {"acc": x / 2000})
    return {"acc": x / 1000, "pid": os.getpid()}


def _descendants(root: int) -> set[int]:
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int(
                    (entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    found, frontier = set(), {root}
    while frontier:
        frontier = {p for p, pp in parents.items() if pp in frontier} - found
        found |= frontier
    return found


def _address(hex_ip: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    raw = bytes.fromhex(hex_ip)
    if len(raw) == 4:
        return ipaddress.IPv4Address(raw[::-1])
    words = b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4))
    return ipaddress.IPv6Address(words)


def listening_addresses(pids: set[int]) -> set[str]:
    """Addresses the processes ``pids`` listen on (TCP, from /proc)."""
    inodes = set()
    for pid in pids:
        try:
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                link = os.readlink(fd)
                if link.startswith("socket:["):
                    inodes.add(link[8:-1])
        except OSError:
            continue
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # LISTEN
                ip = _address(fields[1].split(":")[0])
                mapped = getattr(ip, "ipv4_mapped", None)
                found.add(str(mapped or ip))
    return found


def test_a_local_ray_listens_on_loopback_only_and_is_stopped_after() -> None:
    import ray

    assert not ray.is_initialized()
    seen: dict[str, Any] = {}

    def look(study: tn.Study, trial: tn.FrozenTrial) -> None:  # runs in the driver
        seen.setdefault("node_ip", ray.util.get_node_ip_address())
        ray_processes = _descendants(os.getpid()) | {os.getpid()}
        seen.setdefault("listening", listening_addresses(ray_processes))

    study = tn.Study(objectives={"acc": "max"}, strategy="random", seed=5)
    here = os.path.dirname(__file__)  # Ray's workers import this module's functions by name
    executor = tn.execution.RayExecutor(workers=1, init_kwargs={
        "num_cpus": 1, "runtime_env": {"env_vars": {"PYTHONPATH": here}}})
    study.optimize(objective, trials=4, executor=executor, callbacks=[look])
    assert not ray.is_initialized()  # it started a local Ray, and stopped it
    assert seen["node_ip"] == "127.0.0.1"
    assert seen["listening"] and seen["listening"] <= {"127.0.0.1", "::1"}, seen["listening"]
    trials = study.trials
    assert len(trials) == 4 and all(t.state is COMPLETE for t in trials)
    assert all(t.intermediate == ((1, {"acc": t.arch["x"] / 2000}),) for t in trials)


HOARD: list[bytes] = []  # what the leaking objective keeps, per worker process


def leaking(hp: tn.HP) -> dict[str, float]:
    hp.int("x", 0, 10**6)
    HOARD.append(b"\x01" * (16 * 2**20))  # 16 MB of touched pages a trial
    return {"acc": 1.0, "pid": float(os.getpid())}


def test_ray_replaces_a_worker_whose_memory_grows_by_a_fresh_process() -> None:
    here = os.path.dirname(__file__)
    executor = tn.execution.RayExecutor(workers=1, recycle_mb=40, init_kwargs={
        "num_cpus": 1, "runtime_env": {"env_vars": {"PYTHONPATH": here}}})
    study = tn.Study(objectives={"acc": "max"}, strategy="random", seed=0)
    study.optimize(leaking, trials=8, executor=executor)
    trials = study.trials
    assert all(t.state is COMPLETE for t in trials)
    runs: dict[float, int] = {}
    for t in trials:
        runs[t.metrics["pid"]] = runs.get(t.metrics["pid"], 0) + 1
    # 16 MB a trial over a 40 MB limit: a process serves 4 trials, then a new one takes over
    assert len(runs) >= 2 and max(runs.values()) <= 4, runs


def test_a_cluster_address_without_a_cluster_fails_before_any_trial(tmp_path: Path) -> None:
    import ray

    if ray.is_initialized():
        ray.shutdown()
    if os.environ.get("RAY_ADDRESS") or Path("/tmp/ray/ray_current_cluster").exists():
        pytest.skip("a Ray cluster is running on this machine")
    study = tn.Study(objectives={"acc": "max"}, strategy="random", storage=tmp_path / "s.db")
    with pytest.raises(tn.ConfigError, match="no Ray cluster reachable at address 'auto'"):
        study.optimize(leaking, trials=2, executor=tn.execution.RayExecutor(address="auto"))
    assert study.trials == [] and not ray.is_initialized()


def sleepy(hp: tn.HP) -> dict[str, float]:
    hp.int("x", 0, 10**6)
    time.sleep(0.4)
    return {"acc": 1.0}


def test_idle_peers_of_the_driver_socket_delay_no_trial(monkeypatch: pytest.MonkeyPatch) -> None:
    """Peers that connect to the driver's socket without the key and send nothing (5 before the
    workers, 1 more after each trial while others run) or trickle bytes cost no trial time."""
    import ray

    from torchnas.execution import _gate
    from torchnas.execution._ray import start_local_ray

    if ray.is_initialized():
        ray.shutdown()
    here = os.path.dirname(__file__)
    start_local_ray(num_cpus=2, runtime_env={"env_vars": {"PYTHONPATH": here}})
    peers: list[socket.socket] = []
    gates: list[_gate.Gate] = []
    try:
        def search(intruders: bool) -> tuple[float, list[tn.FrozenTrial]]:
            def intrude(study: tn.Study, trial: tn.FrozenTrial) -> None:  # in the driver
                if intruders and len(peers) < 10:
                    peers.append(socket.create_connection(gates[-1].sock.getsockname()[:2]))

            study = tn.Study(objectives={"acc": "max"}, strategy="random", seed=0)
            start = time.monotonic()
            study.optimize(sleepy, trials=8, executor=tn.execution.RayExecutor(workers=2),
                           trial_timeout=3, callbacks=[intrude])
            return time.monotonic() - start, study.trials

        real_start = _gate.Gate.start

        def start_with_intruders(gate: _gate.Gate) -> None:
            real_start(gate)
            gates.append(gate)
            where = gate.sock.getsockname()[:2]
            peers.extend(socket.create_connection(where) for _ in range(5))
            peers[-1].sendall(b"\x00\x00")  # a half-sent message

        search(False)  # Ray's worker processes start once
        base, _ = search(False)
        monkeypatch.setattr(_gate.Gate, "start", start_with_intruders)
        took, trials = search(True)
    finally:
        for peer in peers:
            peer.close()
        ray.shutdown()
    print(f"8 trials on 2 Ray workers: {base:.2f} s alone, {took:.2f} s with intruders")
    assert len(peers) >= 10
    assert [t.state for t in trials] == [COMPLETE] * 8, [t.error for t in trials]
    assert took - base < 2.0, (base, took)
