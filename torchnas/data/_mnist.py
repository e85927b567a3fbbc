"""MNIST-family datasets: IDX files downloaded once from mirrors, MD5-checked, cached, parsed.

The four standard gzipped IDX files of a dataset (60,000 training and 10,000 test images of
28x28 pixels, 10 classes) live in one cache folder. A file is fetched only when it is missing
or its MD5 differs from the published one; a download goes to a temporary file in that folder
and is renamed into place only once its checksum matches, so an interrupted download never
leaves a corrupt file behind and concurrent workers never read a half-written one.
"""

from __future__ import annotations

import gzip
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from torchnas._util.errors import DataError
from torchnas.data import _download as download

__all__ = ["FILES", "SOURCES", "Source", "fetch", "mnist_arrays", "read_idx"]


#: The four files of every MNIST-family dataset, in the order
#: (train images, train labels, test images, test labels).
FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)

_IDX_DTYPES = {0x08: np.dtype(np.uint8)}  # the only element type the MNIST family uses


@dataclass(frozen=True)
class Source:
    """Where a dataset's files come from.

    Attributes:
        mirrors: Base URLs tried in order; a file's URL is the base plus its name.
        md5: Published MD5 hex digest of each file in :data:`FILES`.
    """

    mirrors: tuple[str, ...]
    md5: Mapping[str, str]


def _by_file(*md5: str) -> dict[str, str]:
    return dict(zip(FILES, md5, strict=True))


#: Mirrors and published checksums (as in torchvision's ``MNIST.resources`` and the datasets'
#: own pages), by the name :func:`torchnas.data.load` accepts.
SOURCES: dict[str, Source] = {
    "mnist": Source(
        ("https://ossci-datasets.s3.amazonaws.com/mnist/",
         "https://storage.googleapis.com/cvdf-datasets/mnist/",
         "http://yann.lecun.com/exdb/mnist/"),
        _by_file("f68b3c2dcbeaaa9fbdd348bbdeb94873", "d53e105ee54ea40749a09fcbcd1e9432",
                 "9fb629c4189551a2d022fa330f9573f3", "ec29112dd5afa0611ce80d1b7f02629c"),
    ),
    "fashion_mnist": Source(
        ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
         "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/"),
        _by_file("8d4fb7e6c68d591d4c3dfef9ec88bf0d", "25c81989df183df01b3e8a0aad5dffbe",
                 "bef4ecab320f06d8554ea6380940ec79", "bb300cfdad3c16e7a12a480ee83cd310"),
    ),
    "kmnist": Source(
        ("http://codh.rois.ac.jp/kmnist/dataset/kmnist/",
         "https://codh.rois.ac.jp/kmnist/dataset/kmnist/"),
        _by_file("bdb82020997e1d708af4cf47b453dcf7", "e144d726b3acfaa3e44228e80efcd344",
                 "5c965bf0a639b31b8f53240b1b52f4d7", "7320c461ea6c1c855c0b718fb2a4b134"),
    ),
}


def mnist_arrays(
    name: str,
    folder: Path,
    *,
    mirrors: Sequence[str] | None = None,
    md5: Mapping[str, str] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Fetch (if needed) and parse an MNIST-family dataset.

    Args:
        name: A key of :data:`SOURCES`.
        folder: Cache folder of this dataset's four files.
        mirrors: Base URLs to try instead of the dataset's own (a private mirror; tests).
        md5: Checksums by file name to use instead of the published ones (tests).

    Returns:
        ``(x, y, x_test, y_test)``: float32 images in ``[0, 1]`` of shape ``(N, 1, H, W)``
        and int64 labels.

    Raises:
        DataError: When a file cannot be fetched with the right checksum or is malformed, or
            when the images and labels of a split do not match.
    """
    source = SOURCES[name]
    paths = fetch(folder, source.mirrors if mirrors is None else tuple(mirrors),
                  source.md5 if md5 is None else md5)
    x, y, x_test, y_test = (read_idx(p) for p in paths)
    for images, labels, split in ((x, y, "train"), (x_test, y_test, "test")):
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise DataError(f"{name} {split} split: images of shape {images.shape} do not match "
                            f"labels of shape {labels.shape} (files in {folder})")
    return _scale(x), y.astype(np.int64), _scale(x_test), y_test.astype(np.int64)


def _scale(images: np.ndarray) -> np.ndarray:
    """uint8 ``(N, H, W)`` images as float32 ``(N, 1, H, W)`` in [0, 1]."""
    out = images.astype(np.float32)[:, None]
    out /= 255.0
    return out


def fetch(folder: Path, mirrors: Sequence[str], md5: Mapping[str, str]) -> list[Path]:
    """:func:`~torchnas.data._download.fetch` with MD5 checksums by file name."""
    return download.fetch(folder, mirrors, md5, "md5")


def read_idx(path: Path) -> np.ndarray:
    """Parse a (gzipped, if the name ends in ``.gz``) IDX file of unsigned bytes.

    The format: two zero bytes, a type byte (0x08 for uint8), the number of dimensions, each
    dimension as a big-endian uint32, then the data in C order.

    Raises:
        DataError: When the file is not a well-formed uint8 IDX file.
    """
    try:
        with (gzip.open(path, "rb") if path.suffix == ".gz" else path.open("rb")) as f:
            raw = f.read()
    except (OSError, EOFError) as e:  # gzip.BadGzipFile is an OSError
        raise DataError(f"cannot read IDX file {path}: {e}") from e
    if len(raw) < 4 or raw[:2] != b"\0\0" or raw[2] not in _IDX_DTYPES:
        magic = raw[:4].hex() or "missing"
        raise DataError(f"{path} is not a uint8 IDX file (magic number {magic})")
    ndim = raw[3]
    offset = 4 + 4 * ndim
    if len(raw) < offset:
        raise DataError(f"IDX file {path} is truncated in its header")
    dims = tuple(int(d) for d in np.frombuffer(raw, ">u4", ndim, offset=4))
    expected = offset + int(np.prod(dims, dtype=np.int64))
    if len(raw) != expected:
        raise DataError(f"IDX file {path} has {len(raw)} bytes; its header {dims} implies "
                        f"{expected} (truncated or damaged: delete it to download it again)")
    return np.frombuffer(raw, _IDX_DTYPES[raw[2]], offset=offset).reshape(dims)





