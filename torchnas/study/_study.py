"""The study: ask/tell around a strategy, a durable journal, and the optimize loop."""

from __future__ import annotations

import logging
import math
import numbers
import os
import time
import uuid
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import Any

from torchnas import execution
from torchnas._util.errors import ConfigError
from torchnas.evaluation._callbacks import Callbacks
from torchnas.execution import Executor, Plan
from torchnas.execution._protocol import result_metrics
from torchnas.report._console import leaderboard, state_counts
from torchnas.schedulers import Scheduler
from torchnas.schedulers import resolve as resolve_scheduler
from torchnas.space import HP, Domain, SpaceInfo, explore, infer
from torchnas.storage import Event, Journal, TrialLog, check_storage, events, get_storage
from torchnas.strategies import AskContext, Strategy, resolve
from torchnas.study._hypervolume import default_reference, hypervolume, ordered_reference
from torchnas.study._live import Trial
from torchnas.study._objectives import (
    is_feasible,
    pareto_front,
    parse_constraints,
    parse_objectives,
    rank_key,
)
from torchnas.study._orphans import take_up
from torchnas.study._process import owner_token
from torchnas.study._trial import FrozenTrial, TrialState

__all__ = ["Study", "Trial", "check_study_args", "load_study"]

log = logging.getLogger("torchnas")

#: Seconds between two looks, as trials start, for trials of drivers that died meanwhile.
RECLAIM_EVERY = 2.0

Objective = Callable[[HP], "float | Mapping[str, float]"]
Callback = Callable[["Study", FrozenTrial], None]
#: What ``optimize(callbacks=...)`` takes: a name, ``{"name": ..., **settings}``, a
#: :class:`~torchnas.callbacks.Callback` or a function ``cb(study, trial)``.
CallbackSpec = Any


def check_study_args(*, name: Any, storage: Any, objectives: Any, constraints: Any,
                     seed: Any) -> None:
    """Checks these arguments of :class:`Study`, touching no storage.

    Raises:
        ConfigError: naming the first bad one: ``name`` not a non-blank string, ``storage``
            none of what :func:`~torchnas.storage.get_storage` takes, ``seed`` neither
            ``None`` nor an integer, malformed ``objectives`` or ``constraints``.
    """
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"name must be a non-blank string, got {name!r}")
    check_storage(storage)
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, numbers.Integral)):
        raise ConfigError(f"seed must be an integer or None, got {seed!r}")
    parse_objectives(objectives)
    parse_constraints(constraints)


