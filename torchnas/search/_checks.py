"""What :class:`~torchnas.ModelSearch` checks before (and as) a search starts: its settings
(before storage is touched), that models of the space run on the data (one per branch: every
value of every decision is met), that objectives and constraints name metrics the trials
report, and that a reopened study was searched with this same space."""

from __future__ import annotations

import functools
import json
import logging
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from torchnas import data as tn_data
from torchnas import execution, oneshot
from torchnas._util.checks import check_bool, check_int
from torchnas._util.errors import ConfigError, DataError, SpaceError, did_you_mean
from torchnas.evaluation import COST_METRICS, PROXIES, Trainer
from torchnas.evaluation._tasks import ClassificationTask, Task
from torchnas.evaluation._tokens import check_data_tokens
from torchnas.schedulers import resolve as resolve_scheduler
from torchnas.search._export import check_path
from torchnas.search._options import CostSettings, Fidelity, WarmStart
from torchnas.search._train_fn import check_train_fn, function_name, resolve_train_fn
from torchnas.space import HP, Coverage, Domain, FixedSource, SpaceInfo, sweep
from torchnas.space._cover import MAX_RUNS
from torchnas.strategies import available as list_strategies
from torchnas.strategies import resolve as resolve_strategy
from torchnas.study import Study
from torchnas.study._objectives import parse_constraints, parse_objectives
from torchnas.study._study import check_study_args

__all__ = ["DEFAULT_OBJECTIVES", "check_metric_names", "check_settings", "first_arch",
           "probe_model", "warn_if_another_space"]

log = logging.getLogger("torchnas")

#: The objectives of a search that names none.
DEFAULT_OBJECTIVES = {"val_accuracy": "max"}


def check_settings(params: Mapping[str, Any], trainer: Trainer) -> None:
    """The settings of a search (``ModelSearch.get_params()``), checked before storage is
    touched: the strategy (or one-shot method), the executor, the seed, the study's name and
    storage, the scheduler, the counts (``redraws`` among them), ``space_kwargs``, the plan
    (``trial_timeout`` needs an executor with worker processes), the export path, the
    objectives and constraints (each a metric ``trainer`` or the built
    model reports; any name with a ``train_fn``, which must return it), ``cost``,
    ``warm_start``, ``fidelity`` and ``train_fn`` (a function of four arguments, picklable for
    the process and Ray executors, given without ``trainer`` and not with a one-shot method).

    Raises:
        ConfigError: naming the first bad setting.
    """
    strategy = params["strategy"]
    if oneshot.is_method(strategy):
        oneshot.resolve(strategy)
    else:
        resolve_strategy(strategy)
    executor = execution.resolve(params["executor"], params["workers"])
    train_fn = resolve_train_fn(params.get("train_fn"))
    if train_fn is not None:
        check_train_fn(train_fn, executor.name)
        if params["trainer"] is not None:
            raise ConfigError(
                f"trainer and train_fn are both given: the trials train in train_fn "
                f"{function_name(train_fn)}, so the trainer's settings would be ignored; "
                f"remove one (in YAML, the trainer: key)")
        if oneshot.is_method(strategy):
            raise ConfigError(f"strategy {strategy!r} is a one-shot method, which trains its "
                              f"supernet with the trainer: train_fn needs a strategy that "
                              f"trains each trial ({', '.join(list_strategies()[:4])}, ...)")
    seed = params["seed"]
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ConfigError(f"seed must be an integer, got {seed!r}")
    objectives = (params["objectives"] if params["objectives"] is not None
                  else trainer.default_objectives())
    check_study_args(name="search" if params["name"] is None else params["name"],
                     storage=params["storage"], objectives=objectives,
                     constraints=params["constraints"], seed=seed)
    if params["scheduler"] is not None:
        resolve_scheduler(params["scheduler"])
    for key, low in (("keep_models", 0), ("executions_per_trial", 1), ("retrain_attempts", 1),
                     ("redraws", 0)):
        check_int("ModelSearch", key, params[key], low)
    space_kwargs = params["space_kwargs"]
    if space_kwargs is not None and not (isinstance(space_kwargs, Mapping) and all(
            isinstance(k, str) for k in space_kwargs)):
        raise ConfigError(f"space_kwargs must be a mapping of argument names to values or "
                          f"None, got {space_kwargs!r}")
    check_bool("ModelSearch", "override_settings", params["override_settings"])
    execution.Plan(trials=params["trials"], timeout=params["timeout"],
                   max_failures=params["max_failures"], retries=params["retries"],
                   trial_timeout=params["trial_timeout"]).check()
    if params["trial_timeout"] is not None and executor.name == "inline":
        raise ConfigError("trial_timeout stops a trial's process, which the inline executor "
                          "(one worker, no executor given) has not: use executor='process' "
                          "or 'ray'")
    if params["export_to"] is not None:
        check_path(params["export_to"])
    names = [*parse_objectives(objectives), *parse_constraints(params["constraints"])]
    CostSettings.parse(params["cost"])
    WarmStart.parse(params["warm_start"])
    Fidelity.parse(params["fidelity"])
    if train_fn is None:  # train_fn returns what it likes: checked at the first trial
        reported = trainer.metric_names()  # the task's
        known = [*reported, *(m for m in COST_METRICS if m not in reported), *PROXIES]
        check_metric_names(names, known)


