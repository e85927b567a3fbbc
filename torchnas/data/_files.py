"""Data read from files: ``.npy`` / ``.npz`` arrays and CSV tables, split stratified."""

from __future__ import annotations

import csv
import os
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from torchnas._util.errors import ConfigError, DataError
from torchnas.data._builtin import stratified_split
from torchnas.data._bundle import Data, from_tensors

__all__ = ["encode_labels", "from_files", "split_bundle"]

PathLike = str | os.PathLike[str]

#: The file types :func:`from_files` reads, by suffix.
SUFFIXES = (".npy", ".npz", ".csv", ".tsv")


def from_files(
    path: PathLike,
    labels: PathLike | None = None,
    *,
    x: str = "x",
    y: str = "y",
    label: str | int | None = None,
    features: Sequence[str] | None = None,
    test: PathLike | Sequence[PathLike] | None = None,
    val_fraction: float = 0.2,
    test_fraction: float | None = None,
    seed: int = 0,
    delimiter: str | None = None,
    name: str | None = None,
) -> Data:
    """Build :class:`~torchnas.data.Data` from array or table files, split stratified.

    ``from_files("x.npy", "y.npy")`` reads inputs and labels from two ``.npy`` files;
    ``from_files("data.npz", x="x", y="y")`` two arrays of one ``.npz``;
    ``from_files("data.csv", label="species")`` a CSV table with a header row, whose
    ``label`` column holds the labels and every other column (or those in ``features``) a
    numeric feature. String labels become class indices in sorted order, their names kept in
    :attr:`Data.classes`; integer labels are class indices already.

    Args:
        path: A ``.npy``, ``.npz``, ``.csv`` or ``.tsv`` file (``~`` is expanded).
        labels: The ``.npy`` file of the labels, when ``path`` is a ``.npy`` of the inputs.
        x: The inputs' array in a ``.npz``.
        y: The labels' array in a ``.npz``.
        label: The label column of a CSV: its name, or its index (``-1``: the last).
        features: The feature columns of a CSV; default: all but ``label``.
        test: A separate test file read like ``path`` (same keys, columns and class names),
            or a pair ``(inputs.npy, labels.npy)``; then nothing is held out for test.
        val_fraction: Share of each class held out for validation, of what test leaves.
        test_fraction: Share of each class held out for test (first); default 0.2, or 0
            with ``test``.
        seed: Seed of the split; the same seed gives the same split.
        delimiter: The CSV delimiter; default ``,`` (a tab for ``.tsv``).
        name: Name of the dataset; default: the file's stem.

    Returns:
        The validated bundle, whose splits are ``TensorDataset``s.

    Raises:
        DataError: For a missing or unreadable file, a missing array or column (the message
            lists those there), a non-numeric feature column (named), or bad labels.
        ConfigError: For an unsupported file type or arguments that do not fit together.
    """
    main = Path(path).expanduser()
    if main.suffix.lower() in (".csv", ".tsv") and labels is not None:
        raise ConfigError(f"{main}: a CSV holds its labels in a column: pass "
                          f"label={str(labels)!r} (not a second file)")
    inputs, raw = _read(main, labels, x=x, y=y, label=label, features=features,
                        delimiter=delimiter)
    targets, classes = encode_labels(raw, None, str(main))
    pair = None
    if test is not None:
        if isinstance(test, (str, os.PathLike)):
            test_x, test_raw = _read(Path(test).expanduser(), None, x=x, y=y, label=label,
                                     features=features, delimiter=delimiter)
        elif len(test) == 2:
            test_x, test_raw = _read(Path(test[0]).expanduser(), test[1], x=x, y=y,
                                     label=label, features=features, delimiter=delimiter)
        else:
            raise ConfigError(f"test must be a file or a pair (inputs, labels), got {test!r}")
        pair = (test_x, encode_labels(test_raw, classes, str(test))[0])
    return split_bundle(inputs, targets, pair, classes, val_fraction=val_fraction,
                        test_fraction=test_fraction, seed=seed, name=name or main.stem)


