"""Tests of the data checks that run before any trial (val or test classes that train never
has, raw 0..255 pixels, PIL images as items, class names) and of the clear errors for missing,
unsupported or mistyped data files, in Python and in YAML."""

from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from test_data_files import flowers
from torch.utils.data import Dataset, Subset, TensorDataset

import torchnas as tn
from torchnas._util.errors import ConfigError, DataError
from torchnas.cli import main


class Items(Dataset[Any]):
    """A plain dataset of ``(input, label)`` items, with ``targets`` when given."""

    def __init__(self, items: list[Any], targets: list[int] | None = None) -> None:
        self.items = items
        if targets is not None:
            self.targets = targets

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> Any:
        return self.items[i]


def pair(n: int = 30, classes: int = 3, shape: tuple[int, ...] = (4,)) -> tuple[Any, Any]:
    g = torch.Generator().manual_seed(0)
    return torch.randn(n, *shape, generator=g), torch.arange(n) % classes


# -- classes that train never has ---------------------------------------------------------------
def test_val_classes_absent_from_train_are_an_error_naming_them() -> None:
    x, y = pair(40, classes=10)
    train = (x[y < 7], y[y < 7])
    with pytest.raises(DataError, match=r"val split has labels \{7, 8, 9\} that never occur "
                                        r"in train: every trial would score 0 on them; split "
                                        r"stratified \(tn\.data\.stratified_split"):
        tn.data.from_tensors(train, (x, y), num_classes=10)
    names = [f"c{i}" for i in range(10)]
    with pytest.raises(DataError, match=r"\{7, 8, 9\} \('c7', 'c8', 'c9'\)"):
        tn.data.from_tensors(train, (x, y), classes=names)
    # the same through a Subset, a plain dataset with targets, and a search's own check
    sub = Subset(TensorDataset(x, y), np.flatnonzero(y.numpy() < 7).tolist())
    with pytest.raises(DataError, match=r"val split has labels \{7, 8, 9\}"):
        tn.data.from_datasets(sub, TensorDataset(x, y), num_classes=10)
    items = Items([(x[i], int(y[i])) for i in range(len(y)) if y[i] < 7],
                  targets=[int(v) for v in y if v < 7])
    with pytest.raises(DataError, match=r"val split has labels \{7, 8, 9\}"):
        tn.data.from_datasets(items, TensorDataset(x, y), num_classes=10)
    by_hand = tn.data.Data(TensorDataset(*train), TensorDataset(x, y), None, (4,), 10)
    with pytest.raises(DataError, match=r"val split has labels \{7, 8, 9\}"):
        tn.ModelSearch(space="mlp", data=by_hand, trials=1, progress=False).check()


def test_class_check_never_guesses_from_a_sample_of_train() -> None:
    x, y = pair(30)
    labels = [0 if i % 2 else 1 for i in range(30)]
    labels[1] = 2  # item 1 is never among the items validate() samples of a 30-item dataset
    train = Items([(x[i], labels[i]) for i in range(30)])
    d = tn.data.from_datasets(train, TensorDataset(x, y), num_classes=3)
    assert d.num_classes == 3


def test_test_classes_absent_from_train_are_a_warning() -> None:
    x, y = pair(30)
    with pytest.warns(UserWarning, match=r"test split has labels \{2\} that never occur in "
                                         r"train: the test accuracy on them will be 0"):
        tn.data.from_tensors((x[y < 2], y[y < 2]), (x[y < 2], y[y < 2]), (x, y))


def test_class_names_must_match_num_classes() -> None:
    with pytest.raises(DataError, match=r"2 class names for num_classes=3"):
        tn.data.from_tensors(pair(), pair(), classes=["a", "b"], num_classes=3)
    d = tn.data.from_tensors(pair(), pair(), classes=("a", "b", "c"))
    assert d.num_classes == 3 and d.classes == ("a", "b", "c")
    assert tn.data.from_tensors(pair(), pair()).classes is None
    x, y = pair()
    items = Items([(x[i], int(y[i])) for i in range(30)])
    items.classes = ["a", "b", "c"]  # as torchvision's datasets have
    assert tn.data.from_datasets(items, items).classes == ("a", "b", "c")
    assert tn.data.from_datasets(items, items, num_classes=4).classes is None


# -- raw pixels ------------------------------------------------------------------------------
def test_raw_pixel_images_warn_once_naming_split_and_max() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (40, 1, 8, 8), generator=g).float()
    y = torch.arange(40) % 2
    scaled = x / 255
    with pytest.warns(UserWarning, match=r"inputs of the train \(max 255\) split look like raw "
                                         r"0\.\.255 pixels.*divide by 255 \(x / 255\)"):
        d = tn.data.from_tensors((x, y), (scaled, y))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tn.data.validate(d)  # once per bundle
        tn.data.from_tensors((scaled, y), (scaled, y))  # scaled to [0, 1]
        tn.data.from_tensors((x - 127.5, y), (x - 127.5, y))  # centred: negative values
        tn.data.from_tensors((x * 0.37, y), (x * 0.37, y))  # not whole numbers
        flat = x.flatten(1)
        tn.data.from_tensors((flat, y), (flat, y))  # tabular counts, not an image
        tn.data.from_tensors((x.to(torch.uint8), y), (x.to(torch.uint8), y))  # not floats
    with pytest.warns(UserWarning, match=r"train \(max 255\) and val \(max 255\) splits"):
        tn.data.from_tensors((x, y), (x, y))


