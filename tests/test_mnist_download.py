"""Tests of the MNIST-family loaders against a local HTTP server (never the internet)."""

from __future__ import annotations

import gzip
import hashlib
import struct
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch.utils.data import Dataset, TensorDataset

from torchnas import data as tdata
from torchnas._util.errors import ConfigError, DataError
from torchnas.data import _mnist
from torchnas.data._mnist import FILES, Source, read_idx

N_TRAIN, N_TEST = 30, 10


def _idx(array: np.ndarray) -> bytes:
    """``array`` (uint8) as a gzipped IDX file."""
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return gzip.compress(header + array.tobytes(), mtime=0)


def _arrays() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        FILES[0]: rng.integers(0, 256, (N_TRAIN, 28, 28), dtype=np.uint8),
        FILES[1]: (np.arange(N_TRAIN) % 10).astype(np.uint8),
        FILES[2]: rng.integers(0, 256, (N_TEST, 28, 28), dtype=np.uint8),
        FILES[3]: (np.arange(N_TEST)[::-1] % 10).astype(np.uint8),
    }


ARRAYS = _arrays()
GOOD = {name: _idx(a) for name, a in ARRAYS.items()}
MD5 = {name: hashlib.md5(body).hexdigest() for name, body in GOOD.items()}


class Server(ThreadingHTTPServer):
    """Serves ``routes`` (URL path -> body; anything else is a 404) and logs every request."""

    routes: dict[str, bytes]
    requests: list[str]


