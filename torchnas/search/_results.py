"""What a finished search hands back: the best trials and their kept trained models, the
leaderboard, the best model retrained on train+val (checked against its trial), and its
export. :class:`~torchnas.ModelSearch` holds one as ``search.results`` (its methods of the same
names call it)."""

from __future__ import annotations

import logging
import math
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from torchnas.evaluation import Trainer, summary
from torchnas.report._console import leaderboard, state_counts
from torchnas.search._export import save_model
from torchnas.search._objective import ModelObjective
from torchnas.search._seeds import RetrainAttempt, RetrainReport, retrain_with_retries
from torchnas.search._space_args import builtin_space_kwargs
from torchnas.search._train_fn import as_test_metrics, function_name
from torchnas.strategies import derive_seed
from torchnas.study import Study
from torchnas.study._trial import FrozenTrial

__all__ = ["SearchResults"]

log = logging.getLogger("torchnas")


class SearchResults:
    """The results of a search, read from its study: best trials, kept trained models, the
    leaderboard, the retrained best model and its export.

    Args:
        study: the search's study.
        objective: what its trials ran (the space, the data, the trainer, the kept weights
            and the trials' seeds: a model is rebuilt exactly as its trial built it).
        retrain_attempts: how many seeds a retraining on train+val may try.
        progress: print the retraining's outcome (and a failed retrain's warning).

    Attributes:
        test_metrics: the test metrics of the model :meth:`best_model` last returned
            retrained (empty before, or without a test split).
        retrain_report: how that retraining went (``None`` before).
    """

    def __init__(self, study: Study, objective: ModelObjective, *, retrain_attempts: int = 3,
                 progress: bool = False) -> None:
        self.study = study
        self.objective = objective
        self.retrain_attempts = retrain_attempts
        self.progress = progress
        self.test_metrics: dict[str, float] = {}
        self.retrain_report: RetrainReport | None = None

    @property
    def test_accuracy(self) -> float | None:
        """``test_metrics["test_accuracy"]``, when measured."""
        return self.test_metrics.get("test_accuracy")

    @property
    def best_trial(self) -> FrozenTrial:
        """The best trial by the first objective (the front's first for several objectives)."""
        return self._top(1)[0]

    def _top(self, n: int) -> list[FrozenTrial]:
        study = self.study
        top = study.top_trials(n)
        if not top:
            raise ValueError(f"study {study.name!r} has no complete feasible trial yet")
        return top

    def leaderboard(self, top: int = 10) -> str:
        """The best trials as a table."""
        study = self.study
        head = f"Leaderboard of {study.name!r} ({state_counts(study.trials)})"
        return head + "\n" + leaderboard(study.ranked(), study.objectives, top=top)

    def get_best_hyperparameters(self, n: int = 1) -> list[dict[str, Any]]:
        """The architectures of the ``n`` best trials, best first (Keras Tuner's method of that
        name; fewer when fewer trials completed)."""
        return [dict(t.arch) for t in self._top(n)]

    def get_best_models(self, n: int = 1) -> list[nn.Module]:
        """The trained models of the ``n`` best trials, best first (Keras Tuner's method of
        that name): rebuilt, their kept weights loaded, in eval mode. No retraining.

        Raises:
            ValueError: when a trial among them has no kept weights (``keep_models`` keeps the
                best few; ``best_model(retrain=True, trial=...)`` trains one again).
        """
        return [self.trial_model(t) for t in self._top(n)]

    def trial_model(self, trial: FrozenTrial) -> nn.Module:
        """``trial``'s own trained model (its kept weights; eval mode)."""
        store, keep = self.objective.artifacts, self.objective.keep_models
        if not store.has(trial.number):
            kept = store.kept()
            raise ValueError(
                f"trial {trial.number}'s trained weights were not kept (keep_models="
                f"{keep} keeps the best {keep}; kept now: "
                f"{kept or 'none'}, in {store.root}): retrain it with "
                f"best_model(retrain=True, trial=...) or search with a larger keep_models")
        meta = store.meta(trial.number)
        seed = int(meta.get("seed", self.objective.train_seed(trial.number)))
        model = self.objective.build(trial.arch, seed, float(meta.get("width", 1.0)))
        model.load_state_dict(store.load_weights(trial.number))
        return model.eval()

    def best_model(self, retrain: bool = True, trial: FrozenTrial | None = None) -> nn.Module:
        """The best architecture (or ``trial``'s) as a trained model.

        Without ``retrain``: the trial's own trained model (:meth:`trial_model`). With it: the
        architecture trained afresh on train+val (Keras Tuner style), at full fidelity. Its
        final training loss is compared with the trial's; a retrain that ends clearly worse is
        tried again with another seed (up to ``retrain_attempts``), and if it stays worse a
        warning says so and the trial's own model is returned when its weights were kept.
        The test split is touched for the chosen model only: :attr:`test_metrics` (and
        :attr:`test_accuracy`) are the returned model's, :attr:`retrain_report` has the
        attempts and the trial's own model's test metrics.

        With ``train_fn`` the retraining calls it with ``trial=None`` on data whose ``train``
        is train+val and whose ``val`` is the test split: the ``val_*`` metrics it returns,
        renamed ``test_*``, are :attr:`test_metrics` (the trial's own model has none). The
        training losses are compared only when it returns ``train_loss``.
        """
        chosen = trial or self.best_trial
        if not retrain:
            return self.trial_model(chosen)
        objective = self.objective
        trainer, bundle = objective.trainer, objective.dataset
        report = RetrainReport(chosen.number, chosen.metrics.get("train_loss"))
        seeds = [objective.train_seed(chosen.number)] + [
            derive_seed(objective.seed, "retrain", chosen.number, k) % 2**31
            for k in range(1, self.retrain_attempts)]
        fits: dict[int, dict[str, float]] = {}
        own_loop = False

        def train(seed: int) -> tuple[nn.Module, float]:
            nonlocal own_loop
            model, fit, own_loop = objective.retrain(chosen.arch, seed)
            fits[id(model)] = fit
            if own_loop and report.trial_train_loss is None and len(fits) == 1:
                log.info("train_fn returns no train_loss: the retrain of trial %d is not "
                         "checked against the trial", chosen.number)
            return model, fit.get("train_loss", math.nan)

        def retrying(attempt: RetrainAttempt) -> None:
            log.warning("the retrain of trial %d ended at training loss %.4g against the "
                        "trial's %.4g: training it again with another seed", chosen.number,
                        attempt.train_loss, report.trial_train_loss)

        start = time.monotonic()
        model, report.attempts = retrain_with_retries(train, seeds, report.trial_train_loss,
                                                      retrying)
        report.seconds = time.monotonic() - start
        own = self.trial_model(chosen) if objective.artifacts.has(chosen.number) else None
        if bundle.test is not None and own_loop:
            report.test_metrics = as_test_metrics(fits[id(model)])
        elif bundle.test is not None:
            report.test_metrics = _test_metrics(trainer, model, bundle.test)
            if own is not None:
                report.trial_test_metrics = _test_metrics(trainer, own, bundle.test)
        if report.failed:
            self._warn_failed_retrain(report, own is not None)
            if own is not None:
                model, report.chosen = own, "trial"
                report.test_metrics = dict(report.trial_test_metrics or {})
        self.retrain_report = report
        self.test_metrics = dict(report.test_metrics)
        if self.progress:
            print(_retrain_line(report), flush=True)
        return model

    def _warn_failed_retrain(self, report: RetrainReport, own: bool) -> None:
        best = report.best_attempt
        message = (
            f"the retrain of trial {report.trial} on train+val stayed clearly worse than the "
            f"trial: final training loss {best.train_loss:.4g} ("
            + (f"best of {len(report.attempts)} seeds" if len(report.attempts) > 1 else "one seed")
            + f") against the trial's {report.trial_train_loss:.4g}. "
            + ("Keeping the trial's own trained model." if own else
               "The trial's weights were not kept (keep_models): returning the best retrain; "
               "do not trust its test metrics."))
        warnings.warn(message, RuntimeWarning, stacklevel=3)
        if self.progress:
            print(f"WARNING: {message}", file=sys.stderr, flush=True)

    def export(self, path: str | Path, model: nn.Module | None = None,
               trial: FrozenTrial | None = None) -> Path:
        """Writes the best model (or ``trial``'s; retrained unless ``model`` is given) to
        ``path``, in the format its suffix names (:data:`torchnas.search._export.FORMATS`).

        ``.pt``: weights, architecture JSON, space name and its arguments (read back with
        :func:`torchnas.load_model`); ``.onnx`` (ONNX, ``torchnas[onnx]``), ``.pt2``
        (``torch.export``) and ``.ts`` (TorchScript): programs with a dynamic batch dimension
        that load without torchnas. With ``train_fn`` the architecture written is the space's
        decisions (what rebuilds the model); the values ``train_fn`` decided are kept in the
        metadata as ``train_fn_decisions``.
        """
        chosen = trial or self.best_trial
        if model is None:
            model = self.best_model(retrain=True, trial=chosen)
        bundle, space = self.objective.dataset, self.objective.space_name
        meta: dict[str, Any] = {"trial": chosen.number, "metrics": chosen.metrics,
                                "input_shape": list(bundle.input_shape),
                                "num_classes": bundle.num_classes}
        if self.test_accuracy is not None:
            meta["test_accuracy"] = self.test_accuracy
        if self.test_metrics:
            meta["test_metrics"] = self.test_metrics
        if self.retrain_report is not None and self.retrain_report.trial == chosen.number:
            meta["retrain"] = {"chosen": self.retrain_report.chosen,
                               "attempts": [vars(a) for a in self.retrain_report.attempts]}
        arch = dict(chosen.arch)
        if self.objective.train_fn is not None:
            built = self.objective.build_hp(arch, 0)[1].arch
            meta["train_fn"] = function_name(self.objective.train_fn)
            meta["train_fn_decisions"] = {k: v for k, v in arch.items() if k not in built}
            arch = built
        kwargs = dict(self.objective.space_kwargs or {})
        if space is not None:  # what the search created it with (a token model's vocabulary)
            kwargs = builtin_space_kwargs(space, kwargs, bundle)
            kwargs["input_shape"] = list(kwargs["input_shape"])
        example = torch.as_tensor(bundle.train[0][0]).unsqueeze(0)
        return save_model(path, model, arch, space=space, space_kwargs=kwargs,
                          meta=meta, example_input=example)

    def keep_best(self, study: Study | None = None, trial: FrozenTrial | None = None) -> None:
        """Drops the kept weights of finished trials no longer among the best ``keep_models``
        (running trials' files are left alone), and writes the kept models' summaries for
        ``torchnas best`` (which runs no space). A study callback: the arguments are unused."""
        keep, store = self.objective.keep_models, self.objective.artifacts
        if not keep:
            return
        best = self.study.top_trials(keep)
        top = {t.number for t in best}
        states = {t.number: t.state for t in self.study.trials}
        store.discard(n for n in store.kept()
                      if n not in top and n in states and states[n].finished)
        for t in best:
            if store.has(t.number) and "summary" not in store.meta(t.number):
                text = str(summary(self.trial_model(t), self.objective.dataset))
                store.update_meta(t.number, {"summary": text, "arch": t.arch})


