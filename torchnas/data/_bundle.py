"""The :class:`Data` bundle (train/val/test splits) and its constructors and checks."""

from __future__ import annotations

import math
from collections.abc import Sequence, Sized
from dataclasses import dataclass, replace
from typing import Any, cast

import numpy as np
import torch
from torch.utils.data import ConcatDataset, DataLoader, Dataset, Subset, TensorDataset

from torchnas._util.errors import DataError
from torchnas.data._checks import (
    check_class_coverage,
    is_pil_image,
    pil_item_error,
    warn_raw_pixels,
)

__all__ = ["Data", "from_datasets", "from_tensors", "validate"]

#: How many items of a plain (non-tensor) Dataset :func:`validate` inspects per split.
SAMPLE_ITEMS = 8


@dataclass(frozen=True, eq=False, repr=False)
class Data:
    """A dataset split for architecture search: class labels, float targets or token ids.

    The search trains on ``train`` and selects on ``val``; ``test`` is kept apart and nothing
    in the library selects on it. Build one with :func:`torchnas.data.load`,
    :func:`from_tensors`, :func:`from_datasets`, :func:`torchnas.data.from_files` or
    :func:`torchnas.data.from_folder` (these call :func:`validate`).

    Attributes:
        train: Training split; items are ``(input, label)`` pairs.
        val: Validation split, used to rank architectures.
        test: Held-out split, or None.
        input_shape: Per-sample input shape, channels first, without the batch dimension:
            ``(1, 40)`` for a 1-D signal, ``(1, 8, 8)`` for an image, ``(F,)`` for tabular.
        num_classes: Number of classes (or the vocabulary of next-token targets); labels are
            integers in ``[0, num_classes)``. ``None``: the targets are floats (regression).
        name: Human-readable name.
        classes: The class names, label ``i`` being ``classes[i]`` (string labels of
            :func:`torchnas.data.from_files`, sub-folders of :func:`torchnas.data.from_folder`),
            or None.
        target_shape: Per-sample target shape: ``()`` for one label or value per sample,
            ``(k,)`` for ``k`` regression targets, ``(T,)`` for labels per token.
    """

    train: Dataset[Any]
    val: Dataset[Any]
    test: Dataset[Any] | None
    input_shape: tuple[int, ...]
    num_classes: int | None
    name: str = "custom"
    classes: tuple[str, ...] | None = None
    target_shape: tuple[int, ...] = ()

    @property
    def num_outputs(self) -> int:
        """Outputs a model needs per sample (per token, for labels per token): the number of
        classes, or of float targets (1 for targets of shape ``(N,)``)."""
        if self.num_classes is not None:
            return self.num_classes
        return math.prod(self.target_shape)

    def train_val(self) -> Dataset[Any]:
        """Return train and val as one dataset, for retraining the chosen architecture.

        Two :class:`~torch.utils.data.TensorDataset` splits give a ``TensorDataset`` of
        ``(inputs, labels)`` (so the trainer keeps its fast path); otherwise a
        :class:`~torch.utils.data.ConcatDataset`.
        """
        a, b = self.train, self.val
        if isinstance(a, TensorDataset) and isinstance(b, TensorDataset):
            pairs = zip(a.tensors[:2], b.tensors[:2], strict=True)  # (inputs, labels)
            return TensorDataset(*(torch.cat([s, t]) for s, t in pairs))
        return ConcatDataset([a, b])

    def subset(self, fraction: float, seed: int = 0) -> Data:
        """This bundle with a training split cut to ``ceil(fraction * N)`` samples, drawn
        without replacement in an order fixed by ``seed`` (val and test unchanged): the data
        fidelity of a low-fidelity search. A tensor split stays a ``TensorDataset``.

        Raises:
            DataError: when ``fraction`` is not in ``(0, 1]``.
        """
        if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not (
                0 < fraction <= 1):
            raise DataError(f"subset fraction must be in (0, 1], got {fraction!r}")
        if fraction == 1:
            return self
        n = _size(self.train)
        keep = max(1, math.ceil(fraction * n - 1e-9))
        order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:keep]
        train: Dataset[Any]
        if isinstance(self.train, TensorDataset):
            train = TensorDataset(*(t[order] for t in self.train.tensors))
        else:
            train = Subset(self.train, order.tolist())
        return replace(self, train=train)

    def __repr__(self) -> str:
        test = None if self.test is None else _size(self.test)
        targets = f", target_shape={self.target_shape}" if self.target_shape else ""
        return (f"Data(name={self.name!r}, train={_size(self.train)}, val={_size(self.val)}, "
                f"test={test}, input_shape={self.input_shape}, num_classes={self.num_classes}"
                f"{targets})")


