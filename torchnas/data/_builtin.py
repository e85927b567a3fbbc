"""Built-in offline datasets, their registry, and the cache they share."""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import random
import tempfile
import types
import warnings
import zipfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from torchnas._util.errors import ConfigError
from torchnas._util.registry import Registry
from torchnas.data._bundle import Data, from_tensors
from torchnas.data._mnist import SOURCES as MNIST_SOURCES
from torchnas.data._mnist import mnist_arrays
from torchnas.data._sequences import SEQUENCE_LOADERS
from torchnas.data._text import TEXT_LOADERS

__all__ = ["available", "cache_dir", "load", "register", "stratified_split"]

#: A loader takes ``val_fraction=``, ``seed=`` and its own keywords and returns :class:`Data`.
Loader = Callable[..., Data]

LOADERS: Registry[Data] = Registry("dataset")

#: mnist1d's default generation arguments (``mnist1d.data.get_dataset_args``), kept here so a
#: cached dataset loads without importing mnist1d (which pulls in scipy and matplotlib).
MNIST1D_ARGS: dict[str, Any] = {
    "num_samples": 5000, "train_split": 0.8, "template_len": 12, "padding": [36, 60],
    "scale_coeff": 0.4, "max_translation": 48, "corr_noise_scale": 0.25,
    "iid_noise_scale": 0.02, "shear_scale": 0.75, "shuffle_seq": False,
    "final_seq_length": 40, "seed": 42,
}


#: How to bring one's own data, for the message of an unknown dataset name.
OWN_DATA = (
    "Your own data: tn.data.from_files(PATH, ...) (.npy/.npz arrays, CSV with a label column), "
    "tn.data.from_folder(ROOT, ...) (one image sub-folder per class), tn.data.from_tensors / "
    "from_datasets; in YAML, data: {files: PATH, label: COLUMN}, data: {folder: ROOT, size: "
    "[28, 28]}, or data: module:function (a function returning a tn.data.Data)"
)


def register(name: str) -> Callable[[Loader], Loader]:
    """Register a dataset loader under ``name`` (a decorator).

    Example:
        >>> @register("toy")
        ... def _toy(*, val_fraction: float, seed: int) -> Data: ...
        >>> "toy" in available()
        True
        >>> LOADERS.remove("toy")
    """
    return LOADERS.register(name)


def available() -> list[str]:
    """Return the names :func:`load` accepts, sorted."""
    return LOADERS.available()


def load(name: str, *, val_fraction: float = 0.2, seed: int = 0, **kwargs: Any) -> Data:
    """Load a registered dataset, split into train/val(/test).

    Args:
        name: One of :func:`available`: ``"mnist1d"`` (4000 train+val and 1000 test signals
            of shape ``(1, 40)``, 10 classes; keywords override mnist1d's generation
            arguments, ``data_seed`` its seed, ``cache=False`` skips the cache) or
            ``"digits"`` (scikit-learn's 1797 8x8 digits scaled to [0, 1], shape
            ``(1, 8, 8)``; ``test_fraction`` defaults to 0.2), ``"diabetes"`` (scikit-learn's
            442-patient regression, 10 standardized features, one float target
            standardized with the training split's mean and deviation unless
            ``standardize_target=False``; ``test_fraction`` 0.2; for
            ``Trainer(task="regression")``), or ``"mnist"``,
            ``"fashion_mnist"``, ``"kmnist"`` (60,000 train+val and 10,000 test 28x28 images
            in [0, 1], shape ``(1, 28, 28)``, 10 classes; downloaded once, MD5-checked, into
            ``cache_dir() / name``, or ``root / name`` with ``root=``; ``mirrors=`` replaces
            the download URLs, ``md5=`` the checksums by file name).
            Generated sequence tasks (offline; ``samples``, ``test_samples``, ``data_seed`` and
            their sizes as keywords, see :mod:`torchnas.data._sequences`): ``"adding"``
            (float ``(2, length)``, a regression), ``"parity"`` and ``"recall"`` (token ids
            ``(T,)``, one label per sequence) and ``"copy"`` (token ids, labels per token):
            task ``sequence``, padding id 0.
        val_fraction: Fraction of the training part held out for validation (stratified).
        seed: Seed of the split; the same seed gives the same split.
        **kwargs: Options of the loader.

    Returns:
        The validated :class:`Data`.

    Raises:
        ConfigError: For an unknown name (the message says how to load one's own data),
            option or a fraction outside (0, 1).
    """
    try:
        loader = LOADERS.get(name)
    except ConfigError as exc:
        raise ConfigError(f"{exc}. {OWN_DATA}") from None
    _check_fraction("val_fraction", val_fraction)
    params = inspect.signature(loader).parameters
    if all(p.kind is not p.VAR_KEYWORD for p in params.values()):
        options = sorted(set(params) - {"val_fraction", "seed"})
        for key in kwargs:
            if key not in options:
                raise ConfigError(f"unknown option {key!r} of dataset {name!r}; valid options: "
                                  f"{', '.join(options) or 'none'}")
    return loader(val_fraction=val_fraction, seed=seed, **kwargs)


