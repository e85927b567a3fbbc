"""Tests of the text corpora (WikiText-2, AG News) against a local HTTP server, never the
internet: small synthetic files in the real formats, served from 127.0.0.1."""

from __future__ import annotations

import hashlib
import io
import math
import threading
import zipfile
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch.utils.data import Dataset, TensorDataset

import torchnas as tn
from torchnas import data as tdata
from torchnas._util.errors import ConfigError, DataError
from torchnas.data import _text
from torchnas.data._text import AG_NEWS_CLASSES, Remote, lm_windows, read_ag_news

ZIP = "wikitext-2-v1.zip"

def _wikitext(*lines: str) -> str:
    """wikitext-style text: pre-tokenized lines with a leading and a trailing space."""
    return "".join(f" {line} \n" if line else " \n" for line in lines)


# as in the corpus: " @-@ " for hyphens, headings between "=", <unk> already in the text
TRAIN = _wikitext(
    "", "= Valkyria Chronicles III =", "",
    "Senjō no Valkyria 3 : <unk> Chronicles is a tactical role @-@ playing video game .",
    "The game began development in 2010 , carrying over a large portion of the work .",
    "The game 's battle system was carried over from the first game .", "",
    "= = Gameplay = =", "",
    "The game is a tactical role @-@ playing game in which players take control of a unit .",
)
VALID = _wikitext("", "= Robert Boulter =", "",
                  "Robert Boulter is an English film , television and theatre actor .",
                  "The game was a zebra .")
TEST = _wikitext("", "= Tower Building =", "", "The game is a <unk> building in the first unit .")


def _wikitext_zip(train: str = TRAIN, valid: str = VALID, test: str = TEST) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for split, text in (("train", train), ("valid", valid), ("test", test)):
            info = zipfile.ZipInfo(f"wikitext-2/wiki.{split}.tokens", (2016, 1, 1, 0, 0, 0))
            z.writestr(info, text.encode("utf-8"))
    return buf.getvalue()


def _tokens(text: str) -> list[str]:
    return [t for line in text.splitlines(keepends=True) for t in (*line.split(), "<eos>")]


TOPICS = ["war talks minister", "match team season", "stocks profit oil", "software space web"]


def _ag_rows(n: int, offset: int = 0) -> bytes:
    """AG-News-style CSV rows: class 1..4, title, description (quoted, an escaped newline);
    every title starts with a word of its own (``wordI``)."""
    rows = []
    for i in range(offset, offset + n):
        c = i % 4
        rows.append(f'"{c + 1}","Word{i} {TOPICS[c].split()[0]} news",'
                    f'"The {TOPICS[c]} report, said ""officials"".\\nMore {TOPICS[c]}."')
    return ("\n".join(rows) + "\n").encode("utf-8")