def from_tensors(
    train: tuple[Any, Any],
    val: tuple[Any, Any] | None,
    test: tuple[Any, Any] | None = None,
    *,
    num_classes: int | None = None,
    name: str = "custom",
    classes: Sequence[str] | None = None,
) -> Data:
    """Build :class:`Data` from ``(x, y)`` pairs of tensors or numpy arrays.

    Float64 inputs and targets become float32; integer labels and inputs (token ids) become
    int64 and stay integers. ``x`` has shape ``(N, *input_shape)``, ``y`` shape ``(N,)``:
    class indices, or float targets (regression, ``num_classes`` None); ``(N, k)`` float
    targets or ``(N, T)`` labels per token set :attr:`Data.target_shape`.

    Args:
        train: ``(x, y)`` of the training split.
        val: ``(x, y)`` of the validation split (required).
        test: ``(x, y)`` of the test split, or None.
        num_classes: Number of classes; default: the number of ``classes``, else the
            largest label of any split plus one; None for float targets.
        name: Name of the dataset.
        classes: The class names, label ``i`` being ``classes[i]``, or None.

    Returns:
        The validated bundle, whose splits are ``TensorDataset``s.

    Raises:
        DataError: If a split is malformed; the message names the split.

    Example:
        >>> import torch
        >>> x, y = torch.randn(20, 3), torch.arange(20) % 2
        >>> from_tensors((x, y), (x, y)).input_shape
        (3,)
    """
    if val is None:
        raise DataError("val split is missing: pass val=(x, y); the search selects on it")
    pairs = {"train": train, "val": val, "test": test}
    splits = {k: _tensor_split(k, p) for k, p in pairs.items() if p is not None}
    names = None if classes is None else tuple(str(c) for c in classes)
    y = splits["train"].tensors[1]
    if y.is_floating_point():
        if num_classes is not None or names is not None:
            raise DataError(f"train split: the targets are floats ({y.dtype}) but num_classes "
                            f"or classes is given: class labels must be integers, y.long()")
    elif num_classes is None and names is not None:
        num_classes = len(names)
    elif num_classes is None:
        num_classes = max(int(s.tensors[1].max()) + 1 if s.tensors[1].numel() else 0
                          for s in splits.values() if _is_int(s.tensors[1]))
    shape = tuple(splits["train"].tensors[0].shape[1:])
    data = Data(splits["train"], splits["val"], splits.get("test"), shape, num_classes, name,
                names, tuple(y.shape[1:]))
    validate(data)
    return data


