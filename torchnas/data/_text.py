"""Text corpora downloaded once, SHA-256-checked and cached: WikiText-2 (word-level language
modelling) and AG News (4-class news classification), registered in
:mod:`torchnas.data._builtin` as ``"wikitext2"`` and ``"ag_news"``.

Files live in ``cache_dir() / name`` (or ``root / name``), like the MNIST family's
(:mod:`torchnas.data._mnist`). A file is fetched only when it is missing or its SHA-256 differs
from the one in :data:`SOURCES`; a download goes to a temporary file in that folder and is
renamed into place only once its checksum matches, so a truncated or corrupted download is an
error naming the file, every URL tried and the expected checksum, and is never cached.

The download locations and checksums are data, all in :data:`SOURCES`; ``mirrors=`` (base URLs)
and ``sha256=`` (by file name) replace them per call (a private mirror; tests).
"""

from __future__ import annotations

import csv
import io
import math
import os
import zipfile
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from torchnas._util.errors import ConfigError, DataError
from torchnas.data import _download as download
from torchnas.data._bundle import Data, from_tensors
from torchnas.data._sequences import Vocabulary, _pieces
from torchnas.data._tokens import shift_tokens

__all__ = ["AG_NEWS_CLASSES", "SOURCES", "TEXT_LOADERS", "Remote", "fetch", "lm_windows",
           "load_ag_news", "load_wikitext2", "read_ag_news", "read_wikitext"]



#: The end-of-line token appended to every line of WikiText (as in PyTorch's
#: word_language_model example, which the published WikiText-2 perplexities follow).
EOS = "<eos>"

#: AG News labels 1..4 in its CSV files are these classes, 0..3 here.
AG_NEWS_CLASSES = ("World", "Sports", "Business", "Sci/Tech")


@dataclass(frozen=True)
class Remote:
    """Where a corpus's files come from.

    Attributes:
        mirrors: Base URLs tried in order; a file's URL is the base plus its name.
        sha256: SHA-256 hex digest of each file, by file name.
    """

    mirrors: tuple[str, ...]
    sha256: Mapping[str, str]


#: Download locations and checksums, by the name :func:`torchnas.data.load` accepts.
#:
#: - ``wikitext2``: the tokenized release ``wikitext-2-v1.zip`` (Merity et al. 2016), from its
#:   author's site and the original (Salesforce/MetaMind) S3 bucket. The SHA-256 is the one
#:   pinned by several independent public loaders (Julia's DataDeps registration of
#:   WikiText-2-v1, among others); it was not recomputed from a download here.
#: - ``ag_news``: the CSV files of Zhang, Zhao & LeCun (2015) as re-hosted in
#:   ``mhjabreel/CharCnn_Keras`` (the URLs torchtext's ``AG_NEWS`` uses), first at a pinned
#:   commit, then on ``master``. The SHA-256 values are those pinned by several public
#:   projects for these URLs (whose MD5s match torchtext's ``b1a00f82...`` and
#:   ``d52ea96a...``); not recomputed from a download here.
SOURCES: dict[str, Remote] = {
    "wikitext2": Remote(
        ("https://wikitext.smerity.com/",
         "https://s3.amazonaws.com/research.metamind.io/wikitext/"),
        {"wikitext-2-v1.zip": "92675f1d63015c1c8b51f1656a52d5bdbc33aafa60cc47a218a66e7ee817488c"},
    ),
    "ag_news": Remote(
        ("https://raw.githubusercontent.com/mhjabreel/CharCnn_Keras/"
         "555590db4219b1243abb1918effd6a7425a2d75f/data/ag_news_csv/",
         "https://raw.githubusercontent.com/mhjabreel/CharCnn_Keras/master/data/ag_news_csv/"),
        {"train.csv": "76a0a2d2f92b286371fe4d4044640910a04a803fdd2538e0f3f29a5c6f6b672e",
         "test.csv": "521465c2428ed7f02f8d6db6ffdd4b5447c1c701962353eb2c40d548c3c85699"},
    ),
}


# -- download --------------------------------------------------------------------------------------
def fetch(folder: Path, mirrors: Sequence[str], sha256: Mapping[str, str]) -> list[Path]:
    """:func:`~torchnas.data._download.fetch` with SHA256 checksums by file name."""
    return download.fetch(folder, mirrors, sha256, "sha256")








def _files(name: str, root: str | os.PathLike[str] | None, mirrors: Sequence[str] | None,
           sha256: Mapping[str, str] | None) -> list[Path]:
    """The cached (or downloaded) files of corpus ``name``, in the order of its checksums."""
    from torchnas.data._builtin import cache_dir  # _builtin registers this module's loaders

    source = SOURCES[name]
    if isinstance(mirrors, str):
        mirrors = [mirrors]
    digests = dict(source.sha256)
    if sha256 is not None:
        if not isinstance(sha256, Mapping):
            raise ConfigError(f"sha256 of {name!r} must map file names to SHA-256 hex digests, "
                              f"e.g. {{{next(iter(digests))!r}: '...'}}, got {sha256!r}")
        unknown = sorted(set(sha256) - set(digests))
        if unknown:
            raise ConfigError(f"sha256 of {name!r}: unknown file {unknown[0]!r}; its files: "
                              f"{', '.join(digests)}")
        digests.update(sha256)
    folder = (cache_dir() if root is None else Path(root).expanduser()) / name
    return fetch(folder, source.mirrors if mirrors is None else tuple(mirrors), digests)


