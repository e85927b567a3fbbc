"""The training and evaluation loops behind :class:`~torchnas.evaluation.Trainer`."""

from __future__ import annotations

import contextlib
import copy
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset, TensorDataset

from torchnas._util.errors import DataError
from torchnas.data import Data
from torchnas.evaluation._tasks import ClassificationTask, Task
from torchnas.evaluation._tokens import check_token_ids, input_embedding

__all__ = [
    "Batches", "Report", "RunConfig", "evaluate_batches", "make_optimizer", "tensor_pair",
    "train_epochs",
]

Report = Callable[[int, dict[str, float]], None]


@dataclass(frozen=True)
class RunConfig:
    """Resolved, checked settings of one fit."""

    epochs: int
    batch_size: int
    optimizer: str
    lr: float
    weight_decay: float
    momentum: float
    lr_schedule: str
    device: torch.device
    amp_dtype: torch.dtype | None
    seed: int | None
    grad_clip: float | None
    label_smoothing: float
    num_workers: int
    #: With ``Trainer(budget="data")``: the percentage of the training set each epoch trains
    #: on (and reports as its step); ``None``: all of it, and the step is the epoch.
    data_percents: tuple[int, ...] | None = None
    #: What the model learns: its loss and metrics.
    task: Task = field(default_factory=ClassificationTask)

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        """Mixed precision context of a forward pass (a no-op without amp)."""
        return autocast(self.device, self.amp_dtype)


