"""torchnas studies as a read-only Optuna storage, for ``optuna-dashboard`` and Optuna's tools.

:class:`OptunaStorage` presents the studies of a torchnas journal (an SQLite file) through
Optuna's :class:`optuna.storages.BaseStorage`, so ``optuna-dashboard`` (``pip install
'torchnas[optuna-dashboard]'``) shows a torchnas study with its history, importance, contour,
parallel-coordinate and timeline views, and ``optuna.load_study(study_name=...,
storage=OptunaStorage(db))`` gives Optuna's own ``Study`` of the same trials. Every read
answers from the journal as it is now (new events are read as they come: a study still running
is followed live); every write raises :class:`ReadOnlyStorageError`.

How a torchnas trial reads as an Optuna one:

* number, start and end times as recorded (a trial restarted after an interruption: its last
  attempt); ``trial_id`` is ``study_id * 2**32 + number``.
* state: ``complete`` is ``COMPLETE`` (values: the study's objectives, in their order; one
  missing or NaN makes it ``FAIL``), ``pruned`` is ``PRUNED``, ``running`` is ``RUNNING``,
  ``failed``, ``rejected`` and ``interrupted`` are ``FAIL`` (the torchnas state in the user
  attribute ``torchnas_state``, the error in the system attribute ``fail_reason``).
* params: the architecture's decisions, with a distribution from each decision's domain:
  ``choice``, ``op`` and ``bool`` are ``CategoricalDistribution``; ``int`` is
  ``IntDistribution`` and ``float`` ``FloatDistribution`` (``log`` and ``step`` as torchnas
  says); ``inputs`` (a list of indices) is a ``CategoricalDistribution`` of the lists
  written as JSON (``"[0, 2]"``). A conditional decision is a param of the trials that met it.
* intermediate values: the reports of the first objective, by step (a step that is not a
  whole number: the report's index instead, for every report of that trial).
* user attributes: the other final metrics, ``feasible``, ``budget`` and ``attempts``; the
  system attribute ``constraints`` is ``[0.0]`` for a feasible trial and ``[1.0]`` for an
  infeasible one (how Optuna and the dashboard mark feasibility).
* a study's directions come from its objectives; their names are Optuna's metric names
  (``study:metric_names``); its user attributes are its objectives, constraints, strategy,
  scheduler and seed.

``python -m torchnas.integrations.optuna_storage DB [--port 8080] [--host 127.0.0.1]`` serves
the dashboard of ``DB`` (on 127.0.0.1 unless told otherwise; ``--port 0``: a free port, the
address printed).
"""

from __future__ import annotations

import argparse
import copy
import importlib
import json
import math
import os
import sys
import threading
from collections.abc import Container, Sequence
from datetime import datetime
from typing import Any

import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.storages import BaseStorage
from optuna.study import StudyDirection
from optuna.study._frozen import FrozenStudy
from optuna.trial import FrozenTrial as OptunaTrial
from optuna.trial import TrialState as OptunaState

from torchnas._util.errors import ConfigError, TorchnasError
from torchnas.space import Domain
from torchnas.space._domains import Categorical, Float, Inputs, Int
from torchnas.storage import Journal, TrialLog, get_storage
from torchnas.study._trial import FrozenTrial, TrialState

__all__ = ["OptunaStorage", "ReadOnlyStorageError", "distribution_of", "main", "serve"]

_TRIAL_ID_STRIDE = 2**32
_METRIC_NAMES = "study:metric_names"  # optuna.study.study._SYSTEM_ATTR_METRIC_NAMES

_STATES = {
    TrialState.COMPLETE: OptunaState.COMPLETE,
    TrialState.PRUNED: OptunaState.PRUNED,
    TrialState.RUNNING: OptunaState.RUNNING,
    TrialState.FAILED: OptunaState.FAIL,
    TrialState.REJECTED: OptunaState.FAIL,
    TrialState.INTERRUPTED: OptunaState.FAIL,
}


class ReadOnlyStorageError(TorchnasError, RuntimeError):
    """A write through :class:`OptunaStorage`: torchnas journals are only read through it."""