def from_datasets(
    train: Dataset[Any] | DataLoader[Any],
    val: Dataset[Any] | DataLoader[Any] | None,
    test: Dataset[Any] | DataLoader[Any] | None = None,
    *,
    num_classes: int | None = None,
    input_shape: tuple[int, ...] | None = None,
    name: str = "custom",
    classes: Sequence[str] | None = None,
) -> Data:
    """Build :class:`Data` from torch Datasets (or DataLoaders, whose ``.dataset`` is used).

    Args:
        train: Training split; items are ``(input, label)`` pairs.
        val: Validation split (required).
        test: Test split, or None.
        num_classes: Number of classes; default: read from a ``targets`` attribute or the
            labels of a ``TensorDataset``, else found by reading every training label once
            (None when the labels are floats: regression).
        input_shape: Per-sample input shape; default: the shape of the first training input.
        name: Name of the dataset.
        classes: The class names, label ``i`` being ``classes[i]``; default: the training
            dataset's ``classes`` attribute (torchvision's datasets have one) when it holds
            ``num_classes`` strings, else None.

    Returns:
        The validated bundle.

    Raises:
        DataError: If a split is malformed; the message names the split.
    """
    if val is None:
        raise DataError("val split is missing: pass a val dataset; the search selects on it")
    tr, va = _unwrap(train), _unwrap(val)
    te = None if test is None else _unwrap(test)
    if _size(tr) == 0:
        raise DataError("train split is empty")
    first = _item("train", tr, 0)
    if input_shape is None:
        input_shape = tuple(first[0].shape)
    if num_classes is None:
        labels = _all_labels(tr)
        num_classes = int(labels.max()) + 1 if _is_int(labels) else None
    if classes is None:
        found = getattr(tr, "classes", None)
        if isinstance(found, (list, tuple)) and len(found) == num_classes and all(
                isinstance(c, str) for c in found):
            classes = found
    names = None if classes is None else tuple(str(c) for c in classes)
    data = Data(tr, va, te, tuple(input_shape), num_classes, name, names, tuple(first[1].shape))
    validate(data)
    return data


def validate(data: Data) -> None:
    """Check a :class:`Data` bundle before any training.

    ``TensorDataset`` splits are checked in full (vectorized); other datasets on a sample of
    items (the first, the last and a few in between).

    Which task the data suits (class labels, float targets, token ids) is the Trainer's
    check (``Trainer.check_data``); this one holds for every task.

    Raises:
        DataError: Naming the split and the problem: empty split, x/y lengths that differ,
            per-sample shapes that differ across splits, labels that are not integers (with
            ``num_classes``) or lie outside ``[0, num_classes)``, integer targets where the
            train split's are floats, one-hot labels, fewer than 2 classes, val labels that
            never occur in train, NaN or inf inputs or targets, PIL images as items, class
            names that do not match ``num_classes``, or a missing val split.

    Warns:
        UserWarning: When test labels never occur in train, or float images hold raw
            0..255 pixel values (once per bundle).
    """
    if not isinstance(data, Data):
        raise DataError(f"expected a torchnas.data.Data, got {type(data).__name__}")
    if data.val is None:
        raise DataError("val split is missing; the search selects on it")
    named = [("train", data.train), ("val", data.val), ("test", data.test)]
    splits = {s: _split_tensors(s, ds, data.input_shape, data.target_shape)
              for s, ds in named if ds is not None}
    for split, (x, y) in splits.items():
        _check_structure(split, x, y, data)
    k = data.num_classes
    if k is None:  # float targets
        if data.classes is not None:
            raise DataError(f"class names {data.classes!r} for float targets (num_classes="
                            f"None)")
        warn_raw_pixels(data, {s: x for s, (x, _) in splits.items()})
        return
    if isinstance(k, bool) or not isinstance(k, int) or k < 2:
        raise DataError(f"num_classes must be an integer >= 2 (classification), got {k!r}")
    if data.classes is not None and len(data.classes) != k:
        raise DataError(f"{len(data.classes)} class names for num_classes={k}: "
                        f"classes={data.classes!r}")
    for split, (_, y) in splits.items():
        low, high = int(y.min()), int(y.max())
        if low < 0:
            raise DataError(f"{split} split: label {low} is negative; labels must be in "
                            f"[0, {k - 1}]")
        if high >= k:
            raise DataError(f"{split} split: label {high} is out of range for num_classes="
                            f"{k}; labels must be in [0, {k - 1}]")
    y = splits["train"][1]
    if data.target_shape:  # labels per token: any class may be missing from a split
        warn_raw_pixels(data, {s: x for s, (x, _) in splits.items()})
        return
    if isinstance(data.train, TensorDataset) and y.unique().numel() < 2:
        raise DataError(f"train split has a single class (label {int(y[0])}); need >= 2")
    check_class_coverage(data, {s: y for s, (_, y) in splits.items()})
    warn_raw_pixels(data, {s: x for s, (x, _) in splits.items()})