def autocast(device: torch.device, dtype: torch.dtype | None
             ) -> contextlib.AbstractContextManager[Any]:
    """``torch.autocast`` to ``dtype`` on ``device``'s type; a no-op when ``dtype`` is None."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


class Batches:
    """``(x, y)`` batches on ``device``: tensor slicing for tensor datasets, else a DataLoader.

    With ``split`` (its name, for messages), the batches of a DataLoader (datasets that are
    not tensor datasets, which :func:`~torchnas.data.validate` checks on a sample of items
    only) are checked as they are read: labels in ``[0, num_classes)``, finite float targets
    and finite inputs; a bad batch raises :class:`~torchnas._util.errors.DataError` naming
    the split. With ``embedding`` (``(name, size)`` of the model's input embedding), integer
    inputs are checked against it: a tensor split at once, a DataLoader's batches as read.
    """

    def __init__(self, dataset: Dataset[Any] | DataLoader[Any], batch_size: int,
                 device: torch.device, *, generator: torch.Generator | None = None,
                 num_workers: int = 0, split: str | None = None,
                 num_classes: int | None = None,
                 embedding: tuple[str, int] | None = None) -> None:
        dataset = dataset.dataset if isinstance(dataset, DataLoader) else dataset
        if isinstance(dataset, (tuple, list)) or not (
                hasattr(dataset, "__getitem__") and hasattr(dataset, "__len__")):
            hint = (": wrap (x, y) as torch.utils.data.TensorDataset(x, y)"
                    if isinstance(dataset, (tuple, list)) else "")
            raise DataError(f"{split or 'dataset'}: expected a torch Dataset of (input, label) "
                            f"pairs or a DataLoader, got {type(dataset).__name__}{hint}")
        self.split, self.num_classes, self.embedding = split, num_classes, embedding
        self.dataset, self.num_workers = dataset, num_workers
        self.batch_size, self.device, self.generator = batch_size, device, generator
        tensors = tensor_pair(dataset)
        if tensors is not None:
            check_token_ids(tensors[0], embedding, split or "dataset")
        self.tensors = None if tensors is None else tuple(t.to(device) for t in tensors)
        self.indices: torch.Tensor | None = None  # a subset of the samples (see subset())
        self.loader = None if tensors is not None else DataLoader(
            dataset, batch_size=batch_size, shuffle=generator is not None, generator=generator,
            num_workers=num_workers, pin_memory=device.type == "cuda")
        self.size = len(self.tensors[1]) if self.tensors else len(dataset)
        if self.size == 0:
            raise ValueError("cannot train or evaluate on an empty dataset")

    def _check(self, x: Any, y: Any) -> None:
        """Raises :class:`DataError` for a loaded batch with labels out of range or NaN/inf
        inputs (checked on the CPU, before the batch moves to the device)."""
        where = (f"{self.split} split: a batch read from the dataset "
                 f"({type(self.dataset).__name__}, checked only on a sample of its items "
                 f"before the search)")
        k = self.num_classes
        if isinstance(y, torch.Tensor) and y.numel() and k is not None:
            low, high = int(y.min()), int(y.max())
            if low < 0 or high >= k:
                raise DataError(f"{where} holds label {low if low < 0 else high}; labels must "
                                f"be in [0, {k - 1}] (num_classes={k})")
        if isinstance(y, torch.Tensor) and y.is_floating_point():
            bad = ~torch.isfinite(y)
            if bool(bad.any()):
                nan = int(torch.isnan(y).sum())
                raise DataError(f"{where} holds {nan} NaN and {int(bad.sum()) - nan} inf "
                                f"target values")
        if isinstance(x, torch.Tensor):
            check_token_ids(x, self.embedding, str(self.split), batch=True)
        if isinstance(x, torch.Tensor) and (x.is_floating_point() or x.is_complex()):
            bad = ~torch.isfinite(x)
            if bool(bad.any()):
                nan = int(torch.isnan(x).sum())
                raise DataError(f"{where} holds {nan} NaN and {int(bad.sum()) - nan} inf "
                                f"input values")

    def subset(self, indices: torch.Tensor) -> Batches:
        """Batches over the samples ``indices`` only (shuffled among themselves when these
        batches are); tensors already on the device are shared."""
        view = copy.copy(self)
        view.size = len(indices)
        if self.tensors is not None:
            view.indices = indices.to(self.device)
        else:
            view.loader = DataLoader(
                Subset(self.dataset, indices.tolist()), batch_size=self.batch_size,
                shuffle=self.generator is not None, generator=self.generator,
                num_workers=self.num_workers, pin_memory=self.device.type == "cuda")
        return view

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        if self.loader is not None:
            for x, y in self.loader:
                if self.split is not None:
                    self._check(x, y)
                yield x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
            return
        assert self.tensors is not None
        x, y = self.tensors
        order = self.indices
        if self.generator is not None:
            shuffle = torch.randperm(self.size, generator=self.generator).to(self.device)
            order = shuffle if order is None else order[shuffle]
        for i in range(0, self.size, self.batch_size):
            if order is None:
                yield x[i : i + self.batch_size], y[i : i + self.batch_size]
            else:
                idx = order[i : i + self.batch_size]
                yield x[idx], y[idx]


def train_epochs(model: nn.Module, data: Data, cfg: RunConfig, generator: torch.Generator,
                 report: Report | None, final: bool) -> dict[str, float]:
    """Train ``model`` for ``cfg.epochs``; see :meth:`Trainer.fit` for the contract.

    With ``cfg.data_percents``, epoch ``k`` trains on the first ``ceil(p_k * N / 100)`` samples
    of one seeded permutation of the ``N`` training samples (so each epoch's samples include
    the last one's) and reports ``p_k`` as its step.

    Returns:
        The last epoch's ``train_loss`` and, unless ``final``, ``val_accuracy``/``val_loss``.
    """
    model.to(cfg.device)
    weights = [p for p in model.parameters() if p.requires_grad]
    if not weights:
        raise ValueError("model has no trainable parameters")
    task, embedding = cfg.task, input_embedding(model)
    train = Batches(data.train_val() if final else data.train, cfg.batch_size, cfg.device,
                    generator=generator, num_workers=cfg.num_workers,
                    split="train+val" if final else "train", num_classes=data.num_classes,
                    embedding=embedding)
    val = None if final else Batches(data.val, 512, cfg.device, num_workers=cfg.num_workers,
                                     split="val", num_classes=data.num_classes,
                                     embedding=embedding)
    steps: Sequence[int] = range(1, cfg.epochs + 1)
    sizes, order = [train.size] * cfg.epochs, None
    if cfg.data_percents is not None and not final:
        steps, order = cfg.data_percents, torch.randperm(train.size, generator=generator)
        sizes = [-(-p * train.size // 100) for p in steps]
    opt = make_optimizer(weights, cfg)
    total = sum(math.ceil(n / cfg.batch_size) for n in sizes)

    def factor(step: int) -> float:
        if cfg.lr_schedule == "constant":
            return 1.0
        return 0.5 * (1.0 + math.cos(math.pi * min(step, total) / total))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
    scaler = torch.amp.GradScaler(cfg.device.type, enabled=cfg.amp_dtype == torch.float16)
    metrics: dict[str, float] = {}
    batches = train
    try:
        for epoch, (step, size) in enumerate(zip(steps, sizes, strict=True), start=1):
            model.train()
            batches = train if order is None else train.subset(order[:size])
            loss_sum, seen = torch.zeros((), device=cfg.device), 0
            for x, y in batches:
                if len(y) == 1 < cfg.batch_size and batches.size > 1:
                    continue  # a trailing batch of one sample breaks BatchNorm: skip it
                with cfg.autocast():
                    loss = task.loss_of(model(x).float(), x, y,
                                        label_smoothing=cfg.label_smoothing)
                opt.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                if cfg.grad_clip is not None:
                    scaler.unscale_(opt)
                    nn.utils.clip_grad_norm_(weights, cfg.grad_clip)
                scaler.step(opt)
                scaler.update()
                sched.step()
                loss_sum += loss.detach() * len(y)
                seen += len(y)
            train_loss = float(loss_sum) / max(seen, 1)
            if not math.isfinite(train_loss):
                raise FloatingPointError(f"training loss is {train_loss} in epoch {epoch}; "
                                         f"try a lower lr or grad_clip")
            metrics = {"train_loss": train_loss}
            if val is not None:
                result = evaluate_batches(model, val, cfg.autocast, task)
                metrics = {**{f"val_{k}": v for k, v in result.items()},
                           "train_loss": train_loss}
                if report is not None:
                    report(step, dict(metrics))
        return metrics
    finally:  # drop device memory now, even when the traceback outlives this frame
        model.zero_grad(set_to_none=True)
        del opt, sched, scaler, train, val, batches


def evaluate_batches(model: nn.Module, batches: Batches,
                     autocast: Callable[[], contextlib.AbstractContextManager[Any]],
                     task: Task | None = None) -> dict[str, float]:
    """The ``task``'s metrics (classification: ``accuracy`` and mean cross-entropy ``loss``);
    the model's mode is restored."""
    was_training = model.training
    model.eval()
    tally = (task or ClassificationTask()).tally()
    try:
        with torch.no_grad():
            for x, y in batches:
                with autocast():
                    out = model(x).float()
                tally.add(out, x, y)
    finally:
        model.train(was_training)
    return tally.result()


def make_optimizer(weights: list[nn.Parameter], cfg: RunConfig) -> torch.optim.Optimizer:
    """The optimizer ``cfg`` names, over ``weights``."""
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(weights, lr=cfg.lr, momentum=cfg.momentum,
                               weight_decay=cfg.weight_decay)
    cls = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
    return cls(weights, lr=cfg.lr, weight_decay=cfg.weight_decay)


def tensor_pair(ds: Dataset[Any]) -> tuple[torch.Tensor, torch.Tensor] | None:
    """``(inputs, labels)`` of a TensorDataset (or a Subset of one), else None."""
    if isinstance(ds, TensorDataset) and len(ds.tensors) >= 2:
        return ds.tensors[0], ds.tensors[1]
    if isinstance(ds, Subset) and (inner := tensor_pair(ds.dataset)) is not None:
        idx = torch.as_tensor(list(ds.indices), dtype=torch.long)
        return inner[0][idx], inner[1][idx]
    return None