def distribution_of(domain: Domain) -> BaseDistribution:
    """The Optuna distribution of a torchnas decision's domain (see the module's notes)."""
    if isinstance(domain, Inputs):
        return CategoricalDistribution([json.dumps(v) for v in domain.values()])
    if isinstance(domain, Categorical):  # choice, op, bool
        return CategoricalDistribution(list(domain.choices))
    if isinstance(domain, Int):
        if domain.log and domain.step != 1:  # Optuna has no log grid: the grid wins
            return IntDistribution(domain.low, domain.high, step=domain.step)
        return IntDistribution(domain.low, domain.high, log=domain.log, step=domain.step)
    if isinstance(domain, Float):
        return FloatDistribution(float(domain.low), float(domain.high), log=domain.log,
                                 step=None if domain.step is None else float(domain.step))
    raise ConfigError(f"no Optuna distribution for the domain {domain!r}")


def _param(domain: Domain, value: Any) -> Any:
    """A decision's value as Optuna's external value of :func:`distribution_of`."""
    if isinstance(domain, Inputs):
        return json.dumps(domain.normalize(value))
    if isinstance(domain, Float):
        return float(value)
    return value


def _time(seconds: float | None) -> datetime | None:
    return None if seconds is None else datetime.fromtimestamp(seconds)


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(
        value)


class _Study:
    """One torchnas study: its log (read as it grows) and its trials converted, by number."""

    def __init__(self, journal: Journal, study_id: int, name: str,
                 config: dict[str, Any]) -> None:
        self.id, self.name, self.config = study_id, name, config
        self.objectives: dict[str, str] = dict(config.get("objectives") or {})
        self.log = TrialLog(journal, study_id)
        self.converted: dict[int, tuple[FrozenTrial, OptunaTrial]] = {}

    @property
    def directions(self) -> list[StudyDirection]:
        return [StudyDirection.MAXIMIZE if d == "max" else StudyDirection.MINIMIZE
                for d in self.objectives.values()] or [StudyDirection.MINIMIZE]

    def frozen(self) -> FrozenStudy:
        return FrozenStudy(study_name=self.name, direction=None, directions=self.directions,
                           user_attrs=self.user_attrs(), system_attrs=self.system_attrs(),
                           study_id=self.id)

    def user_attrs(self) -> dict[str, Any]:
        keys = ("objectives", "constraints", "strategy", "scheduler", "seed")
        return {k: copy.deepcopy(self.config[k]) for k in keys if k in self.config}

    def system_attrs(self) -> dict[str, Any]:
        return {_METRIC_NAMES: list(self.objectives)} if self.objectives else {}

    def trials(self) -> list[OptunaTrial]:
        self.log.sync()
        out = []
        for n in sorted(self.log.trials):
            trial = self.log.trials[n]
            done = self.converted.get(n)
            if done is None or done[0] is not trial:  # records are replaced, never changed
                done = self.converted[n] = (trial, self._convert(trial))
            out.append(done[1])
        return out

    def _convert(self, t: FrozenTrial) -> OptunaTrial:
        state = _STATES[t.state]
        fail_reason = t.error
        values: list[float] | None = None
        if state is OptunaState.COMPLETE:
            raw = [t.metrics.get(name) for name in self.objectives]
            if all(_finite(v) for v in raw):
                values = [float(v) for v in raw]  # type: ignore[arg-type]
            else:
                missing = [n for n, v in zip(self.objectives, raw, strict=True) if not _finite(v)]
                state, fail_reason = OptunaState.FAIL, f"objectives without a value: {missing}"
        params, distributions = {}, {}
        for label, value in t.arch.items():
            domain = t.domains.get(label)
            if domain is None:
                continue
            try:
                dist = distribution_of(domain)
                external = _param(domain, value)
                if not dist._contains(dist.to_internal_repr(external)):
                    continue  # a value outside its recorded domain: not shown
            except (ValueError, TypeError, ConfigError):
                continue
            params[label], distributions[label] = external, dist
        first = next(iter(self.objectives), None)
        curve = [(step, float(m[first])) for step, m in t.intermediate
                 if first is not None and _finite(m.get(first))]
        whole = all(float(step).is_integer() for step, _ in curve)
        intermediate = {int(step) if whole else i: v for i, (step, v) in enumerate(curve)}
        user_attrs: dict[str, Any] = {
            k: v for k, v in t.metrics.items() if k not in self.objectives}
        user_attrs.update(torchnas_state=t.state.value, attempts=t.attempts)
        if t.feasible is not None:
            user_attrs["feasible"] = t.feasible
        if t.budget is not None:
            user_attrs["budget"] = t.budget
        system_attrs: dict[str, Any] = {}
        if t.feasible is not None:
            system_attrs["constraints"] = [0.0 if t.feasible else 1.0]
        if state is OptunaState.FAIL and fail_reason:
            system_attrs["fail_reason"] = fail_reason
        start = _time(t.start if t.start is not None else t.end) or datetime.fromtimestamp(0)
        end = (_time(t.end) or start) if state.is_finished() else None
        return OptunaTrial(
            number=t.number, state=state, value=None, values=values, datetime_start=start,
            datetime_complete=end, params=params, distributions=distributions,
            user_attrs=user_attrs, system_attrs=system_attrs,
            intermediate_values=intermediate, trial_id=self.id * _TRIAL_ID_STRIDE + t.number)