def _check_structure(split: str, x: torch.Tensor, y: torch.Tensor, data: Data) -> None:
    input_shape, target_shape = data.input_shape, data.target_shape
    if x.shape[0] != y.shape[0]:
        raise DataError(f"{split} split: {x.shape[0]} inputs but {y.shape[0]} labels")
    shape = tuple(x.shape[1:])
    if shape != input_shape:
        raise DataError(
            f"{split} split: per-sample input shape {shape} differs from input_shape "
            f"{input_shape} (every split must share the train split's shape)"
        )
    if _looks_one_hot(y, input_shape) or (tuple(y.shape[1:]) != target_shape
                                          and not target_shape):
        raise DataError(
            f"{split} split: labels must be one class index per sample, got shape "
            f"{tuple(y.shape)} (one-hot labels? use y.argmax(1))"
        )
    if tuple(y.shape[1:]) != target_shape:
        raise DataError(f"{split} split: per-sample target shape {tuple(y.shape[1:])} differs "
                        f"from the train split's {target_shape}")
    if data.num_classes is not None and not _is_int(y):
        raise DataError(f"{split} split: labels must be integers (class indices), got {y.dtype}")
    if data.num_classes is None:
        if not y.is_floating_point():
            raise DataError(f"{split} split: targets must be floats like the train split's "
                            f"(num_classes=None: regression), got {y.dtype}")
        bad = ~torch.isfinite(y)
        if bool(bad.any()):
            nan = int(torch.isnan(y).sum())
            rows = bad.reshape(len(y), -1).any(1).nonzero()
            raise DataError(
                f"{split} split: targets contain {nan} NaN and {int(bad.sum()) - nan} inf "
                f"values in {len(rows)} samples (first at index {int(rows[0])}); drop or "
                f"impute them")
    if x.is_floating_point() or x.is_complex():
        bad = ~torch.isfinite(x)
        if bool(bad.any()):
            nan = int(torch.isnan(x).sum())
            rows = bad.reshape(len(x), -1).any(1).nonzero()
            raise DataError(
                f"{split} split: inputs contain {nan} NaN and {int(bad.sum()) - nan} inf "
                f"values in {len(rows)} samples (first at index {int(rows[0])})"
            )


def _looks_one_hot(y: torch.Tensor, input_shape: tuple[int, ...]) -> bool:
    """Integer labels ``(N, C)`` of zeros with a single one per row, not shaped like the
    inputs (labels per token are)."""
    if y.dim() != 2 or not _is_int(y) or tuple(y.shape[1:]) == input_shape or not len(y):
        return False
    return bool(((y == 0) | (y == 1)).all()) and bool((y.sum(1) == 1).all())


