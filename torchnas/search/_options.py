"""The small settings objects of a search: :class:`CostSettings` (how model metrics are
measured), :class:`WarmStart` (the proxy warm start) and :class:`Fidelity` (the cheaper trials
of a low-fidelity search).

Each is a frozen dataclass checked when made, whose errors name the section and the key
(``cost: batch_size must be an integer >= 1, got 0``). :class:`~torchnas.ModelSearch` also takes
them as mappings, the form a YAML config writes (``cost: {repeats: 10}``), converted by
:meth:`~_Options.parse`, which names an unknown key and the closest valid one.

Example:
    >>> from torchnas.search import Fidelity
    >>> Fidelity.parse({"width": 0.5, "epochs": 2})
    Fidelity(width=0.5, epochs=2, data=1.0)
    >>> Fidelity(width=0)
    Traceback (most recent call last):
    ...
    torchnas._util.errors.ConfigError: fidelity: width must be in (0, 1], got 0
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

import torch

from torchnas._util.errors import ConfigError, did_you_mean
from torchnas.evaluation import PROXIES

__all__ = ["CostSettings", "Fidelity", "WarmStart"]

OptionsT = TypeVar("OptionsT", bound="_Options")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@dataclass(frozen=True)
class _Options:
    """What the settings objects share: their section's name, conversion from a mapping, and
    the count check."""

    #: The keyword of :class:`~torchnas.ModelSearch` (and YAML key) they are given as.
    KEY: ClassVar[str] = ""

    @classmethod
    def _convert(cls: type[OptionsT], given: OptionsT | Mapping[str, Any] | None
                 ) -> OptionsT | None:
        if given is None or isinstance(given, cls):
            return given
        if not isinstance(given, Mapping):
            raise ConfigError(f"{cls.KEY} must be a mapping of settings, got {given!r}")
        names = [f.name for f in dataclasses.fields(cls)]
        for key in given:
            if key not in names:
                hint = did_you_mean(key, names, n=1)
                raise ConfigError(f"{cls.KEY}: unknown key {key!r}{hint} "
                                  f"(valid: {', '.join(names)})")
        return cls(**given)

    def _check_count(self, *names: str, low: int = 1) -> None:
        for name in names:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ConfigError(f"{self.KEY}: {name} must be an integer >= {low}, "
                                  f"got {value!r}")

    def to_dict(self) -> dict[str, Any]:
        """The settings as a mapping (the form :meth:`parse` and YAML take)."""
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class CostSettings(_Options):
    """How a search measures the model metrics of built models (``cost``).

    Args:
        device: where ``latency_ms`` and ``peak_memory`` are measured; the zero-cost proxies
            run there too.
        batch_size: the batch of ``latency_ms`` and ``peak_memory``.
        warmup: untimed runs before ``latency_ms`` is measured.
        repeats: timed runs (``latency_ms`` is their median).
        threads: CPU threads of ``latency_ms`` (``None``: torch's setting).
        backward: ``peak_memory`` of a training step instead of a forward pass.
        proxy_batch_size: training samples, drawn once from the seed, that proxies score on.

    Raises:
        ConfigError: for a count below 1 or a device that is not a torch device.
    """

    KEY: ClassVar[str] = "cost"
    device: str = "cpu"
    batch_size: int = 1
    warmup: int = 5
    repeats: int = 30
    threads: int | None = None
    backward: bool = False
    proxy_batch_size: int = 64

    def __post_init__(self) -> None:
        self._check_count("batch_size", "repeats", "proxy_batch_size")
        self._check_count("warmup", low=0)
        if self.threads is not None:
            self._check_count("threads")
        if not isinstance(self.backward, bool):
            raise ConfigError(f"cost: backward must be true or false, got {self.backward!r}")
        try:
            torch.device(self.device)
        except (RuntimeError, TypeError):
            raise ConfigError(f"cost: device {self.device!r} is not a torch device") from None

    @classmethod
    def parse(cls, given: CostSettings | Mapping[str, Any] | None) -> CostSettings:
        """``given`` as settings (``None``: the defaults)."""
        return cls._convert(given) or cls()


@dataclass(frozen=True)
class WarmStart(_Options):
    """The proxy warm start of a new study (``warm_start``): before its first trial,
    ``samples`` random architectures are scored with ``proxy`` and the ``top`` ones (among those
    meeting the model-only constraints) are queued to be trained first.

    ``naswot``, the default, ranked ``chain_cnn`` on MNIST-1D best of the five proxies
    (Spearman 0.87 against trained accuracy; ``benchmarks/proxies.py``).

    Raises:
        ConfigError: for an unknown proxy or a count below 1.
    """

    KEY: ClassVar[str] = "warm_start"
    proxy: str = "naswot"
    samples: int = 200
    top: int = 10

    def __post_init__(self) -> None:
        self._check_count("samples", "top")
        if self.proxy not in PROXIES:
            raise ConfigError(f"warm_start: proxy must be one of {', '.join(PROXIES)}, "
                              f"got {self.proxy!r}")

    @classmethod
    def parse(cls, given: WarmStart | Mapping[str, Any] | None) -> WarmStart | None:
        """``given`` as settings (``None``: no warm start; ``{}``: the defaults)."""
        return cls._convert(given)


@dataclass(frozen=True)
class Fidelity(_Options):
    """A low-fidelity search (``fidelity``; the proxy task of DARTS and ProxylessNAS): trials
    train a cheaper version of each candidate; the retraining of the chosen one is at full
    fidelity. Per-trial budgets from a scheduler (epochs or data) work on top of it.

    Args:
        width: in (0, 1]: channel and unit counts scaled by it, in spaces that pass them
            through :meth:`HP.scale <torchnas.space.HP.scale>` (every built-in space does).
        epochs: the trials' epochs instead of the trainer's (``None``: the trainer's).
        data: in (0, 1]: the share of the training split the trials train on, the same
            seeded subset for every trial (validation uses the whole val split).

    Raises:
        ConfigError: for a width or data share outside (0, 1], or epochs that are not an
            integer >= 1.
    """

    KEY: ClassVar[str] = "fidelity"
    width: float = 1.0
    epochs: int | None = None
    data: float = 1.0

    def __post_init__(self) -> None:
        for key in ("width", "data"):
            value = getattr(self, key)
            if not (_is_number(value) and 0 < value <= 1):
                raise ConfigError(f"fidelity: {key} must be in (0, 1], got {value!r}")
            object.__setattr__(self, key, float(value))
        epochs = self.epochs
        if epochs is not None:
            if not (_is_number(epochs) and float(epochs).is_integer() and epochs >= 1):
                raise ConfigError(f"fidelity: epochs must be an integer >= 1, got {epochs!r}")
            object.__setattr__(self, "epochs", int(epochs))

    @classmethod
    def parse(cls, given: Fidelity | Mapping[str, Any] | None) -> Fidelity:
        """``given`` as settings (``None``: full fidelity)."""
        return cls._convert(given) or cls()
