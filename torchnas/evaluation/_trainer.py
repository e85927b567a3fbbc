"""Train and evaluate models: the :class:`Trainer` every NAS trial runs through."""

from __future__ import annotations

import contextlib
import math
import numbers
import time
from collections.abc import Mapping
from typing import Any, ClassVar

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from torchnas._util.errors import ConfigError, TorchnasError
from torchnas._util.registry import Configurable
from torchnas.data import Data
from torchnas.evaluation._loop import Batches, Report, RunConfig, evaluate_batches, train_epochs
from torchnas.evaluation._tasks import TASKS, Task
from torchnas.evaluation._tokens import input_embedding
from torchnas.execution._threads import trainer_threads

__all__ = ["Trainer", "evaluate"]

OPTIMIZERS = ("adam", "adamw", "sgd")
LR_SCHEDULES = ("cosine", "constant")
BUDGETS = ("epochs", "data")
#: Keys of a trial's ``params`` that override the Trainer's own values.
PARAM_OVERRIDES = ("lr", "optimizer", "batch_size", "weight_decay")


class Trainer(Configurable):
    """Trains a model on a :class:`~torchnas.data.Data` bundle; the constructor is the config.

    Keyword arguments are stored as given and checked in one place, the resolution of the
    settings that :meth:`check` runs (a search calls it before its first trial) and that
    :meth:`fit` and :meth:`evaluate` run as they start: a Trainer is also used on its own,
    handed out by no registry, and ``fit`` checks a trial's ``params`` overrides. Training is
    deterministic on CPU for a given seed. Tensor datasets are sliced directly on the device
    (no DataLoader); mixed precision is used on CUDA only (bf16 where supported, else fp16).

    The defaults, for porting a Keras or plain PyTorch script: Adam, ``lr=1e-3``, batches of
    128, 10 epochs, no weight decay, and a cosine learning-rate schedule stepped every batch
    from ``lr`` down to 0 at the last step. Keras keeps the learning rate constant by default:
    ``lr_schedule="constant"`` does the same here.

    Args:
        task: What the model learns (:mod:`torchnas.evaluation._tasks`): its loss, the
            metrics :meth:`fit` reports, the default objective of a search and the data it
            accepts. ``"classification"`` (one class index per sample: ``val_accuracy``,
            ``val_loss``), ``"regression"`` (float targets ``(N,)`` or ``(N, k)``: ``val_mse``,
            ``val_mae``, ``val_r2``, ``val_loss``), ``"sequence"`` (integer tokens ``(N, T)``
            padded with ``pad_id``, labels per sequence or per token: ``val_accuracy``,
            ``val_loss``), ``"language_model"`` (next-token targets ``(N, T)``:
            ``val_perplexity``, ``val_loss``, ``val_accuracy``); ``{"name": ..., **settings}``
            (``{"name": "sequence", "pad_id": 1}``) or a task object.
        loss: The task's training loss (``None``: its default). Regression: ``"mse"``,
            ``"l1"`` or ``"huber"``; the others: ``"cross_entropy"``.
        epochs: Number of passes over the training split.
        batch_size: Samples per optimization step.
        optimizer: ``"adam"``, ``"adamw"`` or ``"sgd"``.
        lr: Peak learning rate.
        weight_decay: Weight decay of the optimizer.
        momentum: Momentum of SGD.
        lr_schedule: ``"cosine"`` (per step, down to 0) or ``"constant"``.
        device: ``"auto"`` (CUDA when available, else CPU), or any torch device.
        amp: Mixed precision: ``True`` on CUDA only (bfloat16 where the GPU supports it, else
            float16 with a gradient scaler), ``False`` never, or ``"bfloat16"`` /
            ``"float16"`` autocast to that type on any device (CPUs with bfloat16 units
            train faster with it; ``"float16"`` adds the gradient scaler).
        seed: Seed of shuffling and of random layers (dropout); None for fresh randomness.
        grad_clip: Maximum gradient norm, or None.
        label_smoothing: Label smoothing of the training loss (tasks of class labels).
        num_workers: DataLoader workers (datasets that are not tensor datasets).
        threads: torch CPU threads while fitting (restored afterwards); ``None`` leaves torch's
            setting (small models on busy cores train fastest with 1). It is capped, with an
            info log, at the threads the trial's worker was given (``cores // workers`` in the
            process executor, ``cpus_per_trial`` on Ray) or, inline, at the cores this process
            may run on: threads without a core of their own slow all of them down.
        budget: What a trial's budget (``fit(budget=b)``, from the study's scheduler)
            measures; it is also the unit of the steps reported:

            - ``"epochs"``: the trial trains ``min(epochs, floor(b))`` epochs and reports
              after each (step ``k`` = epoch ``k``); the learning-rate schedule spans them.
            - ``"data"``: ``b`` is a percentage of the training set (``None``: 100). Epoch
              ``k`` of ``epochs`` trains on the first ``ceil(p_k * N / 100)`` of the ``N``
              training samples, in an order drawn once from the seed, with ``p_k =
              ceil(b * k / epochs)`` percent (up to ``min(b, 100)``, rounded up), and reports
              ``p_k`` as its step. The share grows linearly to the budget, each epoch's samples
              include the previous ones', and validation always uses the whole split, so a
              scheduler's rungs are percentages (e.g. ``Hyperband(min_budget=10,
              max_budget=100)``). Steps are whole percents (studies record integer steps);
              with ``b < epochs`` two epochs can report the same step.

    Example:
        >>> import torch
        >>> from torchnas.data import from_tensors
        >>> x, y = torch.randn(64, 4), torch.arange(64) % 2
        >>> data = from_tensors((x[:48], y[:48]), (x[48:], y[48:]))
        >>> metrics = Trainer(epochs=2).fit(torch.nn.Linear(4, 2), data)
        >>> sorted(metrics)
        ['epochs', 'params', 'train_loss', 'train_seconds', 'val_accuracy', 'val_loss']
    """

    #: Names of the metrics :meth:`fit` returns for classification (what objectives and
    #: constraints can use); :meth:`metric_names` gives those of the Trainer's task.
    METRICS: ClassVar[tuple[str, ...]] = (
        "val_accuracy", "val_loss", "train_loss", "params", "train_seconds", "epochs",
    )

    def __init__(
        self, *, task: str | Mapping[str, Any] | Task = "classification", loss: str | None = None,
        epochs: int = 10, batch_size: int = 128, optimizer: str = "adam",
        lr: float = 1e-3, weight_decay: float = 0.0, momentum: float = 0.9,
        lr_schedule: str = "cosine", device: str | torch.device = "auto",
        amp: bool | str = True,
        seed: int | None = 0, grad_clip: float | None = None, label_smoothing: float = 0.0,
        num_workers: int = 0, budget: str = "epochs", threads: int | None = None,
    ) -> None:
        self.task = task
        self.loss = loss
        self.epochs = epochs
        self.batch_size = batch_size
        self.optimizer = optimizer
        self.lr = lr
        self.weight_decay = weight_decay
        self.momentum = momentum
        self.lr_schedule = lr_schedule
        self.device = device
        self.amp = amp
        self.seed = seed
        self.grad_clip = grad_clip
        self.label_smoothing = label_smoothing
        self.num_workers = num_workers
        self.budget = budget
        self.threads = threads

    def check(self) -> None:
        """Check every setting now (:meth:`fit` and :meth:`evaluate` run the same checks first).

        Raises:
            ConfigError: (a ``ValueError``) naming the first bad argument and its valid
                values.
        """
        self._config(None, None)

    def get_task(self) -> Task:
        """The task (``task`` and ``loss`` resolved and checked).

        Raises:
            ConfigError: for an unknown task, setting or loss.
        """
        spec = self.task
        if isinstance(spec, Task) and self.loss is None:
            return TASKS.resolve(spec)
        if isinstance(spec, Task):
            spec = {"name": spec.name, **spec.get_params()}
        elif isinstance(spec, str):
            spec = {"name": spec}
        elif not (isinstance(spec, Mapping) and isinstance(spec.get("name"), str)):
            raise ConfigError(f"task must be one of {', '.join(map(repr, TASKS.available()))}, "
                              f"{{'name': ..., **settings}} or a Task, got {spec!r}")
        if self.loss is not None:
            spec = {**spec, "loss": self.loss}
        try:
            return TASKS.resolve(spec)
        except TorchnasError:
            raise
        except ValueError as exc:
            raise ConfigError(str(exc)) from None

    def metric_names(self) -> tuple[str, ...]:
        """The metrics :meth:`fit` returns for the task (what objectives and constraints can
        name): ``val_accuracy`` and ``val_loss`` for classification, ``val_mse``, ``val_mae``,
        ``val_r2`` and ``val_loss`` for regression, ..., then ``train_loss``, ``params``,
        ``train_seconds`` and ``epochs``."""
        return (*self.get_task().metric_names, *self.METRICS[2:])

    def default_objectives(self) -> dict[str, str]:
        """The task's objective of a search that names none: ``{"val_accuracy": "max"}``,
        ``{"val_mse": "min"}`` (regression), ``{"val_perplexity": "min"}`` (language model)."""
        name, direction = self.get_task().OBJECTIVE
        return {name: direction}

    def check_data(self, data: Data) -> None:
        """The task's checks of ``data`` (:meth:`fit` runs them first; a search, before its
        first trial): float targets given to classification, integer targets to regression,
        float inputs to a task of tokens, targets of the wrong shape.

        Raises:
            DataError: naming the data, what is wrong and the task to use instead.
        """
        self.get_task().check_data(data)

    def fit(
        self, model: nn.Module, data: Data, *, params: Mapping[str, Any] | None = None,
        report: Report | None = None, seed: int | None = None, final: bool = False,
        budget: float | None = None,
    ) -> dict[str, float]:
        """Train ``model`` on ``data.train``, validating on ``data.val`` after every epoch.

        Args:
            model: The classifier; it is moved to the device and trained in place.
            data: The dataset bundle.
            params: The trial's architecture dict; its ``lr``, ``optimizer``, ``batch_size``
                and ``weight_decay`` entries, when present, override the Trainer's.
            report: Called as ``report(step, {"val_accuracy", "val_loss", "train_loss"})``
                (the task's validation metrics and ``train_loss``)``
                after every epoch, step being the epoch (from 1) or, with ``budget="data"``,
                the percentage of the training set used; it may raise
                :class:`~torchnas._util.errors.TrialPruned`, which propagates.
            seed: Overrides the Trainer's seed.
            final: Train on ``data.train_val()`` for all epochs, with no validation or
                reporting (the retraining of the chosen architecture); ``budget`` is ignored.
            budget: The trial's budget (``None``: none), in the unit of the Trainer's
                ``budget`` setting: epochs (at least 1), or a percentage of the training
                data (at least 1; above 100 counts as 100).

        Returns:
            The task's validation metrics of the last epoch (classification:
            ``val_accuracy``, a fraction, and ``val_loss``; omitted when ``final``),
            ``train_loss``, ``params`` (trainable parameters), ``train_seconds``
            (wall time of the whole fit) and ``epochs`` (trained).

        Raises:
            ConfigError: (a ``ValueError``) for a bad argument, before any training.
            DataError: When the data does not fit the task (:meth:`check_data`), or a token
                id is outside the model's embedding (naming the split and the sample).
            FloatingPointError: When the training loss becomes NaN or inf.
        """
        cfg = self._config(params, seed, None if final else budget)
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        if not isinstance(data, Data):
            raise TypeError(f"data must be a torchnas.data.Data, got {type(data).__name__}")
        cfg.task.check_data(data)
        start = time.perf_counter()
        cuda = []
        if cfg.device.type == "cuda":
            cuda = [torch.cuda.current_device() if cfg.device.index is None else cfg.device.index]
        before = torch.get_num_threads()
        if self.threads is not None:
            torch.set_num_threads(trainer_threads(int(self.threads)))  # checked in _config
        try:
            with torch.random.fork_rng(devices=cuda):
                generator = torch.Generator()
                if cfg.seed is None:
                    generator.seed()
                else:
                    torch.manual_seed(cfg.seed)
                    generator.manual_seed(cfg.seed)
                metrics = train_epochs(model, data, cfg, generator, report, final)
        finally:
            torch.set_num_threads(before)
            if cuda:
                torch.cuda.empty_cache()
        metrics["params"] = sum(p.numel() for p in model.parameters() if p.requires_grad)
        metrics["train_seconds"] = time.perf_counter() - start
        metrics["epochs"] = cfg.epochs
        return metrics

    def evaluate(self, model: nn.Module, dataset: Dataset[Any] | DataLoader[Any], *,
                 batch_size: int = 512) -> dict[str, float]:
        """The task's metrics on the Trainer's device: ``accuracy`` and mean cross-entropy
        ``loss`` for classification; ``mse``, ``mae``, ``r2`` and ``loss`` for regression;
        ``perplexity``, ``loss`` and ``accuracy`` for a language model."""
        cfg = self._config(None, None)
        batches = Batches(dataset, batch_size, cfg.device, num_workers=cfg.num_workers,
                          embedding=input_embedding(model))
        return evaluate_batches(model.to(cfg.device), batches, cfg.autocast, cfg.task)

    def _config(self, params: Mapping[str, Any] | None, seed: int | None,
                budget: float | None = None) -> RunConfig:
        """Resolve and check every setting; errors name the argument and its valid values."""
        values = {k: (f"params[{k!r}]", params[k]) if params and k in params else (k, v)
                  for k, v in self.get_params().items()}
        if seed is not None:
            values["seed"] = ("seed", seed)
        epochs = _integer(*values["epochs"], low=1)
        batch_size = _integer(*values["batch_size"], low=1)
        optimizer = _choice(*values["optimizer"], OPTIMIZERS)
        schedule = _choice(*values["lr_schedule"], LR_SCHEDULES)
        lr = _real(*values["lr"], low=0.0, open_low=True)
        weight_decay = _real(*values["weight_decay"], low=0.0)
        momentum = _real(*values["momentum"], low=0.0, high=1.0)
        smoothing = _real(*values["label_smoothing"], low=0.0, high=1.0)
        task = self.get_task()
        if smoothing and not task.CLASSES:
            raise ConfigError(f"label_smoothing applies to class labels; task {task.name!r} "
                              f"has none (got label_smoothing={smoothing})")
        clip = values["grad_clip"][1]
        if clip is not None:
            clip = _real("grad_clip", clip, low=0.0, open_low=True)
        seed_value = values["seed"][1]
        if seed_value is not None:
            seed_value = _integer(*values["seed"], low=0)
        workers = _integer(*values["num_workers"], low=0)
        if self.threads is not None:
            _integer("threads", self.threads, low=1)
        device = _device(self.device)
        dtype = amp_dtype(self.amp, device)
        epochs, percents = _budgeted(_choice("budget", self.budget, BUDGETS), epochs, budget)
        return RunConfig(epochs, batch_size, optimizer, lr, weight_decay, momentum, schedule,
                         device, dtype, seed_value, clip, smoothing, workers, percents, task)


