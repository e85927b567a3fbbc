"""Tests of tn.data.from_files (.npy, .npz, CSV), tn.data.from_folder (PNG, JPEG) and their
YAML forms ``data: {files: ...}`` and ``data: {folder: ...}``."""

from __future__ import annotations

import csv
import re
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

import torchnas as tn
from torchnas._util.errors import ConfigError, DataError
from torchnas.cli import build_search, main

DOCS = (Path(__file__).resolve().parents[1] / "docs" / "data.md").read_text(encoding="utf-8")
SPECIES = ["setosa", "versicolor", "virginica"]


def write_csv(path: Path, header: list[str], rows: list[list[Any]]) -> Path:
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def flowers(path: Path, n: int = 60) -> Path:
    """Row i: features (i, i / 10), species SPECIES[i % 3]."""
    return write_csv(path, ["length", "width", "species"],
                     [[i, i / 10, SPECIES[i % 3]] for i in range(n)])


def rows_of(data: tn.data.Data, split: str) -> list[int]:
    return getattr(data, split).tensors[0].flatten(1)[:, 0].long().tolist()


def test_npy_pair_split_stratified_seeded_and_partitioned(tmp_path: Path) -> None:
    x = np.arange(100, dtype=np.float64)[:, None].repeat(3, 1)  # row i holds i
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", np.arange(100) % 4)  # 25 per class
    d = tn.data.from_files(tmp_path / "x.npy", str(tmp_path / "y.npy"))
    assert d.test is not None and d.classes is None and d.name == "x"
    assert (len(d.train), len(d.val), len(d.test)) == (64, 16, 20)
    assert d.input_shape == (3,) and d.num_classes == 4
    assert d.train.tensors[0].dtype == torch.float32 and d.train.tensors[1].dtype == torch.int64
    for split, per_class in (("train", 16), ("val", 4), ("test", 5)):
        assert torch.bincount(getattr(d, split).tensors[1]).tolist() == [per_class] * 4
        rows = torch.tensor(rows_of(d, split))
        assert torch.equal(getattr(d, split).tensors[1], rows % 4)  # labels follow their rows
    assert sorted(rows_of(d, "train") + rows_of(d, "val") + rows_of(d, "test")) == list(range(100))
    again = tn.data.from_files(tmp_path / "x.npy", tmp_path / "y.npy")
    other = tn.data.from_files(tmp_path / "x.npy", tmp_path / "y.npy", seed=1)
    assert rows_of(again, "val") == rows_of(d, "val") != rows_of(other, "val")
    none = tn.data.from_files(tmp_path / "x.npy", tmp_path / "y.npy", test_fraction=0,
                              val_fraction=0.4)
    assert none.test is None and (len(none.train), len(none.val)) == (60, 40)


def test_npz_string_labels_become_sorted_classes(tmp_path: Path) -> None:
    names = np.array(["owl", "cat", "dog"])[np.arange(30) % 3]
    np.savez(tmp_path / "d.npz", inputs=np.arange(30.0)[:, None, None] * np.ones((30, 1, 5)),
             target=names)
    d = tn.data.from_files(tmp_path / "d.npz", x="inputs", y="target", test_fraction=0.0,
                           name="animals")
    assert d.classes == ("cat", "dog", "owl") and d.num_classes == 3 and d.name == "animals"
    assert d.input_shape == (1, 5) and d.test is None
    for split in ("train", "val"):
        got = [d.classes[i] for i in getattr(d, split).tensors[1].tolist()]
        assert got == [str(names[r]) for r in rows_of(d, split)]
    with pytest.raises(DataError, match=r"d\.npz has no array 'x' \(arrays: inputs, target\)"):
        tn.data.from_files(tmp_path / "d.npz")


def test_csv_features_labels_and_columns(tmp_path: Path) -> None:
    path = flowers(tmp_path / "flowers.csv")
    d = tn.data.from_files(path, label="species")
    assert d.classes == tuple(SPECIES) and d.input_shape == (2,) and d.name == "flowers"
    x, y = d.train.tensors
    assert torch.allclose(x[:, 1], x[:, 0] / 10)
    assert torch.equal(y, x[:, 0].long() % 3)  # sorted names: setosa 0, versicolor 1, ...
    assert (len(d.train), len(d.val), len(d.test)) == (39, 9, 12)
    by_index = tn.data.from_files(path, label=-1, features=["width"])
    assert by_index.input_shape == (1,) and by_index.classes == tuple(SPECIES)
    numeric = write_csv(tmp_path / "n.csv", ["a", "y"], [[i, i % 2] for i in range(20)])
    ints = tn.data.from_files(numeric, label="y")
    assert ints.classes is None and ints.num_classes == 2
    with pytest.raises(DataError, match=r"no column 'specie' \(columns: length, width, spe"):
        tn.data.from_files(path, label="specie")
    with pytest.raises(DataError, match=r"no column 'height' \(columns: length, width"):
        tn.data.from_files(path, label="species", features=["length", "height"])
    with pytest.raises(ConfigError, match=r"pass label=COLUMN.*columns: length, width, species"):
        tn.data.from_files(path)


