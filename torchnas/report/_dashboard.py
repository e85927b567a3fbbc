"""A live dashboard of a study in the browser: ``torchnas dashboard DB``.

A small HTTP server on the standard library. It serves one page (``dashboard.html``, no
external scripts: it works offline) and a JSON view of the storage that the page polls. The
storage is opened read-only, as by every reading command: watching a running search never
writes to it, and trials appear as the search records them.

Routes: ``/`` (the page), ``/api/studies`` (the studies in the file), ``/api/study?name=N``
(one study: objectives, state counts, ranking, Pareto front, every trial),
``/api/trials/<n>/graph?study=N`` (trial ``n``'s model graph, recorded when it ran: the page
draws it as an SVG when a trial is clicked; 404 with the reason when it has none). The page's
``?study=S&trial=N`` opens study ``S`` with trial ``N`` clicked.

Each connection has its own thread and a read timeout, so an idle or half-sent request holds
only itself. A request whose ``Host`` is not a loopback name (or the served address, or one
given with ``allowed_hosts``) is refused with 403: a web page cannot reach the dashboard through
a DNS name rebound to 127.0.0.1. No response shows the storage's absolute path.
"""

from __future__ import annotations

import json
import math
import os
import re
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any
from urllib.parse import parse_qs, urlparse

from torchnas.report._arch import arch_graph
from torchnas.report._console import state_counts
from torchnas.storage import get_storage
from torchnas.study import Study, load_study
from torchnas.study._trial import FrozenTrial, TrialState

__all__ = ["Dashboard", "study_view", "trial_view"]

#: Seconds a connection may take to send a request (or stay idle between two) before it is closed.
READ_TIMEOUT = 10.0

#: Host names a request may always use.
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})

WILDCARDS = frozenset({"", "0.0.0.0", "::"})

_GRAPH_ROUTE = re.compile(r"/api/trials/(\d{1,9})/graph")


def _finite(value: Any) -> Any:
    """JSON has no NaN or infinity: they become ``null``."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def trial_view(trial: FrozenTrial) -> dict[str, Any]:
    """One trial as the page reads it (JSON-ready; non-finite numbers are ``null``)."""
    return _finite({
        "number": trial.number, "state": trial.state.value, "arch": trial.arch,
        "metrics": trial.metrics, "intermediate": [[s, m] for s, m in trial.intermediate],
        "feasible": trial.feasible, "error": trial.error, "start": trial.start,
        "end": trial.end, "duration": trial.duration, "budget": trial.budget,
        "attempts": trial.attempts,
    })


def study_view(study: Study, top: int = 50) -> dict[str, Any]:
    """A study as the page reads it: objectives, constraints, counts, the ``top`` ranked trial
    numbers, the Pareto front's (several objectives), and every trial."""
    trials = study.trials
    ranked = study.ranked()
    counts = {s.value: sum(t.state is s for t in trials) for s in TrialState}
    return {
        "name": study.name, "objectives": study.objectives,
        "constraints": {k: list(v) for k, v in study.constraints.items()},
        "counts": {k: v for k, v in counts.items() if v},
        "infeasible": sum(t.state is TrialState.COMPLETE and not t.feasible for t in trials),
        "summary": state_counts(trials),
        "ranked": [t.number for t in ranked[:top]],
        "front": [t.number for t in study.pareto_front()] if len(study.objectives) > 1 else [],
        "trials": [trial_view(t) for t in trials],
        "time": time.time(),
    }


