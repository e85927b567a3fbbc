"""Helpers shared by the benchmarks: strategy lists, Optuna samplers, statistics, tables.

Not a benchmark itself; each ``benchmarks/NAME.py`` imports it (the scripts' folder is first on
``sys.path`` when they run as ``python benchmarks/NAME.py``).
"""

from __future__ import annotations

import json
import logging
import math
import os
import statistics
from collections.abc import Callable, Sequence
from typing import Any

import torchnas as tn

#: Optuna's samplers every benchmark runs beside torchnas, by the name its tables show.
OPTUNA_SAMPLERS = ("optuna:tpe", "optuna:random")


def quiet() -> None:
    """Silences per-trial logging (failed trials, Optuna's INFO lines)."""
    logging.getLogger("torchnas").setLevel(logging.ERROR)
    try:
        import optuna
    except ImportError:
        return
    optuna.logging.set_verbosity(optuna.logging.ERROR)


def split_items(text: str) -> list[str]:
    """A comma list whose items may hold commas in parentheses: ``darts(a=1,b=2),spos``."""
    items, depth, item = [], 0, ""
    for ch in text + ",":
        depth += {"(": 1, ")": -1}.get(ch, 0)
        if ch == "," and depth == 0:
            items += [item.strip()] if item.strip() else []
            item = ""
        else:
            item += ch
    return items


def strategy_names(requested: str | None, exclude: Sequence[str] = ("grid",)) -> list[str]:
    """The torchnas strategies to run: a comma list, or every registered one but ``exclude``.

    An item may carry constructor arguments, ``tpe(multivariate=true, startup=20)`` (see
    :func:`strategy_spec`). ``"auto"`` comes first (it is what users get); unknown names fail
    naming the registered ones.
    """
    known = tn.strategies.available()
    if requested:
        names = split_items(requested)
        bad = [n for n in names if n.partition("(")[0] not in known]
        if bad:
            raise SystemExit(f"unknown strategies {bad}; registered: {', '.join(known)}")
        return names
    names = [n for n in known if n not in exclude]
    return sorted(names, key=lambda n: (n != "auto", n))


def strategy_spec(item: str) -> str | dict[str, Any]:
    """What ``tn.Study(strategy=...)`` takes for ``name`` or ``name(key=value, ...)``.

    Values are read as JSON (``true``, ``3``, ``0.5``, ``"x"``), else kept as strings.
    """
    name, _, rest = item.partition("(")
    if not rest:
        return name
    if not rest.endswith(")"):
        raise SystemExit(f"strategy {item!r}: expected name(key=value, ...)")
    kwargs: dict[str, Any] = {}
    for pair in filter(None, (p.strip() for p in rest[:-1].split(","))):
        key, eq, text = pair.partition("=")
        if not eq:
            raise SystemExit(f"strategy {item!r}: {pair!r} is not key=value")
        try:
            kwargs[key.strip()] = json.loads(text)
        except ValueError:
            kwargs[key.strip()] = text.strip()
    return {"name": name, **kwargs}


def auto_means() -> str:
    """What ``"auto"`` resolves to today (the strategy's registered name)."""
    return tn.strategies.create("auto").name or "?"


def optuna_sampler(name: str, seed: int) -> Any:
    """``optuna:tpe`` (TPESampler with its defaults) or ``optuna:random``, seeded."""
    import optuna

    if name == "optuna:tpe":
        return optuna.samplers.TPESampler(seed=seed)
    if name == "optuna:random":
        return optuna.samplers.RandomSampler(seed=seed)
    raise ValueError(f"unknown Optuna sampler {name!r}; known: {OPTUNA_SAMPLERS}")


def distinct_archs(space: Any, n: int, seed: int) -> list[dict[str, Any]]:
    """``n`` distinct architectures drawn by the random strategy of a study."""
    study = tn.Study(strategy="random", seed=seed, objectives={"v": "max"})
    archs: dict[str, dict[str, Any]] = {}
    while len(archs) < n:
        trial = study.ask()
        space(trial.hp)
        archs.setdefault(tn.arch_key(trial.arch), trial.arch)
        study.tell(trial, 0.0)
    return list(archs.values())


def mean_se(values: Sequence[float]) -> tuple[float, float]:
    """Mean and standard error of the mean (0 for fewer than two values)."""
    if not values:
        return math.nan, math.nan
    if len(values) < 2:
        return float(values[0]), 0.0
    return statistics.fmean(values), statistics.stdev(values) / math.sqrt(len(values))


def fmt_mean_se(values: Sequence[float], digits: int = 2) -> str:
    """``mean ± se`` (just the mean for one value)."""
    m, se = mean_se(values)
    return f"{m:.{digits}f}" if len(values) < 2 else f"{m:.{digits}f} ± {se:.{digits}f}"


def ratio(value: float, reference: float, digits: int = 2) -> str:
    """``value / reference`` as text, ``-`` when undefined."""
    if not (math.isfinite(value) and math.isfinite(reference)) or reference == 0:
        return "-"
    return f"{value / reference:.{digits}f}"


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Columns separated by two spaces; the first left-aligned, the others right-aligned."""
    cells = [list(header), *[list(r) for r in rows]]
    widths = [max(len(r[c]) for r in cells) for c in range(len(header))]

    def line(r: Sequence[str]) -> str:
        return "  ".join(v.ljust(w) if i == 0 else v.rjust(w)
                         for i, (v, w) in enumerate(zip(r, widths, strict=True)))

    return "\n".join([line(cells[0]), "  ".join("-" * w for w in widths),
                      *(line(r) for r in cells[1:])])


def machine_note() -> str:
    """CPU count and load average, to read timings against (the machine may be shared)."""
    load = os.getloadavg() if hasattr(os, "getloadavg") else (math.nan,) * 3
    return (f"{os.cpu_count()} CPUs, load average {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f} "
            "(1/5/15 min)")


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    """``(fn(), seconds)`` by ``time.perf_counter``."""
    import time

    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def write_result(args: Any, result: dict[str, Any]) -> dict[str, Any]:
    """Writes ``result`` (with the run's settings, ``vars(args)``, under ``settings``) as JSON
    to ``args.out`` and says where; returns it."""
    result = {"settings": {k: str(v) if isinstance(v, os.PathLike) else v
                           for k, v in vars(args).items()}, **result}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"written to {args.out}")
    return result
