"""What gives a search's trials their meaning (trainer or train_fn, data, space, fidelity:
stored with a new study, see :meth:`ModelObjective.settings
<torchnas.search._objective.ModelObjective.settings>`), how a reopened study's stored settings
are compared with a new run's, and the line a resumed search prints."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from torchnas._util.errors import ConfigError
from torchnas.study._trial import FrozenTrial, TrialState

if TYPE_CHECKING:
    from torchnas.study import Study

__all__ = ["MEANINGLESS_TRAINER_KEYS", "check_resumed_settings", "differences", "resume_line",
           "trial_settings"]

log = logging.getLogger("torchnas")

#: Trainer settings that change where or how fast a trial runs, not what it measures.
MEANINGLESS_TRAINER_KEYS = ("device", "threads", "num_workers")
#: Trainer settings added after studies were first stored, with the value every earlier study
#: had: stored only when they differ from it, so that a study made before them resumes.
ADDED_TRAINER_DEFAULTS: dict[str, Any] = {"task": "classification", "loss": None}


def trial_settings(*, trainer: Mapping[str, Any] | None, data: Mapping[str, Any], space: str,
                   space_kwargs: Mapping[str, Any] | None, fidelity: Mapping[str, Any],
                   executions_per_trial: int, train_fn: str | None = None) -> dict[str, Any]:
    """The settings stored with a new study, as JSON (values that are not JSON become their
    ``repr``). With a ``train_fn`` (its ``module:qualname``) the trainer is ``None``: a
    study resumed with another training function, or with the trainer, is caught."""
    settings = {
        "trainer": None if trainer is None else {
            k: v for k, v in trainer.items() if k not in MEANINGLESS_TRAINER_KEYS
            and not (k in ADDED_TRAINER_DEFAULTS and v == ADDED_TRAINER_DEFAULTS[k])},
        "train_fn": train_fn,
        "data": dict(data),
        "space": space,
        "space_kwargs": dict(space_kwargs or {}),
        "fidelity": dict(fidelity),
        "executions_per_trial": executions_per_trial,
    }
    loaded: dict[str, Any] = json.loads(json.dumps(settings, default=repr))
    return loaded


def check_resumed_settings(study: Study, settings: Mapping[str, Any], *, storage: Any = None,
                           override: bool = False) -> None:
    """Refuses to go on with a stored study (in ``storage``) whose trials meant something else
    than this run's ``settings`` (a :class:`ConfigError` naming each difference), unless
    ``override``."""
    stored = study.settings
    if stored is None:  # a study created before settings were stored, or by Study itself
        return
    changed = differences(stored, settings)
    if not changed:
        return
    listing = "; ".join(changed)
    if override:
        log.warning("study %r goes on with other settings than it was created with (%s): its "
                    "trials mix both", study.name, listing)
        return
    raise ConfigError(
        f"study {study.name!r} in {storage} was created with other settings: {listing}. "
        f"Its trials would mix both. Give another name (name=... or --set name=...) for a new "
        f"study, or override_settings=True (--set override_settings=true) to go on anyway")


def differences(stored: Mapping[str, Any], now: Mapping[str, Any], prefix: str = ""
                ) -> list[str]:
    """``"trainer.epochs: 3 -> 1"`` for every setting that differs (nested keys dotted, as
    the CLI's ``--set`` spells them). A key only one side has counts when the other side
    knows its section (settings added in a later version of torchnas are not differences)."""
    out: list[str] = []
    for key in sorted(set(stored) | set(now)):
        name = f"{prefix}{key}"
        if key not in stored or key not in now:
            if prefix:  # inside a section both sides have
                old = stored.get(key, "(not set)")
                out.append(f"{name}: {_show(old)} -> {_show(now.get(key, '(not set)'))}")
            continue
        a, b = stored[key], now[key]
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            out.extend(differences(a, b, prefix=f"{name}."))
        elif _norm(a) != _norm(b):
            out.append(f"{name}: {_show(a)} -> {_show(b)}")
    return out


def _norm(value: Any) -> Any:
    """Lists and tuples alike, ints and equal floats alike (YAML and Python spell them
    differently)."""
    if isinstance(value, (list, tuple)):
        return [_norm(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _show(value: Any) -> str:
    return value if isinstance(value, str) and value == "(not set)" else json.dumps(value)


def resume_line(name: str, trials: Sequence[FrozenTrial], total: int | None) -> str | None:
    """``"resuming 'x': 14 of 24 trials done, 1 interrupted runs first"``, ``"study 'x' is
    already complete: 24 of 24 trials done"``, or ``None`` for a new study."""
    if not trials:
        return None
    done = sum(t.state.finished for t in trials)
    waiting = sum(t.state is TrialState.INTERRUPTED for t in trials)
    of = "" if total is None else f" of {total}"
    if total is not None and done >= total:
        return f"study {name!r} is already complete: {done}{of} trials done"
    line = f"resuming {name!r}: {done}{of} trials done"
    if waiting:
        line += f", {waiting} interrupted {'runs' if waiting == 1 else 'run'} first"
    return line