AMP_DTYPES = ("bfloat16", "float16")
"""The types ``Trainer(amp=...)`` names (``True``: bfloat16 or float16 on CUDA only)."""


def amp_dtype(amp: bool | str, device: torch.device) -> torch.dtype | None:
    """The autocast type of ``amp`` on ``device`` (``None``: full precision).

    Raises:
        ConfigError: (a ``ValueError``) naming ``amp`` when it is not ``True``, ``False``
            or a name in :data:`AMP_DTYPES`.
    """
    if amp is True:
        if device.type != "cuda":
            return None
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if amp is False:
        return None
    if isinstance(amp, str) and amp in AMP_DTYPES:
        return getattr(torch, amp)
    raise ConfigError(f"amp must be True, False or one of {AMP_DTYPES}, got {amp!r}")


def evaluate(model: nn.Module, dataset: Dataset[Any] | DataLoader[Any], *,
             batch_size: int = 512, device: str | torch.device | None = None,
             task: str | Mapping[str, Any] | Task = "classification") -> dict[str, float]:
    """Return the ``task``'s metrics of ``model``: for classification the ``accuracy`` (a
    fraction) and mean cross-entropy ``loss``.

    Args:
        model: The model (moved to ``device``).
        dataset: Items are ``(input, label)`` pairs; a DataLoader's dataset is used.
        batch_size: Samples per forward pass.
        device: Where to evaluate; default: where the model's parameters are.
        task: As ``Trainer(task=...)``.
    """
    if device is None:
        first = next(model.parameters(), None)
        dev = first.device if first is not None else torch.device("cpu")
    else:
        dev = _device(device)
    batches = Batches(dataset, batch_size, dev, embedding=input_embedding(model))
    return evaluate_batches(model.to(dev), batches, contextlib.nullcontext,
                            Trainer(task=task).get_task())