class Handler(BaseHTTPRequestHandler):
    server: Server

    def do_GET(self) -> None:
        self.server.requests.append(self.path)
        body = self.server.routes.get(self.path)
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[Server]:
    """A local server: ``/good/`` has the files, ``/bad/`` corrupt bytes, ``/gone/`` nothing."""
    srv = Server(("127.0.0.1", 0), Handler)
    srv.routes = {f"/good/{k}": v for k, v in GOOD.items()}
    srv.routes |= {f"/bad/{k}": v[:-8] + b"garbage!" for k, v in GOOD.items()}
    srv.requests = []
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.01})
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()
    thread.join()


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No built-in mirror is ever tried, and the default cache is a temporary folder."""
    for name, source in _mnist.SOURCES.items():
        monkeypatch.setitem(_mnist.SOURCES, name, Source((), source.md5))
    monkeypatch.setenv("TORCHNAS_HOME", str(tmp_path / "home"))


def _url(srv: Server, prefix: str) -> str:
    return f"http://127.0.0.1:{srv.server_address[1]}/{prefix}/"


def _load(root: Path, *mirrors: str, name: str = "mnist", seed: int = 0) -> tdata.Data:
    return tdata.load(name, root=root, mirrors=list(mirrors), md5=MD5, seed=seed)


def _xy(split: Dataset[Any] | None) -> tuple[torch.Tensor, torch.Tensor]:
    assert isinstance(split, TensorDataset)
    return split.tensors[0], split.tensors[1]


def test_registered() -> None:
    assert {"mnist", "fashion_mnist", "kmnist"} <= set(tdata.available())
    with pytest.raises(ConfigError, match=r"unknown option 'download'.*mirrors"):
        tdata.load("kmnist", download=True)


def test_load_through_local_server(server: Server, tmp_path: Path) -> None:
    data = _load(tmp_path, _url(server, "good"), name="fashion_mnist")
    assert data.name == "fashion_mnist" and data.input_shape == (1, 28, 28)
    assert data.num_classes == 10
    (x, y), (xv, yv) = _xy(data.train), _xy(data.val)
    assert x.dtype == torch.float32 and y.dtype == torch.int64
    assert len(x) == 20 and len(xv) == 10 and sorted(yv.tolist()) == list(range(10))
    kept, held = tdata.stratified_split(ARRAYS[FILES[1]], 0.2, seed=0)
    images = ARRAYS[FILES[0]].astype(np.float32)[:, None] / 255
    assert np.array_equal(x.numpy(), images[kept]) and np.array_equal(xv.numpy(), images[held])
    assert y.tolist() == ARRAYS[FILES[1]][kept].tolist()
    assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0
    xt, yt = _xy(data.test)
    assert xt.shape == (N_TEST, 1, 28, 28) and yt.tolist() == ARRAYS[FILES[3]].tolist()
    assert sorted(p.name for p in (tmp_path / "fashion_mnist").iterdir()) == sorted(FILES)


def test_second_load_is_cached_and_offline(server: Server, tmp_path: Path) -> None:
    url = _url(server, "good")
    first = _load(tmp_path, url, seed=3)
    assert len(server.requests) == len(FILES)
    server.shutdown()  # the fixture's own shutdown is then a no-op
    server.server_close()
    again = _load(tmp_path, url, seed=3)  # would fail to connect if it tried
    assert torch.equal(_xy(first.val)[0], _xy(again.val)[0])
    other = _load(tmp_path, url, seed=4)
    assert not torch.equal(_xy(first.val)[1], _xy(other.val)[1])


def test_default_root_is_the_cache_dir(server: Server, tmp_path: Path) -> None:
    tdata.load("kmnist", mirrors=[_url(server, "good")], md5=MD5)
    assert sorted(p.name for p in (tmp_path / "home" / "kmnist").iterdir()) == sorted(FILES)


def test_missing_mirror_falls_back_to_the_next(server: Server, tmp_path: Path) -> None:
    data = _load(tmp_path, _url(server, "gone"), _url(server, "good"))
    assert len(_xy(data.train)[1]) + len(_xy(data.val)[1]) == N_TRAIN
    assert server.requests == [f"/{m}/{f}" for f in FILES for m in ("gone", "good")]


def test_corrupt_download_raises_and_leaves_nothing(server: Server, tmp_path: Path) -> None:
    bad, gone = _url(server, "bad"), _url(server, "gone")
    with pytest.raises(DataError, match=FILES[0]) as info:
        _load(tmp_path, bad, gone)
    message = str(info.value)
    assert f"{bad}{FILES[0]} (" in message and "bytes with MD5 " in message
    assert f"{gone}{FILES[0]} (HTTP 404" in message and "expected MD5 " in message
    assert list((tmp_path / "mnist").iterdir()) == []


def test_damaged_cache_file_is_downloaded_again(server: Server, tmp_path: Path) -> None:
    folder = tmp_path / "mnist"
    folder.mkdir()
    (folder / FILES[2]).write_bytes(GOOD[FILES[2]][:100])  # e.g. copied by hand, cut short
    (folder / FILES[3]).write_bytes(GOOD[FILES[3]])
    data = _load(tmp_path, _url(server, "good"))
    assert len(_xy(data.test)[1]) == N_TEST
    assert f"/good/{FILES[3]}" not in server.requests and f"/good/{FILES[2]}" in server.requests


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (GOOD[FILES[0]][:40], "cannot read IDX"),  # a gzip stream cut short
        (b"not gzip at all", "cannot read IDX"),
        (gzip.compress(b"\x00\x00\x0d\x03" + bytes(12), mtime=0), "not a uint8 IDX"),  # float32
        (gzip.compress(b"\x00\x00\x08\x03" + bytes(6), mtime=0), "truncated in its header"),
        (gzip.compress(gzip.decompress(GOOD[FILES[0]])[:-5], mtime=0),
         r"23531 bytes; .* implies 23536"),
    ],
    ids=["cut-gzip", "not-gzip", "float32-type", "short-header", "short-data"],
)
def test_malformed_idx_raises(tmp_path: Path, body: bytes, message: str) -> None:
    path = tmp_path / "x-idx3-ubyte.gz"
    path.write_bytes(body)
    with pytest.raises(DataError, match=message):
        read_idx(path)


def test_malformed_idx_through_load(server: Server, tmp_path: Path) -> None:
    server.routes[f"/good/{FILES[1]}"] = _idx(np.zeros(N_TRAIN - 1, np.uint8))  # one label short
    md5 = {**MD5, FILES[1]: hashlib.md5(server.routes[f"/good/{FILES[1]}"]).hexdigest()}
    with pytest.raises(DataError, match=r"mnist train split: images of shape \(30, 28, 28\)"):
        tdata.load("mnist", root=tmp_path, mirrors=[_url(server, "good")], md5=md5)


def test_uncompressed_idx(tmp_path: Path) -> None:
    path = tmp_path / "labels-idx1-ubyte"
    path.write_bytes(gzip.decompress(GOOD[FILES[3]]))
    assert read_idx(path).tolist() == ARRAYS[FILES[3]].tolist()
