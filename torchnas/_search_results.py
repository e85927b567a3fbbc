"""What a finished search hands back: the best trial, the leaderboard, the best model
retrained on train+val, and its export. :class:`~torchnas.ModelSearch` inherits it."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from torchnas import data as tn_data
from torchnas._trial import FrozenTrial
from torchnas.evaluation import Trainer
from torchnas.export import save_model
from torchnas.report._console import leaderboard, state_counts
from torchnas.space import build
from torchnas.study import Study

__all__ = ["SearchResults"]


class SearchResults:
    """The results part of :class:`~torchnas.ModelSearch` (the search provides the study, the
    space, the data, the trainer and the trials' seeds)."""

    space_kwargs: Any
    progress: bool
    test_accuracy: float | None

    @property
    def dataset(self) -> tn_data.Data:
        raise NotImplementedError

    @property
    def space_fn(self) -> Any:
        raise NotImplementedError

    def _study(self) -> Study:
        raise NotImplementedError

    def _trainer(self) -> Trainer:
        raise NotImplementedError

    def _train_seed(self, number: int) -> int:
        raise NotImplementedError

    @property
    def space_name(self) -> str | None:
        raise NotImplementedError

    @property
    def best_trial(self) -> FrozenTrial:
        """The best trial by the first objective (the front's first for several objectives)."""
        study = self._study()
        if len(study.objectives) == 1:
            return study.best_trial
        front = study.pareto_front()
        if not front:
            raise ValueError(f"study {study.name!r} has no complete feasible trial yet")
        return front[0]

    def leaderboard(self, top: int = 10) -> str:
        """The best trials as a table."""
        study = self._study()
        head = f"Leaderboard of {study.name!r} ({state_counts(study.trials)})"
        return head + "\n" + leaderboard(study._ranked(), study.objectives, top=top)

    def best_model(self, retrain: bool = True, trial: FrozenTrial | None = None) -> nn.Module:
        """The best architecture as a model.

        With ``retrain`` it is trained on train+val (Keras Tuner style) and its test accuracy
        is measured (``self.test_accuracy``): the test split is touched for this chosen model
        only. Without, an untrained model of the architecture is returned.
        """
        chosen = trial or self.best_trial
        seed = self._train_seed(chosen.number)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = build(self.space_fn, chosen.arch)
        if not retrain:
            return model
        trainer = self._trainer()
        start = time.monotonic()
        trainer.fit(model, self.dataset, params=chosen.arch, seed=seed, final=True)
        if self.dataset.test is not None:
            self.test_accuracy = trainer.evaluate(model, self.dataset.test)["accuracy"]
            if self.progress:
                print(f"Best trial {chosen.number} retrained on train+val in "
                      f"{time.monotonic() - start:.1f}s: test accuracy {self.test_accuracy:.4f}",
                      flush=True)
        return model

    def export(self, path: str | Path, model: nn.Module | None = None,
               trial: FrozenTrial | None = None) -> Path:
        """Writes the best model (or ``trial``'s; retrained unless ``model`` is given) to
        ``path``, in the format its suffix names (:data:`torchnas.export.FORMATS`).

        ``.pt``: weights, architecture JSON, space name and its arguments (read back with
        :func:`torchnas.load_model`); ``.onnx`` (ONNX, ``torchnas[onnx]``), ``.pt2``
        (``torch.export``) and ``.ts`` (TorchScript): programs with a dynamic batch dimension
        that load without torchnas.
        """
        chosen = trial or self.best_trial
        if model is None:
            model = self.best_model(retrain=True, trial=chosen)
        meta: dict[str, Any] = {"trial": chosen.number, "metrics": chosen.metrics,
                                "input_shape": list(self.dataset.input_shape),
                                "num_classes": self.dataset.num_classes}
        if self.test_accuracy is not None:
            meta["test_accuracy"] = self.test_accuracy
        kwargs = dict(self.space_kwargs or {})
        if self.space_name is not None:
            kwargs.setdefault("input_shape", list(self.dataset.input_shape))
            kwargs.setdefault("num_classes", self.dataset.num_classes)
        example = torch.as_tensor(self.dataset.train[0][0]).unsqueeze(0)
        return save_model(path, model, chosen.arch, space=self.space_name, space_kwargs=kwargs,
                          meta=meta, example_input=example)