@pytest.mark.parametrize(("cell", "message"), [
    ("red", r"feature column 'width' is not numeric \('red' on line 5\)"),
    ("", r"feature column 'width' is not numeric \(a missing value on line 5\)"),
])
def test_csv_non_numeric_feature_is_named(tmp_path: Path, cell: str, message: str) -> None:
    rows = [[i, i / 10, SPECIES[i % 3]] for i in range(12)]
    rows[3][1] = cell
    path = write_csv(tmp_path / "bad.csv", ["length", "width", "species"], rows)
    with pytest.raises(DataError, match=message):
        tn.data.from_files(path, label="species")
    tn.data.from_files(path, label="species", features=["length"])  # left out: fine


def test_separate_test_file(tmp_path: Path) -> None:
    train = flowers(tmp_path / "train.csv", 60)
    test = write_csv(tmp_path / "test.csv", ["length", "width", "species"],
                     [[100 + i, 0, SPECIES[2 - i % 3]] for i in range(9)])
    d = tn.data.from_files(train, label="species", test=test)
    assert d.test is not None and len(d.train) + len(d.val) == 60 and len(d.test) == 9
    assert rows_of(d, "test") == list(range(100, 109))
    assert d.test.tensors[1].tolist() == [2, 1, 0] * 3  # the training classes' indices
    with pytest.raises(ConfigError, match=r"test_fraction=0\.2 and a test file"):
        tn.data.from_files(train, label="species", test=test, test_fraction=0.2)
    odd = write_csv(tmp_path / "odd.csv", ["length", "width", "species"], [[1, 2, "rose"]])
    with pytest.raises(DataError, match=r"labels \['rose'\] are not among the training classes"):
        tn.data.from_files(train, label="species", test=odd)
    np.save(tmp_path / "x.npy", np.random.default_rng(0).normal(size=(40, 2)))
    np.save(tmp_path / "y.npy", np.arange(40) % 2)
    pair = tn.data.from_files(tmp_path / "x.npy", tmp_path / "y.npy",
                              test=(tmp_path / "x.npy", tmp_path / "y.npy"))
    assert pair.test is not None and len(pair.test) == 40


