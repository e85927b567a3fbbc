"""The Ray driver's door (``torchnas.execution._gate``) over real sockets, without Ray: workers
that prove the key get through at once while peers that send nothing, trickle bytes or hold the
wrong key wait out only their own short deadline, and never the driver's loop."""

from __future__ import annotations

import secrets
import socket
import threading
import time
from collections.abc import Iterator
from multiprocessing.connection import Client, Connection, wait
from typing import Any

import pytest

from torchnas.execution._gate import Gate
from torchnas.execution._protocol import recv, send

DEADLINE = 0.5


@pytest.fixture
def gate() -> Iterator[Gate]:
    g = Gate(socket.create_server(("127.0.0.1", 0)), secrets.token_bytes(32), DEADLINE)
    g.start()
    yield g
    g.close()


def address(g: Gate) -> tuple[str, int]:
    host, port = g.sock.getsockname()[:2]
    return str(host), int(port)


def worker(g: Gate, slot: int, key: bytes | None = None) -> Connection:
    conn = Client(address(g), authkey=key or g.key)
    send(conn, {"op": "hello", "slot": slot, "token": "t"})
    return conn


def taken(g: Gate, count: int, within: float) -> list[tuple[Connection, dict[str, Any]]]:
    """What the driver's loop would take from the gate in ``within`` seconds."""
    got: list[tuple[Connection, dict[str, Any]]] = []
    end = time.monotonic() + within
    while len(got) < count and (left := end - time.monotonic()) > 0:
        if wait([g.ready], timeout=left):
            got += g.take()
    return got


def trickle(sock: socket.socket, stop: threading.Event) -> None:
    while not stop.wait(0.1):
        try:
            sock.sendall(b"\x00")
        except OSError:
            return


def test_a_worker_gets_through_while_idle_and_trickling_peers_wait(gate: Gate) -> None:
    idle = [socket.create_connection(address(gate)) for _ in range(5)]
    tricklers = [socket.create_connection(address(gate)) for _ in range(2)]
    stop = threading.Event()
    threads = [threading.Thread(target=trickle, args=(s, stop), daemon=True) for s in tricklers]
    for t in threads:
        t.start()
    try:
        time.sleep(0.1)  # the idle peers are accepted first
        start = time.monotonic()
        conn = worker(gate, 3)
        (got, hello), = taken(gate, 1, within=1.0)
        assert time.monotonic() - start < 1.0  # not after the stalled peers' deadline
        assert hello == {"op": "hello", "slot": 3, "token": "t"}
        send(got, {"op": "ping"})  # the connection taken is the worker's, working both ways
        assert recv(conn) == {"op": "ping"}
        conn.close()
        got.close()
        # each stalled peer is cut at its deadline, trickling or not
        for s in idle + tricklers:
            s.settimeout(DEADLINE + 2.0)
            start = time.monotonic()
            while s.recv(4096):  # the challenge, then the end of the connection
                pass
            assert time.monotonic() - start < DEADLINE + 1.0
    finally:
        stop.set()
        for s in idle + tricklers:
            s.close()


def test_the_wrong_key_is_refused_and_nothing_reaches_the_loop(gate: Gate) -> None:
    from multiprocessing import AuthenticationError

    with pytest.raises((AuthenticationError, EOFError, OSError)):
        worker(gate, 0, key=b"not the key")
    assert taken(gate, 1, within=DEADLINE + 0.5) == []
    conn = worker(gate, 1)  # the gate still lets our workers in
    (got, hello), = taken(gate, 1, within=1.0)
    assert hello["slot"] == 1
    conn.close()
    got.close()


def test_several_workers_at_once_are_all_taken(gate: Gate) -> None:
    conns = [worker(gate, slot) for slot in range(6)]
    got = taken(gate, 6, within=2.0)
    assert sorted(hello["slot"] for _, hello in got) == list(range(6))
    for c in conns + [g for g, _ in got]:
        c.close()


def test_close_stops_accepting_and_releases_the_port() -> None:
    g = Gate(socket.create_server(("127.0.0.1", 0)), secrets.token_bytes(32), DEADLINE)
    g.start()
    where = address(g)
    idle = socket.create_connection(where)  # a handshake under way when the gate closes
    time.sleep(0.1)
    start = time.monotonic()
    g.close()
    assert time.monotonic() - start < 1.0
    assert not g._thread.is_alive()
    with pytest.raises(OSError):
        socket.create_connection(where, timeout=1).close()
    idle.close()
