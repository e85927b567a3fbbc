"""Every argument of :class:`~torchnas.Study` and :class:`~torchnas.ModelSearch` is checked
before storage is touched: a bad one is a :class:`~torchnas.ConfigError` naming it, from the
constructor, from ``ModelSearch.check()`` and from ``torchnas space`` (issue 15, item 11).
A seeded fuzz loop holds every outcome to success or a torchnas error."""

from __future__ import annotations

import contextlib
import io
import math
import random
from collections import Counter
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from torch import nn

import torchnas as tn
from torchnas._util.errors import ConfigError, TorchnasError
from torchnas.cli import main

NAN, INF = math.nan, math.inf


def _space(hp: tn.HP) -> nn.Module:
    units = hp.choice("units", [2, 3])
    return nn.Sequential(nn.Linear(4, units), nn.Linear(units, 2))


def _data() -> tn.data.Data:
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(16, 4, generator=gen), torch.arange(16) % 2
    return tn.data.from_tensors((x[:12], y[:12]), (x[12:], y[12:]))


DATA = _data()

#: (argument, bad value, what the message must name): for Study and ModelSearch alike.
BAD: list[tuple[str, Any, str]] = [
    ("name", None, "name"), ("name", "", "name"), ("name", "   ", "name"), ("name", 5, "name"),
    ("name", b"x", "name"),
    ("storage", 5, "storage"), ("storage", b"x.db", "storage"), ("storage", 1.5, "storage"),
    ("storage", [], "storage"), ("storage", "", "storage"), ("storage", "ftp://x", "storage"),
    ("seed", NAN, "seed"), ("seed", 1.5, "seed"), ("seed", "0", "seed"), ("seed", True, "seed"),
    ("seed", INF, "seed"),
    ("constraints", "x", "constraint"), ("constraints", [], "constraint"),
    ("constraints", {"params": ("<=", NAN)}, "constraint 'params'"),
    ("constraints", {"params": "<= nan"}, "constraint 'params'"),
    ("constraints", {"params": ("<=", INF)}, "constraint 'params'"),
    ("constraints", {"params": ("<=", True)}, "constraint 'params'"),
    ("constraints", {5: ("<=", 1)}, "constraint"),
    ("objectives", [], "objective"), ("objectives", {}, "objective"),
    ("objectives", "", "objective"), ("objectives", [5], "objective"),
    ("objectives", b"val_loss", "objective"), ("objectives", 5, "objective"),
    ("scheduler", "nope", "scheduler"), ("scheduler", 5, "scheduler"),
]
#: ModelSearch only.
BAD_SEARCH: list[tuple[str, Any, str]] = [
    ("redraws", "3", "redraws"), ("redraws", -1, "redraws"), ("redraws", 1.5, "redraws"),
    ("redraws", True, "redraws"), ("redraws", None, "redraws"),
    ("space_kwargs", [], "space_kwargs"), ("space_kwargs", "x", "space_kwargs"),
    ("space_kwargs", {5: 1}, "space_kwargs"),
    ("trial_timeout", 5, "trial_timeout"),  # the inline executor cannot stop a trial
]
SEARCH_CASES = [c for c in BAD if c[:2] != ("name", None)] + BAD_SEARCH  # None: the default


def _id(case: tuple[str, Any, str]) -> str:
    return f"{case[0]}={case[1]!r}"


