"""Hugging Face: :class:`TorchnasHFCallback` reports a ``transformers.Trainer``'s evaluations
to a torchnas trial and stops the ones the scheduler prunes; :func:`fit` runs such a Trainer
on :class:`~torchnas.data.Data` of token tensors. Needs ``pip install 'torchnas[hf]'``.

Most users put the callback in their own training function::

    def train_fn(model, data, hp, trial):
        callback = TorchnasHFCallback(trial)
        trainer = transformers.Trainer(model=model, args=..., callbacks=[callback], ...)
        trainer.train()
        callback.raise_if_pruned()
        return callback.metrics
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

try:
    import transformers
    from transformers.trainer_callback import PrinterCallback
except ImportError as exc:  # pragma: no cover - the extra is installed wherever tests run
    raise ImportError("torchnas.integrations.hf needs transformers: "
                      "pip install 'torchnas[hf]'") from exc
import numpy as np
import torch
from torch import nn

from torchnas._util.errors import TrialPruned
from torchnas.data import Data
from torchnas.integrations._common import (
    batch_size_of,
    check_logged,
    epochs_of,
    objective_names,
    scalars,
)
from torchnas.space import HP, TrialHandle

__all__ = ["TorchnasHFCallback", "fit", "token_collator", "val_metrics"]

#: Entries of a Trainer's evaluation that measure the run, not the model (left out).
_SPEED = ("runtime", "samples_per_second", "steps_per_second")


def val_metrics(metrics: Mapping[str, Any]) -> dict[str, float]:
    """A ``transformers.Trainer`` evaluation as torchnas names it: ``eval_loss`` is
    ``val_loss``, ``eval_accuracy`` ``val_accuracy``; ``epoch`` and the speed entries
    (``eval_runtime``, ...) are left out."""
    out = {}
    for name, value in scalars(metrics).items():
        if name == "epoch" or any(name.endswith(s) for s in _SPEED):
            continue
        out["val_" + name[5:] if name.startswith("eval_") else name] = value
    return out


class TorchnasHFCallback(transformers.TrainerCallback):
    """Reports every evaluation of a ``transformers.Trainer`` to a torchnas trial, at step
    ``state.epoch``, with the ``eval_`` prefix turned to ``val_`` (:func:`val_metrics`), and
    stops training when the scheduler prunes the trial.

    On a prune it sets ``control.should_training_stop``; call :meth:`raise_if_pruned` once
    ``trainer.train()`` has returned. At the first evaluation, an evaluation with none of
    ``objective_metric_names`` is an error (:class:`TrainFnError`, which stops the
    search).

    Args:
        trial: the running trial (``hp.trial``), or ``None`` (nothing is reported).
        objective_metric_names: the metrics the search ranks on; empty: nothing is checked.

    Attributes:
        metrics: the last evaluation, as reported.
        pruned: the :class:`~torchnas.TrialPruned` that stopped training, or ``None``.
    """

    def __init__(self, trial: TrialHandle | None, objective_metric_names: Iterable[str] = ()
                 ) -> None:
        self.trial = trial
        self.objective_metric_names = tuple(objective_metric_names)
        self.metrics: dict[str, float] = {}
        self.pruned: TrialPruned | None = None
        self._checked = False

    def on_evaluate(self, args: transformers.TrainingArguments,
                    state: transformers.TrainerState, control: transformers.TrainerControl,
                    **kwargs: Any) -> None:
        self.metrics = val_metrics(kwargs.get("metrics") or {})
        if not self._checked:
            self._checked = True
            model = kwargs.get("model")
            needed = self.objective_metric_names
            bare = needed[0].removeprefix("val_") if needed else ""
            check_logged(needed, self.metrics, f"the model {type(model).__name__}'s evaluation",
                         f"compute_metrics returning {{'{bare}': ...}} (reported as {{name}})")
        if self.trial is None or self.pruned is not None:
            return
        try:
            self.trial.report(state.epoch or state.global_step, self.metrics)
        except TrialPruned as exc:
            self.pruned = exc
            control.should_training_stop = True

    def raise_if_pruned(self) -> None:
        """Raises the :class:`~torchnas.TrialPruned` that stopped training, if any."""
        if self.pruned is not None:
            raise self.pruned


def token_collator(items: Sequence[Any]) -> dict[str, torch.Tensor]:
    """Batches ``(input_ids, label)`` pairs (a :class:`~torchnas.data.Data` of token tensors)
    as ``{"input_ids", "labels"}``; items that are dicts already go to
    ``transformers.default_data_collator``."""
    if items and isinstance(items[0], Mapping):
        return dict(transformers.default_data_collator(list(items)))
    inputs, labels = zip(*items, strict=True)
    return {"input_ids": torch.stack(list(inputs)), "labels": torch.stack(list(labels))}


def accuracy(prediction: transformers.EvalPrediction) -> dict[str, float]:
    """``accuracy`` of the logits' argmax (``compute_metrics`` of :func:`fit`)."""
    logits = prediction.predictions
    if isinstance(logits, tuple):
        logits = logits[0]
    labels = np.asarray(prediction.label_ids)
    return {"accuracy": float((np.asarray(logits).argmax(-1) == labels).mean())}


