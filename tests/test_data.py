"""Tests of torchnas.data: built-in datasets, the cache, constructors and validation."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset, TensorDataset

from torchnas import data as tdata
from torchnas._util.errors import ConfigError, DataError


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A fresh TORCHNAS_HOME for the whole module (mnist1d is generated once)."""
    path = tmp_path_factory.mktemp("torchnas_home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TORCHNAS_HOME", str(path))
        yield path


@pytest.fixture(scope="module")
def mnist1d(home: Path) -> tdata.Data:
    return tdata.load("mnist1d")


def _pair(n: int = 30, shape: tuple[int, ...] = (1, 8), classes: int = 3) -> tuple[Any, Any]:
    g = torch.Generator().manual_seed(0)
    return torch.randn(n, *shape, generator=g), torch.arange(n) % classes


class ListDataset(Dataset[Any]):
    """A plain (non-tensor) dataset of (x, y) items."""

    def __init__(self, items: list[Any]) -> None:
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> Any:
        return self.items[i]


def test_mnist1d_shapes(mnist1d: tdata.Data) -> None:
    x, y = mnist1d.train.tensors
    assert isinstance(mnist1d.train, TensorDataset)
    assert x.shape == (3200, 1, 40) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert mnist1d.val.tensors[0].shape == (800, 1, 40)
    assert mnist1d.test is not None and len(mnist1d.test) == 1000
    assert mnist1d.input_shape == (1, 40) and mnist1d.num_classes == 10
    assert mnist1d.name == "mnist1d"
    assert set(y.tolist()) == set(range(10))


def test_mnist1d_split_is_stratified_and_seeded(mnist1d: tdata.Data) -> None:
    ytr, yva = mnist1d.train.tensors[1], mnist1d.val.tensors[1]
    counts_all = torch.bincount(torch.cat([ytr, yva]), minlength=10)
    counts_val = torch.bincount(yva, minlength=10)
    assert torch.equal(counts_val, torch.round(counts_all * 0.2).long())
    again = tdata.load("mnist1d")
    assert torch.equal(again.val.tensors[0], mnist1d.val.tensors[0])
    other = tdata.load("mnist1d", seed=1)
    assert not torch.equal(other.val.tensors[0], mnist1d.val.tensors[0])
    # train and val partition the same 4000 samples: no row is in both
    rows = torch.cat([mnist1d.train.tensors[0], mnist1d.val.tensors[0]]).flatten(1)
    assert torch.unique(rows, dim=0).shape[0] == 4000


def test_mnist1d_reads_its_cache(mnist1d: tdata.Data, home: Path) -> None:
    (path,) = (home / "mnist1d").glob("*.npz")
    with np.load(path) as f:
        arrays = {k: f[k] for k in f.files}
    np.savez(path, **{**arrays, "x_test": arrays["x_test"] + 1.0})
    try:
        start = time.perf_counter()
        cached = tdata.load("mnist1d")
        elapsed = time.perf_counter() - start
    finally:
        np.savez(path, **arrays)
    assert elapsed < 1.0  # generating takes seconds
    assert cached.test is not None and mnist1d.test is not None
    assert torch.allclose(cached.test.tensors[0], mnist1d.test.tensors[0] + 1.0)


def test_mnist1d_generation_keeps_global_rng_and_keys_cache_by_args(
    mnist1d: tdata.Data, home: Path
) -> None:
    np.random.seed(123)
    expected = np.random.rand()
    np.random.seed(123)
    small = tdata.load("mnist1d", num_samples=500, val_fraction=0.5)
    assert np.random.rand() == expected
    assert len(small.train) + len(small.val) == 400
    assert len(list((home / "mnist1d").glob("*.npz"))) == 2


def test_mnist1d_unknown_option(home: Path) -> None:
    with pytest.raises(ConfigError, match="'samples'"):
        tdata.load("mnist1d", samples=10)


def test_unknown_dataset_and_bad_fraction() -> None:
    assert {"digits", "mnist1d"} <= set(tdata.available())
    with pytest.raises(ConfigError, match=r"'cifar'.*digits"):
        tdata.load("cifar")
    with pytest.raises(ConfigError, match="val_fraction"):
        tdata.load("digits", val_fraction=1.5)
    with pytest.raises(ConfigError, match=r"'test_size' of dataset 'digits'.*test_fraction"):
        tdata.load("digits", test_size=0.1)


def test_digits() -> None:
    d = tdata.load("digits")
    x = d.train.tensors[0]
    assert d.input_shape == (1, 8, 8) and d.num_classes == 10 and x.shape[1:] == (1, 8, 8)
    assert float(x.min()) >= 0.0 and float(x.max()) == 1.0
    sizes = [len(s) for s in (d.train, d.val, d.test)]
    assert sum(sizes) == 1797 and sizes[2] == pytest.approx(1797 * 0.2, abs=10)
    assert torch.bincount(d.val.tensors[1]).min() >= 25  # stratified: every class present
    tv = d.train_val()
    assert isinstance(tv, TensorDataset) and len(tv) == sizes[0] + sizes[1]