def _split_tensors(
    split: str, ds: Dataset[Any], input_shape: tuple[int, ...],
    target_shape: tuple[int, ...] = (),
) -> tuple[torch.Tensor, torch.Tensor]:
    """All of a TensorDataset's (x, y), or a stacked sample of a plain dataset's items."""
    n = _size(ds)
    if n == 0:
        raise DataError(f"{split} split is empty")
    if isinstance(ds, TensorDataset):
        if len(ds.tensors) < 2:
            raise DataError(f"{split} split: a TensorDataset of (inputs, labels) is needed, "
                            f"got {len(ds.tensors)} tensor")
        return ds.tensors[0], ds.tensors[1]
    step = max(1, (n - 1) // (SAMPLE_ITEMS - 1))
    xs, ys = [], []
    for i in sorted({*range(0, n, step), n - 1}):
        x, y = _item(split, ds, i)
        if tuple(x.shape) != input_shape:
            raise DataError(f"{split} split: item {i} has input shape {tuple(x.shape)}, "
                            f"differs from input_shape {input_shape}")
        if tuple(y.shape) != target_shape:
            expected = (f"the train split's {target_shape}" if target_shape
                        else "one integer class index")
            raise DataError(f"{split} split: item {i} has a label of shape {tuple(y.shape)}; "
                            f"expected {expected}")
        if x.is_floating_point() and not bool(torch.isfinite(x).all()):
            nan = int(torch.isnan(x).sum())
            raise DataError(f"{split} split: item {i} contains {nan} NaN and "
                            f"{int((~torch.isfinite(x)).sum()) - nan} inf input values")
        xs.append(x)
        ys.append(y)
    return torch.stack(xs), torch.stack(ys)


def _item(split: str, ds: Dataset[Any], i: int) -> tuple[torch.Tensor, torch.Tensor]:
    item = ds[i]
    if not isinstance(item, (tuple, list)) or len(item) < 2:
        raise DataError(f"{split} split: item {i} is a {type(item).__name__}, "
                        f"expected an (input, label) pair")
    if is_pil_image(item[0]):
        raise pil_item_error(split, i, item[0])
    return _tensor(item[0], f"{split} split: item {i} input"), _tensor(
        item[1], f"{split} split: item {i} label")


def _tensor_split(split: str, pair: Any) -> TensorDataset:
    if not isinstance(pair, (tuple, list)) or len(pair) != 2:
        raise DataError(f"{split} split: expected an (x, y) pair, got {type(pair).__name__}")
    x, y = _tensor(pair[0], f"{split} split: inputs"), _tensor(pair[1], f"{split} split: labels")
    if x.dim() < 2:
        raise DataError(f"{split} split: inputs need shape (N, *input_shape), got "
                        f"{tuple(x.shape)}; reshape(-1, 1) for a single feature")
    n_y = len(y) if y.dim() else 0
    if len(x) != n_y:
        raise DataError(f"{split} split: x has {len(x)} samples but y has {n_y}")
    x = x.float() if x.dtype == torch.float64 else x
    x = x.long() if x.dtype in (torch.int32, torch.int16) else x  # token ids (uint8: pixels)
    y = y.float() if y.dtype == torch.float64 else y
    return TensorDataset(x, y.long() if _is_int(y) else y)


def _all_labels(ds: Dataset[Any]) -> torch.Tensor:
    """Every label of ``ds``, read cheaply where the dataset allows."""
    if isinstance(ds, TensorDataset) and len(ds.tensors) >= 2:
        return ds.tensors[1]
    if isinstance(ds, Subset):
        return _all_labels(ds.dataset)[torch.as_tensor(list(ds.indices), dtype=torch.long)]
    targets = getattr(ds, "targets", None)
    if targets is not None:
        return _tensor(targets, "train split: targets")
    return torch.stack([_item("train", ds, i)[1] for i in range(_size(ds))])


def _unwrap(obj: Dataset[Any] | DataLoader[Any]) -> Dataset[Any]:
    return obj.dataset if isinstance(obj, DataLoader) else obj


def _tensor(a: Any, what: str) -> torch.Tensor:
    """``a`` as a tensor; :class:`DataError` naming ``what`` when it is not numeric (strings,
    ragged lists, objects)."""
    if isinstance(a, torch.Tensor):
        return a
    try:
        return torch.as_tensor(np.asarray(a))
    except (TypeError, ValueError, RuntimeError) as exc:
        kind = getattr(getattr(a, "dtype", None), "name", None) or type(a).__name__
        first = str(exc).split(". ")[0]
        raise DataError(f"{what} cannot be made a numeric tensor ({kind}: {first}); "
                        f"labels must be integer class indices (encode strings first, e.g. "
                        f"with sklearn's LabelEncoder) and inputs numbers") from None


def _is_int(t: torch.Tensor) -> bool:
    return not (t.is_floating_point() or t.is_complex() or t.dtype == torch.bool)


def _size(ds: Dataset[Any]) -> int:
    return len(cast(Sized, ds))
