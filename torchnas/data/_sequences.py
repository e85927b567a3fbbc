"""Sequence data, generated offline: the ``adding``, ``parity``, ``recall`` and ``copy`` tasks
(registered in :mod:`torchnas.data._builtin`), images read as sequences (:func:`as_sequence`),
and a small character/word tokenizer (:class:`Vocabulary`).

Token tasks use id 0 for padding (the ``sequence`` task's default ``pad_id``); their inputs are
int64 ``(N, T)``. Every generator takes ``samples`` (train + val), ``test_samples``, its sizes
and ``data_seed`` (what is generated), while ``seed`` only splits train from val.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import TensorDataset

from torchnas._util.errors import ConfigError, DataError
from torchnas.data._bundle import Data, from_tensors

__all__ = ["SEQUENCE_LOADERS", "Vocabulary", "as_sequence", "tokenize"]

PAD, FIRST = 0, 1  # padding id; the first id of a task's symbols


def _positive(name: str, value: Any, low: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ConfigError(f"{name} must be an integer >= {low}, got {value!r}")
    return value


def _bundle(name: str, make: Callable[[np.random.Generator, int], tuple[np.ndarray, np.ndarray]],
            *, samples: int, test_samples: int, data_seed: int, val_fraction: float, seed: int,
            num_classes: int | None) -> Data:
    """Train/val from ``samples`` generated items (split by ``seed``), test from
    ``test_samples`` more (``0``: no test split)."""
    _positive("samples", samples, 4)
    _positive("test_samples", test_samples, 0)
    rng = np.random.default_rng(data_seed)
    x, y = make(rng, samples)
    order = np.random.default_rng(seed).permutation(samples)
    held = max(1, round(val_fraction * samples))
    val, train = order[:held], order[held:]
    test = make(rng, test_samples) if test_samples else None
    return from_tensors((x[train], y[train]), (x[val], y[val]), test,
                        num_classes=num_classes, name=name)


def load_adding(*, val_fraction: float, seed: int, length: int = 50, samples: int = 4000,
                test_samples: int = 1000, data_seed: int = 0) -> Data:
    """The adding problem (Hochreiter & Schmidhuber 1997): float inputs ``(2, length)``, a
    value in ``[0, 1)`` and a marker (1 at two random steps, one in each half) per step; the
    target is the sum of the two marked values (regression; predicting the mean, 1, gives an
    MSE of about 0.167)."""
    _positive("length", length, 2)

    def make(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        values = rng.random((n, length), dtype=np.float32)
        marks = np.zeros((n, length), np.float32)
        half = length // 2
        first = rng.integers(0, half, n)
        second = rng.integers(half, length, n)
        rows = np.arange(n)
        marks[rows, first] = marks[rows, second] = 1.0
        y = (values[rows, first] + values[rows, second]).astype(np.float32)
        return np.stack([values, marks], 1), y

    return _bundle("adding", make, samples=samples, test_samples=test_samples,
                   data_seed=data_seed, val_fraction=val_fraction, seed=seed, num_classes=None)


def load_parity(*, val_fraction: float, seed: int, length: int = 12, min_length: int | None = None,
                samples: int = 4000, test_samples: int = 1000, data_seed: int = 0) -> Data:
    """Parity of bit strings: token ids ``(N, length)``, 1 for a 0 bit and 2 for a 1 bit,
    right-padded with 0 when ``min_length`` (shorter strings, lengths drawn uniformly from
    ``[min_length, length]``); label 1 when the string holds an odd number of 1 bits (chance:
    0.5). Task ``sequence``."""
    _positive("length", length)
    shortest = length if min_length is None else _positive("min_length", min_length)
    if shortest > length:
        raise ConfigError(f"min_length must be <= length ({length}), got {min_length!r}")

    def make(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        bits = rng.integers(0, 2, (n, length))
        lengths = rng.integers(shortest, length + 1, n)
        bits[np.arange(length)[None, :] >= lengths[:, None]] = 0
        x = np.where(np.arange(length)[None, :] < lengths[:, None], bits + FIRST, PAD)
        return x.astype(np.int64), (bits.sum(1) % 2).astype(np.int64)

    return _bundle("parity", make, samples=samples, test_samples=test_samples,
                   data_seed=data_seed, val_fraction=val_fraction, seed=seed, num_classes=2)


def load_recall(*, val_fraction: float, seed: int, pairs: int = 4, keys: int = 8, values: int = 8,
                samples: int = 4000, test_samples: int = 1000, data_seed: int = 0) -> Data:
    """Associative recall: ``pairs`` distinct keys each followed by its value, then a query key
    repeated from the pairs; the label is that key's value (one of ``values`` classes; chance:
    ``1 / values``). Token ids ``(N, 2 * pairs + 1)``: keys are ``1..keys``, values
    ``keys + 1..keys + values``. Task ``sequence``."""
    _positive("pairs", pairs)
    _positive("keys", keys, pairs)
    _positive("values", values, 2)

    def make(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        k = np.argsort(rng.random((n, keys)), 1)[:, :pairs] + FIRST
        v = rng.integers(0, values, (n, pairs))
        x = np.zeros((n, 2 * pairs + 1), np.int64)
        x[:, 0:2 * pairs:2], x[:, 1:2 * pairs:2] = k, v + FIRST + keys
        which = rng.integers(0, pairs, n)
        rows = np.arange(n)
        x[:, -1] = k[rows, which]
        return x, v[rows, which].astype(np.int64)

    return _bundle("recall", make, samples=samples, test_samples=test_samples,
                   data_seed=data_seed, val_fraction=val_fraction, seed=seed, num_classes=values)


def load_copy(*, val_fraction: float, seed: int, length: int = 8, symbols: int = 8,
              samples: int = 4000, test_samples: int = 1000, data_seed: int = 0) -> Data:
    """The copy task, one label per token: ``length`` symbols, a separator, then ``length``
    blanks, on which the symbols are to be repeated. Token ids ``(N, 2 * length + 1)``:
    symbols ``1..symbols``, the separator ``symbols + 1``, the blank ``symbols + 2``; labels
    ``(N, 2 * length + 1)`` in ``[0, symbols + 3)``: the blank's id up to the separator, then
    the symbols. Predicting blanks first and guessing after scores about ``0.5 + 0.5 /
    symbols`` accuracy. Task ``sequence`` (labels per token)."""
    _positive("length", length)
    _positive("symbols", symbols, 2)
    sep, blank = symbols + 1, symbols + 2

    def make(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        s = rng.integers(FIRST, symbols + 1, (n, length))
        fill = np.full((n, length), blank)
        x = np.concatenate([s, np.full((n, 1), sep), fill], 1)
        y = np.concatenate([fill, np.full((n, 1), blank), s], 1)
        return x.astype(np.int64), y.astype(np.int64)

    return _bundle("copy", make, samples=samples, test_samples=test_samples,
                   data_seed=data_seed, val_fraction=val_fraction, seed=seed,
                   num_classes=symbols + 3)


#: The generated tasks by name, registered by :mod:`torchnas.data._builtin`.
SEQUENCE_LOADERS: dict[str, Callable[..., Data]] = {
    "adding": load_adding, "copy": load_copy, "parity": load_parity, "recall": load_recall,
}


def as_sequence(data: Data) -> Data:
    """Images ``(C, H, W)`` as sequences of their rows, shaped ``(C * W, H)``: ``H`` steps of
    ``C * W`` features, channels first like every 1-D signal (so ``chain_cnn`` convolves along
    the rows too). The sequence spaces (``rnn``, ``transformer``) already read ``(C, H, W)``
    row by row; this is for the other spaces and for one's own models. Needs tensor splits
    (:func:`torchnas.data.load`, ``from_tensors``).

    Example:
        >>> from torchnas import data
        >>> data.as_sequence(data.load("digits")).input_shape  # 8 rows of 8 pixels
        (8, 8)

    Raises:
        DataError: for inputs that are not ``(C, H, W)`` images, or splits that are not tensors.
    """
    if len(data.input_shape) != 3:
        raise DataError(f"as_sequence reads images shaped (C, H, W) as rows; the inputs of "
                        f"{data.name!r} are shaped {data.input_shape}")

    def rows(split: Any, name: str) -> TensorDataset | None:
        if split is None:
            return None
        if not isinstance(split, TensorDataset):
            raise DataError(f"as_sequence needs tensor splits; the {name} split of "
                            f"{data.name!r} is a {type(split).__name__}")
        x, *rest = split.tensors
        n, c, h, w = x.shape
        return TensorDataset(x.permute(0, 1, 3, 2).reshape(n, c * w, h).contiguous(), *rest)

    c, h, w = data.input_shape
    return Data(rows(data.train, "train"), rows(data.val, "val"),  # type: ignore[arg-type]
                rows(data.test, "test"), (c * w, h), data.num_classes, data.name, data.classes,
                data.target_shape)


# -- tokenizer -------------------------------------------------------------------------------------
_WORDS = re.compile(r"\w+|[^\w\s]")


def _pieces(text: str, level: str) -> list[str]:
    if level == "char":
        return list(text)
    if level == "word":
        return _WORDS.findall(text.lower())
    raise ConfigError(f"level must be 'char' or 'word', got {level!r}")


class Vocabulary:
    """Token ids for characters or words: ``0`` is padding (``<pad>``), ``1`` unknown
    (``<unk>``), then the pieces of the text it was built from, most frequent first.

    Example:
        >>> vocab = Vocabulary.build("hello world", level="char")
        >>> vocab.encode("hold"), vocab.decode(vocab.encode("hold"))
        ([4, 3, 2, 9], 'hold')
        >>> len(vocab), vocab.encode("z")
        (10, [1])
    """

    PAD, UNK = "<pad>", "<unk>"

    def __init__(self, pieces: Iterable[str], level: str = "char") -> None:
        _pieces("", level)  # checks the level
        self.level = level
        self.tokens: list[str] = [self.PAD, self.UNK]
        seen = set(self.tokens)
        for p in pieces:
            if p not in seen:
                seen.add(p)
                self.tokens.append(p)
        self.ids = {t: i for i, t in enumerate(self.tokens)}

    @classmethod
    def build(cls, text: str | Iterable[str], level: str = "char", *, min_count: int = 1,
              max_size: int | None = None) -> Vocabulary:
        """The vocabulary of ``text`` (or of several texts): pieces seen ``min_count`` times or
        more, most frequent first (ties in order of first appearance), at most ``max_size``
        entries in all."""
        texts = [text] if isinstance(text, str) else list(text)
        counts: Counter[str] = Counter()
        for t in texts:
            counts.update(_pieces(t, level))
        ranked = [p for p, k in sorted(counts.items(), key=lambda kv: -kv[1]) if k >= min_count]
        if max_size is not None:
            ranked = ranked[: max(0, max_size - 2)]
        return cls(ranked, level)

    @property
    def pad_id(self) -> int:
        return 0

    @property
    def unk_id(self) -> int:
        return 1

    def __len__(self) -> int:
        return len(self.tokens)

    def encode(self, text: str) -> list[int]:
        """The ids of ``text``'s pieces (unknown ones: ``unk_id``)."""
        return [self.ids.get(p, self.unk_id) for p in _pieces(text, self.level)]

    def decode(self, ids: Iterable[int]) -> str:
        """The text of ``ids`` (padding left out; words joined by spaces)."""
        pieces = [self.tokens[int(i)] for i in ids if int(i) != self.pad_id]
        return ("" if self.level == "char" else " ").join(pieces)


def tokenize(texts: str | Sequence[str], level: str = "char", *, vocab: Vocabulary | None = None,
             length: int | None = None) -> tuple[torch.Tensor, Vocabulary]:
    """Token ids of ``texts`` and their vocabulary (built from them unless ``vocab`` is given).

    One text gives a 1-D tensor of its ids (a corpus, to cut into windows); several give one
    ``(N, length)`` tensor right-padded with 0 (:func:`torchnas.data.pad_sequences`).

    Example:
        >>> ids, vocab = tokenize(["a cat", "a dog sat"], level="word")
        >>> ids.tolist(), len(vocab)
        ([[2, 3, 0], [2, 4, 5]], 6)
    """
    from torchnas.data._tokens import pad_sequences

    if vocab is None:
        vocab = Vocabulary.build(texts, level)
    if isinstance(texts, str):
        return torch.tensor(vocab.encode(texts), dtype=torch.long), vocab
    return pad_sequences([vocab.encode(t) for t in texts], length=length), vocab