def cache_dir() -> Path:
    """Return the cache folder: ``$TORCHNAS_HOME``, else ``~/.cache/torchnas``."""
    return Path(os.environ.get("TORCHNAS_HOME") or "~/.cache/torchnas").expanduser()


def stratified_split(y: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split indices so that ``fraction`` of every class is held out.

    Args:
        y: Integer labels.
        fraction: Share of each class held out (rounded per class).
        seed: Seed of the shuffle.

    Returns:
        ``(kept, held_out)`` sorted index arrays.

    Example:
        >>> kept, held = stratified_split(np.array([0, 0, 0, 0, 1, 1, 1, 1]), 0.25, seed=0)
        >>> len(kept), len(held)
        (6, 2)
    """
    rng = np.random.default_rng(seed)
    held = [
        rng.permutation(idx)[: round(fraction * idx.size)]
        for idx in (np.flatnonzero(y == c) for c in np.unique(y))
    ]
    held_out = np.sort(np.concatenate(held)) if held else np.zeros(0, np.int64)
    kept = np.setdiff1d(np.arange(len(y)), held_out, assume_unique=True)
    return kept, held_out


@register("mnist1d")
def _load_mnist1d(
    *, val_fraction: float, seed: int, data_seed: int = 42, cache: bool = True, **args: Any
) -> Data:
    unknown = sorted(set(args) - set(MNIST1D_ARGS))
    if unknown:
        valid = ", ".join(sorted({*MNIST1D_ARGS} - {"seed"} | {"data_seed", "cache"}))
        raise ConfigError(f"unknown mnist1d option {unknown[0]!r}; valid options: {valid}")
    arrays = _mnist1d_arrays({**MNIST1D_ARGS, **args, "seed": data_seed}, cache)
    x = arrays["x"][:, None, :]
    y = arrays["y"]
    kept, held = stratified_split(y, val_fraction, seed)
    test = (arrays["x_test"][:, None, :], arrays["y_test"])
    return from_tensors((x[kept], y[kept]), (x[held], y[held]), test,
                        num_classes=10, name="mnist1d")


def _mnist1d_arrays(args: dict[str, Any], use_cache: bool) -> dict[str, np.ndarray]:
    """Generated mnist1d arrays, read from (or written to) the cache when ``use_cache``."""
    key = hashlib.sha256(json.dumps(args, sort_keys=True).encode()).hexdigest()[:16]
    path = cache_dir() / "mnist1d" / f"mnist1d-{key}.npz"
    names = ("x", "y", "x_test", "y_test")
    if use_cache and path.is_file():
        try:
            with np.load(path) as f:
                return {k: f[k] for k in names}
        except (OSError, ValueError, KeyError, zipfile.BadZipFile):
            pass  # a damaged cache file: generate again and overwrite it
    try:
        from mnist1d.data import make_dataset
    except ImportError as e:
        raise ImportError(
            "the 'mnist1d' dataset is generated by the mnist1d package, which is not "
            "installed: pip install mnist1d (or pip install 'torchnas[data]')"
        ) from e
    py_state, np_state = random.getstate(), np.random.get_state()
    try:  # make_dataset seeds the global RNGs; leave the caller's streams untouched
        raw = make_dataset(types.SimpleNamespace(**args))
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)
    arrays = {k: raw[k].astype(np.int64 if k.startswith("y") else np.float32) for k in names}
    if use_cache:
        _save_npz(path, arrays)
    return arrays


def _save_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write ``arrays`` atomically (concurrent workers may load the same dataset)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.stem, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(f, allow_pickle=False, **arrays)
            os.replace(tmp, path)
        finally:
            Path(tmp).unlink(missing_ok=True)
    except OSError as e:
        warnings.warn(f"could not cache dataset at {path}: {e}", RuntimeWarning, stacklevel=3)


@register("digits")
def _load_digits(*, val_fraction: float, seed: int, test_fraction: float = 0.2) -> Data:
    _check_fraction("test_fraction", test_fraction)
    try:
        from sklearn.datasets import load_digits
    except ImportError as e:
        raise ImportError(
            "the 'digits' dataset comes from scikit-learn, which is not installed: "
            "pip install scikit-learn (or pip install 'torchnas[data]')"
        ) from e
    bunch = load_digits()
    x = (bunch.images / 16.0).astype(np.float32)[:, None]
    y = bunch.target.astype(np.int64)
    rest, test = stratified_split(y, test_fraction, seed)
    kept, held = stratified_split(y[rest], val_fraction, seed + 1)
    train, val = rest[kept], rest[held]
    return from_tensors((x[train], y[train]), (x[val], y[val]), (x[test], y[test]),
                        num_classes=10, name="digits")


@register("diabetes")
def _load_diabetes(*, val_fraction: float, seed: int, test_fraction: float = 0.2,
                   standardize_target: bool = True) -> Data:
    """scikit-learn's diabetes regression: 442 patients, 10 features ``(10,)`` (standardized
    with the training split's mean and deviation), one float target, disease progression a
    year later (25 to 346; standardized the same way unless ``standardize_target=False``)."""
    _check_fraction("test_fraction", test_fraction)
    try:
        from sklearn.datasets import load_diabetes
    except ImportError as e:
        raise ImportError(
            "the 'diabetes' dataset comes from scikit-learn, which is not installed: "
            "pip install scikit-learn (or pip install 'torchnas[data]')"
        ) from e
    x, y = load_diabetes(return_X_y=True, scaled=False)
    order = np.random.default_rng(seed).permutation(len(y))
    n_test = round(test_fraction * len(y))
    n_val = round(val_fraction * (len(y) - n_test))
    test, val, train = order[:n_test], order[n_test:n_test + n_val], order[n_test + n_val:]
    x = (x - x[train].mean(0)) / x[train].std(0)
    if standardize_target:
        y = (y - y[train].mean()) / y[train].std()
    x, y = x.astype(np.float32), y.astype(np.float32)
    return from_tensors((x[train], y[train]), (x[val], y[val]), (x[test], y[test]),
                        name="diabetes")


def _mnist_loader(name: str) -> Loader:
    """The loader of the MNIST-family dataset ``name`` (see :mod:`torchnas.data._mnist`)."""

    def load_mnist_family(
        *,
        val_fraction: float,
        seed: int,
        root: str | os.PathLike[str] | None = None,
        mirrors: Sequence[str] | None = None,
        md5: Mapping[str, str] | None = None,
    ) -> Data:
        folder = (cache_dir() if root is None else Path(root).expanduser()) / name
        x, y, x_test, y_test = mnist_arrays(name, folder, mirrors=mirrors, md5=md5)
        kept, held = stratified_split(y, val_fraction, seed)
        return from_tensors((x[kept], y[kept]), (x[held], y[held]), (x_test, y_test),
                            num_classes=10, name=name)

    load_mnist_family.__name__ = load_mnist_family.__qualname__ = f"_load_{name}"
    return load_mnist_family


for _name in MNIST_SOURCES:
    register(_name)(_mnist_loader(_name))

for _name, _loader in SEQUENCE_LOADERS.items():  # generated sequence tasks (_sequences.py)
    register(_name)(_loader)

for _name, _loader in TEXT_LOADERS.items():  # downloaded text corpora (_text.py)
    register(_name)(_loader)


def _check_fraction(name: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1:
        raise ConfigError(f"{name} must be a number in (0, 1), got {value!r}")