def host_name(header: str) -> str:
    """The name in a ``Host`` header, without its port or IPv6 brackets, lower case."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1:].split("]", 1)[0]
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


class Dashboard(ThreadingHTTPServer):
    """The dashboard's server for the SQLite storage at ``db``.

    ``Dashboard(db, port=0)`` binds a free port (``server.url`` says which); ``serve_forever()``
    serves until ``shutdown()``. Each connection is served on a daemon thread and closed after
    :data:`READ_TIMEOUT` seconds without a complete request; the storage is read by one thread
    at a time. Requests must name a loopback host, ``host`` (unless a wildcard) or one of
    ``allowed_hosts`` (names a reverse proxy forwards) in their ``Host`` header.
    """

    daemon_threads = True

    def __init__(self, db: str | os.PathLike[str], host: str = "127.0.0.1",
                 port: int = 8080, allowed_hosts: tuple[str, ...] | list[str] = (),
                 timeout: float = READ_TIMEOUT) -> None:
        self.db = os.fspath(db)
        #: what responses call the storage: its file name, never its absolute path
        self.db_name = os.path.basename(self.db.removeprefix("sqlite:///"))
        if not os.path.exists(self.db.removeprefix("sqlite:///")):
            raise ValueError(f"no such storage file: {self.db}")
        self.read_timeout = timeout
        allowed = set(LOOPBACK_NAMES) | {host_name(h) for h in allowed_hosts}
        if host not in WILDCARDS:
            allowed.add(host.strip("[]").lower())
        self.allowed_hosts = frozenset(allowed)
        self.lock = threading.Lock()
        # one read-only connection for every study (a foreign file fails here, before serving)
        self.journal = get_storage(self.db, read_only=True)
        self._studies: dict[str, Study] = {}
        self.page = resources.files("torchnas.report").joinpath("dashboard.html").read_bytes()
        super().__init__((host, port), _Handler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        name = host.decode() if isinstance(host, bytes) else host
        return f"http://{name}:{port}/"

    def study(self, name: str) -> Study:
        """The study ``name``, opened read-only once and synced on every read (hold
        :attr:`lock` while using it)."""
        if name not in self._studies:
            names = self.names()
            if name not in names:
                raise ValueError(f"{self.db_name}: no study named {name!r} (studies: {names})")
            # the strategy is never asked here: a random one spares replaying to a model
            self._studies[name] = load_study(self.journal, name, strategy="random")
        return self._studies[name]

    def server_close(self) -> None:
        """Closes the socket and the storage connection."""
        super().server_close()
        with self.lock:  # a request still being answered finishes its read first
            self.journal.close()

    def names(self) -> list[str]:
        """The studies in the file now (a search may add one while we serve)."""
        return self.journal.study_names()


class _Handler(BaseHTTPRequestHandler):
    server: Dashboard

    def setup(self) -> None:
        super().setup()
        self.connection.settimeout(self.server.read_timeout)  # a stalled read ends the thread

    def do_GET(self) -> None:  # the name http.server calls
        host = self.headers.get("Host")
        if host is None or host_name(host) not in self.server.allowed_hosts:
            self._json(HTTPStatus.FORBIDDEN, {"error": "this Host is not served (see "
                                              "torchnas dashboard --allow-host)"})
            return
        url = urlparse(self.path)
        if url.path in ("/", "/index.html"):
            self._send(HTTPStatus.OK, self.server.page, "text/html; charset=utf-8")
        elif url.path == "/api/studies":
            with self.server.lock:
                names = self.server.names()
            self._json(HTTPStatus.OK, {"storage": self.server.db_name, "studies": names})
        elif url.path == "/api/study":
            name = parse_qs(url.query).get("name", [""])[0]
            try:
                with self.server.lock:
                    view = study_view(self.server.study(name))
            except ValueError as exc:
                self._json(HTTPStatus.NOT_FOUND, {"error": self._scrub(str(exc))})
                return
            self._json(HTTPStatus.OK, view)
        elif found := _GRAPH_ROUTE.fullmatch(url.path):
            name = parse_qs(url.query).get("study", [""])[0]
            try:
                with self.server.lock:
                    graph = arch_graph(self.server.study(name), int(found.group(1)))
            except ValueError as exc:
                self._json(HTTPStatus.NOT_FOUND, {"error": self._scrub(str(exc))})
                return
            self._json(HTTPStatus.OK, _finite(graph))
        else:
            self._json(HTTPStatus.NOT_FOUND, {"error": f"no such page: {url.path}"})

    def _scrub(self, text: str) -> str:
        """``text`` with the storage's path cut to its file name."""
        path = self.server.db.removeprefix("sqlite:///")
        for full in (os.path.abspath(path), self.server.db, path):
            text = text.replace(full, self.server.db_name)
        return text

    def _json(self, status: HTTPStatus, body: dict[str, Any]) -> None:
        self._send(status, json.dumps(body).encode(), "application/json")

    def _send(self, status: HTTPStatus, body: bytes, kind: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: a page polling every few seconds would fill the terminal."""