# -- parsing ---------------------------------------------------------------------------------------
def read_wikitext(path: Path) -> dict[str, list[str]]:
    """The word tokens of each split of a WikiText zip (``wiki.{train,valid,test}.tokens``):
    every line's whitespace-separated tokens, then :data:`EOS` (the corpus is pre-tokenized;
    words outside its own vocabulary are already ``<unk>``).

    Returns:
        ``{"train": [...], "valid": [...], "test": [...]}``.

    Raises:
        DataError: When the file is not a zip archive or lacks a split.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.namelist()
            out = {}
            for split in ("train", "valid", "test"):
                suffix = f"wiki.{split}.tokens"
                found = [m for m in members if m.rsplit("/", 1)[-1] == suffix]
                if not found:
                    raise DataError(f"{path} has no {suffix} (members: "
                                    f"{', '.join(members[:8]) or 'none'})")
                with archive.open(found[0]) as raw:
                    lines = io.TextIOWrapper(raw, encoding="utf-8")
                    out[split] = [t for line in lines for t in (*line.split(), EOS)]
            return out
    except (zipfile.BadZipFile, OSError, UnicodeDecodeError) as e:
        raise DataError(f"cannot read WikiText archive {path}: {e} (delete it to download it "
                        f"again)") from e


def read_ag_news(path: Path) -> tuple[list[str], np.ndarray]:
    """Texts (title, then description) and labels ``0..3`` (:data:`AG_NEWS_CLASSES`) of an AG
    News CSV file: rows of ``"class","title","description"`` with classes ``1..4``, no header;
    escaped newlines (a backslash then ``n``) become spaces.

    Raises:
        DataError: For a malformed row (the message gives its line).
    """
    texts: list[str] = []
    labels: list[int] = []
    try:
        with path.open(encoding="utf-8", newline="") as f:
            for row in csv.reader(f):
                if not row:
                    continue
                where = f"{path}, line {len(labels) + 1}"  # rows hold no raw newlines
                if len(row) < 3:
                    raise DataError(f"{where}: expected class, title, description; got {row!r}")
                try:
                    label = int(row[0])
                except ValueError:
                    label = 0
                if not 1 <= label <= len(AG_NEWS_CLASSES):
                    raise DataError(f"{where}: class {row[0]!r} is not one of 1..4")
                text = " ".join(row[1:]).replace("\\n", " ").replace("\\", " ")
                texts.append(text)
                labels.append(label - 1)
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise DataError(f"cannot read AG News file {path}: {e}") from e
    if not labels:
        raise DataError(f"AG News file {path} holds no rows")
    return texts, np.asarray(labels, np.int64)


# -- building the bundles --------------------------------------------------------------------------
def _int_option(name: str, value: object, low: int, *, none: bool = False) -> None:
    if none and value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        allowed = "None or " if none else ""
        raise ConfigError(f"{name} must be {allowed}an integer >= {low}, got {value!r}")


def word_vocabulary(tokens: Sequence[str], size: int | None) -> Vocabulary:
    """The vocabulary of pre-tokenized ``tokens``: ``<pad>`` (0), ``<unk>`` (1, also the id of
    the corpus's own ``<unk>``), then the most frequent tokens (ties in order of first
    appearance), ``size`` entries in all (``None``: every token)."""
    counts = Counter(tokens)
    for special in (Vocabulary.PAD, Vocabulary.UNK):
        counts.pop(special, None)
    ranked = [t for t, _ in sorted(counts.items(), key=lambda kv: -kv[1])]
    if size is not None:
        ranked = ranked[: max(0, size - 2)]
    return Vocabulary(ranked, level="word")


def lm_windows(ids: Sequence[int] | np.ndarray, seq_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Cut a token stream into ``(N, seq_len)`` inputs and next-token targets: window ``i``
    reads tokens ``i * seq_len ..`` and predicts the ones after them, so every token but the
    first is a target exactly once; the last window is right-padded with 0 (``<pad>``, which
    the ``language_model`` task never scores).

    Example:
        >>> x, y = lm_windows([5, 6, 7, 8, 9], 2)
        >>> x.tolist(), y.tolist()
        ([[5, 6], [7, 8]], [[6, 7], [8, 9]])
    """
    stream = np.asarray(ids, np.int64)
    if len(stream) < 2:
        raise DataError(f"a language model needs at least 2 tokens, got {len(stream)}")
    n = math.ceil((len(stream) - 1) / seq_len)
    buf = np.zeros(n * seq_len + 1, np.int64)
    buf[: len(stream)] = stream
    windows = torch.from_numpy(buf).unfold(0, seq_len + 1, seq_len)
    x, y = shift_tokens(windows)
    return x.contiguous(), y.contiguous()