@pytest.mark.parametrize("case", BAD, ids=_id)
def test_study_refuses_naming_the_argument(case: tuple[str, Any, str], tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    key, value, named = case
    monkeypatch.chdir(tmp_path)
    kwargs: dict[str, Any] = {"storage": str(tmp_path / "s.db"), key: value}
    with pytest.raises(ConfigError, match=f"(?i){named}"):
        tn.Study(**kwargs)
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no storage file


def _search(**kwargs: Any) -> tn.ModelSearch:
    return tn.ModelSearch(space=_space, data=DATA, trainer=tn.Trainer(epochs=1), trials=1,
                          progress=False, **kwargs)


@pytest.mark.parametrize("case", SEARCH_CASES, ids=_id)
def test_model_search_check_refuses_naming_the_argument(
        case: tuple[str, Any, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key, value, named = case
    monkeypatch.chdir(tmp_path)
    kwargs: dict[str, Any] = {"storage": str(tmp_path / "s.db"), key: value}
    with pytest.raises(ConfigError, match=f"(?i){named}"):
        _search(**kwargs).check()
    assert sorted(p.name for p in tmp_path.iterdir()) == []


#: The same cases as YAML values of ``torchnas space`` (those YAML can write).
CLI_CASES = [c for c in SEARCH_CASES if not isinstance(c[1], bytes)]


@pytest.mark.parametrize("case", CLI_CASES, ids=_id)
def test_torchnas_space_exits_2_naming_the_argument(case: tuple[str, Any, str],
                                                    tmp_path: Path) -> None:
    key, value, named = case
    db = tmp_path / "never.db"
    config = {"space": "mlp", "data": "digits", "storage": str(db),
              "trainer": {"epochs": 1}, key: list(value) if isinstance(value, tuple) else value}
    if key == "constraints" and isinstance(value, dict):
        config[key] = {k: list(v) if isinstance(v, tuple) else v for k, v in value.items()}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config))
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["space", str(path)])
    text = err.getvalue()
    assert code == 2, (out.getvalue(), text)
    assert text.startswith("torchnas: error: ") and text.count("\n") == 1, text
    assert named.lower() in text.lower() and "Traceback" not in text
    assert not db.exists()


def test_optimize_callbacks_none_means_no_callbacks() -> None:
    study = tn.Study(strategy="random")
    study.optimize(lambda hp: hp.choice("x", [1, 2]), trials=2, callbacks=None)
    assert len(study.trials) == 2


@pytest.mark.parametrize("value", [5, "x"])
def test_optimize_bad_callbacks_name_them(value: Any) -> None:
    with pytest.raises(ConfigError, match="callback"):
        tn.Study().optimize(lambda hp: 1.0, trials=1, callbacks=value)


@pytest.mark.parametrize(("key", "value"), [
    ("seed", -1), ("seed", 2**40), ("name", "a b"), ("constraints", {}),
    ("constraints", {"params": "<= 1e6"}), ("constraints", {"params": ["<=", "5"]}),
])
def test_neighbours_that_are_fine(key: str, value: Any) -> None:
    study = tn.Study(**{key: value})
    assert study.name


# -- fuzz ----------------------------------------------------------------------------------------
_POOL: list[Any] = [None, True, False, 0, 1, -1, 3, 1.5, -2.5, NAN, INF, -INF, "", " ", "x",
                    "0", "3", "study", "val_loss", "ftp://x", b"x.db", [], [1], ["x"], ("x",),
                    {}, {"x": 1}, {5: 1}, object(), 2**70, -0.0, "nan", ["val_loss"],
                    {"val_loss": "min"}, {"val_loss": "up"}, "sqlite:///", ":memory:"]
_OPS = ["<=", "<", ">=", ">", "==", "=", "!"]


def _rule(rng: random.Random) -> Any:
    bound = rng.choice([1, 1.5, NAN, INF, "5", "x", None, True, [], -3])
    op = rng.choice(_OPS)
    return rng.choice([(op, bound), [op, bound], f"{op} {bound}", bound, op, (op,)])


def _value(key: str, rng: random.Random) -> Any:
    if key == "constraints" and rng.random() < 0.6:
        return {rng.choice(["params", "val_loss", 5, ""]): _rule(rng)
                for _ in range(rng.randint(1, 2))}
    if rng.random() < 0.3:
        return rng.choice([rng.randint(-10**6, 10**6), rng.uniform(-1e3, 1e3),
                           "".join(rng.choice("ab :/_0") for _ in range(rng.randint(0, 6)))])
    return rng.choice(_POOL)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _name_ok(v: Any) -> bool:
    return isinstance(v, str) and bool(v.strip())