AG_TRAIN, AG_TEST = _ag_rows(40), _ag_rows(8, offset=100)
GOOD = {ZIP: _wikitext_zip(), "train.csv": AG_TRAIN, "test.csv": AG_TEST}
SHA = {name: hashlib.sha256(body).hexdigest() for name, body in GOOD.items()}
WIKI_SHA = {ZIP: SHA[ZIP]}
AG_SHA = {"train.csv": SHA["train.csv"], "test.csv": SHA["test.csv"]}


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
    """A local server: ``/good/`` has the files, ``/bad/`` corrupt ones, ``/short/`` truncated
    ones, ``/gone/`` nothing."""
    srv = Server(("127.0.0.1", 0), Handler)
    srv.routes = {f"/good/{k}": v for k, v in GOOD.items()}
    srv.routes |= {f"/bad/{k}": v[:-8] + b"garbage!" for k, v in GOOD.items()}
    srv.routes |= {f"/short/{k}": v[: len(v) // 2] for k, v in GOOD.items()}
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
    for name, source in _text.SOURCES.items():
        monkeypatch.setitem(_text.SOURCES, name, Remote((), source.sha256))
    monkeypatch.setenv("TORCHNAS_HOME", str(tmp_path / "home"))


def _url(srv: Server, prefix: str) -> str:
    return f"http://127.0.0.1:{srv.server_address[1]}/{prefix}/"


def _xy(split: Dataset[Any] | None) -> tuple[torch.Tensor, torch.Tensor]:
    assert isinstance(split, TensorDataset)
    return split.tensors[0], split.tensors[1]


def _wiki(root: Path, *mirrors: str, **kwargs: Any) -> tdata.Data:
    return tdata.load("wikitext2", root=root, mirrors=list(mirrors), sha256=WIKI_SHA, **kwargs)


def _ag(root: Path, *mirrors: str, **kwargs: Any) -> tdata.Data:
    return tdata.load("ag_news", root=root, mirrors=list(mirrors), sha256=AG_SHA, **kwargs)


def _stream(x: torch.Tensor, y: torch.Tensor) -> list[int]:
    """The token stream that windows ``x`` (inputs) and ``y`` (next tokens) were cut from."""
    ids = [int(x[0, 0]), *y.reshape(-1).tolist()]
    while ids and ids[-1] == 0:
        ids.pop()
    return ids


# -- registry and sources --------------------------------------------------------------------------
def test_registered_with_their_options() -> None:
    assert {"wikitext2", "ag_news"} <= set(tdata.available())
    with pytest.raises(ConfigError, match=r"unknown option 'download'.*mirrors.*seq_len"):
        tdata.load("wikitext2", download=True)
    with pytest.raises(ConfigError, match=r"unknown option 'seq_len'.*max_len"):
        tdata.load("ag_news", seq_len=3)


def test_the_checksum_table_is_complete() -> None:
    assert set(_text.SOURCES) == set(_text.TEXT_LOADERS)
    wiki, ag = _text.SOURCES["wikitext2"], _text.SOURCES["ag_news"]
    assert list(wiki.sha256) == [ZIP] and list(ag.sha256) == ["train.csv", "test.csv"]
    for source in (wiki, ag):
        assert all(len(d) == 64 and int(d, 16) >= 0 for d in source.sha256.values())


# -- WikiText-2 ------------------------------------------------------------------------------------
def test_wikitext_through_local_server(server: Server, tmp_path: Path) -> None:
    data = _wiki(tmp_path, _url(server, "good"), seq_len=6)
    assert data.name == "wikitext2" and data.input_shape == (6,) and data.target_shape == (6,)
    assert data.classes is not None and data.num_classes == len(data.classes)
    assert data.classes[:2] == ("<pad>", "<unk>")
    train = _tokens(TRAIN)
    assert set(data.classes[2:]) == set(train) - {"<unk>"}  # every train word, and only them
    assert data.classes[2] == "<eos>"  # the most frequent piece
    vocab = {t: i for i, t in enumerate(data.classes)}
    for split, text in ((data.train, TRAIN), (data.val, VALID), (data.test, TEST)):
        x, y = _xy(split)
        assert x.dtype == torch.int64 and y.dtype == torch.int64 and x.shape == y.shape
        assert torch.equal(y[:, :-1], x[:, 1:])  # next-token targets
        assert len(x) == math.ceil((len(_tokens(text)) - 1) / 6)
        expected = [vocab.get(t, 1) for t in _tokens(text)]
        assert _stream(x, y) == expected
    xv, _ = _xy(data.val)
    assert "zebra" not in vocab and "Boulter" not in vocab  # the vocabulary is train's only
    assert (xv == 1).any()
    assert sorted(p.name for p in (tmp_path / "wikitext2").iterdir()) == [ZIP]


def test_wikitext_vocab_size_keeps_the_most_frequent_words(server: Server, tmp_path: Path) -> None:
    data = _wiki(tmp_path, _url(server, "good"), vocab_size=6, seq_len=35)
    assert data.num_classes == 6 and data.classes is not None
    counts: dict[str, int] = {}
    for t in _tokens(TRAIN):
        counts[t] = counts.get(t, 0) + 1
    counts.pop("<unk>")
    top = sorted(counts, key=lambda t: -counts[t])[:4]
    assert list(data.classes) == ["<pad>", "<unk>", *top]
    x, y = _xy(data.train)
    assert x.shape[1] == 35 and int(x.max()) < 6 and int(y.max()) < 6


def test_wikitext_second_load_is_cached_and_offline(server: Server, tmp_path: Path) -> None:
    url = _url(server, "good")
    first = _wiki(tmp_path, url)
    assert server.requests == [f"/good/{ZIP}"]
    server.shutdown()  # the fixture's own shutdown is then a no-op
    server.server_close()
    again = _wiki(tmp_path, url)  # would fail to connect if it tried
    assert torch.equal(_xy(first.train)[0], _xy(again.train)[0])
    assert first.classes == again.classes


def test_default_root_is_the_cache_dir(server: Server, tmp_path: Path) -> None:
    tdata.load("wikitext2", mirrors=[_url(server, "good")], sha256=WIKI_SHA)
    assert [p.name for p in (tmp_path / "home" / "wikitext2").iterdir()] == [ZIP]


@pytest.mark.parametrize("prefix", ["bad", "short"])
def test_corrupt_or_truncated_download_raises_and_caches_nothing(
        server: Server, tmp_path: Path, prefix: str) -> None:
    url = _url(server, prefix)
    with pytest.raises(DataError, match=ZIP) as info:
        _wiki(tmp_path, url)
    message = str(info.value)
    assert f"expected SHA-256 {SHA[ZIP]}" in message and f"{url}{ZIP} (" in message
    assert "truncated or corrupted" in message
    assert list((tmp_path / "wikitext2").iterdir()) == []  # no partial file left behind
    data = _wiki(tmp_path, url, _url(server, "good"))  # the next mirror serves it right
    assert data.num_classes is not None


def test_missing_file_names_the_url(server: Server, tmp_path: Path) -> None:
    gone = _url(server, "gone")
    with pytest.raises(DataError, match=rf"{gone}{ZIP} \(HTTP 404") as info:
        _wiki(tmp_path, gone)
    assert str(tmp_path / "wikitext2" / ZIP) in str(info.value)  # where a copy may go


def test_missing_mirror_falls_back_to_the_next(server: Server, tmp_path: Path) -> None:
    _wiki(tmp_path, _url(server, "gone"), _url(server, "good"))
    assert server.requests == [f"/gone/{ZIP}", f"/good/{ZIP}"]


def test_damaged_cache_file_is_downloaded_again(server: Server, tmp_path: Path) -> None:
    folder = tmp_path / "wikitext2"
    folder.mkdir()
    (folder / ZIP).write_bytes(GOOD[ZIP][:100])
    _wiki(tmp_path, _url(server, "good"))
    assert server.requests == [f"/good/{ZIP}"]
    assert (folder / ZIP).read_bytes() == GOOD[ZIP]


def test_a_correct_copy_put_by_hand_is_used(tmp_path: Path) -> None:
    folder = tmp_path / "wikitext2"
    folder.mkdir()
    (folder / ZIP).write_bytes(GOOD[ZIP])
    assert _wiki(tmp_path).name == "wikitext2"  # no mirror at all


def test_the_published_checksum_is_checked_by_default(server: Server, tmp_path: Path) -> None:
    with pytest.raises(DataError, match=_text.SOURCES["wikitext2"].sha256[ZIP]):
        tdata.load("wikitext2", root=tmp_path, mirrors=[_url(server, "good")])


def test_bad_options(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="seq_len must be an integer >= 1"):
        _wiki(tmp_path, seq_len=0)
    with pytest.raises(ConfigError, match="vocab_size must be None or an integer >= 3"):
        _wiki(tmp_path, vocab_size=2)
    with pytest.raises(ConfigError, match=r"unknown file 'train\.csv'.*wikitext-2-v1\.zip"):
        tdata.load("wikitext2", root=tmp_path, sha256={"train.csv": "0" * 64})
    with pytest.raises(ConfigError, match="must map file names"):
        tdata.load("wikitext2", root=tmp_path, sha256="0" * 64)
    with pytest.raises(ConfigError, match="level must be 'char' or 'word'"):
        _ag(tmp_path, level="byte")


def test_malformed_archive(server: Server, tmp_path: Path) -> None:
    body = _wikitext_zip()
    no_test = io.BytesIO()
    with zipfile.ZipFile(no_test, "w") as z:
        z.writestr("wikitext-2/wiki.train.tokens", TRAIN)
    for content, message in ((b"not a zip", "cannot read WikiText archive"),
                             (no_test.getvalue(), r"has no wiki\.valid\.tokens")):
        server.routes[f"/good/{ZIP}"] = content
        with pytest.raises(DataError, match=message):
            tdata.load("wikitext2", root=tmp_path / str(len(content)),
                       mirrors=[_url(server, "good")],
                       sha256={ZIP: hashlib.sha256(content).hexdigest()})
    assert body == GOOD[ZIP]


def test_lm_windows() -> None:
    x, y = lm_windows(np.arange(1, 9), 3)  # 8 tokens: 7 targets, 3 windows
    assert x.tolist() == [[1, 2, 3], [4, 5, 6], [7, 8, 0]]
    assert y.tolist() == [[2, 3, 4], [5, 6, 7], [8, 0, 0]]
    with pytest.raises(DataError, match="at least 2 tokens"):
        lm_windows([5], 3)


def test_a_short_search_on_wikitext(server: Server, tmp_path: Path) -> None:
    data = _wiki(tmp_path, _url(server, "good"), seq_len=8)
    search = tn.ModelSearch(space="rnn", data=data, trials=1, seed=0, progress=False,
                            space_kwargs={"max_layers": 1},
                            trainer=tn.Trainer(task="language_model", epochs=1, batch_size=4,
                                               threads=1))
    search.run()
    trial = search.best_trial
    assert trial is not None and math.isfinite(trial.metrics["val_perplexity"])


# -- AG News ---------------------------------------------------------------------------------------
def test_ag_news_through_local_server(server: Server, tmp_path: Path) -> None:
    data = _ag(tmp_path, _url(server, "good"), max_len=12, seed=1)
    assert data.name == "ag_news" and data.input_shape == (12,) and data.target_shape == ()
    assert data.num_classes == 4 and data.classes == AG_NEWS_CLASSES
    (x, y), (xv, yv), (xt, yt) = _xy(data.train), _xy(data.val), _xy(data.test)
    assert x.dtype == torch.int64 and y.dtype == torch.int64
    assert len(x) == 32 and len(xv) == 8 and len(xt) == 8  # 20% of every class held out
    assert sorted(yv.tolist()) == [0, 0, 1, 1, 2, 2, 3, 3]
    assert yt.tolist() == [i % 4 for i in range(100, 108)]
    texts, labels = read_ag_news(tmp_path / "ag_news" / "train.csv")
    kept, held = tdata.stratified_split(labels, 0.2, seed=1)
    assert y.tolist() == labels[kept].tolist() and yv.tolist() == labels[held].tolist()
    # each title's first word (wordI) is its own: known in train, <unk> in val and test
    assert (x[:, 0] > 1).all() and (xv[:, 0] == 1).all() and (xt[:, 0] == 1).all()
    assert not (xv[:, 1:] == 1).any()  # the other words all occur in train
    _, vocab = tdata.tokenize([texts[i] for i in kept], level="word")
    assert x[0].tolist() == vocab.encode(texts[kept[0]])[:12]
    assert "\\" not in texts[0] and texts[0].startswith("Word0 war news The war")


def test_ag_news_pads_and_cuts_and_reads_characters(server: Server, tmp_path: Path) -> None:
    long = _ag(tmp_path, _url(server, "good"), max_len=80, vocab_size=None)
    x, _ = _xy(long.train)
    assert x.shape == (32, 80) and (x[:, -1] == 0).all()  # right-padded with 0
    chars = _ag(tmp_path, _url(server, "good"), level="char", max_len=10, vocab_size=8)
    xc, _ = _xy(chars.train)
    assert xc.shape == (32, 10) and int(xc.max()) < 8 and (xc != 0).all()
    assert len(server.requests) == 2  # both files fetched once, then read from the cache


def test_ag_news_malformed_row(server: Server, tmp_path: Path) -> None:
    body = AG_TRAIN + b'"7","A title","A description"\n'
    server.routes["/good/train.csv"] = body
    with pytest.raises(DataError, match=r"train\.csv, line 41: class '7' is not one of 1\.\.4"):
        tdata.load("ag_news", root=tmp_path, mirrors=[_url(server, "good")],
                   sha256={**AG_SHA, "train.csv": hashlib.sha256(body).hexdigest()})


def test_ag_news_corrupt_download_names_file_and_checksum(server: Server, tmp_path: Path) -> None:
    with pytest.raises(DataError, match=f"train.csv with the expected SHA-256 {SHA['train.csv']}"):
        _ag(tmp_path, _url(server, "bad"))
    assert list((tmp_path / "ag_news").iterdir()) == []


def test_a_short_search_on_ag_news(server: Server, tmp_path: Path) -> None:
    data = _ag(tmp_path, _url(server, "good"), max_len=16)
    search = tn.ModelSearch(space="rnn", data=data, trials=1, seed=0, progress=False,
                            space_kwargs={"max_layers": 1},
                            trainer=tn.Trainer(task="sequence", epochs=1, batch_size=8,
                                               threads=1))
    search.run()
    assert search.best_trial is not None
    assert 0.0 <= search.best_trial.metrics["val_accuracy"] <= 1.0