def _budgeted(unit: str, epochs: int, budget: float | None,
              ) -> tuple[int, tuple[int, ...] | None]:
    """Epochs to train and, for ``unit == "data"``, each epoch's percentage of the data."""
    if budget is not None:
        budget = _real("the trial's budget", budget, low=1.0, open_low=False)
    if unit == "epochs":
        return epochs if budget is None else min(epochs, math.floor(budget + 1e-9)), None
    top = 100.0 if budget is None else min(budget, 100.0)
    return epochs, tuple(min(100, math.ceil(top * k / epochs - 1e-9))
                         for k in range(1, epochs + 1))


def _device(device: str | torch.device) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ConfigError(f"device must be 'auto', 'cpu', 'cuda[:N]' or a torch.device, "
                          f"got {device!r}") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device={device!r} but CUDA is not available")
        count = torch.cuda.device_count()
        if dev.index is not None and dev.index >= count:
            raise ConfigError(f"device={device!r} but this machine has {count} CUDA "
                              f"device(s): cuda:0 to cuda:{count - 1}")
    elif dev.type not in ("cpu", "meta"):  # mps, xpu, ...: one empty tensor says if it works
        try:
            torch.empty(0, device=dev)
        except (RuntimeError, AssertionError, AttributeError) as exc:
            first = str(exc).split(". ")[0].splitlines()[0] if str(exc) else type(exc).__name__
            raise ConfigError(f"device={device!r} is not available here ({first})") from None
    return dev


def _integer(name: str, value: Any, *, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise ConfigError(f"{name} must be an integer >= {low}, got {value!r}")
    return int(value)


def _real(name: str, value: Any, *, low: float, high: float = math.inf,
          open_low: bool = False) -> float:
    is_real = isinstance(value, numbers.Real) and not isinstance(value, bool)
    number = float(value) if is_real else math.nan
    above = number > low if open_low else number >= low
    if not (math.isfinite(number) and above and number < high):
        bounds = f"{'(' if open_low else '['}{low}, {high})"
        raise ConfigError(f"{name} must be a finite number in {bounds}, got {value!r}")
    return number


def _choice(name: str, value: Any, choices: tuple[str, ...]) -> str:
    if value not in choices:
        near = [c for c in choices if isinstance(value, str) and c == value.lower()]
        hint = f" (did you mean {near[0]!r}?)" if near else ""
        raise ConfigError(f"{name} must be one of {', '.join(map(repr, choices))}, "
                          f"got {value!r}{hint}")
    return str(value)
