"""Callbacks a search calls in the driver, and the experiment trackers (``tn.callbacks``).

``Study.optimize(callbacks=[...])`` and ``ModelSearch(callbacks=[...])`` take names
(:func:`available`: ``tensorboard``, ``mlflow``, ``wandb``), ``{"name": ..., **settings}``,
:class:`Callback` objects and functions ``fn(study, trial)`` (called at each trial's end); a
YAML config says ``callbacks: [tensorboard, {name: mlflow, tracking_uri: ...}]``. See
:mod:`torchnas.evaluation._callbacks` for the hooks and what happens when one raises.

Example:
    >>> import torchnas as tn
    >>> class Count(tn.callbacks.Callback):
    ...     def __init__(self):
    ...         self.reports = 0
    ...     def on_report(self, study, number, step, metrics):
    ...         self.reports += 1
    >>> def objective(hp):
    ...     x = hp.float("x", 0.0, 1.0)
    ...     for step in range(3):
    ...         hp.trial.report(step, {"loss": x / (step + 1)})
    ...     return x
    >>> count = Count()
    >>> tn.Study(objectives={"loss": "min"}).optimize(objective, trials=2, callbacks=[count])
    >>> count.reports
    6
"""

from __future__ import annotations

from torchnas.evaluation._callbacks import (
    REGISTRY,
    Callback,
    Callbacks,
    FunctionCallback,
    available,
    create,
    register,
    resolve,
)
from torchnas.evaluation._trackers import MLflow, TensorBoard, Tracker, WandB, tracker_dir

__all__ = [
    "REGISTRY", "Callback", "Callbacks", "FunctionCallback", "MLflow", "TensorBoard", "Tracker",
    "WandB", "available", "create", "register", "resolve", "tracker_dir",
]