class OptunaStorage(BaseStorage):
    """The studies of a torchnas storage as a read-only Optuna storage.

    Args:
        storage: a torchnas SQLite file (a path or ``sqlite:///path``, opened read-only) or a
            :class:`~torchnas.storage.Journal` (read, never written).

    Raises:
        ConfigError: for a path that is no file.
    """

    def __init__(self, storage: str | os.PathLike[str] | Journal) -> None:
        if not isinstance(storage, Journal):
            path = os.fspath(storage).removeprefix("sqlite:///")
            if not os.path.isfile(path):
                raise ConfigError(f"no torchnas storage file at {path!r}")
        self.journal = storage if isinstance(storage, Journal) else get_storage(
            storage, read_only=True)
        self._lock = threading.RLock()
        self._studies: dict[int, _Study] = {}

    def __repr__(self) -> str:
        return f"OptunaStorage({self.journal!r})"

    # -- studies --------------------------------------------------------------------------------
    def _all(self) -> list[_Study]:
        with self._lock:
            out = []
            for name in self.journal.study_names():
                found = self.journal.find_study(name)
                if found is None:
                    continue
                study_id, config = found
                if study_id not in self._studies:
                    self._studies[study_id] = _Study(self.journal, study_id, name, config)
                out.append(self._studies[study_id])
            return out

    def _study(self, study_id: int) -> _Study:
        with self._lock:
            if study_id not in self._studies:
                self._all()
            try:
                return self._studies[study_id]
            except KeyError:
                raise KeyError(f"no study with id {study_id}") from None

    def get_all_studies(self) -> list[FrozenStudy]:
        return [s.frozen() for s in self._all()]

    def get_study_id_from_name(self, study_name: str) -> int:
        for s in self._all():
            if s.name == study_name:
                return s.id
        raise KeyError(f"no study named {study_name!r}")

    def get_study_name_from_id(self, study_id: int) -> str:
        return self._study(study_id).name

    def get_study_directions(self, study_id: int) -> list[StudyDirection]:
        return self._study(study_id).directions

    def get_study_user_attrs(self, study_id: int) -> dict[str, Any]:
        return self._study(study_id).user_attrs()

    def get_study_system_attrs(self, study_id: int) -> dict[str, Any]:
        return self._study(study_id).system_attrs()

    # -- trials ---------------------------------------------------------------------------------
    def get_all_trials(self, study_id: int, deepcopy: bool = True,
                       states: Container[OptunaState] | None = None) -> list[OptunaTrial]:
        study = self._study(study_id)
        with self._lock:
            trials = study.trials()
        if states is not None:
            trials = [t for t in trials if t.state in states]
        return copy.deepcopy(trials) if deepcopy else trials

    def _split(self, trial_id: int) -> tuple[_Study, int]:
        study_id, number = divmod(trial_id, _TRIAL_ID_STRIDE)
        return self._study(study_id), number

    def get_trial(self, trial_id: int) -> OptunaTrial:
        study, number = self._split(trial_id)
        with self._lock:
            for t in study.trials():
                if t.number == number:
                    return copy.deepcopy(t)
        raise KeyError(f"no trial with id {trial_id}")

    def get_trial_id_from_study_id_trial_number(self, study_id: int, trial_number: int) -> int:
        study = self._study(study_id)
        with self._lock:
            study.log.sync()
            if trial_number not in study.log.trials:
                raise KeyError(f"study {study.name!r} has no trial {trial_number}")
        return study_id * _TRIAL_ID_STRIDE + trial_number

    def get_trial_number_from_id(self, trial_id: int) -> int:
        return self.get_trial(trial_id).number

    # -- writes: refused -------------------------------------------------------------------------
    def _refuse(self, what: str) -> ReadOnlyStorageError:
        return ReadOnlyStorageError(
            f"{what}: torchnas studies are read-only through OptunaStorage (optuna-dashboard "
            "and optuna.load_study can look, not record); run trials with torchnas itself "
            "(tn.Study.optimize, tn.ModelSearch)")

    def create_new_study(self, directions: Sequence[StudyDirection],
                         study_name: str | None = None) -> int:
        raise self._refuse("create_new_study")

    def delete_study(self, study_id: int) -> None:
        raise self._refuse("delete_study")

    def set_study_user_attr(self, study_id: int, key: str, value: Any) -> None:
        raise self._refuse("set_study_user_attr")

    def set_study_system_attr(self, study_id: int, key: str, value: Any) -> None:
        raise self._refuse("set_study_system_attr")

    def create_new_trial(self, study_id: int, template_trial: OptunaTrial | None = None) -> int:
        raise self._refuse("create_new_trial")

    def set_trial_param(self, trial_id: int, param_name: str, param_value_internal: float,
                        distribution: BaseDistribution) -> None:
        raise self._refuse("set_trial_param")

    def set_trial_state_values(self, trial_id: int, state: OptunaState,
                               values: Sequence[float] | None = None) -> bool:
        raise self._refuse("set_trial_state_values")

    def set_trial_intermediate_value(self, trial_id: int, step: int,
                                     intermediate_value: float) -> None:
        raise self._refuse("set_trial_intermediate_value")

    def set_trial_user_attr(self, trial_id: int, key: str, value: Any) -> None:
        raise self._refuse("set_trial_user_attr")

    def set_trial_system_attr(self, trial_id: int, key: str, value: Any) -> None:
        raise self._refuse("set_trial_system_attr")

    def remove_session(self) -> None:
        pass