def split_bundle(
    inputs: np.ndarray,
    targets: np.ndarray,
    test: tuple[np.ndarray, np.ndarray] | None,
    classes: tuple[str, ...] | None,
    *,
    val_fraction: float,
    test_fraction: float | None,
    seed: int,
    name: str,
) -> Data:
    """Split ``(inputs, targets)`` stratified into train/val (and test, unless ``test`` is
    given) with :func:`~torchnas.data.stratified_split` and build the validated bundle."""
    _fraction("val_fraction", val_fraction, low_open=True)
    if test_fraction is None:
        test_fraction = 0.0 if test is not None else 0.2
    _fraction("test_fraction", test_fraction, low_open=False)
    if test is not None and test_fraction > 0:
        raise ConfigError(f"test_fraction={test_fraction} and a test file: pass one of them")
    if len(inputs) != len(targets):
        raise DataError(f"{name}: {len(inputs)} inputs but {len(targets)} labels")
    rest = np.arange(len(targets))
    if test is None and test_fraction > 0:
        rest, held = stratified_split(targets, test_fraction, seed)
        test = (inputs[held], targets[held])
    kept, val = stratified_split(targets[rest], val_fraction, seed + 1)
    train, val = rest[kept], rest[val]
    return from_tensors((inputs[train], targets[train]), (inputs[val], targets[val]), test,
                        name=name, classes=classes)


def encode_labels(
    raw: np.ndarray, classes: tuple[str, ...] | None, where: str
) -> tuple[np.ndarray, tuple[str, ...] | None]:
    """Labels as int64 class indices, and the class names when they are strings.

    Strings map to their index in ``classes`` (default: the sorted distinct labels);
    integers, and floats that are whole numbers, are class indices already.
    """
    raw = np.asarray(raw)
    if raw.ndim == 2 and raw.shape[1] == 1:
        raw = raw[:, 0]
    if raw.dtype.kind in "USO" and raw.ndim == 1:
        text = raw.astype(str)
        if classes is None:
            classes = tuple(str(c) for c in np.unique(text))
        index = {c: i for i, c in enumerate(classes)}
        unknown = sorted(set(text.tolist()) - set(index))
        if unknown:
            raise DataError(f"{where}: labels {unknown[:5]} are not among the training "
                            f"classes {list(classes)}")
        return np.array([index[t] for t in text], dtype=np.int64), classes
    if classes is not None:
        raise DataError(f"{where}: numeric labels, but the training labels are the strings "
                        f"{list(classes)}")
    if raw.dtype.kind in "iub":
        return raw.astype(np.int64), None
    if raw.dtype.kind == "f" and np.all(np.isfinite(raw)) and np.all(raw == np.round(raw)):
        return raw.astype(np.int64), None
    return raw, None  # from_tensors names the problem (float or multi-column labels)


def _read(
    path: Path, labels: PathLike | None, *, x: str, y: str, label: str | int | None,
    features: Sequence[str] | None, delimiter: str | None,
) -> tuple[np.ndarray, np.ndarray]:
    """``(inputs, raw labels)`` of one file (and its labels file)."""
    suffix = path.suffix.lower()
    if path.is_dir():
        _exists(path)
    if suffix not in SUFFIXES:
        raise ConfigError(f"{path}: cannot read {suffix or 'suffix-less'} files; from_files "
                          f"reads {', '.join(SUFFIXES)} (image folders: tn.data.from_folder)")
    _exists(path)
    if suffix in (".csv", ".tsv"):
        if label is None:
            raise ConfigError(f"{path}: pass label=COLUMN, the CSV column of the labels "
                              f"(columns: {', '.join(_header(path, delimiter))})")
        return _read_csv(path, label, features, delimiter or ("\t" if suffix == ".tsv" else ","))
    if suffix == ".npy" and labels is None:
        raise ConfigError(f"{path} holds the inputs only: pass the labels too, "
                          f"from_files({str(path)!r}, 'labels.npy')")
    arrays = _load(path, (x, y) if labels is None else (x,))
    inputs = arrays[x]
    if labels is None:
        raw = arrays[y]
    else:
        label_path = Path(labels).expanduser()
        if label_path.suffix.lower() not in (".npy", ".npz"):
            raise ConfigError(f"{label_path}: a labels file must be .npy or .npz")
        _exists(label_path)
        raw = _load(label_path, (y,))[y]
    if len(inputs) != len(raw):
        raise DataError(f"{path}: {len(inputs)} inputs but {len(raw)} labels")
    return inputs, raw