class Study:
    """A search: a strategy proposes, an objective evaluates, a journal records.

    Args:
        name: the study's name inside its storage (a non-blank string).
        storage: ``None`` (in memory), a path or ``sqlite:///path`` (SQLite), or a journal.
            An existing study of that name is continued: finished trials are replayed to the
            strategy and trials left running by a dead process are run again first.
        objectives: ``{"metric": "max"|"min"}``; a bare name infers the direction.
        constraints: ``{"metric": (op, bound)}``, op in ``<= < >= > ==``.
        strategy: a registered name (``"auto"``), a :class:`Strategy`, or ``{"name": ..., **kw}``.
        scheduler: a scheduler name (``tn.schedulers.available()``), a
            :class:`~torchnas.schedulers.Scheduler`, ``{"name": ..., **kw}``, or ``None`` (the
            strategy's ``default_scheduler`` when it has one, else no early stopping).
        seed: the integer every random stream derives from (``None``: 0). A continued study
            keeps the seed it was created with, so that its trials replay; another one given
            here is ignored with a warning.
        settings: JSON-able settings that give the trials their meaning, stored when the study
            is created (:class:`~torchnas.ModelSearch` stores its trainer, data, space and
            fidelity, and refuses to go on with others); read back as :attr:`settings`.
    """

    def __init__(
        self,
        name: str = "study",
        storage: str | Journal | None = None,
        objectives: str | Sequence[str] | Mapping[str, str] | None = None,
        constraints: Mapping[str, Any] | None = None,
        strategy: str | Strategy | dict[str, Any] = "auto",
        scheduler: str | Scheduler | dict[str, Any] | None = None,
        seed: int | None = None,
        settings: Mapping[str, Any] | None = None,
    ) -> None:
        self.name = name
        # settings given here are checked before storage is touched (no file for a bad one)
        check_study_args(name=name, storage=storage, objectives=objectives,
                         constraints=constraints, seed=seed)
        if not (isinstance(strategy, str) and strategy == "auto"):
            resolve(strategy, parse_objectives(objectives))
        if scheduler is not None:
            resolve_scheduler(scheduler)
        self.journal = get_storage(storage)
        found = self.journal.find_study(name)
        config: dict[str, Any]
        created = False
        if found is None:
            self.objectives = parse_objectives(objectives)
            self.constraints = parse_constraints(constraints)
            self.seed = 0 if seed is None else int(seed)
            self.strategy, spec = resolve(strategy, self.objectives)
            if scheduler is None:  # a strategy may name its own (BOHB: "hyperband")
                scheduler = getattr(self.strategy, "default_scheduler", None)
            self.scheduler, sched_spec = resolve_scheduler(scheduler)
            config = {"objectives": self.objectives, "constraints": self.constraints,
                      "seed": self.seed, "strategy": spec, "scheduler": sched_spec}
            if settings is not None:
                config["settings"] = dict(settings)
            try:
                self._id = self.journal.create_study(name, config)
                created = True
            except ValueError:  # another process created it just now: open theirs
                found = self.journal.find_study(name)
                if found is None:
                    raise
        if not created:
            assert found is not None
            self._id, config = found
            stored: dict[str, str] = config["objectives"]
            if objectives is not None and list(parse_objectives(objectives).items()) != list(
                stored.items()
            ):  # order matters: a float result is the first objective
                raise ConfigError(
                    f"study {name!r} exists with objectives {stored}; "
                    f"got {parse_objectives(objectives)}"
                )
            self.objectives = stored
            self.constraints = {k: (v[0], v[1]) for k, v in config["constraints"].items()}
            if constraints is not None and parse_constraints(constraints) != self.constraints:
                raise ConfigError(f"study {name!r} exists with constraints {config['constraints']}")
            self.seed = int(config["seed"])
            if seed is not None and int(seed) != self.seed:
                warnings.warn(f"study {name!r} exists with seed {self.seed}: it goes on with that "
                              f"seed, not {seed} (use another name for a new study)",
                              UserWarning, stacklevel=2)
            self.strategy, spec = resolve(config["strategy"] if strategy == "auto" else strategy,
                                          self.objectives)
            if spec != config["strategy"] and not self.journal.read_only:
                log.info("study %r was created with strategy %s; it goes on with %s",
                         name, config["strategy"], spec)
            self.scheduler, _ = resolve_scheduler(
                config.get("scheduler") if scheduler is None else scheduler)
        self.config = config
        self.strategy.setup(self.objectives, self.seed)
        self.strategy.set_constraints(self.constraints)
        if self.scheduler is not None:
            self.scheduler.setup(self.objectives, self.seed)
        self._owner = owner_token()
        self._log = TrialLog(self.journal, self._id)
        self._live: dict[int, Trial] = {}  # trials this process runs now (their hp is current)
        self._callbacks: Callbacks | None = None  # those of the optimize call running now
        self.sync()
        self._reclaimed = -math.inf
        if not self.journal.read_only:
            self._interrupt_orphans()

    # -- the driver API: what trials and executors use -----------------------------------------
    @property
    def owner(self) -> str:
        """This process's token: the owner of the trials it starts."""
        return self._owner

    def record(self, *events: Event) -> None:
        """Appends journal events (built by :mod:`torchnas.storage.events`), time-stamped."""
        now = time.time()
        self.journal.append(self._id, [{**e, "time": now} for e in events])

    def sync(self) -> None:
        """Reads events written since the last sync (by any process) and tells the strategy
        of every trial that finished."""
        for trial in self._log.sync():
            self.strategy.tell(trial)

    @property
    def records(self) -> Mapping[int, FrozenTrial]:
        """Every trial's record by number, as of the last :meth:`sync` (a read-only view, O(1);
        :attr:`trials` syncs and sorts)."""
        return MappingProxyType(self._log.trials)

    def finished_with(self, key: str) -> int | None:
        """The first finished trial with architecture key ``key`` (``None``: none)."""
        return self._log.finished_keys.get(key)

    @property
    def queued(self) -> list[dict[str, Any]]:
        """Architectures queued by :meth:`enqueue` and not yet taken by a trial, oldest first."""
        return [dict(a) for a in self._log.queue.values()]

    @property
    def callbacks(self) -> Callbacks | None:
        """The callbacks of the :meth:`optimize` call running now (``None`` outside one)."""
        return self._callbacks

    def interrupt(self, number: int, reason: str) -> None:
        """Marks a trial this process was running as interrupted (it runs again first)."""
        self._live.pop(number, None)
        self.record(events.interrupt(number, reason))

    def running_archs(self) -> dict[int, dict[str, Any]]:
        """The decisions of every running trial: as made so far for this process's own, as
        committed for other processes'."""
        return {n: (self._live[n].hp._values if n in self._live else self._log.trials[n].arch)
                for n in self._log.running}

    def pending(self, number: int | None = None) -> list[dict[str, Any]]:
        """What a strategy sees as ``ctx.pending`` for trial ``number``: the decisions of the
        other running trials."""
        return [a for n, a in self.running_archs().items() if n != number]

    def failures(self, key: str) -> int:
        """How many trials with architecture key ``key`` failed."""
        return sum(t.state is TrialState.FAILED and t.key == key for t in self._log.trials.values())

    def _interrupt_orphans(self) -> None:
        """Takes up the trials left running by a process that is gone: interrupted (they run
        again first), or failed when they ended their process (see ``_orphans``)."""
        with self.journal.exclusive():
            self.sync()
            take_up(self)
        self._reclaimed = time.monotonic()

    # -- ask / tell -----------------------------------------------------------------------------
    def enqueue(self, arch: Mapping[str, Any]) -> None:
        """Queues decisions (a whole or partial architecture) for a coming trial, durably:
        trials take queued architectures, oldest first, before asking the strategy."""
        self.record(events.enqueue(uuid.uuid4().hex, arch))

    def ask(self, fixed: Mapping[str, Any] | None = None) -> Trial:
        """Starts a trial. An interrupted trial is taken up again first (same number and
        architecture), then a queued architecture (:meth:`enqueue`); otherwise a new one is
        numbered and the strategy fills its decisions.

        Args:
            fixed: decisions to impose (e.g. an architecture to evaluate again).
        """
        with self.journal.exclusive():
            self.sync()
            if (not self.journal.read_only  # another driver died meanwhile?
                    and time.monotonic() - self._reclaimed >= RECLAIM_EVERY):
                take_up(self)
                self._reclaimed = time.monotonic()
            first = next(iter(self._log.interrupted), None)
            retry = None if first is None else self._log.trials[first]
            if retry is not None:
                number, imposed = retry.number, {**retry.arch, **(fixed or {})}
                self.record(events.restart(number, self._owner))
            else:
                number, imposed = self._log.next_number, dict(fixed or {})
                queued = next(iter(self._log.queue), None) if fixed is None else None
                if queued is not None:
                    imposed = dict(self._log.queue[queued])
                budget = None if self.scheduler is None else self.scheduler.budget(number)
                self.record(events.create(number, self._owner, budget, queued))
            self.sync()
        ctx = AskContext(number=number, seed=self.seed, pending=self.pending(number))
        trial = self._live[number] = Trial(self, number, imposed, ctx)
        if self._callbacks is not None:
            try:
                self._callbacks.trial_start(self, number)
            except BaseException:  # Ctrl-C in a callback: the trial never ran
                self.interrupt(number, "interrupted")
                raise
        return trial

    def tell(
        self,
        trial: Trial | int,
        result: float | Mapping[str, float] | None = None,
        *,
        state: TrialState = TrialState.COMPLETE,
        error: str | None = None,
    ) -> FrozenTrial:
        """Finishes a trial with its result (a float is the first objective).

        A complete trial whose objectives are missing, NaN or infinite is recorded FAILED with
        the reason. A pruned trial without a result keeps its last reported metrics. A
        ``REJECTED`` trial (refused before evaluation, e.g. too many parameters) is infeasible.
        """
        number = trial if isinstance(trial, int) else trial.number
        self.sync()  # reports made since ask() (a pruned trial keeps the last one)
        current = self._log.trials.get(number)
        if current is None or current.state is not TrialState.RUNNING:
            raise ValueError(f"trial {number} is not running (state: {current and current.state})")
        metrics = self._metrics(result)
        if state is TrialState.PRUNED and not metrics and current.intermediate:
            metrics = dict(current.intermediate[-1][1])
        if state is TrialState.COMPLETE:
            bad = [n for n in self.objectives if not math.isfinite(metrics.get(n, math.nan))]
            if bad:
                state = TrialState.FAILED
                error = error or "objective " + ", ".join(
                    f"{n!r} is {metrics[n]}" if n in metrics else f"{n!r} is missing" for n in bad
                ) + f" (result: {metrics})"
            elif missing := [n for n in self.constraints if n not in metrics]:
                state = TrialState.FAILED
                error = error or (f"constraint metric {', '.join(map(repr, missing))} is not "
                                  f"among the trial's metrics (result: {metrics})")
        feasible = (is_feasible(metrics, self.constraints) if state is TrialState.COMPLETE
                    else False if state is TrialState.REJECTED else None)
        live = isinstance(trial, Trial)  # from the running process: only its owner may finish it
        self._live.pop(number, None)
        self.record(events.finish(number, state, metrics, feasible, error,
                                  owner=self._owner if live else None,
                                  committed=trial.uncommitted() if isinstance(trial, Trial)
                                  else None))
        self.sync()
        return self._log.trials[number]

    def _metrics(self, result: float | Mapping[str, float] | None) -> dict[str, float]:
        return result_metrics(result, next(iter(self.objectives)))

    # -- the loop -------------------------------------------------------------------------------
    def optimize(
        self,
        objective: Objective,
        trials: int | None = None,
        timeout: float | None = None,
        workers: int = 1,
        executor: str | Executor | dict[str, Any] | None = None,
        callbacks: Iterable[CallbackSpec] | Callbacks | None = (),
        max_failures: int | None = None,
        retries: int = 0,
        trial_timeout: float | None = None,
    ) -> None:
        """Runs trials until ``trials`` more have finished, ``timeout`` seconds have passed, or
        the strategy is exhausted.

        A trial that raises, returns NaN or infinity, runs past ``trial_timeout`` or loses its
        worker process is recorded FAILED with the reason and the loop goes on; a
        :class:`TrialPruned` records it PRUNED. A :class:`SpaceError` (a malformed space) stops
        the loop (the trial is recorded FAILED); so does ``KeyboardInterrupt``, leaving the
        trials that were running INTERRUPTED, to run again first on resume.

        Args:
            objective: ``objective(hp) -> float | dict``. For the ``"process"`` executor it is
                pickled to the workers: a module-level function or a picklable object.
            trials: how many trials this call runs (``None``: until timeout or exhaustion).
            timeout: seconds after which no new trial starts.
            workers: trials at once.
            executor: ``"inline"``, ``"process"``, ``"ray"``, ``{"name": ..., **kwargs}`` or a
                :class:`~torchnas.execution.Executor`; ``None``: inline for one worker, else
                process (see :mod:`torchnas.execution`).
            callbacks: called in this process, whatever the executor: functions
                ``cb(study, frozen_trial)`` after each trial; :class:`~torchnas.callbacks.Callback`
                objects also at the start and end of the search, as each trial starts and at
                each report; names (``"tensorboard"``, ``"mlflow"``, ``"wandb"``: experiment
                trackers) and ``{"name": ..., **settings}`` (see :mod:`torchnas.callbacks`).
                One that raises is disabled with a warning naming it; the search goes on.
                ``None``: none.
            max_failures: stop with :class:`TooManyFailures` after this many failures in a row.
            retries: a failed architecture is queued again (:meth:`enqueue`) until it has failed
                ``1 + retries`` times; each attempt is a trial of its own.
            trial_timeout: seconds a trial may run before its worker process is stopped and it
                is recorded FAILED (``"process"`` and ``"ray"`` executors).
        """
        if not callable(objective):
            raise ConfigError(f"objective must be a function of hp returning a float or a dict "
                              f"of metrics, got {type(objective).__name__}")
        runner = execution.resolve(executor, workers)
        calls = callbacks if isinstance(callbacks, Callbacks) else Callbacks(
            () if callbacks is None else callbacks)
        plan = Plan(trials=trials, timeout=timeout, callbacks=(calls.trial_end,),
                    max_failures=max_failures, retries=retries, trial_timeout=trial_timeout)
        plan.check()
        own = not calls.running  # a caller that started them ends them (ModelSearch.run)
        if own:
            calls.search_start(self)
        self._callbacks = calls
        try:
            runner.run(self, objective, plan)
        finally:
            self._callbacks = None
            if own:
                calls.search_end(self)

    # -- results --------------------------------------------------------------------------------
    @property
    def trials(self) -> list[FrozenTrial]:
        """Every trial, by number (synced with storage)."""
        self.sync()
        return [self._log.trials[n] for n in sorted(self._log.trials)]

    def ranked(self) -> list[FrozenTrial]:
        """The complete, feasible trials, best first (several objectives: by the first, then
        the next ones)."""
        done = [t for t in self.trials if t.state is TrialState.COMPLETE and t.feasible]
        return sorted(done, key=rank_key(self.objectives))

    @property
    def best_trial(self) -> FrozenTrial:
        """The best complete, feasible trial (single objective; see :meth:`pareto_front`)."""
        if len(self.objectives) > 1:
            raise ValueError("best_trial is for one objective; use pareto_front() for several")
        ranked = self.ranked()
        if not ranked:
            raise ValueError(f"study {self.name!r} has no complete feasible trial yet")
        return ranked[0]

    @property
    def settings(self) -> dict[str, Any] | None:
        """The settings stored when the study was created (``None``: none were given)."""
        stored = self.config.get("settings")
        return dict(stored) if isinstance(stored, dict) else None

    def top_trials(self, n: int = 1) -> list[FrozenTrial]:
        """The ``n`` best complete, feasible trials, best first (several objectives: the
        Pareto front first, in :meth:`pareto_front`'s order, then the other trials ranked)."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"n must be an integer >= 1, got {n!r}")
        ranked = self.ranked()
        if len(self.objectives) > 1:
            front = self.pareto_front()
            on_front = {t.number for t in front}
            ranked = front + [t for t in ranked if t.number not in on_front]
        return ranked[:n]

    def pareto_front(self) -> list[FrozenTrial]:
        """The non-dominated complete, feasible trials, best first objective first."""
        return pareto_front(self.ranked(), self.objectives)

    def predict(self, archs: Sequence[Mapping[str, Any]], metric: str | None = None,
                kind: str = "gp") -> tuple[Any, Any]:
        """Predicted mean and standard deviation of ``metric`` (default: the first objective)
        for architectures not trained, by a :class:`~torchnas.evaluation.Predictor` of ``kind``
        fitted on this study's complete trials (numpy arrays, one entry per architecture)."""
        from torchnas.evaluation._predictor import Predictor

        name = metric or next(iter(self.objectives))
        return Predictor(kind, metric=name, seed=self.seed).fit(self.trials).predict(archs)

    def hypervolume(self, reference: Mapping[str, float] | Sequence[float] | None = None
                    ) -> float:
        """The hypervolume of :meth:`pareto_front`: the objective space it dominates up to
        ``reference`` (see :func:`torchnas.hypervolume`; larger is better).

        Args:
            reference: ``{"objective": value}`` or values in the objectives' order: a point no
                better than the worst acceptable value of each. ``None``: just past the worst
                complete feasible trial in each objective, by 10% of the range
                (:func:`~torchnas.study._hypervolume.default_reference`), which moves as the study
                goes on: give one explicitly to compare studies or moments.
        """
        ranked = self.ranked()
        names, directions = list(self.objectives), list(self.objectives.values())
        if not ranked:
            return 0.0
        if reference is None:
            ref = default_reference([[t.value(n) for n in names] for t in ranked], directions)
        else:
            ref = ordered_reference(reference, names)
        front = [[t.value(n) for n in names] for t in self.pareto_front()]
        return hypervolume(front, ref, directions)

    def results_summary(self, top: int = 10) -> str:
        """A table of the best trials (Keras Tuner's ``results_summary``)."""
        head = f"Study {self.name!r}: {state_counts(self.trials)}"
        extra = [c for c in self.constraints if c not in self.objectives]
        if len(self.objectives) > 1 and self.ranked():  # several objectives: the front
            front = self.pareto_front()
            head += (f"\nPareto front: {len(front)} trials, hypervolume "
                     f"{self.hypervolume():.6g} (reference just past the worst trial)")
            return head + "\n" + leaderboard(front, self.objectives, extra, top=top)
        return head + "\n" + leaderboard(self.ranked(), self.objectives, extra, top=top)

    def space_summary(self, space: Callable[[HP], Any] | None = None) -> str:
        """Every label, its domain, the decision it depends on, and the size of the space.

        With ``space``, the function is explored; without, the recorded trials are used.
        """
        info: SpaceInfo
        if space is not None:
            info = explore(space)
        else:
            trials = [t for t in self.trials if t.arch]
            domains: dict[str, Domain] = {}
            for t in trials:
                for k, d in t.domains.items():
                    domains.setdefault(k, d)
            info = infer([t.arch for t in trials], domains)
        return info.summary()


def load_study(
    storage: str | os.PathLike[str] | Journal, name: str | None = None, *,
    read_only: bool = False, **kwargs: Any
) -> Study:
    """Opens an existing study (the only one in ``storage`` when ``name`` is omitted).

    ``read_only``: only to look at (an SQLite file is opened read-only: trials left running by
    a process that died are shown ``RUNNING``, not marked interrupted, and nothing can be
    recorded). Keyword arguments (``strategy``, ``scheduler``) are passed to :class:`Study`.
    """
    if isinstance(storage, (str, os.PathLike)) and os.fspath(storage) != ":memory:":
        path = os.fspath(storage).removeprefix("sqlite:///")
        if not os.path.exists(path):
            raise ValueError(f"no such storage file: {path}")
    journal = get_storage(storage, read_only=read_only)
    names = journal.study_names()
    if name is None:
        if len(names) != 1:
            raise ValueError(f"{storage}: name one of the studies {names}")
        name = names[0]
    if name not in names:
        raise ValueError(f"{storage}: no study named {name!r} (studies: {names})")
    return Study(name=name, storage=journal, **kwargs)