def serve(storage: str | os.PathLike[str] | Journal | OptunaStorage, host: str = "127.0.0.1",
          port: int = 8080) -> None:
    """Serves ``optuna-dashboard`` on a torchnas storage until interrupted (``port=0``: a free
    port). Needs ``pip install 'torchnas[optuna-dashboard]'``."""
    try:
        dashboard = importlib.import_module("optuna_dashboard")
    except ImportError:
        raise ConfigError("optuna-dashboard is not installed: "
                          "pip install 'torchnas[optuna-dashboard]'") from None
    adapter = storage if isinstance(storage, OptunaStorage) else OptunaStorage(storage)
    if port == 0:
        import socket

        with socket.socket() as s:
            s.bind((host, 0))
            port = s.getsockname()[1]
    print(f"optuna-dashboard of {adapter.journal!r} at http://{host}:{port}/", flush=True)
    dashboard.run_server(adapter, host=host, port=port)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m torchnas.integrations.optuna_storage",
        description="Serve optuna-dashboard on a torchnas SQLite storage (read-only).")
    parser.add_argument("storage", help="the torchnas .db file")
    parser.add_argument("--host", default="127.0.0.1", help="default: 127.0.0.1 (this machine)")
    parser.add_argument("--port", type=int, default=8080, help="default: 8080; 0: a free one")
    args = parser.parse_args(argv)
    try:
        serve(args.storage, host=args.host, port=args.port)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sys.exit(main())
