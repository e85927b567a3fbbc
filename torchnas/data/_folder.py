"""Data read from an image folder (one sub-folder per class), as torchvision's ``ImageFolder``
and Keras' ``image_dataset_from_directory`` lay it out."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from torchnas._util.errors import ConfigError, DataError
from torchnas.data._bundle import Data
from torchnas.data._files import split_bundle

__all__ = ["IMAGE_SUFFIXES", "from_folder"]

#: The image files :func:`from_folder` reads (any letter case); other files are skipped.
IMAGE_SUFFIXES = (".bmp", ".gif", ".jpeg", ".jpg", ".pgm", ".png", ".ppm", ".tif", ".tiff",
                  ".webp")


def from_folder(
    root: str | os.PathLike[str],
    *,
    size: int | Sequence[int] | None = None,
    grayscale: bool = False,
    test: str | os.PathLike[str] | None = None,
    val_fraction: float = 0.2,
    test_fraction: float | None = None,
    seed: int = 0,
    name: str | None = None,
) -> Data:
    """Build :class:`~torchnas.data.Data` from a folder of images, one sub-folder per class.

    ``root/cat/1.png``, ``root/dog/2.jpg``, ...: the classes are the sub-folders' names in
    sorted order (kept in :attr:`Data.classes`), each searched recursively for images
    (:data:`IMAGE_SUFFIXES`); hidden files and folders are skipped. Every image is read into
    memory with Pillow (``pip install 'torchnas[images]'``) as floats in ``[0, 1]``, channels
    first: ``(1, H, W)`` with ``grayscale``, else ``(3, H, W)`` (RGB).

    Args:
        root: The folder of class sub-folders (``~`` is expanded).
        size: ``(height, width)`` (or one int for a square) every image is resized to
            (bilinear); default: keep the size, which must then be the same for all.
        grayscale: One channel instead of three.
        test: A separate test folder laid out the same way (its class sub-folders a subset
            of ``root``'s); then nothing is held out for test.
        val_fraction: Share of each class held out for validation, of what test leaves.
        test_fraction: Share of each class held out for test (first); default 0.2, or 0
            with ``test``.
        seed: Seed of the split; the same seed gives the same split.
        name: Name of the dataset; default: the folder's name.

    Returns:
        The validated bundle, whose splits are ``TensorDataset``s.

    Raises:
        DataError: For a missing or empty folder, a class folder without images, an
            unreadable image or one of another size (each named).
        ConfigError: For a malformed ``size``.
        ImportError: When Pillow is not installed.
    """
    image = _pillow()
    hw = _size(size)
    main = Path(root).expanduser()
    classes, files = _index(main)
    if len(classes) < 2:
        raise DataError(f"{main} has one class sub-folder ({classes[0]!r}); classification "
                        f"needs at least 2")
    inputs = _read_images(image, [f for f, _ in files], hw, grayscale)
    targets = np.array([c for _, c in files], dtype=np.int64)
    pair = None
    if test is not None:
        test_root = Path(test).expanduser()
        test_classes, test_files = _index(test_root)
        unknown = sorted(set(test_classes) - set(classes))
        if unknown:
            raise DataError(f"{test_root}: class folders {unknown} are not in {main} "
                            f"(classes: {', '.join(classes)})")
        first = [files[0][0]] if hw is None else []  # test images must match train's size
        test_x = _read_images(image, [*first, *(f for f, _ in test_files)], hw, grayscale)
        index = {c: i for i, c in enumerate(classes)}
        test_y = np.array([index[test_classes[c]] for _, c in test_files], dtype=np.int64)
        pair = (test_x[len(first):], test_y)
    return split_bundle(inputs, targets, pair, tuple(classes), val_fraction=val_fraction,
                        test_fraction=test_fraction, seed=seed,
                        name=name or main.resolve().name)


def _pillow() -> Any:
    try:
        from PIL import Image
    except ImportError as exc:
        raise ImportError(
            "tn.data.from_folder reads images with Pillow, which is not installed: "
            "pip install 'torchnas[images]' (or pip install pillow)"
        ) from exc
    return Image


def _size(size: int | Sequence[int] | None) -> tuple[int, int] | None:
    if size is None:
        return None
    hw = (size, size) if isinstance(size, int) else tuple(size)
    if len(hw) != 2 or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0
                               for s in hw):
        raise ConfigError(f"size must be (height, width) in pixels, or one int, got {size!r}")
    return hw[0], hw[1]


def _index(root: Path) -> tuple[list[str], list[tuple[Path, int]]]:
    """The class names (sorted sub-folders) and every ``(image file, class index)``."""
    if not root.exists():
        raise DataError(f"image folder not found: {root}")
    if not root.is_dir():
        raise DataError(f"{root} is not a folder (array and CSV files: tn.data.from_files)")
    folders = sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not folders:
        if any(_is_image(p) for p in root.iterdir()):
            raise DataError(f"{root} holds images but no class sub-folders: put each class's "
                            f"images in a sub-folder of its own ({root / 'cat' / '1.png'}, "
                            f"{root / 'dog' / '2.png'}, ...)")
        raise DataError(f"{root} is empty: expected one sub-folder of images per class")
    files: list[tuple[Path, int]] = []
    for c, folder in enumerate(folders):
        found = sorted(p for p in folder.rglob("*") if _is_image(p) and not any(
            part.startswith(".") for part in p.relative_to(folder).parts))
        if not found:
            raise DataError(f"class folder {folder} has no images "
                            f"({', '.join(IMAGE_SUFFIXES)})")
        files += [(p, c) for p in found]
    return [d.name for d in folders], files


def _is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES and path.is_file()


def _read_images(
    image: Any, files: Sequence[Path], hw: tuple[int, int] | None, grayscale: bool
) -> np.ndarray:
    """Float32 images in ``[0, 1]``, shape ``(N, C, H, W)``."""
    mode = "L" if grayscale else "RGB"
    out: np.ndarray | None = None
    for i, path in enumerate(files):
        try:
            with image.open(path) as img:
                img = img.convert(mode)
                if hw is not None and img.size != (hw[1], hw[0]):
                    img = img.resize((hw[1], hw[0]), image.Resampling.BILINEAR)
                pixels = np.asarray(img, dtype=np.uint8)
        except (OSError, ValueError, SyntaxError, image.DecompressionBombError) as exc:
            raise DataError(f"cannot read image {path}: {exc}") from None
        pixels = pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)
        if out is None:
            out = np.empty((len(files), *pixels.shape), dtype=np.float32)
        elif pixels.shape != out.shape[1:]:
            h, w = pixels.shape[1:]
            raise DataError(f"image {path} is {h}x{w} (height x width) but {files[0]} is "
                            f"{out.shape[2]}x{out.shape[3]}: every image must have the same "
                            f"size; pass size=(height, width) to resize them all")
        out[i] = pixels / np.float32(255)
    assert out is not None
    return out
