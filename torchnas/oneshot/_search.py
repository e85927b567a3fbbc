"""One-shot search inside :class:`~torchnas.ModelSearch`: search, derive, retrain, record.

``ModelSearch(strategy="darts")`` (or any name of :func:`available`) runs one supernet search
on the space and data, then retrains the derived architecture with the search's Trainer and
records it as a trial of the same study, in the same storage, through ``study.ask(fixed=arch)``
and ``study.tell``: the trial looks like any multi-trial one (its metrics gain
``search_seconds``). Beside a SQLite storage ``runs/x.db`` the search's result is written to
``runs/x.<study>.oneshot.json``: the method and its settings, the architecture, the
architecture weights (``alphas``), the history and the collapse report. A search whose file and
complete trial exist is not run again (resume). While it runs, the supernet's state is saved
after every epoch to ``runs/x.<study>.supernet.pt`` (:func:`checkpoint_path`): a search that is
killed goes on from its last finished epoch when run again, instead of starting over.

The study stores the method's spec (``{"name": "darts", ...}``) as its strategy: reopened, its
strategy is a :class:`DerivedTrials`, which proposes nothing (the trials are the derived
architectures). Studies made before that store ``{"name": "random"}`` and open as before.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from torchnas._util.errors import ConfigError, SpaceError, TrialPruned
from torchnas.oneshot._base import OneShot, OneShotResult
from torchnas.oneshot._collapse import CollapseReport
from torchnas.oneshot._registry import REGISTRY, is_method
from torchnas.space import Domain
from torchnas.strategies import AskContext, Strategy, add_resolver
from torchnas.study._trial import FrozenTrial, TrialState

if TYPE_CHECKING:
    from torchnas.search._objective import ModelObjective
    from torchnas.study import Study

__all__ = ["DerivedTrials", "checkpoint_path", "derived_trials", "record_path", "run_search"]

log = logging.getLogger("torchnas")


def _beside(storage: Any, study_name: str, suffix: str) -> Path | None:
    if not isinstance(storage, (str, Path)) or str(storage) in ("", ":memory:"):
        return None
    path = Path(str(storage).removeprefix("sqlite:///"))
    name = re.sub(r"[^\w.-]", "_", study_name)
    return path.with_name(f"{path.stem}.{name}.{suffix}")


def record_path(storage: Any, study_name: str) -> Path | None:
    """Where the result of a one-shot search of ``study_name`` is written (``None`` without a
    storage file)."""
    return _beside(storage, study_name, "oneshot.json")


def checkpoint_path(storage: Any, study_name: str) -> Path | None:
    """Where the supernet of a one-shot search of ``study_name`` is saved after every epoch
    (``None`` without a storage file)."""
    return _beside(storage, study_name, "supernet.pt")


def _resumed(study: Study, path: Path | None) -> OneShotResult | None:
    """The stored result when its trial is already complete in the study."""
    if path is None or not path.exists():
        return None
    saved = json.loads(path.read_text(encoding="utf-8"))
    trials = {t.number: t for t in study.trials}
    done = trials.get(saved.get("trial", -1))
    if done is None or done.state is not TrialState.COMPLETE or done.arch != saved["arch"]:
        return None
    fields = {k: saved[k] for k in ("method", "arch", "alphas", "history", "seconds", "cost",
                                    "settings")}
    return OneShotResult(collapse=CollapseReport(**saved["collapse"]), **fields)


def _write(path: Path | None, result: OneShotResult, study: Study,
           trial: FrozenTrial | None) -> None:
    if path is None:
        return
    payload = {"study": study.name, "trial": None if trial is None else trial.number,
               **result.to_json()}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=1, default=str), encoding="utf-8")


def _record(objective: ModelObjective, study: Study, result: OneShotResult) -> FrozenTrial:
    """Retrains the derived architecture with the objective's trainer (full fidelity) as a
    trial of the study."""
    trial = study.ask(fixed=result.arch)
    seed = objective.train_seed(trial.number)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = objective.space_fn(trial.hp)
        if trial.hp.arch != result.arch:
            raise SpaceError(f"the derived architecture does not rebuild exactly: "
                             f"{result.arch} became {trial.hp.arch}")
        trial.commit()
        measured = objective.measure(model)  # the model metrics the objectives name
        metrics = objective.trainer.fit(model, objective.dataset, params=trial.hp.arch,
                                        report=trial.report, seed=seed)
        objective.keep_trained(trial.number, model, seed)
    except TrialPruned as exc:
        return study.tell(trial, trial.last_metrics or None, state=TrialState.PRUNED,
                          error=str(exc) or None)
    except Exception as exc:
        log.warning("the derived architecture failed: %s: %s", type(exc).__name__, exc)
        return study.tell(trial, state=TrialState.FAILED, error=f"{type(exc).__name__}: {exc}")
    return study.tell(trial, {**metrics, **measured, "search_seconds": result.seconds})


def run_search(method: OneShot, objective: ModelObjective, study: Study, *, storage: Any = None,
               timeout: float | None = None, progress: bool = False) -> OneShotResult:
    """One one-shot search of ``objective``'s space and data (the one-shot path of
    :meth:`ModelSearch.run <torchnas.ModelSearch.run>`): ``method`` trains the supernet for at
    most ``timeout`` seconds, and the derived architecture is retrained with the objective's
    trainer and recorded as a trial of ``study``. Beside a SQLite ``storage`` the result is
    written (and a search whose result and trial exist is not run again). Returns the result.
    """
    path = record_path(storage, study.name)
    result = _resumed(study, path)
    if result is not None:
        log.info("study %r: one-shot search already done (trial %s)", study.name, path)
        return result
    deadline = None if timeout is None else time.monotonic() + timeout

    def on_epoch(epoch: int, metrics: dict[str, float]) -> None:
        if progress:
            shown = ", ".join(f"{k} {v:.4g}" for k, v in metrics.items() if k != "epoch")
            print(f"{method.name} epoch {epoch}/{method.epochs}: {shown}", flush=True)

    result = method.search(objective.space_fn, objective.dataset, seed=objective.seed,
                           deadline=deadline, on_epoch=on_epoch,
                           checkpoint=checkpoint_path(storage, study.name),
                           task=objective.trainer.get_task())
    if progress:
        print(f"{method.name}: derived {result.arch} in {result.seconds:.1f}s; "
              f"{result.collapse}", flush=True)
    _write(path, result, study, None)  # kept even if the retraining fails
    frozen = _record(objective, study, result)
    _write(path, result, study, frozen)
    return result


class DerivedTrials(Strategy):
    """The strategy of a one-shot study: its trials are the architectures the method derived
    (asked with ``study.ask(fixed=arch)``), so it proposes none itself. The study stores the
    method's spec in its place (see :func:`derived_trials`).

    Args:
        method: the one-shot method's spec (``{"name": "darts", ...}``).
    """

    def __init__(self, method: Mapping[str, Any]) -> None:
        self.method = method

    def suggest(self, ctx: AskContext, label: str, domain: Domain) -> Any:
        name = self.method.get("name")
        raise ConfigError(f"this study records a one-shot search ({name}): its trials are the "
                          f"architectures the method derived, and it proposes no others "
                          f"(run tn.ModelSearch(strategy={name!r}) to search, or give the "
                          f"study a strategy)")


@add_resolver
def derived_trials(spec: Any) -> tuple[Strategy, dict[str, Any]] | None:
    """The strategy and stored spec of a study whose strategy spec names a one-shot method
    (``"darts"``, ``{"name": "darts", ...}`` or a :class:`OneShot`); ``None`` for any other
    spec. :func:`torchnas.strategies.resolve` asks it first (it is added as a resolver)."""
    if not is_method(spec):
        return None
    stored = REGISTRY.spec_of(spec)
    return DerivedTrials(stored), stored
