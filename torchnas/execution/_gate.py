"""The Ray driver's door: workers connect back, prove the key and say hello, off the main loop.

A peer that connects and sends nothing (or trickles bytes) must not hold up the driver, which
also answers the running trials. :class:`Gate` accepts on a background thread and gives every
connection its own thread and :data:`HANDSHAKE_DEADLINE` seconds in all to pass the challenge
and send its first message; the connections that do wait in a queue that the driver's loop
takes from when :attr:`Gate.ready` becomes readable.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import select
import socket
import struct
import threading
from multiprocessing.connection import Connection, answer_challenge, deliver_challenge
from typing import Any

from torchnas.execution._protocol import recv

__all__ = ["HANDSHAKE_DEADLINE", "Gate"]

log = logging.getLogger("torchnas")

#: Seconds a connecting peer has to authenticate and send its hello (workers need milliseconds).
HANDSHAKE_DEADLINE = 2.0

#: Handshakes under way at once; a connection beyond them is closed at once.
MAX_HANDSHAKES = 64


class Gate:
    """Accepts and authenticates connections to the listening socket ``sock`` with ``key``.

    ``start()`` starts the accepting thread; ``ready`` is a socket readable while
    authenticated connections wait; ``take()`` returns them with their first message;
    ``close()`` stops accepting and closes the listening socket and what was not taken.
    """

    def __init__(self, sock: socket.socket, key: bytes,
                 deadline: float = HANDSHAKE_DEADLINE) -> None:
        self.sock = sock
        self.key = key
        self.deadline = deadline
        self._done: queue.SimpleQueue[tuple[Connection, dict[str, Any]]] = queue.SimpleQueue()
        self.ready, self._wake = socket.socketpair()
        self.ready.setblocking(False)
        self._stop = threading.Event()
        self._slots = threading.BoundedSemaphore(MAX_HANDSHAKES)
        self._thread = threading.Thread(target=self._accept, name="torchnas-ray-gate",
                                        daemon=True)

    def start(self) -> None:
        self.sock.setblocking(False)
        self._thread.start()

    def take(self) -> list[tuple[Connection, dict[str, Any]]]:
        """The authenticated connections not taken yet, each with its first message."""
        with contextlib.suppress(OSError):
            while self.ready.recv(4096):
                pass
        taken = []
        while True:
            try:
                taken.append(self._done.get_nowait())
            except queue.Empty:
                return taken

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)
        self.sock.close()
        for conn, _ in self.take():
            conn.close()
        self.ready.close()
        self._wake.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                if not select.select([self.sock], [], [], 0.2)[0]:
                    continue
                sock, _ = self.sock.accept()
            except (OSError, ValueError):  # the peer gave up already, or we are closing
                continue
            if not self._slots.acquire(blocking=False):
                sock.close()  # a flood of handshakes: real workers try again with their task
                continue
            threading.Thread(target=self._handshake, args=(sock,), name="torchnas-ray-hello",
                             daemon=True).start()

    def _handshake(self, sock: socket.socket) -> None:
        claim = threading.Lock()  # taken by the first of: the handshake ends, the deadline

        def cut() -> None:
            if claim.acquire(blocking=False):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)  # the blocked read returns at once

        timer = threading.Timer(self.deadline, cut)
        timer.daemon = True
        conn = None
        try:
            sock.setblocking(True)
            secs = int(self.deadline)
            wait = struct.pack("ll", secs, int((self.deadline - secs) * 1e6))
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, wait)  # each read
            timer.start()  # the whole handshake, for a peer that trickles bytes
            conn = Connection(sock.dup().detach())
            deliver_challenge(conn, self.key)
            answer_challenge(conn, self.key)
            hello = recv(conn)
            if not claim.acquire(blocking=False):
                raise TimeoutError("the handshake took too long")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, struct.pack("ll", 0, 0))
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # small messages now
            if self._stop.is_set():
                raise OSError("the gate is closed")
            self._done.put((conn, hello))
            conn = None
            with contextlib.suppress(OSError):
                self._wake.send(b"\0")
        except Exception as exc:  # not one of our workers (or too slow to be one)
            log.debug("ray executor: a connection failed its handshake (%r)", exc)
        finally:
            timer.cancel()
            if conn is not None:
                conn.close()
            sock.close()
            self._slots.release()