def test_from_tensors_numpy_and_inference() -> None:
    x, y = _pair()
    d = tdata.from_tensors((x.double().numpy(), y.int().numpy()), (x, y), name="toy")
    assert d.train.tensors[0].dtype == torch.float32
    assert d.train.tensors[1].dtype == torch.int64
    assert (d.num_classes, d.input_shape, d.test) == (3, (1, 8), None)
    assert "train=30" in repr(d) and "toy" in repr(d)


def test_from_datasets_accepts_loaders_and_plain_datasets() -> None:
    x, y = _pair()
    plain = ListDataset([(x[i].numpy(), int(y[i])) for i in range(30)])
    d = tdata.from_datasets(DataLoader(TensorDataset(x, y), batch_size=4), plain)
    assert isinstance(d.train, TensorDataset) and d.val is plain
    assert (d.num_classes, d.input_shape) == (3, (1, 8))
    assert len(d.train_val()) == 60
    d2 = tdata.from_datasets(plain, plain, num_classes=5, input_shape=(1, 8))
    assert d2.num_classes == 5


def _bad(split: str, pair: Any, **kw: Any) -> None:
    good = _pair()
    pairs = {"train": good, "val": good, "test": None, split: pair}
    tdata.from_tensors(pairs["train"], pairs["val"], pairs["test"], **kw)


@pytest.mark.parametrize(
    ("split", "make", "kw", "message"),
    [
        ("train", lambda x, y: (x[:0], y[:0]), {}, "train split is empty"),
        ("val", lambda x, y: (x, y[:-1]), {}, "val split: x has 30 samples but y has 29"),
        ("val", lambda x, y: (x[..., :7], y), {}, r"val split: per-sample input shape \(1, 7\)"),
        ("test", lambda x, y: (x, y.float()), {}, "test split: labels must be integers"),
        ("val", lambda x, y: (x, torch.nn.functional.one_hot(y)), {}, "one class index"),
        ("train", lambda x, y: (x, y - 1), {}, "train split: label -1 is negative"),
        ("val", lambda x, y: (x, y + 1), {"num_classes": 3}, "val split: label 3 is out of ra"),
        ("train", lambda x, y: (x, y), {"num_classes": 1}, "num_classes must be"),
        ("train", lambda x, y: (x, y * 0), {"num_classes": 3}, "train split has a single class"),
        ("val", lambda x, y: (x.index_put_((torch.tensor([0, 0, 5]), torch.tensor([0, 0, 0]),
                                            torch.tensor([0, 1, 2])),
                                           torch.tensor([np.nan, np.nan, np.inf])), y),
         {}, r"val split: inputs contain 2 NaN and 1 inf values in 2 samples"),
        ("val", lambda x, y: "nope", {}, "val split: expected an \\(x, y\\) pair"),
    ],
)
def test_data_errors_name_the_split_and_problem(
    split: str, make: Any, kw: dict[str, Any], message: str
) -> None:
    x, y = _pair()
    with pytest.raises(DataError, match=message):
        _bad(split, make(x, y), **kw)


def test_missing_val_split() -> None:
    with pytest.raises(DataError, match="val split is missing"):
        tdata.from_tensors(_pair(), None)
    with pytest.raises(DataError, match="val split is missing"):
        tdata.from_datasets(TensorDataset(*_pair()), None)
    good = tdata.from_tensors(_pair(), _pair())
    broken = tdata.Data(good.train, None, None, (1, 8), 3)
    with pytest.raises(DataError, match="val split is missing"):
        tdata.validate(broken)


def test_plain_dataset_items_are_sampled_and_checked() -> None:
    x, y = _pair()
    items = [(x[i], int(y[i])) for i in range(30)]
    train = TensorDataset(x, y)
    nan_item = [*items[:29], (torch.full((1, 8), np.nan), 0)]  # the last item is sampled
    with pytest.raises(DataError, match="val split: item 29 contains 8 NaN and 0 inf"):
        tdata.from_datasets(train, ListDataset(nan_item))
    wrong_shape = [(torch.zeros(1, 9), 0), *items[1:]]
    with pytest.raises(DataError, match=r"val split: item 0 has input shape \(1, 9\)"):
        tdata.from_datasets(train, ListDataset(wrong_shape))
    with pytest.raises(DataError, match="test split: item 0 is a Tensor"):
        tdata.from_datasets(train, ListDataset(items), ListDataset([x[0]] * 3))
    with pytest.raises(DataError, match="val split: label 7 is out of range"):
        tdata.from_datasets(train, ListDataset([(x[0], 7)] * 3), num_classes=3)
    with pytest.raises(DataError, match="train split is empty"):
        tdata.from_datasets(ListDataset([]), ListDataset(items))
    with pytest.raises(DataError, match="val split is empty"):
        tdata.from_datasets(train, ListDataset([]))


def test_stratified_split_keeps_class_shares() -> None:
    y = np.repeat(np.arange(4), [10, 20, 30, 40])
    kept, held = tdata.stratified_split(y, 0.1, seed=3)
    assert np.bincount(y[held]).tolist() == [1, 2, 3, 4]
    assert sorted([*kept, *held]) == list(range(100))
    assert np.array_equal(held, tdata.stratified_split(y, 0.1, seed=3)[1])