def load_wikitext2(
    *,
    val_fraction: float,
    seed: int,
    seq_len: int = 35,
    vocab_size: int | None = None,
    root: str | os.PathLike[str] | None = None,
    mirrors: Sequence[str] | None = None,
    sha256: Mapping[str, str] | None = None,
) -> Data:
    """WikiText-2 (Merity et al. 2016), word level, for ``Trainer(task="language_model")``:
    the tokenized release (about 2.1 million training and 0.2 million validation and test
    tokens, one ``<eos>`` ending every line), cut into ``(N, seq_len)`` token windows with
    next-token targets.

    The vocabulary is built on the training split: ``<pad>`` (0), ``<unk>`` (1), then the
    ``vocab_size - 2`` most frequent words (``None``: all of them, about 33,000, ``<eos>``
    included); other words, in every split, become ``<unk>``. ``num_classes`` is the size of
    the vocabulary and ``classes`` its words (``data.classes[i]`` is token ``i``). Validation
    and test are the corpus's own splits: ``val_fraction`` and ``seed`` are not used.
    """
    _int_option("seq_len", seq_len, 1)
    _int_option("vocab_size", vocab_size, 3, none=True)
    (path,) = _files("wikitext2", root, mirrors, sha256)
    splits = read_wikitext(path)
    vocab = word_vocabulary(splits["train"], vocab_size)
    ids = vocab.ids

    def encode(tokens: list[str]) -> np.ndarray:
        return np.fromiter((ids.get(t, 1) for t in tokens), np.int64, len(tokens))

    train, val, test = (lm_windows(encode(splits[k]), seq_len) for k in ("train", "valid", "test"))
    return from_tensors(train, val, test, num_classes=len(vocab), name="wikitext2",
                        classes=vocab.tokens)


def load_ag_news(
    *,
    val_fraction: float,
    seed: int,
    max_len: int = 64,
    vocab_size: int | None = 20000,
    level: str = "word",
    root: str | os.PathLike[str] | None = None,
    mirrors: Sequence[str] | None = None,
    sha256: Mapping[str, str] | None = None,
) -> Data:
    """AG News (Zhang, Zhao & LeCun 2015), for ``Trainer(task="sequence")``: 120,000 training
    and 7,600 test news articles (title and description) in 4 balanced classes
    (:data:`AG_NEWS_CLASSES`; chance 0.25). ``val_fraction`` of every class of the training
    file is held out for validation (``seed``).

    Texts are tokenized by :class:`~torchnas.data.Vocabulary` at ``level`` ``"word"``
    (lower-cased words and punctuation) or ``"char"``; the vocabulary is built on the training
    split only (``<pad>`` 0, ``<unk>`` 1, then the most frequent pieces, ``vocab_size``
    entries in all; ``None``: every piece). Inputs: token ids ``(N, max_len)``, cut or
    right-padded with 0; labels ``(N,)``.
    """
    from torchnas.data._builtin import stratified_split  # _builtin registers this module

    _int_option("max_len", max_len, 1)
    _int_option("vocab_size", vocab_size, 3, none=True)
    if level not in ("char", "word"):
        raise ConfigError(f"level must be 'char' or 'word', got {level!r}")
    train_path, test_path = _files("ag_news", root, mirrors, sha256)
    texts, y = read_ag_news(train_path)
    test_texts, y_test = read_ag_news(test_path)
    kept, held = stratified_split(y, val_fraction, seed)
    pieces = [_pieces(t, level) for t in texts]  # split once (Vocabulary.encode would again)
    counts: Counter[str] = Counter()
    for i in kept:
        counts.update(pieces[i])
    # as Vocabulary.build(train texts, level, max_size=vocab_size) ranks them
    ranked = [p for p, _ in sorted(counts.items(), key=lambda kv: -kv[1])]
    vocab = Vocabulary(ranked if vocab_size is None else ranked[: vocab_size - 2], level)

    def encode(rows: Sequence[list[str]]) -> torch.Tensor:
        out = np.zeros((len(rows), max_len), np.int64)  # right-padded with <pad>, 0
        ids = vocab.ids
        for i, row in enumerate(rows):
            cut = row[:max_len]
            out[i, : len(cut)] = [ids.get(p, 1) for p in cut]
        return torch.from_numpy(out)

    x, x_test = encode(pieces), encode([_pieces(t, level) for t in test_texts])
    return from_tensors((x[kept], y[kept]), (x[held], y[held]), (x_test, y_test),
                        num_classes=len(AG_NEWS_CLASSES), name="ag_news",
                        classes=AG_NEWS_CLASSES)


#: The corpora by name, registered by :mod:`torchnas.data._builtin`.
TEXT_LOADERS: dict[str, Callable[..., Data]] = {"wikitext2": load_wikitext2,
                                                "ag_news": load_ag_news}