def fit(model: nn.Module, data: Data, hp: HP | None, trial: TrialHandle | None, *,
        args: transformers.TrainingArguments | None = None, max_epochs: int | None = None,
        batch_size: int | None = None, objectives: Sequence[str] | None = None,
        **kwargs: Any) -> dict[str, float]:
    """Trains a Hugging Face model (one that returns a loss when given ``labels``) with a
    ``transformers.Trainer`` that reports every epoch's evaluation to ``trial``: a
    ``train_fn`` of :class:`~torchnas.ModelSearch` for small models on token tensors.

    Args:
        model: the model the space built.
        data: splits of ``(input_ids, label)`` pairs (:func:`token_collator`), or of dicts.
        hp: the trial's recorder: ``hp["batch_size"]`` and ``hp["epochs"]``, when the space
            decided them, are used when the call does not say.
        trial: the running trial, or ``None`` (a retrain: no reports).
        args: the Trainer's arguments, used as given; default: on the CPU, evaluating every
            epoch, saving and reporting nothing, no progress output, in a temporary folder.
        max_epochs: epochs when ``args`` is not given (default ``hp["epochs"]``, else 10),
            capped by ``trial.budget``.
        batch_size: per-device batch size when ``args`` is not given (default
            ``hp["batch_size"]``, else 64).
        objectives: as for :func:`torchnas.integrations.lightning.fit`.
        kwargs: more ``transformers.Trainer`` arguments (``compute_metrics`` defaults to
            :func:`accuracy`, ``data_collator`` to :func:`token_collator`).

    Returns:
        The last evaluation as :func:`val_metrics` names it (``val_loss``, ``val_accuracy``)
        and ``train_loss``.

    Raises:
        TrialPruned: when the scheduler stopped the trial.
        TrainFnError: when the first evaluation has none of ``objectives``.
    """
    needed = objective_names(objectives, trial)
    callback = TorchnasHFCallback(trial, needed)
    kwargs.setdefault("compute_metrics", accuracy)
    kwargs.setdefault("data_collator", token_collator)
    kwargs["callbacks"] = [callback, *(kwargs.get("callbacks") or ())]
    with tempfile.TemporaryDirectory(prefix="torchnas-hf-") as folder:
        if args is None:
            size = batch_size_of(batch_size, hp)
            args = transformers.TrainingArguments(
                output_dir=folder, num_train_epochs=epochs_of(max_epochs, hp, trial),
                per_device_train_batch_size=size, per_device_eval_batch_size=size,
                eval_strategy="epoch", save_strategy="no", logging_strategy="epoch",
                report_to=[], use_cpu=True, disable_tqdm=True)
        trainer = transformers.Trainer(model=model, args=args, train_dataset=data.train,
                                       eval_dataset=data.val, **kwargs)
        trainer.remove_callback(PrinterCallback)  # no log dicts printed for every epoch
        result = trainer.train()
    callback.raise_if_pruned()
    return {**callback.metrics, "train_loss": float(result.training_loss)}
