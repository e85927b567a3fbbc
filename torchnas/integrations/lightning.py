"""Lightning: a space may return a ``LightningModule``; :func:`fit` trains it with a Lightning
``Trainer`` and :class:`TorchnasCallback` reports every validation to the trial, stopping the
ones the scheduler prunes. Needs ``pip install 'torchnas[lightning]'``.

Example:
    >>> import functools
    >>> from torchnas.integrations import lightning as tnl
    >>> train_fn = functools.partial(tnl.fit, max_epochs=3)  # a ModelSearch train_fn
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

try:
    import lightning as L
    from lightning.pytorch.utilities.model_helpers import is_overridden
except ImportError as exc:  # pragma: no cover - the extra is installed wherever tests run
    raise ImportError("torchnas.integrations.lightning needs Lightning: "
                      "pip install 'torchnas[lightning]'") from exc
from torch.utils.data import DataLoader

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

__all__ = ["TorchnasCallback", "fit"]

_HOW = "self.log('{name}', ...) in validation_step"


class TorchnasCallback(L.Callback):
    """Reports the metrics a ``LightningModule`` logged (``trainer.callback_metrics``) to a
    torchnas trial after every validation, and stops training when the scheduler prunes it.

    The step reported is the epochs done: ``current_epoch + 1`` when validating once an epoch
    (a fraction for ``val_check_interval < 1``). Lightning validates before it closes the
    training epoch, so a ``train_*`` metric logged per epoch lags one epoch in these reports.
    On a prune the callback sets ``trainer.should_stop``; call :meth:`raise_if_pruned` once
    ``trainer.fit`` has returned (an exception raised in a hook would end ``fit`` as a
    crash, tearing the Trainer down). At the first validation (Lightning's sanity check,
    before any training) a module that logged none of ``objective_metric_names`` is an error.

    Args:
        trial: the running trial (``hp.trial``), or ``None`` (nothing is reported).
        objective_metric_names: the metrics the search ranks on; empty: nothing is checked.

    Attributes:
        reports: how many reports were made.
        pruned: the :class:`~torchnas.TrialPruned` that stopped training, or ``None``.
    """

    def __init__(self, trial: TrialHandle | None, objective_metric_names: Iterable[str] = ()
                 ) -> None:
        super().__init__()
        self.trial = trial
        self.objective_metric_names = tuple(objective_metric_names)
        self.reports = 0
        self.pruned: TrialPruned | None = None
        self._checked = False

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # on_validation_end, not on_validation_epoch_end: callbacks run that hook before the
        # module's own, so what the module logs in on_validation_epoch_end would be missed
        metrics = scalars(trainer.callback_metrics)
        if not self._checked:
            self._checked = True
            self.check(metrics, pl_module)
        if trainer.sanity_checking or self.trial is None or self.pruned is not None:
            return
        self.reports += 1
        try:
            self.trial.report(_step(trainer), metrics)
        except TrialPruned as exc:
            self.pruned = exc
            trainer.should_stop = True

    def check(self, metrics: Mapping[str, float], pl_module: L.LightningModule) -> None:
        """Raises :class:`TrainFnError` (a ``ConfigError``) when ``metrics`` has none
        of the objectives (a ``train_*`` objective is judged only once ``fit`` returns)."""
        check_logged(_early(self.objective_metric_names), metrics,
                     f"the LightningModule {type(pl_module).__name__}", _HOW)

    def raise_if_pruned(self) -> None:
        """Raises the :class:`~torchnas.TrialPruned` that stopped training, if any."""
        if self.pruned is not None:
            raise self.pruned


def _early(names: Sequence[str]) -> Sequence[str]:
    """The objectives to find at the first validation: none when one is a training metric
    (Lightning holds those only once the first epoch is over)."""
    return () if any(n.startswith("train") for n in names) else names


def _step(trainer: L.Trainer) -> float:
    """Epochs done at this validation (a fraction in the middle of one)."""
    batches = trainer.num_training_batches
    done = trainer.fit_loop.epoch_loop.batch_progress.current.completed
    if not math.isfinite(batches) or batches <= 0 or done >= batches:
        return trainer.current_epoch + 1
    return round(trainer.current_epoch + done / batches, 6)


def fit(model: L.LightningModule, data: Data, hp: HP | None, trial: TrialHandle | None, *,
        max_epochs: int | None = None, batch_size: int | None = None,
        objectives: Sequence[str] | None = None, num_workers: int = 0,
        **trainer_kwargs: Any) -> dict[str, float]:
    """Trains a ``LightningModule`` on ``data`` with a Lightning ``Trainer`` that reports every
    validation to ``trial``: a ``train_fn`` of :class:`~torchnas.ModelSearch`.

    Batches are ``(inputs, labels)`` from ``data.train`` (shuffled) and ``data.val``; the
    module logs what it wants (``self.log("val_accuracy", acc)`` in ``validation_step``).
    A module-level function: ``functools.partial(fit, max_epochs=3)`` pickles to workers.

    Args:
        model: the module the space built.
        data: the splits (``data.val`` is what ``validation_step`` sees).
        hp: the trial's recorder: ``hp["batch_size"]`` and ``hp["epochs"]``, when the space
            decided them, are used when the call does not say.
        trial: the running trial (reports, pruning), or ``None`` (a retrain: no reports).
        max_epochs: epochs (default ``hp["epochs"]``, else 10), capped by ``trial.budget``.
        batch_size: samples per batch (default ``hp["batch_size"]``, else 64).
        objectives: the metrics the search ranks on, checked at the first validation
            (default: the trial's study's objectives when the trial runs in this process; pass
            them for worker processes).
        num_workers: DataLoader workers.
        trainer_kwargs: more ``lightning.Trainer`` arguments; they override the defaults
            (``accelerator="cpu"``, no logger, no checkpoints, no progress bar); ``callbacks``
            are added after :class:`TorchnasCallback`.

    Returns:
        Every one-number metric Lightning holds when training ends
        (``trainer.callback_metrics``): the last validation's, named as the module logged
        them, and the training ones it logged (``train_loss``).

    Raises:
        TrialPruned: when the scheduler stopped the trial (after training has stopped).
        TrainFnError: (a ``ConfigError``; it stops the search) when the module has no
            ``validation_step`` or logs none of ``objectives``.
    """
    if not isinstance(model, L.LightningModule):
        raise TypeError(f"model must be a lightning.LightningModule, got "
                        f"{type(model).__name__}")
    needed = objective_names(objectives, trial)
    who = f"the LightningModule {type(model).__name__}"
    if not is_overridden("validation_step", model):
        check_logged(_early(needed), (), f"{who} has no validation_step and", _HOW)
    size = batch_size_of(batch_size, hp)
    train = DataLoader(data.train, batch_size=size, shuffle=True, num_workers=num_workers)
    val = DataLoader(data.val, batch_size=size, num_workers=num_workers)
    callback = TorchnasCallback(trial, needed)
    settings: dict[str, Any] = {
        "accelerator": "cpu", "max_epochs": epochs_of(max_epochs, hp, trial),
        "enable_progress_bar": False, "enable_model_summary": False, "logger": False,
        "enable_checkpointing": False, **trainer_kwargs,
    }
    settings["callbacks"] = [callback, *(trainer_kwargs.get("callbacks") or ())]
    trainer = L.Trainer(**settings)
    trainer.fit(model, train, val)
    callback.raise_if_pruned()
    metrics = scalars(trainer.callback_metrics)
    check_logged(needed, metrics, who, _HOW)
    return metrics