def _test_metrics(trainer: Trainer, model: nn.Module, test: Any) -> dict[str, float]:
    return {f"test_{k}": v for k, v in trainer.evaluate(model, test).items()}


def _retrain_line(report: RetrainReport) -> str:
    best = report.best_attempt
    tries = f" ({len(report.attempts)} seeds)" if len(report.attempts) > 1 else ""
    loss = (f"training loss {best.train_loss:.4g}" if math.isfinite(best.train_loss)
            else "no training loss to check against the trial's")
    if report.trial_train_loss is not None and math.isfinite(best.train_loss):
        loss += f" (the trial's: {report.trial_train_loss:.4g})"
    line = (f"Best trial {report.trial} retrained on train+val in {report.seconds:.1f}s{tries}: "
            f"{loss}")
    if report.chosen == "trial":
        line += "; kept the trial's own model instead"
    acc = report.test_metrics.get("test_accuracy")
    if acc is not None:
        line += f"; test accuracy {acc:.4f}"
        own = (report.trial_test_metrics or {}).get("test_accuracy")
        if own is not None and report.chosen != "trial":
            line += f" (the trial's own model: {own:.4f})"
    elif report.test_metrics:  # another task's: test mse, mae, r2, ...
        line += "; " + ", ".join(f"{k.replace('_', ' ')} {v:.4g}"
                                 for k, v in report.test_metrics.items() if k != "test_loss")
    return line
