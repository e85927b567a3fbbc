"""What the Lightning and Hugging Face bridges share: how long to train, the batch size, which
metrics the search needs, and the error when a module logs none of them."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from torchnas._util.errors import ConfigError, TrainFnError
from torchnas.space import HP, TrialHandle

__all__ = ["DEFAULT_BATCH_SIZE", "DEFAULT_EPOCHS", "batch_size_of", "check_logged", "epochs_of",
           "objective_names", "scalars"]

#: Epochs when neither the call, the trial's budget nor ``hp`` says.
DEFAULT_EPOCHS = 10
#: Samples per batch when neither the call nor ``hp`` says.
DEFAULT_BATCH_SIZE = 64


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{name} must be an integer >= 1, got {value!r}")
    return value


def epochs_of(max_epochs: int | None, hp: HP | None, trial: TrialHandle | None) -> int:
    """Epochs to train: ``max_epochs``, else the space's ``hp["epochs"]``, else
    :data:`DEFAULT_EPOCHS`; never more than the trial's budget (a scheduler's rung)."""
    if max_epochs is not None:
        epochs = _positive_int("max_epochs", max_epochs)
    elif hp is not None and hp.get("epochs") is not None:
        epochs = _positive_int("hp['epochs']", hp.get("epochs"))
    else:
        epochs = DEFAULT_EPOCHS
    budget = None if trial is None else trial.budget
    if budget is not None:
        epochs = min(epochs, max(1, math.floor(budget + 1e-9)))
    return epochs


def batch_size_of(batch_size: int | None, hp: HP | None) -> int:
    """Samples per batch: ``batch_size``, else the space's ``hp["batch_size"]``, else
    :data:`DEFAULT_BATCH_SIZE`."""
    if batch_size is not None:
        return _positive_int("batch_size", batch_size)
    if hp is not None and hp.get("batch_size") is not None:
        return _positive_int("hp['batch_size']", hp.get("batch_size"))
    return DEFAULT_BATCH_SIZE


def objective_names(objectives: Iterable[str] | None, trial: TrialHandle | None
                    ) -> tuple[str, ...]:
    """The metrics the search ranks on: ``objectives`` when given, else the trial's own
    ``objectives`` when it has them (a wrapper a search hands its training function may), else
    those of the trial's study when the trial is a :class:`torchnas.Trial` in this process (the
    inline executor), else none (nothing is checked)."""
    if objectives is None:
        objectives = getattr(trial, "objectives", None)
    if objectives is None:
        objectives = getattr(getattr(trial, "study", None), "objectives", None)
    if isinstance(objectives, str):
        return (objectives,)
    return tuple(objectives or ())


def scalars(metrics: Mapping[str, Any]) -> dict[str, float]:
    """The one-number entries of ``metrics`` (tensors and numbers) as floats."""
    out = {}
    for name, value in metrics.items():
        numel = getattr(value, "numel", None)
        if numel is not None and numel() != 1:
            continue
        try:
            out[str(name)] = float(value)
        except (TypeError, ValueError):
            continue
    return out


def check_logged(needed: Sequence[str], logged: Iterable[str], who: str, how: str) -> None:
    """Raises :class:`TrainFnError` (a :class:`ConfigError` that stops the search at its first
    trial) when none of the ``needed`` metrics is among the ``logged`` ones.

    Args:
        needed: the search's objectives (nothing to check when empty).
        logged: the metric names the model logged.
        who: the culprit, e.g. ``"the LightningModule Net"``.
        how: how to log a metric ``{name}``, e.g. ``"self.log('{name}', ...) in validation_step"``.
    """
    names = sorted(logged)
    if not needed or any(n in names for n in needed):
        return
    got = f"logged {', '.join(names)}" if names else "logged no metric"
    want = " or ".join(needed)
    raise TrainFnError(f"{who} {got}; the search's objectives need {want}: "
                       f"{how.replace('{name}', needed[0])}")