def first_arch(info: SpaceInfo) -> dict[str, Any]:
    """Defaults for every label."""
    return {label: i.domain.default for label, i in info.labels.items()}


@dataclass(frozen=True)
class _Failure:
    """How a model of the space failed: ``build`` (the space function raised), ``module`` (it
    returned no module), ``forward`` (the model raised on the batch) or ``shape`` (its
    output is not what the task needs, e.g. ``(batch, num_classes)`` logits)."""

    kind: str
    error: Exception | None = None
    what: str = ""  # the returned type's name, or the output's shape

    def same(self, other: _Failure | None) -> bool:
        return (other is not None and other.kind == self.kind
                and type(other.error) is type(self.error))


def _try_model(make: Callable[[], Any], x: torch.Tensor,
               fits: Callable[[torch.Tensor], bool] | None) -> _Failure | None:
    """Builds a model with ``make`` and runs it on ``x``; ``None`` when its output ``fits``
    (anything, when ``fits`` is ``None``)."""
    try:
        model = make()
    except (SpaceError, DataError):
        raise
    except Exception as exc:
        return _Failure("build", exc)
    if not isinstance(model, nn.Module):
        return _Failure("module", what=type(model).__name__)
    try:
        with torch.no_grad():
            out = model.eval()(x)
    except Exception as exc:
        return _Failure("forward", exc)
    if fits is None:
        return None
    if not isinstance(out, torch.Tensor):
        return _Failure("shape", what=type(out).__name__)
    if not fits(out):
        return _Failure("shape", what=str(tuple(out.shape)))
    return None


def _differs(value: Any, domain: Domain) -> bool:
    return json.dumps(value, sort_keys=True) != json.dumps(domain.default, sort_keys=True)


def _culprits(space_fn: Callable[..., Any], arch: Mapping[str, Any],
              domains: Mapping[str, Domain], failure: _Failure, x: torch.Tensor,
              fits: Callable[[torch.Tensor], bool] | None) -> dict[str, Any]:
    """The decisions off their default that the failure needs: each is set back to its
    default in turn, and stays there when the model still fails the same way."""
    current, doms = dict(arch), dict(domains)
    for label in arch:
        if label not in current or not _differs(current[label], doms[label]):
            continue
        hp = HP(FixedSource({**current, label: doms[label].default}, missing="default"))
        try:
            again = _try_model(functools.partial(space_fn, hp), x, fits)
        except SpaceError:
            continue
        if failure.same(again):
            current, doms = hp.arch, hp.domains
    return {label: v for label, v in current.items() if _differs(v, doms[label])}


def _describe(failure: _Failure, arch: Mapping[str, Any], culprits: Mapping[str, Any],
              x: torch.Tensor, bundle: tn_data.Data, task: Task) -> SpaceError:
    """The error naming the failing architecture, the values that break it, and the cause."""
    where = "".join([" with ", ", ".join(f"{k}={v!r}" for k, v in culprits.items())]
                    ) if culprits else ""
    decisions = f"(decisions {dict(arch)})"
    exc = failure.error
    cause = f"{type(exc).__name__}: {exc}"
    if failure.kind == "build":
        return SpaceError(f"the space function raised {cause}{where} {decisions}")
    if failure.kind == "module":
        return SpaceError(f"the space function returned {failure.what}, not an nn.Module"
                          f"{where} {decisions}")
    if failure.kind == "shape":
        return SpaceError(f"the space's models output {failure.what}{where} {decisions}; "
                          f"{bundle.name!r} needs {task.expected_output(bundle)}")
    return SpaceError(
        f"a model of the space fails on a batch of {bundle.name!r} shaped {tuple(x.shape)} "
        f"({x.dtype}){where} {decisions}: {cause}"
        + ("" if x.is_floating_point() else
           "; the inputs are not floats: convert them, e.g. x.float() / 255"))