# -- PIL images as items ---------------------------------------------------------------------
def test_pil_images_as_items_are_an_error_suggesting_the_conversion() -> None:
    x, y = pair(20, shape=(1, 6, 5))
    pil = Items([(Image.new("L", (5, 6), 7), int(y[i])) for i in range(20)])
    with pytest.raises(DataError, match=r"train split: item 0 input is a PIL image \(L, 5x6\), "
                                        r"not a tensor: .*transforms\.ToTensor\(\).*from_folder"):
        tn.data.from_datasets(pil, TensorDataset(x, y))
    with pytest.raises(DataError, match=r"val split: item 0 input is a PIL image"):
        tn.data.from_datasets(TensorDataset(x, y), pil, num_classes=3)


# -- files: missing, unsupported, mistyped --------------------------------------------------
def test_missing_and_unsupported_files(tmp_path: Path) -> None:
    np.save(tmp_path / "x.npy", np.zeros((4, 2)))
    (tmp_path / "notes.json").write_text("{}")
    (tmp_path / "broken.npy").write_bytes(b"not numpy")
    cases: list[tuple[Any, type[Exception], str]] = [
        (lambda: tn.data.from_files(tmp_path / "nope.csv", label="y"), DataError,
         r"file not found: .*nope\.csv"),
        (lambda: tn.data.from_files(tmp_path / "x.npy", tmp_path / "y.npy"), DataError,
         r"file not found: .*y\.npy"),
        (lambda: tn.data.from_files(tmp_path / "x.npy"), ConfigError,
         r"x\.npy holds the inputs only: pass the labels too"),
        (lambda: tn.data.from_files(tmp_path / "notes.json"), ConfigError,
         r"cannot read \.json files; from_files reads \.npy, \.npz, \.csv"),
        (lambda: tn.data.from_files(tmp_path), DataError, r"is a folder.*from_folder"),
        (lambda: tn.data.from_files(tmp_path / "broken.npy", tmp_path / "x.npy"), DataError,
         r"cannot read .*broken\.npy"),
        (lambda: tn.data.from_files(flowers(tmp_path / "f.csv"), "species"), ConfigError,
         r"a CSV holds its labels in a column: pass label='species'"),
        (lambda: tn.data.from_files(tmp_path / "x.npy", tmp_path / "x.npy", val_fraction=1),
         ConfigError, r"val_fraction must be a number in \(0, 1\)"),
    ]
    for call, kind, message in cases:
        with pytest.raises(kind, match=message):
            call()
    (tmp_path / "latin.csv").write_bytes("a,y\n\xe9,1\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"cannot read .*latin\.csv as CSV text"):
        tn.data.from_files(tmp_path / "latin.csv", label="y")
    np.save(tmp_path / "y3.npy", np.arange(3))
    with pytest.raises(DataError, match=r"x\.npy: 4 inputs but 3 labels"):
        tn.data.from_files(tmp_path / "x.npy", tmp_path / "y3.npy")


def test_unknown_dataset_points_to_own_data() -> None:
    with pytest.raises(ConfigError) as info:
        tn.data.load("iris.csv")
    for hint in ("tn.data.from_files", "tn.data.from_folder", "{files: PATH",
                 "{folder: ROOT", "data: module:function"):
        assert hint in str(info.value)




@pytest.mark.parametrize(("data", "message"), [
    ("{files: F, label: species, lable: x}", r"data: unknown key 'lable'; did you mean 'label'"),
    ("{files: F, label: nope}", r"no column 'nope' \(columns: length, width, species\)"),
    ("{files: F, name: digits}", r"give one of \['name', 'files'\]"),
    ("{files: F, path: F}", r"unknown key 'path' \(the 'files' key holds it\)"),
    ("{folder: F, size: [28, 28]}", r"is not a folder"),
    ("{lable: species}", r"needs 'name' .*'files' \(tn\.data\.from_files\) or 'folder'"),
    ("flowers.csv", r"unknown dataset 'flowers\.csv'.*tn\.data\.from_files"),
])
def test_yaml_data_errors_name_the_culprit(tmp_path: Path, capsys: Any, data: str,
                                           message: str) -> None:
    path = flowers(tmp_path / "flowers.csv")
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"space: mlp\ntrials: 1\ndata: {data.replace('F', str(path))}\n")
    assert main(["space", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert re.search(message, err), err
    assert "Traceback" not in err