# -- image folders -----------------------------------------------------------------------------
def image(path: Path, color: int | tuple[int, int, int], hw: tuple[int, int] = (6, 5)) -> Path:
    """A one-color image of height x width ``hw``, saved in the format of its suffix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("L" if isinstance(color, int) else "RGB", (hw[1], hw[0]), color).save(path)
    return path


def tree(root: Path) -> Path:
    """a_cat: 10 JPEGs and one nested PNG of (20, 40, 60); b_dog: 10 PNGs of (200, 100, 50)."""
    for i in range(10):
        image(root / "a_cat" / f"{i}.jpg", (20, 40, 60))
        image(root / "b_dog" / f"{i}.PNG", (200, 100, 50))
    image(root / "a_cat" / "more" / "x.png", (20, 40, 60))
    image(root / "b_dog" / ".thumbs" / "y.png", (0, 0, 0))  # hidden: skipped
    (root / "b_dog" / "notes.txt").write_text("not an image")
    return root


def test_from_folder_classes_values_channels_first_and_split(tmp_path: Path) -> None:
    d = tn.data.from_folder(tree(tmp_path / "pets"))
    assert d.classes == ("a_cat", "b_dog") and d.num_classes == 2 and d.name == "pets"
    assert d.input_shape == (3, 6, 5) and d.test is not None
    assert (len(d.train), len(d.val), len(d.test)) == (13, 4, 4)  # 11 cats, 10 dogs
    for split in (d.train, d.val, d.test):
        x, y = split.tensors
        assert x.dtype == torch.float32 and float(x.min()) >= 0 and float(x.max()) <= 1
        assert torch.bincount(y, minlength=2).min() >= 2  # stratified: both classes
        dog = torch.tensor([200, 100, 50]) / 255
        assert torch.allclose(x[y == 1].mean((2, 3)), dog.expand(int((y == 1).sum()), 3))
        cat = x[y == 0].mean((2, 3))
        assert torch.allclose(cat, (torch.tensor([20, 40, 60]) / 255).expand_as(cat),
                              atol=4 / 255)  # JPEG: close, not exact
    small = tn.data.from_folder(tmp_path / "pets", size=(4, 3), grayscale=True, seed=1)
    assert small.input_shape == (1, 4, 3)
    x, y = small.train.tensors
    assert torch.allclose(x[y == 1], torch.full_like(x[y == 1], 124 / 255), atol=1 / 255)
    assert tn.data.from_folder(tmp_path / "pets", size=8).input_shape == (3, 8, 8)


def test_from_folder_separate_test_folder(tmp_path: Path) -> None:
    tree(tmp_path / "train")
    for i in range(3):
        image(tmp_path / "test" / "b_dog" / f"{i}.png", (200, 100, 50))
    d = tn.data.from_folder(tmp_path / "train", test=tmp_path / "test")
    assert d.test is not None and len(d.train) + len(d.val) == 21
    assert d.test.tensors[1].tolist() == [1, 1, 1]  # b_dog is the train's class 1
    image(tmp_path / "test" / "cow" / "0.png", (1, 2, 3))
    with pytest.raises(DataError, match=r"class folders \['cow'\] are not in .*train"):
        tn.data.from_folder(tmp_path / "train", test=tmp_path / "test")


def test_from_folder_errors_name_the_culprit(tmp_path: Path) -> None:
    pets = tree(tmp_path / "pets")
    odd = image(pets / "b_dog" / "odd.png", (1, 2, 3), hw=(7, 5))
    with pytest.raises(DataError, match=rf"image {re.escape(str(odd))} is 7x5 \(height x "
                                        r"width\) but .*0\.jpg is 6x5.*pass size="):
        tn.data.from_folder(pets)
    assert tn.data.from_folder(pets, size=(6, 5)).input_shape == (3, 6, 5)
    odd.write_bytes(b"not a png")
    with pytest.raises(DataError, match=rf"cannot read image {re.escape(str(odd))}"):
        tn.data.from_folder(pets, size=(6, 5))
    odd.unlink()
    (pets / "c_owl").mkdir()
    with pytest.raises(DataError, match=r"class folder .*c_owl has no images \(\.bmp"):
        tn.data.from_folder(pets)
    (pets / "c_owl").rmdir()
    (tmp_path / "empty").mkdir()
    image(tmp_path / "flat" / "1.png", 3)
    image(tmp_path / "one" / "cat" / "1.png", 3)
    cases: list[tuple[Any, type[Exception], str]] = [
        (tmp_path / "nope", DataError, r"image folder not found: .*nope"),
        (tmp_path / "empty", DataError, r"empty: expected one sub-folder of images per class"),
        (tmp_path / "flat", DataError, r"holds images but no class sub-folders"),
        (tmp_path / "one", DataError, r"one class sub-folder \('cat'\)"),
        (tmp_path / "flat" / "1.png", DataError, r"1\.png is not a folder.*from_files"),
    ]
    for root, kind, message in cases:
        with pytest.raises(kind, match=message):
            tn.data.from_folder(root)
    with pytest.raises(ConfigError, match=r"size must be \(height, width\)"):
        tn.data.from_folder(pets, size=(28, 0))


def test_from_folder_without_pillow_names_the_extra(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "PIL", None)
    with pytest.raises(ImportError, match=r"pip install 'torchnas\[images\]'"):
        tn.data.from_folder(tmp_path)


# -- YAML --------------------------------------------------------------------------------------
def test_yaml_files_mapping_builds_the_search(tmp_path: Path, capsys: Any) -> None:
    path = flowers(tmp_path / "flowers.csv", 90)
    config = {"space": "mlp", "data": {"files": str(path), "label": "species", "seed": 3,
                                       "test_fraction": 0.1}}
    search = build_search(config)
    d = search.data
    assert isinstance(d, tn.data.Data) and d.classes == tuple(SPECIES) and d.test is not None
    assert len(d.test) == 9
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({**config, "trials": 1}))
    assert main(["space", str(cfg)]) == 0
    assert "Search space:" in capsys.readouterr().out
    np.save(tmp_path / "x.npy", np.random.default_rng(0).normal(size=(40, 2)))
    np.save(tmp_path / "y.npy", np.arange(40) % 2)
    pair = build_search({"space": "mlp",
                         "data": {"files": [str(tmp_path / "x.npy"), str(tmp_path / "y.npy")]}})
    assert isinstance(pair.data, tn.data.Data) and pair.data.num_classes == 2
    tree(tmp_path / "pets")
    pets = build_search({"space": "chain_cnn", "data": {"folder": str(tmp_path / "pets"),
                                                        "size": [8, 8], "grayscale": True}})
    assert isinstance(pets.data, tn.data.Data) and pets.data.input_shape == (1, 8, 8)


def test_the_docs_data_example_splits_as_it_says(capsys: Any) -> None:
    section = DOCS.split("## From files and folders\n", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, flags=re.S)
    assert code is not None
    namespace: dict[str, Any] = {}
    exec(compile(code.group(1), "docs/data.md", "exec"), namespace)
    data = namespace["data"]
    assert (len(data.train), len(data.val), len(data.test)) == (96, 24, 30)
    assert "train=96, val=24, test=30" in capsys.readouterr().out
