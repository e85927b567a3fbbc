"""Generated sequence tasks (``adding``, ``parity``, ``recall``, ``copy``), images read as
sequences of rows (``tn.data.as_sequence``) and the small tokenizer (``tn.data.Vocabulary``,
``tn.data.tokenize``)."""

from __future__ import annotations

import pytest
import torch

import torchnas as tn
from torchnas.evaluation._tasks import TASKS
from torchnas.space import HP, FixedSource

GENERATED = ("adding", "copy", "parity", "recall")


def test_generated_tasks_are_registered() -> None:
    assert set(GENERATED) <= set(tn.data.available())


@pytest.mark.parametrize("name", GENERATED)
def test_generated_tasks_are_reproducible_and_split_by_seed(name: str) -> None:
    a = tn.data.load(name, samples=100, test_samples=20)
    b = tn.data.load(name, samples=100, test_samples=20)
    c = tn.data.load(name, samples=100, test_samples=20, seed=1)
    d = tn.data.load(name, samples=100, test_samples=20, data_seed=1)
    assert (len(a.train), len(a.val), len(a.test)) == (80, 20, 20)
    assert torch.equal(a.train.tensors[0], b.train.tensors[0])
    assert torch.equal(a.test.tensors[0], c.test.tensors[0])  # seed: only the split
    assert not torch.equal(a.train.tensors[0], c.train.tensors[0])
    assert torch.equal(torch.cat([a.train.tensors[0], a.val.tensors[0]]).sort(0)[0],
                       torch.cat([c.train.tensors[0], c.val.tensors[0]]).sort(0)[0])
    assert not torch.equal(a.test.tensors[0], d.test.tensors[0])
    assert tn.data.load(name, samples=100, test_samples=0).test is None


def test_adding() -> None:
    data = tn.data.load("adding", length=20, samples=200)
    assert data.input_shape == (2, 20) and data.num_classes is None
    x, y = data.train.tensors
    assert torch.equal(x[:, 1].sum(1), torch.full((len(x),), 2.0))
    assert torch.allclose((x[:, 0] * x[:, 1]).sum(1), y)
    TASKS.create("regression").check_data(data)


def test_parity() -> None:
    data = tn.data.load("parity", length=10, min_length=4, samples=400)
    assert data.input_shape == (10,) and data.num_classes == 2
    x, y = data.train.tensors
    assert x.dtype == torch.long and set(x.unique().tolist()) == {0, 1, 2}
    lengths = (x != 0).sum(1)
    assert lengths.min() >= 4 and lengths.max() == 10
    assert torch.equal((x == 2).sum(1) % 2, y)
    for row, n in zip(x, lengths, strict=True):  # right padded
        assert (row[:n] != 0).all() and (row[n:] == 0).all()
    TASKS.create("sequence").check_data(data)


def test_recall() -> None:
    data = tn.data.load("recall", pairs=3, keys=5, values=4, samples=300)
    assert data.input_shape == (7,) and data.num_classes == 4
    x, y = data.train.tensors
    keys, values, query = x[:, 0:6:2], x[:, 1:6:2], x[:, 6]
    assert keys.min() >= 1 and keys.max() <= 5 and values.min() >= 6 and values.max() <= 9
    for k, v, q, label in zip(keys, values, query, y, strict=True):
        assert len(set(k.tolist())) == 3
        assert int(v[k.tolist().index(int(q))]) - 6 == int(label)
    TASKS.create("sequence").check_data(data)


def test_copy() -> None:
    data = tn.data.load("copy", length=5, symbols=6, samples=100)
    assert data.input_shape == (11,) and data.target_shape == (11,) and data.num_classes == 9
    x, y = data.train.tensors
    assert torch.equal(y[:, 6:], x[:, :5])
    assert (x[:, 5] == 7).all() and (x[:, 6:] == 8).all() and (y[:, :6] == 8).all()
    TASKS.create("sequence").check_data(data)


def test_bad_generator_options_are_config_errors() -> None:
    with pytest.raises(tn.ConfigError, match="length"):
        tn.data.load("parity", length=0)
    with pytest.raises(tn.ConfigError, match="min_length"):
        tn.data.load("parity", length=5, min_length=6)
    with pytest.raises(tn.ConfigError, match="keys"):
        tn.data.load("recall", pairs=4, keys=3)
    with pytest.raises(tn.ConfigError, match=r"unknown option 'size'.*samples"):
        tn.data.load("copy", size=3)


def test_as_sequence_reads_images_row_by_row() -> None:
    digits = tn.data.load("digits")
    rows = tn.data.as_sequence(digits)
    assert rows.input_shape == (8, 8) and rows.num_classes == 10
    image, seq = digits.train.tensors[0][3], rows.train.tensors[0][3]
    for h in range(8):  # step h (the last axis) is the image's row h
        assert torch.equal(seq[:, h], image[0, h])
    assert len(rows.test) == len(digits.test)
    rgb = tn.data.from_tensors((torch.rand(6, 3, 4, 5), torch.arange(6) % 2),
                               (torch.rand(2, 3, 4, 5), torch.arange(2)))
    seq = tn.data.as_sequence(rgb)
    assert seq.input_shape == (15, 4)
    assert torch.equal(seq.train.tensors[0][0][:, 2], rgb.train.tensors[0][0][:, 2].reshape(-1))
    with pytest.raises(tn.DataError, match=r"as_sequence.*\(1, 40\)"):
        tn.data.as_sequence(tn.data.from_tensors((torch.rand(4, 1, 40), torch.arange(4) % 2),
                                                 (torch.rand(2, 1, 40), torch.arange(2))))


def test_rnn_reads_images_and_their_rows_alike() -> None:
    """``rnn`` on (1, 8, 8) images and on their ``as_sequence`` (8, 8) rows: the same steps."""
    digits = tn.data.load("digits")
    rows = tn.data.as_sequence(digits)
    a = tn.spaces.create("rnn", input_shape=digits.input_shape, num_classes=10)
    b = tn.spaces.create("rnn", input_shape=rows.input_shape, num_classes=10)
    arch = {"num_layers": 1, "bidirectional_0": False, "readout": "last"}
    ma, mb = (space(HP(FixedSource(arch, missing="default"))) for space in (a, b))
    mb.load_state_dict(ma.state_dict())
    ma.eval(), mb.eval()
    with torch.no_grad():
        assert torch.allclose(ma(digits.val.tensors[0][:5]), mb(rows.val.tensors[0][:5]),
                              atol=1e-6)


def test_vocabulary_and_tokenize() -> None:
    vocab = tn.data.Vocabulary.build("to be or not to be", level="word")
    assert vocab.tokens[:4] == ["<pad>", "<unk>", "to", "be"] and len(vocab) == 6
    assert vocab.encode("To be, or") == [2, 3, 1, 4]
    assert vocab.decode([2, 3, 0, 0]) == "to be"
    ids, chars = tn.data.tokenize("abcab")
    assert ids.tolist() == [2, 3, 4, 2, 3] and chars.decode(ids) == "abcab"
    batch, _ = tn.data.tokenize(["ab", "abc"], vocab=chars, length=4)
    assert batch.tolist() == [[2, 3, 0, 0], [2, 3, 4, 0]]
    small = tn.data.Vocabulary.build("aaabbc", max_size=4)
    assert small.tokens == ["<pad>", "<unk>", "a", "b"] and small.encode("c") == [1]
    with pytest.raises(tn.ConfigError, match="level"):
        tn.data.tokenize("x", level="byte")
