"""Tasks: what a model learns from its data. A task names the training loss, the metrics a fit
reports, the default objective of a search, the data it accepts and the output it needs.

``Trainer(task=...)`` takes a name of :data:`TASKS` (``"classification"``, the default,
``"regression"``, ``"sequence"``, ``"language_model"``), ``{"name": ..., **settings}`` or a
:class:`Task`. Each task is small: :meth:`Task.loss_of` (the mean training loss of a batch),
:meth:`Task.tally` (what evaluation sums over batches), :meth:`Task.check_data` (the data
checks that apply) and :meth:`Task.fits` (the model output it needs).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch.utils.data import TensorDataset

from torchnas._util.errors import DataError
from torchnas._util.registry import Configurable, Registry
from torchnas.data import Data

__all__ = [
    "TASKS", "ClassificationTask", "LanguageModelTask", "RegressionTask", "SequenceTask", "Tally",
    "Task", "available",
]


class Tally:
    """Sums of one evaluation pass, kept on the device (one sync at the end): ``add`` each
    batch's outputs, inputs and targets, then read ``result()``."""

    def add(self, out: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> None:
        raise NotImplementedError

    def result(self) -> dict[str, float]:
        raise NotImplementedError


class Task(Configurable):
    """What a model learns: its loss, metrics, default objective and the data it accepts.

    A subclass sets the class attributes, implements :meth:`loss_of`, :meth:`tally`,
    :meth:`fits` and :meth:`expected_output`, and extends :meth:`check_data`; it is
    registered with ``@TASKS.register("name")``.

    Args:
        loss: one of :attr:`LOSSES` (``None``: the first).
    """

    name: ClassVar[str] = ""
    #: The losses this task trains with; the first is the default.
    LOSSES: ClassVar[tuple[str, ...]] = ("cross_entropy",)
    #: What :meth:`tally` reports (a fit prefixes them with ``val_``, a test with ``test_``).
    METRICS: ClassVar[tuple[str, ...]] = ("accuracy", "loss")
    #: The default objective of a search: ``(metric, "max" | "min")``.
    OBJECTIVE: ClassVar[tuple[str, str]] = ("val_accuracy", "max")
    #: Whether targets are class indices (label smoothing applies).
    CLASSES: ClassVar[bool] = True

    def __init__(self, *, loss: str | None = None) -> None:
        self.loss = loss

    @property
    def loss_name(self) -> str:
        """The loss trained with (``loss`` resolved)."""
        return self.LOSSES[0] if self.loss is None else self.loss

    def check(self) -> None:
        if self.loss is not None and self.loss not in self.LOSSES:
            raise ValueError(f"task {self.name!r}: loss must be one of "
                             f"{', '.join(map(repr, self.LOSSES))}, got {self.loss!r}")

    def check_data(self, data: Data) -> None:
        """Raises :class:`DataError` when ``data`` does not fit the task (naming what to use
        instead); the structure of the bundle is :func:`torchnas.data.validate`'s."""

    def loss_of(self, out: torch.Tensor, x: torch.Tensor, y: torch.Tensor, *,
                label_smoothing: float = 0.0) -> torch.Tensor:
        """The mean training loss of a batch (outputs ``out`` of inputs ``x``, targets ``y``)."""
        raise NotImplementedError

    def tally(self) -> Tally:
        """A fresh :class:`Tally` of :attr:`METRICS`."""
        raise NotImplementedError

    def fits(self, out: torch.Tensor, x: torch.Tensor, data: Data) -> bool:
        """Whether a model's output ``out`` on the batch ``x`` is what the task needs."""
        raise NotImplementedError

    def expected_output(self, data: Data) -> str:
        """The output the task needs, for messages: ``"(batch, 10) logits"``."""
        raise NotImplementedError

    def score(self, metrics: Mapping[str, float]) -> float:
        """One number from :meth:`tally`'s metrics, higher is better and about ``[0, 1]``
        (what one-shot methods rank paths by)."""
        return float(metrics["accuracy"])

    @property
    def metric_names(self) -> tuple[str, ...]:
        """The validation metrics of a fit: ``val_<metric>`` for each of :attr:`METRICS`."""
        return tuple(f"val_{m}" for m in self.METRICS)


TASKS: Registry[Task] = Registry("task", Task)
"""The tasks by name (``Trainer(task=name)``)."""


def available() -> list[str]:
    """The names of the tasks, sorted."""
    return TASKS.available()


# -- classification --------------------------------------------------------------------------------
class _ClassTally(Tally):
    """Cross-entropy and accuracy over every position, but those whose target is ``ignore`` or,
    for targets per token, whose input is ``pad_of_inputs``."""

    def __init__(self, ignore: int | None = None, pad_of_inputs: int | None = None) -> None:
        self.ignore, self.pad = ignore, pad_of_inputs
        self.loss: torch.Tensor | float = 0.0
        self.correct: torch.Tensor | int = 0
        self.count: torch.Tensor | int = 0

    def add(self, out: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> None:
        logits, labels = out.reshape(-1, out.shape[-1]), y.reshape(-1).long()
        keep = None
        if self.pad is not None and y.dim() > 1:
            keep = (x != self.pad).reshape(-1)
        elif self.ignore is not None:
            keep = labels != self.ignore
        if keep is not None:
            logits, labels = logits[keep], labels[keep]
        self.loss = self.loss + F.cross_entropy(logits, labels, reduction="sum").double()
        self.correct = self.correct + (logits.argmax(1) == labels).sum()
        self.count = self.count + (len(labels) if keep is None else keep.sum())

    def result(self) -> dict[str, float]:
        n = max(int(self.count), 1)
        return {"accuracy": int(self.correct) / n, "loss": float(self.loss) / n}


@TASKS.register("classification")
class ClassificationTask(Task):
    """One class per sample: outputs ``(batch, num_classes)`` logits, cross-entropy (with the
    Trainer's ``label_smoothing``), ``val_accuracy`` and ``val_loss``; default objective
    ``val_accuracy`` (max). Integer targets ``(N,)`` in ``[0, num_classes)``."""

    def check_data(self, data: Data) -> None:
        if data.num_classes is None:
            raise DataError(
                f"the targets of {data.name!r} are floats: task 'classification' needs integer "
                f"class indices. For float targets use task 'regression' "
                f"(Trainer(task='regression'); in YAML, trainer: {{task: regression}}); for "
                f"class indices stored as floats, y.long()")
        if data.target_shape:
            raise DataError(
                f"the labels of {data.name!r} have shape {data.target_shape} per sample: task "
                f"'classification' needs one class index per sample (one-hot labels? use "
                f"y.argmax(1)); labels per token are task='sequence'")

    def loss_of(self, out: torch.Tensor, x: torch.Tensor, y: torch.Tensor, *,
                label_smoothing: float = 0.0) -> torch.Tensor:
        return F.cross_entropy(out, y.long(), label_smoothing=label_smoothing)

    def tally(self) -> Tally:
        return _ClassTally()

    def fits(self, out: torch.Tensor, x: torch.Tensor, data: Data) -> bool:
        return out.ndim == 2 and out.shape[1] == data.num_classes

    def expected_output(self, data: Data) -> str:
        return f"(batch, {data.num_classes}) logits"


# -- regression ------------------------------------------------------------------------------------
class _RegressionTally(Tally):
    def __init__(self, task: RegressionTask) -> None:
        self.task = task
        self.n = 0
        self.loss: torch.Tensor | float = 0.0
        self.sse: torch.Tensor | float = 0.0  # per output
        self.sae: torch.Tensor | float = 0.0
        self.total: torch.Tensor | float = 0.0  # per output: sum of y, then of y^2
        self.squares: torch.Tensor | float = 0.0

    def add(self, out: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> None:
        pred, target = _columns(out, y)
        err = (pred - target).double()
        t = target.double()
        losses = self.task.elementwise(pred, target).double()
        self.loss = self.loss + losses.mean(1).sum()
        self.sse = self.sse + (err * err).sum(0)
        self.sae = self.sae + err.abs().sum()
        self.total = self.total + t.sum(0)
        self.squares = self.squares + (t * t).sum(0)
        self.n += len(target)

    def result(self) -> dict[str, float]:
        n = max(self.n, 1)
        sse = torch.as_tensor(self.sse, dtype=torch.float64)
        total = torch.as_tensor(self.total, dtype=torch.float64)
        sst = torch.as_tensor(self.squares, dtype=torch.float64) - total * total / n
        outputs = max(sse.numel(), 1)
        # R^2 per output, averaged (scikit-learn's "uniform_average"); a constant target: 0
        r2 = torch.where(sst > 1e-12, 1 - sse / sst.clamp_min(1e-12), torch.zeros_like(sse))
        return {"mse": float(sse.sum()) / (n * outputs), "mae": float(self.sae) / (n * outputs),
                "r2": float(r2.mean()) if r2.numel() else math.nan,
                "loss": float(self.loss) / n}


def _columns(out: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Outputs and targets as ``(batch, k)`` (scalar targets: ``k = 1``; outputs ``(batch,)``
    or ``(batch, 1)`` alike)."""
    n = len(y)
    return out.reshape(n, -1).float(), y.reshape(n, -1).float()


@TASKS.register("regression")
class RegressionTask(Task):
    """Float targets of shape ``(N,)`` or ``(N, k)``: outputs ``(batch, k)`` (``(batch, 1)`` or
    ``(batch,)`` for ``(N,)`` targets), mean squared error (``loss="l1"``: mean absolute
    error, ``"huber"``: Huber with delta 1), metrics ``val_mse``, ``val_mae``, ``val_r2``
    (R^2, averaged over the outputs) and ``val_loss``; default objective ``val_mse`` (min).
    Targets that are NaN or infinite are refused by :func:`torchnas.data.validate`."""

    LOSSES = ("mse", "l1", "huber")
    METRICS = ("mse", "mae", "r2", "loss")
    OBJECTIVE = ("val_mse", "min")
    CLASSES = False

    def check_data(self, data: Data) -> None:
        if data.num_classes is not None:
            raise DataError(
                f"the targets of {data.name!r} are integer class indices: task 'regression' "
                f"needs float targets. For classes use Trainer(task='classification'); for "
                f"integer values to regress, y.float()")

    def elementwise(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The loss of every output of every sample (``(batch, k)``)."""
        if self.loss_name == "l1":
            return F.l1_loss(pred, target, reduction="none")
        if self.loss_name == "huber":
            return F.huber_loss(pred, target, reduction="none", delta=1.0)
        return F.mse_loss(pred, target, reduction="none")

    def loss_of(self, out: torch.Tensor, x: torch.Tensor, y: torch.Tensor, *,
                label_smoothing: float = 0.0) -> torch.Tensor:
        return self.elementwise(*_columns(out, y)).mean()

    def tally(self) -> Tally:
        return _RegressionTally(self)

    def fits(self, out: torch.Tensor, x: torch.Tensor, data: Data) -> bool:
        k = data.num_outputs
        if out.ndim == 1:
            return k == 1 and len(out) == len(x)
        return out.shape[0] == len(x) and math.prod(out.shape[1:]) == k

    def expected_output(self, data: Data) -> str:
        k = data.num_outputs
        return "(batch, 1) or (batch,) outputs" if k == 1 else f"(batch, {k}) outputs"

    def score(self, metrics: Mapping[str, float]) -> float:
        return float(metrics["r2"])


# -- token sequences -------------------------------------------------------------------------------
def input_dtype(data: Data) -> torch.dtype:
    """The dtype of ``data``'s training inputs."""
    train = data.train
    if isinstance(train, TensorDataset):
        return train.tensors[0].dtype
    return torch.as_tensor(train[0][0]).dtype


def _check_tokens(task: str, data: Data) -> None:
    dtype = input_dtype(data)
    if dtype.is_floating_point or dtype.is_complex or dtype == torch.bool:
        raise DataError(
            f"task {task!r} needs integer token ids as inputs, shaped (N, T); the inputs of "
            f"{data.name!r} are {dtype}: for float features use task='classification' or "
            f"'regression'")
    if len(data.input_shape) != 1:
        raise DataError(f"task {task!r} needs inputs of token ids shaped (N, T); the inputs of "
                        f"{data.name!r} are shaped (N, *{data.input_shape})")
    if data.num_classes is None:
        raise DataError(f"task {task!r} needs integer targets; the targets of {data.name!r} "
                        f"are floats")


class _TokenTask(Task):
    """A task on integer token inputs padded with ``pad_id`` (``None``: no padding)."""

    def __init__(self, *, pad_id: int | None = 0, loss: str | None = None) -> None:
        super().__init__(loss=loss)
        self.pad_id = pad_id

    def check(self) -> None:
        super().check()
        pad_id = self.pad_id
        if pad_id is not None and (isinstance(pad_id, bool) or not isinstance(pad_id, int)
                                   or pad_id < 0):
            raise ValueError(f"task {self.name!r}: pad_id must be None or an integer >= 0, "
                             f"got {pad_id!r}")


@TASKS.register("sequence")
class SequenceTask(_TokenTask):
    """Integer token inputs ``(N, T)``, right-padded with ``pad_id``: one label per sequence,
    ``(N,)``, or one per token, ``(N, T)`` (padding positions, where the input is ``pad_id``,
    count in neither the loss nor the accuracy, whatever their label). Outputs: ``(batch,
    num_classes)`` or ``(batch, T, num_classes)`` logits; cross-entropy; ``val_accuracy``
    (per sequence or per token) and ``val_loss``; default objective ``val_accuracy`` (max).
    The model reads the padding from its input: :meth:`lengths`, ``x != pad_id``.

    Args:
        pad_id: the padding token (``None``: no padding).
        loss: ``"cross_entropy"``.
    """

    def check_data(self, data: Data) -> None:
        _check_tokens(self.name, data)
        if data.target_shape not in ((), data.input_shape):
            raise DataError(
                f"task 'sequence' needs labels per sequence, (N,), or per token, shaped like "
                f"the inputs (N, {data.input_shape[0]}); the labels of {data.name!r} are "
                f"shaped (N, *{data.target_shape})")

    def lengths(self, x: torch.Tensor) -> torch.Tensor:
        """The length of each sequence of ``x``: its tokens that are not ``pad_id``."""
        if self.pad_id is None:
            return torch.full((len(x),), x.shape[1], dtype=torch.long, device=x.device)
        return (x != self.pad_id).sum(1)

    def loss_of(self, out: torch.Tensor, x: torch.Tensor, y: torch.Tensor, *,
                label_smoothing: float = 0.0) -> torch.Tensor:
        logits, labels = out.reshape(-1, out.shape[-1]), y.reshape(-1).long()
        if y.dim() > 1 and self.pad_id is not None:
            keep = (x != self.pad_id).reshape(-1)
            logits, labels = logits[keep], labels[keep]
        return F.cross_entropy(logits, labels, label_smoothing=label_smoothing)

    def tally(self) -> Tally:
        return _ClassTally(pad_of_inputs=self.pad_id)

    def fits(self, out: torch.Tensor, x: torch.Tensor, data: Data) -> bool:
        if data.target_shape:
            return tuple(out.shape) == (*x.shape, data.num_classes)
        return out.ndim == 2 and out.shape[1] == data.num_classes

    def expected_output(self, data: Data) -> str:
        if data.target_shape:
            return f"(batch, {data.input_shape[0]}, {data.num_classes}) logits (one per token)"
        return f"(batch, {data.num_classes}) logits"


@TASKS.register("language_model")
class LanguageModelTask(_TokenTask):
    """Next-token prediction: integer token inputs ``(N, T)`` and targets ``(N, T)``, the
    token that follows each input position (``tn.data.shift_tokens(tokens)`` makes both from
    a ``(N, T + 1)`` tensor). Outputs ``(batch, T, V)`` logits over a vocabulary of ``V >=
    num_classes``; cross-entropy over the vocabulary, ignoring positions whose target is
    ``pad_id``; ``val_perplexity`` (``exp`` of the mean token loss), ``val_loss`` and
    ``val_accuracy`` (of the next token); default objective ``val_perplexity`` (min).

    Args:
        pad_id: the padding token, never a target (``None``: every position counts).
        loss: ``"cross_entropy"``.
    """

    METRICS = ("perplexity", "loss", "accuracy")
    OBJECTIVE = ("val_perplexity", "min")

    def check_data(self, data: Data) -> None:
        _check_tokens(self.name, data)
        if data.target_shape != data.input_shape:
            raise DataError(
                f"task 'language_model' needs next-token targets shaped like the inputs (N, "
                f"{data.input_shape[0]}); the targets of {data.name!r} are shaped "
                f"(N, *{data.target_shape}) (tn.data.shift_tokens(tokens) gives inputs and "
                f"targets from one (N, T + 1) tensor)")

    def loss_of(self, out: torch.Tensor, x: torch.Tensor, y: torch.Tensor, *,
                label_smoothing: float = 0.0) -> torch.Tensor:
        ignore = -100 if self.pad_id is None else self.pad_id
        return F.cross_entropy(out.reshape(-1, out.shape[-1]), y.reshape(-1).long(),
                               ignore_index=ignore, label_smoothing=label_smoothing)

    def tally(self) -> Tally:
        return _PerplexityTally(self.pad_id)

    def fits(self, out: torch.Tensor, x: torch.Tensor, data: Data) -> bool:
        assert data.num_classes is not None
        return out.ndim == 3 and out.shape[:2] == x.shape and out.shape[2] >= data.num_classes

    def expected_output(self, data: Data) -> str:
        return (f"(batch, {data.input_shape[0]}, V) logits over a vocabulary of V >= "
                f"{data.num_classes} tokens")

    def score(self, metrics: Mapping[str, float]) -> float:
        return 1.0 / float(metrics["perplexity"])  # exp(-mean token loss)


class _PerplexityTally(_ClassTally):
    def __init__(self, pad_id: int | None) -> None:
        super().__init__(ignore=pad_id)

    def result(self) -> dict[str, float]:
        out = super().result()
        return {"perplexity": math.exp(min(out["loss"], 700.0)), **out}
