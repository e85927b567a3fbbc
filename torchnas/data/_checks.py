"""Checks of a :class:`~torchnas.data.Data` bundle beyond its structure, run by ``validate``:
classes that val or test hold but train never shows, raw 0..255 pixels in float images, and
PIL images where tensors belong."""

from __future__ import annotations

import sys
import warnings
import weakref
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch.utils.data import Dataset, Subset, TensorDataset

from torchnas._util.errors import DataError

if TYPE_CHECKING:
    from torchnas.data._bundle import Data

__all__ = [
    "check_class_coverage",
    "is_pil_image",
    "known_labels",
    "pil_item_error",
    "warn_raw_pixels",
]

#: How many samples per split :func:`warn_raw_pixels` looks at for whole-number values.
PIXEL_SAMPLES = 256

_warned: weakref.WeakSet[Any] = weakref.WeakSet()  # bundles already warned about raw pixels


def known_labels(ds: Dataset[Any]) -> torch.Tensor | None:
    """Every label of ``ds`` when it can be had without reading items (a ``TensorDataset``,
    a ``targets`` attribute, a ``Subset`` of either), else None."""
    if isinstance(ds, TensorDataset):
        return ds.tensors[1] if len(ds.tensors) >= 2 else None
    if isinstance(ds, Subset):
        labels = known_labels(ds.dataset)
        return None if labels is None else labels[torch.as_tensor(list(ds.indices),
                                                                  dtype=torch.long)]
    targets = getattr(ds, "targets", None)
    if targets is None:
        return None
    try:
        labels = torch.as_tensor(targets)
    except (TypeError, ValueError, RuntimeError):
        return None
    if labels.dim() != 1 or labels.is_floating_point() or labels.dtype == torch.bool:
        return None
    return labels


def check_class_coverage(data: Data, sampled: Mapping[str, torch.Tensor]) -> None:
    """:class:`DataError` when val holds labels train never has (a warning for test).

    Done only when every training label is known cheaply (see :func:`known_labels`); val and
    test labels are all of them where cheap, else ``sampled[split]``.
    """
    train = known_labels(data.train)
    if train is None:
        return
    seen = set(train.unique().tolist())
    for split, ds in (("val", data.val), ("test", data.test)):
        if ds is None:
            continue
        labels = known_labels(ds)
        labels = sampled[split] if labels is None else labels
        missing = sorted(set(labels.unique().tolist()) - seen)
        if not missing:
            continue
        shown = _labels(missing, data.classes)
        fix = ("split stratified (tn.data.stratified_split, or the val_fraction of "
               "tn.data.load / from_files / from_folder) so that train has every class")
        if split == "val":
            raise DataError(f"val split has labels {shown} that never occur in train: every "
                            f"trial would score 0 on them; {fix}")
        warnings.warn(f"test split has labels {shown} that never occur in train: the test "
                      f"accuracy on them will be 0; {fix}", UserWarning, stacklevel=3)


def warn_raw_pixels(data: Data, inputs: Mapping[str, torch.Tensor]) -> None:
    """A :class:`UserWarning` (once per bundle) when float images hold raw 0..255 pixels.

    Only image-shaped inputs (three dimensions, two of them at least 4 long) whose values are
    whole numbers in ``[0, 255]`` with a maximum above 1.5 count: standardized features and
    images scaled to ``[0, 1]`` never do.
    """
    if len(data.input_shape) != 3 or sum(d >= 4 for d in data.input_shape) < 2:
        return
    if data in _warned:
        return
    found = []
    for split, x in inputs.items():
        if not x.is_floating_point() or x.numel() == 0:
            continue
        low, high = (float(v) for v in torch.aminmax(x))
        head = x[:PIXEL_SAMPLES]
        if low >= 0 and 1.5 < high <= 255 and torch.equal(head, head.round()):
            found.append(f"{split} (max {high:g})")
    if found:
        _warned.add(data)
        warnings.warn(
            f"inputs of the {' and '.join(found)} split{'s' * (len(found) > 1)} look like "
            f"raw 0..255 pixels (float images of whole numbers): networks train poorly on "
            f"that scale; divide by 255 (x / 255) to bring them to [0, 1], or read the images "
            f"with tn.data.from_folder",
            UserWarning, stacklevel=3)


def is_pil_image(obj: object) -> bool:
    """Whether ``obj`` is a PIL image (without importing Pillow when nobody has)."""
    image = sys.modules.get("PIL.Image")
    return image is not None and isinstance(obj, image.Image)


def pil_item_error(split: str, index: int, image: Any) -> DataError:
    """The error for a dataset whose items are PIL images, not tensors."""
    width, height = image.size
    return DataError(
        f"{split} split: item {index} input is a PIL image ({image.mode}, {width}x{height}), "
        f"not a tensor: give the dataset transform=torchvision.transforms.ToTensor() "
        f"(floats in [0, 1], channels first), or read an image folder with "
        f"tn.data.from_folder"
    )


def _labels(labels: Sequence[int], classes: Sequence[str] | None) -> str:
    """``{7, 8, 9}``, with the class names when known, at most 10 of them."""
    head = labels[:10]
    more = ", ..." if len(labels) > 10 else ""
    text = "{" + ", ".join(map(str, head)) + more + "}"
    if classes is not None and all(0 <= i < len(classes) for i in head):
        text += " (" + ", ".join(repr(classes[i]) for i in head) + more + ")"
    return text
