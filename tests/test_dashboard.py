"""The browser dashboard (``torchnas dashboard DB``): its JSON view of a study against the study
itself, live updates while another process writes, read-only storage, errors, and the page in
a real headless browser where one is installed."""

from __future__ import annotations

import json
import math
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import torchnas as tn
from torchnas.cli import main
from torchnas.report._dashboard import Dashboard
from torchnas.storage._artifacts import ArtifactStore, artifacts_dir

PAGE = Path(tn.__file__).parent / "report" / "dashboard.html"
BROWSER = next((b for b in ("chromium", "chromium-browser", "google-chrome", "chrome")
                if shutil.which(b)), None)


def objective(hp: tn.HP) -> dict[str, float]:
    x = hp.float("x", -3.0, 3.0)
    width = hp.choice("width", [1, 2, 3])
    if x > 2.4:
        raise RuntimeError("too far right")
    if x < -2.4:
        raise tn.TrialPruned("too far left")
    for step in range(3):
        hp.trial.report(step, {"score": width - (x - 1.0) ** 2 - 0.1 * (2 - step)})
    return {"score": width - (x - 1.0) ** 2, "size": 10.0 * width, "odd": math.nan}


def make_db(path: Path, trials: int = 25) -> None:
    study = tn.Study("demo", storage=path, objectives={"score": "max", "size": "min"},
                     constraints={"size": ("<=", 25)}, strategy="random", seed=1)
    study.optimize(objective, trials=trials)
    study.journal.close()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    db = tmp_path / "s.db"
    make_db(db)
    server = Dashboard(db, port=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield db, server.url
    server.shutdown()
    server.server_close()
    thread.join(5)


def get(url: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            body = r.read()
            status, kind = r.status, r.headers["Content-Type"]
    except urllib.error.HTTPError as e:
        body, status, kind = e.read(), e.code, e.headers["Content-Type"]
    return status, json.loads(body) if kind == "application/json" else body.decode()


def test_the_json_view_is_the_study(served: tuple[Path, str]) -> None:
    db, url = served
    assert get(url + "api/studies") == (200, {"storage": db.name, "studies": ["demo"]})
    status, view = get(url + "api/study?name=demo")
    assert status == 200
    study = tn.load_study(db, read_only=True)
    trials = study.trials
    states = {t.state for t in trials}
    assert {tn.TrialState.COMPLETE, tn.TrialState.FAILED, tn.TrialState.PRUNED} <= states
    assert [(t["number"], t["state"]) for t in view["trials"]] == [
        (t.number, t.state.value) for t in trials]
    for shown, t in zip(view["trials"], trials, strict=True):
        assert shown["arch"] == t.arch
        assert shown["intermediate"] == [[s, m] for s, m in t.intermediate]
        assert shown["feasible"] == t.feasible
        if t.state is tn.TrialState.COMPLETE:
            assert shown["metrics"]["score"] == t.metrics["score"]
            assert shown["metrics"]["odd"] is None  # NaN is not JSON: null
        if t.state is tn.TrialState.FAILED:
            assert "too far right" in shown["error"]
    feasible = [t for t in trials
                if t.state is tn.TrialState.COMPLETE and t.metrics["size"] <= 25]
    ranked = sorted(feasible, key=lambda t: -t.metrics["score"])
    assert view["ranked"] == [t.number for t in ranked]
    assert view["front"] == [t.number for t in study.pareto_front()]
    assert view["infeasible"] == sum(t.state is tn.TrialState.COMPLETE for t in trials) - len(
        feasible)
    assert view["counts"] == {s.value: n for s in tn.TrialState
                              if (n := sum(t.state is s for t in trials))}


def test_trials_appear_while_a_search_writes(served: tuple[Path, str]) -> None:
    db, url = served
    before = len(get(url + "api/study?name=demo")[1]["trials"])
    writer = tn.Study("demo", storage=db)
    writer.optimize(objective, trials=3)
    writer.journal.close()
    assert len(get(url + "api/study?name=demo")[1]["trials"]) == before + 3
    other = tn.Study("other", storage=db, objectives={"score": "max"}, strategy="random")
    other.optimize(objective, trials=2)
    other.journal.close()
    assert get(url + "api/studies")[1]["studies"] == ["demo", "other"]
    assert len(get(url + "api/study?name=other")[1]["trials"]) == 2


def test_the_dashboard_never_writes_storage(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    make_db(db, trials=6)
    before, wal = db.read_bytes(), Path(f"{db}-wal")
    server = Dashboard(db, port=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        for _ in range(3):
            assert get(server.url + "api/study?name=demo")[0] == 200
    finally:
        server.shutdown()
        server.server_close()
    assert db.read_bytes() == before and (not wal.exists() or wal.stat().st_size == 0)


def test_unknown_study_or_page_is_a_404_that_says_why(served: tuple[Path, str]) -> None:
    _, url = served
    status, body = get(url + "api/study?name=nope")
    assert status == 404 and "no study named 'nope'" in body["error"] and "demo" in body["error"]
    status, body = get(url + "nowhere")
    assert status == 404 and "/nowhere" in body["error"]
    status, page = get(url)
    assert status == 200 and '<table id="leaderboard">' in page


def raw(url: str, request: bytes, timeout: float = 5.0) -> bytes:
    """The whole response to ``request`` sent as is over a fresh TCP connection."""
    host, port = url.removeprefix("http://").rstrip("/").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=timeout) as s:
        s.sendall(request)
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_idle_and_half_sent_connections_do_not_block_others(
        served: tuple[Path, str]) -> None:
    _, url = served
    host, port = url.removeprefix("http://").rstrip("/").rsplit(":", 1)
    idle = socket.create_connection((host, int(port)))
    half = socket.create_connection((host, int(port)))
    half.sendall(b"GET /api/stud")
    try:
        time.sleep(0.2)  # both are accepted and stalled before the next client comes
        start = time.monotonic()
        status, body = get(url + "api/studies")
        assert status == 200 and body["studies"] == ["demo"]
        assert get(url + "api/study?name=demo")[0] == 200
        assert time.monotonic() - start < 1.0
    finally:
        idle.close()
        half.close()


def test_a_stalled_connection_is_closed_after_the_read_timeout(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    make_db(db, trials=2)
    server = Dashboard(db, port=0, timeout=0.5)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        host, port = server.server_address[:2]
        with socket.create_connection((str(host), port), timeout=5) as s:
            s.sendall(b"GET / HT")
            start = time.monotonic()
            assert s.recv(100) == b""  # closed by the server, nothing answered
            assert time.monotonic() - start < 3
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
    assert not thread.is_alive()


def test_a_foreign_host_header_is_refused(served: tuple[Path, str]) -> None:
    _, url = served
    port = url.rstrip("/").rsplit(":", 1)[1]
    for host in ("evil.example", f"evil.example:{port}", "127.0.0.1.evil.example"):
        answer = raw(url, f"GET /api/studies HTTP/1.1\r\nHost: {host}\r\n"
                          "Connection: close\r\n\r\n".encode())
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.0 403"), answer
        assert b"demo" not in body and len(body) < 200
    answer = raw(url, b"GET /api/studies HTTP/1.0\r\n\r\n")  # no Host at all
    assert answer.startswith(b"HTTP/1.0 403")
    for host in ("localhost", f"localhost:{port}", f"[::1]:{port}", f"127.0.0.1:{port}"):
        answer = raw(url, f"GET /api/studies HTTP/1.1\r\nHost: {host}\r\n"
                          "Connection: close\r\n\r\n".encode())
        assert answer.startswith(b"HTTP/1.0 200"), (host, answer)


def test_allowed_hosts_and_the_served_address(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    make_db(db, trials=2)
    server = Dashboard(db, port=0, allowed_hosts=["NAS.Example.org"])
    try:
        assert "nas.example.org" in server.allowed_hosts
        assert {"localhost", "127.0.0.1", "::1"} <= server.allowed_hosts
    finally:
        server.server_close()
    server = Dashboard(db, host="0.0.0.0", port=0)
    try:
        assert "0.0.0.0" not in server.allowed_hosts  # a wildcard names no host
    finally:
        server.server_close()


def test_no_response_shows_the_absolute_path(served: tuple[Path, str]) -> None:
    db, url = served
    for page in ("api/studies", "api/study?name=nope", "api/study?name=" + str(db), "nowhere",
                 "api/study?name=demo", ""):
        answer = raw(url, f"GET /{page} HTTP/1.0\r\nHost: localhost\r\n\r\n".encode())
        assert str(db.parent).encode() not in answer, page
    status, body = get(url + "api/study?name=nope")
    assert status == 404 and body["error"].startswith(f"{db.name}: no study named 'nope'")


def test_cli_refuses_missing_and_foreign_files(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["dashboard", str(tmp_path / "none.db")]) == 2
    assert "no such storage file" in capsys.readouterr().err
    foreign = tmp_path / "foreign.db"
    foreign.write_bytes(b"not a database at all" * 100)
    assert main(["dashboard", str(foreign), "--port", "0"]) == 2
    assert "not a torchnas SQLite storage" in capsys.readouterr().err
    assert foreign.read_bytes() == b"not a database at all" * 100


def test_cli_serves_until_stopped(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    make_db(db, trials=4)
    proc = subprocess.Popen([sys.executable, "-m", "torchnas.cli", "dashboard", str(db),
                             "--port", "0", "--allow-host", "nas.example"],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        found = re.search(r"at (http://127\.0\.0\.1:\d+/)", line)
        assert found, line
        status, view = get(found.group(1) + "api/study?name=demo")
        assert status == 200 and len(view["trials"]) == 4
        for host, code in (("nas.example", b"200"), ("other.example", b"403")):
            answer = raw(found.group(1), f"GET /api/studies HTTP/1.0\r\nHost: {host}\r\n"
                                         "\r\n".encode())
            assert answer.startswith(b"HTTP/1.0 " + code), answer
    finally:
        proc.terminate()
        proc.wait(10)


def test_the_page_script_parses() -> None:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    script = re.search(r"<script>(.*)</script>", PAGE.read_text(), re.S)
    assert script is not None
    done = subprocess.run([node, "--check", "-"], input=script.group(1), text=True,
                          capture_output=True)
    assert done.returncode == 0, done.stderr


@pytest.mark.skipif(BROWSER is None, reason="no headless Chromium or Chrome installed")
def test_a_browser_draws_the_study(served: tuple[Path, str]) -> None:
    db, url = served
    assert BROWSER is not None
    dom = subprocess.run([BROWSER, "--headless", "--no-sandbox", "--disable-gpu",
                          "--virtual-time-budget=5000", "--dump-dom", url],
                         capture_output=True, text=True, timeout=60).stdout
    study = tn.load_study(db, read_only=True)
    trials = study.trials
    assert f'data-loaded="{len(trials)}"' in dom
    assert re.search(r'<div id="error">\s*</div>', dom)
    board = dom.split('<table id="leaderboard">')[1].split("</table>")[0]
    ranked = [t.number for t in study.ranked()]
    assert [int(n) for n in re.findall(r'data-trial="(\d+)"', board)] == ranked
    # one point per trial with a score; the best-so-far line steps at each improvement
    assert len(re.findall(r'<circle[^>]*class="point', dom)) == sum(
        "score" in t.metrics for t in trials)
    best, steps = -math.inf, 0
    for t in sorted(study.ranked(), key=lambda t: t.number):
        if t.metrics["score"] > best:
            best, steps = t.metrics["score"], steps + 1
    assert f'data-points="{steps}"' in dom
    assert len(re.findall(r'class="front"', dom)) == len(study.pareto_front())
    listed = dom.split('<table id="trials">')[1].split("</table>")[0]
    assert [int(n) for n in re.findall(r'data-trial="(\d+)"', listed)] == [
        t.number for t in reversed(trials)]


def branchy_graph() -> dict[str, Any]:
    """A recorded graph with two branches joined, one label that looks like markup."""
    import torch
    from torch import nn

    from torchnas.evaluation._graph import model_graph

    class Branches(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b, self.head = nn.Linear(4, 6), nn.Linear(4, 6), nn.Linear(6, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head(torch.relu(self.a(x)) + self.b(x))

    graph = model_graph(Branches(), torch.zeros(1, 4))
    assert graph is not None
    graph["nodes"][1]["label"] = "<b id=injected>x</b>"  # labels come from module names
    return graph


def test_a_trials_graph_is_served_as_recorded(served: tuple[Path, str]) -> None:
    db, url = served
    graph = branchy_graph()
    store = ArtifactStore(artifacts_dir(db, "demo"))
    store.save_graph(2, graph)
    assert get(url + "api/trials/2/graph?study=demo") == (200, graph)
    status, body = get(url + "api/trials/1/graph?study=demo")
    assert status == 404 and "trial 1 of study 'demo' has no recorded graph" in body["error"]
    status, body = get(url + "api/trials/99/graph?study=demo")
    assert status == 404 and "no trial 99" in body["error"]
    status, body = get(url + "api/trials/2/graph?study=nope")
    assert status == 404 and "no study named 'nope'" in body["error"]
    for page in ("api/trials/2/graph?study=demo", "api/trials/1/graph?study=demo"):
        answer = raw(url, f"GET /{page} HTTP/1.0\r\nHost: localhost\r\n\r\n".encode())
        assert str(db.parent).encode() not in answer, page


@pytest.mark.skipif(BROWSER is None, reason="no headless Chromium or Chrome installed")
def test_a_browser_draws_a_clicked_trials_network(served: tuple[Path, str]) -> None:
    db, url = served
    assert BROWSER is not None
    graph = branchy_graph()
    ArtifactStore(artifacts_dir(db, "demo")).save_graph(3, graph)

    def page(trial: int) -> str:  # ?trial=N clicks that trial's row once the page has loaded
        return subprocess.run([BROWSER, "--headless", "--no-sandbox", "--disable-gpu",
                               "--virtual-time-budget=5000", "--dump-dom",
                               f"{url}?study=demo&trial={trial}"],
                              capture_output=True, text=True, timeout=60).stdout

    dom = page(3)
    assert f'data-arch-nodes="{len(graph["nodes"])}"' in dom
    svg = dom.split('<svg id="arch"')[1].split("</svg>")[0]
    assert len(re.findall(r'<rect[^>]*class="node"', svg)) == len(graph["nodes"])
    assert len(re.findall(r'<path[^>]*class="edge"', svg)) == len(graph["edges"])
    joins = [n["id"] for n in graph["nodes"] if n["kind"] == "add"]
    assert len(joins) == 1 and len(re.findall(rf'data-edge="\d+-{joins[0]}"', svg)) == 2
    assert "&lt;b id=injected&gt;x&lt;/b&gt;" in svg and "<b id" not in dom  # text, escaped
    assert "Linear 4→6" in svg
    assert f"trial 3: {len(graph['nodes'])} nodes" in dom
    dom = page(1)  # no graph recorded: the reason instead
    assert "trial 1 of study 'demo' has no recorded graph" in dom
    assert len(re.findall(r'<rect[^>]*class="node"', dom)) == 0
