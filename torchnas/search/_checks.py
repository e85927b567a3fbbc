"""What :class:`~torchnas.ModelSearch` checks before (and as) a search starts: its settings
(before storage is touched), that models of the space run on the data (one per branch: every
value of every decision is met), that objectives and constraints name metrics the trials
report, and that a reopened study was searched with this same space."""

from __future__ import annotations

import difflib
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
from torchnas._util.errors import ConfigError, SpaceError
from torchnas.evaluation import COST_METRICS, PROXIES, Trainer
from torchnas.search._export import check_path
from torchnas.search._options import CostSettings, Fidelity, WarmStart
from torchnas.space import HP, Coverage, Domain, FixedSource, SpaceInfo, sweep
from torchnas.space._cover import MAX_RUNS
from torchnas.strategies import resolve as resolve_strategy
from torchnas.study import Study
from torchnas.study._objectives import parse_constraints, parse_objectives

__all__ = ["DEFAULT_OBJECTIVES", "check_metric_names", "check_settings", "first_arch",
           "probe_model", "warn_if_another_space"]

log = logging.getLogger("torchnas")

#: The objectives of a search that names none.
DEFAULT_OBJECTIVES = {"val_accuracy": "max"}


def check_settings(params: Mapping[str, Any], trainer: Trainer) -> None:
    """The settings of a search (``ModelSearch.get_params()``), checked before storage is
    touched: the strategy (or one-shot method), the executor, the seed, the counts, the plan,
    the export path, the objectives and constraints (each a metric ``trainer`` or the built
    model reports), ``cost``, ``warm_start`` and ``fidelity``.

    Raises:
        ConfigError: naming the first bad setting.
    """
    strategy = params["strategy"]
    if oneshot.is_method(strategy):
        oneshot.resolve(strategy)
    else:
        resolve_strategy(strategy)
    execution.resolve(params["executor"], params["workers"])
    seed = params["seed"]
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ConfigError(f"seed must be an integer, got {seed!r}")
    for key, low in (("keep_models", 0), ("executions_per_trial", 1), ("retrain_attempts", 1)):
        check_int("ModelSearch", key, params[key], low)
    check_bool("ModelSearch", "override_settings", params["override_settings"])
    execution.Plan(trials=params["trials"], timeout=params["timeout"],
                   max_failures=params["max_failures"], retries=params["retries"],
                   trial_timeout=params["trial_timeout"]).check()
    if params["export_to"] is not None:
        check_path(params["export_to"])
    names = [*parse_objectives(params["objectives"] or DEFAULT_OBJECTIVES),
             *parse_constraints(params["constraints"])]
    CostSettings.parse(params["cost"])
    WarmStart.parse(params["warm_start"])
    Fidelity.parse(params["fidelity"])
    known = [*trainer.METRICS, *(m for m in COST_METRICS if m not in trainer.METRICS), *PROXIES]
    check_metric_names(names, known)


def first_arch(info: SpaceInfo) -> dict[str, Any]:
    """Defaults for every label."""
    return {label: i.domain.default for label, i in info.labels.items()}


@dataclass(frozen=True)
class _Failure:
    """How a model of the space failed: ``build`` (the space function raised), ``module`` (it
    returned no module), ``forward`` (the model raised on the batch) or ``shape`` (its
    output is not ``(batch, num_classes)`` logits)."""

    kind: str
    error: Exception | None = None
    what: str = ""  # the returned type's name, or the output's shape

    def same(self, other: _Failure | None) -> bool:
        return (other is not None and other.kind == self.kind
                and type(other.error) is type(self.error))


def _try_model(make: Callable[[], Any], x: torch.Tensor, classes: int) -> _Failure | None:
    """Builds a model with ``make`` and runs it on ``x``; ``None`` when it gives logits."""
    try:
        model = make()
    except SpaceError:
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
    if not isinstance(out, torch.Tensor):
        return _Failure("shape", what=type(out).__name__)
    if out.ndim != 2 or out.shape[1] != classes:
        return _Failure("shape", what=str(tuple(out.shape)))
    return None


def _differs(value: Any, domain: Domain) -> bool:
    return json.dumps(value, sort_keys=True) != json.dumps(domain.default, sort_keys=True)


def _culprits(space_fn: Callable[..., Any], arch: Mapping[str, Any],
              domains: Mapping[str, Domain], failure: _Failure, x: torch.Tensor,
              classes: int) -> dict[str, Any]:
    """The decisions off their default that the failure needs: each is set back to its
    default in turn, and stays there when the model still fails the same way."""
    current, doms = dict(arch), dict(domains)
    for label in arch:
        if label not in current or not _differs(current[label], doms[label]):
            continue
        hp = HP(FixedSource({**current, label: doms[label].default}, missing="default"))
        try:
            again = _try_model(functools.partial(space_fn, hp), x, classes)
        except SpaceError:
            continue
        if failure.same(again):
            current, doms = hp.arch, hp.domains
    return {label: v for label, v in current.items() if _differs(v, doms[label])}


def _describe(failure: _Failure, arch: Mapping[str, Any], culprits: Mapping[str, Any],
              x: torch.Tensor, bundle: tn_data.Data) -> SpaceError:
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
                          f"{bundle.name!r} needs (batch, {bundle.num_classes}) logits")
    return SpaceError(
        f"a model of the space fails on a batch of {bundle.name!r} shaped {tuple(x.shape)} "
        f"({x.dtype}){where} {decisions}: {cause}"
        + ("" if x.is_floating_point() else
           "; the inputs are not floats: convert them, e.g. x.float() / 255"))


def probe_model(space_fn: Callable[..., Any], info: SpaceInfo, bundle: tn_data.Data, *,
                max_models: int = MAX_RUNS) -> Coverage:
    """Builds models of the space until every value of every decision was met, conditional
    decisions included, and runs each (eval mode, no gradients) on two training samples.

    The architectures are a covering (:func:`~torchnas.space.sweep`): each label takes each of
    its cover values (every choice, op and input; a range's ends and middle) in some model.
    What they met is kept as ``info.coverage``; values still not met after ``max_models``
    models are named in a logged warning.

    Returns:
        The coverage (also ``info.coverage``).

    Raises:
        SpaceError: when the space returns no module, a model fails on the batch (its shape
            and type named), or its output is not ``(batch, num_classes)`` logits; the message
            names the decisions off their default that the failure needs (``with
            kernel_size=5``), the model's decisions and the exception.
    """
    x = torch.stack([torch.as_tensor(bundle.train[i][0])
                     for i in range(min(2, len(bundle.train)))])  # type: ignore[arg-type]
    classes = bundle.num_classes

    def run(hp: HP) -> None:
        failure = _try_model(lambda: space_fn(hp), x, classes)
        if failure is not None:
            culprits = _culprits(space_fn, hp.arch, hp.domains, failure, x, classes)
            raise _describe(failure, hp.arch, culprits, x, bundle) from failure.error

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
            near = difflib.get_close_matches(name, known, n=2)
            hint = f"; did you mean {' or '.join(map(repr, near))}?" if near else ""
            raise ConfigError(f"{name!r} is not a metric of the trials{hint} "
                              f"(they report: {', '.join(known)})")


def warn_if_another_space(study: Study, info: SpaceInfo) -> None:
    """Warns when a reopened study's trials were recorded from another space: a label with
    another domain, or one this space never meets (e.g. the build function was edited and
    the study's name, which defaults to space and data, stayed the same)."""
    changed: dict[str, tuple[str, str]] = {}
    unknown: set[str] = set()
    for trial in study.trials:
        for label, domain in trial.domains.items():
            now = info.labels.get(label)
            if now is None:
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