def probe_model(space_fn: Callable[..., Any], info: SpaceInfo, bundle: tn_data.Data, *,
                max_models: int = MAX_RUNS, check_output: bool = True,
                task: Task | None = None) -> Coverage:
    """Builds models of the space until every value of every decision was met, conditional
    decisions included, and runs each (eval mode, no gradients) on two training samples.

    The architectures are a covering (:func:`~torchnas.space.sweep`): each label takes each of
    its cover values (every choice, op and input; a range's ends and middle) in some model.
    What they met is kept as ``info.coverage``; values still not met after ``max_models``
    models are named in a logged warning. The output must be what ``task`` needs (default:
    classification's ``(batch, num_classes)`` logits); ``check_output=False`` (a search with
    a ``train_fn``, whose loop reads the output) accepts any output. Token ids of the data's
    tensor splits are checked against each model's input embedding.

    Returns:
        The coverage (also ``info.coverage``).

    Raises:
        SpaceError: when the space returns no module, a model fails on the batch (its shape
            and type named), or its output is not what the task needs; the message
            names the decisions off their default that the failure needs (``with
            kernel_size=5``), the model's decisions and the exception.
        DataError: when a token id of the data is outside a model's input embedding.
    """
    x = torch.stack([torch.as_tensor(bundle.train[i][0])
                     for i in range(min(2, len(bundle.train)))])  # type: ignore[arg-type]
    needs = task or ClassificationTask()
    fits = (lambda out: needs.fits(out, x, bundle)) if check_output else None

    def make(hp: HP) -> Any:
        model = space_fn(hp)
        if isinstance(model, nn.Module) and not x.is_floating_point():
            check_data_tokens(model, bundle)  # DataError: an id past the embedding
        return model

    def run(hp: HP) -> None:
        failure = _try_model(lambda: make(hp), x, fits)
        if failure is not None:
            culprits = _culprits(space_fn, hp.arch, hp.domains, failure, x, fits)
            raise _describe(failure, hp.arch, culprits, x, bundle, needs) from failure.error

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        coverage = sweep(run, info, max_runs=max_models)
    info.coverage = coverage
    if not coverage.complete:
        met, total = coverage.counts
        log.warning("check: the %d models built met %d of the %d values to cover; never met: "
                    "%s", coverage.runs, met, total, coverage.describe_missing())
    return coverage


def check_metric_names(names: Sequence[str], known: Sequence[str]) -> None:
    """Raises :class:`ConfigError` for an objective or constraint no trial reports, with the
    closest names."""
    for name in names:
        if name not in known:
            hint = did_you_mean(name, known, n=2)
            raise ConfigError(f"{name!r} is not a metric of the trials{hint} "
                              f"(they report: {', '.join(known)})")


def warn_if_another_space(study: Study, info: SpaceInfo, *, own_labels: bool = False) -> None:
    """Warns when a reopened study's trials were recorded from another space: a label with
    another domain, or one this space never meets (e.g. the build function was edited and
    the study's name, which defaults to space and data, stayed the same). ``own_labels``:
    labels the space never meets are expected (a ``train_fn`` decides them)."""
    changed: dict[str, tuple[str, str]] = {}
    unknown: set[str] = set()
    for trial in study.trials:
        for label, domain in trial.domains.items():
            now = info.labels.get(label)
            if now is None:
                if not own_labels:
                    unknown.add(label)
            elif now.domain != domain:
                changed.setdefault(label, (domain.describe(), now.domain.describe()))
    if not (changed or unknown):
        return
    parts = [f"{lb!r} was {old}, is {new}" for lb, (old, new) in sorted(changed.items())]
    if unknown:
        parts.append("labels this space never meets: " + ", ".join(map(repr, sorted(unknown))))
    message = (f"study {study.name!r} holds trials of another space ({'; '.join(parts)}); they "
               f"still count for the ranking and the strategy. Give a new name (or storage) "
               f"for a fresh study.")
    warnings.warn(message, UserWarning, stacklevel=3)