def _storage_ok(v: Any) -> bool | None:
    if v is None or v == ":memory:":
        return True
    if isinstance(v, str) and v and "://" not in v:
        return None  # a path: fine or an OS error turned into a torchnas one
    return False


def _constraints_ok(v: Any) -> bool | None:
    if v is None or v == {}:
        return True
    if not isinstance(v, Mapping):
        return False
    for name, rule in v.items():
        if not _name_ok(name):
            return False
        if isinstance(rule, str):
            rule = rule.split(maxsplit=1)
        if not isinstance(rule, (list, tuple)) or len(rule) != 2 or rule[0] not in _OPS[:5]:
            return False
        try:
            ok = not isinstance(rule[1], bool) and math.isfinite(float(rule[1]))
        except (TypeError, ValueError):
            return False
        if not ok:
            return False
    return True


def _objectives_ok(v: Any) -> bool | None:
    if v is None:
        return True
    if isinstance(v, str):
        return None if v.strip() else False  # the direction may not be inferable
    if isinstance(v, (Mapping, list, tuple)):
        return None if v and all(_name_ok(n) for n in v) else False
    return False


#: argument: whether a value is valid (None: either outcome, but a torchnas error if any).
ORACLES: dict[str, Callable[[Any], bool | None]] = {
    "name": _name_ok,
    "storage": _storage_ok,
    "seed": lambda v: v is None or _is_int(v),
    "constraints": _constraints_ok,
    "objectives": _objectives_ok,
    "scheduler": lambda v: True if v is None else None if isinstance(v, (str, dict)) else False,
}
SEARCH_ORACLES: dict[str, Callable[[Any], bool | None]] = {
    **ORACLES,
    "name": lambda v: v is None or _name_ok(v),
    "seed": _is_int,
    "redraws": lambda v: _is_int(v) and v >= 0,
    "space_kwargs": lambda v: v is None or v == {} or (
        None if isinstance(v, Mapping) and all(isinstance(k, str) for k in v) else False),
}


def _checked(**kwargs: Any) -> None:
    _search(**kwargs).check()


def fuzz(count: int, search_count: int, seed: int = 0) -> Counter[str]:
    """Outcomes of ``count`` random values of each argument of ``Study`` and ``search_count``
    of each of ``ModelSearch(...).check()``: ``raw`` (another exception), ``silent`` (an
    invalid value accepted), ``clear`` (a torchnas error for an invalid value), ``ok`` (a
    valid value accepted) and ``refused`` (a valid value refused). Run it in a temporary
    folder: path-like values become files there."""
    rng = random.Random(seed)
    counts: Counter[str] = Counter()

    def outcome(valid: bool | None, call: Callable[..., Any], **kwargs: Any) -> str:
        try:
            call(**kwargs)
        except TorchnasError:
            return "refused" if valid else "clear"
        except Exception:
            return "raw"
        return "silent" if valid is False else "ok"

    for key, oracle in ORACLES.items():
        for _ in range(count):
            value = _value(key, rng)
            counts[outcome(oracle(value), tn.Study, **{key: value})] += 1
    counts["raw"] += outcome(False, lambda: tn.Study().optimize(lambda hp: 1.0, trials=0,
                                                                callbacks=None)) == "raw"
    for key, oracle in SEARCH_ORACLES.items():
        for _ in range(search_count):
            value = _value(key, rng)
            valid = oracle(value)
            if key == "name" and valid is None:
                valid = True
            counts[outcome(valid, _checked, **{key: value})] += 1
    return counts


def test_fuzz_every_outcome_is_success_or_a_torchnas_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    counts = fuzz(200, 25, seed=1)
    assert counts["raw"] == 0 and counts["silent"] == 0 and counts["refused"] == 0, counts
    assert counts["clear"] > 100 and counts["ok"] > 50, counts


if __name__ == "__main__":  # the counts: python tests/test_inputs.py (in a scratch folder)
    import os
    import tempfile

    os.chdir(tempfile.mkdtemp())
    print(dict(fuzz(200, 25, seed=1)))