def _load(path: Path, keys: Sequence[str]) -> dict[str, np.ndarray]:
    """The arrays ``keys`` of a ``.npz`` (a ``.npy``'s one array under every key)."""
    try:
        loaded = np.load(path, allow_pickle=False)
        if isinstance(loaded, np.ndarray):
            return dict.fromkeys(keys, loaded)
        with loaded:
            missing = [k for k in keys if k not in loaded.files]
            if missing:
                raise DataError(f"{path} has no array {missing[0]!r} (arrays: "
                                f"{', '.join(loaded.files) or 'none'}); pass x=..., y=...")
            return {k: loaded[k] for k in keys}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        if isinstance(exc, DataError):
            raise
        raise DataError(f"cannot read {path}: {exc}") from None


def _read_csv(
    path: Path, label: str | int, features: Sequence[str] | None, delimiter: str
) -> tuple[np.ndarray, np.ndarray]:
    """Float32 features and the label column (strings) of a CSV file with a header row."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            rows = [(n, r) for n, r in enumerate(csv.reader(f, delimiter=delimiter), 1) if r]
    except (UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"cannot read {path} as CSV text: {exc}") from None
    if not rows:
        raise DataError(f"{path} is empty: expected a header row and data rows")
    header = [c.strip() for c in rows[0][1]]
    body = rows[1:]
    if not body:
        raise DataError(f"{path} has a header but no data rows")
    for line, row in body:
        if len(row) != len(header):
            raise DataError(f"{path}, line {line}: {len(row)} fields, the header has "
                            f"{len(header)}")
    target = _column(path, header, label)
    names = [c for i, c in enumerate(header) if i != target] if features is None else features
    columns = [_column(path, header, c) for c in names]
    if not columns:
        raise DataError(f"{path}: no feature columns beside the label {header[target]!r}")
    table = np.array([row for _, row in body], dtype=str)
    values = np.empty((len(body), len(columns)), dtype=np.float32)
    for j, c in enumerate(columns):
        try:
            values[:, j] = table[:, c].astype(np.float64)
        except ValueError:
            i = next(i for i, v in enumerate(table[:, c]) if not _is_number(v))
            value = str(table[i, c])
            what = "a missing value" if not value.strip() else f"{value!r}"
            raise DataError(
                f"{path}: feature column {header[c]!r} is not numeric ({what} on line "
                f"{body[i][0]}); encode it as numbers, or leave it out with features=[...]"
            ) from None
    labels = table[:, target]
    if all(_is_int(v) for v in labels):
        return values, labels.astype(np.int64)
    return values, labels


def _column(path: Path, header: list[str], key: str | int) -> int:
    if isinstance(key, int) and not isinstance(key, bool) and -len(header) <= key < len(header):
        return key % len(header)
    if isinstance(key, str) and key in header:
        return header.index(key)
    raise DataError(f"{path} has no column {key!r} (columns: {', '.join(header)})")


def _header(path: Path, delimiter: str | None) -> list[str]:
    tab = path.suffix.lower() == ".tsv"
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            return next(csv.reader(f, delimiter=delimiter or ("\t" if tab else ",")), [])
    except (UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"cannot read {path} as CSV text: {exc}") from None


def _is_int(text: str) -> bool:
    try:
        int(text)
    except ValueError:
        return False
    return True


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _exists(path: Path) -> None:
    if not path.exists():
        raise DataError(f"file not found: {path}")
    if path.is_dir():
        raise DataError(f"{path} is a folder, not a file (image folders: tn.data.from_folder)")


def _fraction(name: str, value: float, *, low_open: bool) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and (
        0 < value < 1 if low_open else 0 <= value < 1)
    if not ok:
        raise ConfigError(f"{name} must be a number in {'(' if low_open else '['}0, 1), "
                          f"got {value!r}")
