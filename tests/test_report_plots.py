"""Plots of a study (``tn.report.plot_*``) and ``torchnas plot``, on small real studies: a
cheap objective reporting learning curves to the median scheduler (some trials PRUNED), a
constraint (some infeasible) and NaN results (some FAILED)."""

from __future__ import annotations

import contextlib
import io
import itertools
import sys
from pathlib import Path
from typing import Any

import pytest

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

import torchnas as tn  # noqa: E402
from torchnas.cli import main  # noqa: E402

COMPLETE, PRUNED = tn.TrialState.COMPLETE, tn.TrialState.PRUNED


def objective(hp: tn.HP) -> dict[str, float]:
    """Accuracy grows with ``x`` over 4 steps; ``size`` is ``n``; ``n == 6`` fails (NaN)."""
    x, n = hp.float("x", 0.0, 1.0), hp.int("n", 1, 6)
    assert hp.trial is not None
    for step in range(1, 5):
        hp.trial.report(step, {"acc": x * step / 4, "loss": 1 - x * step / 4})
    acc = float("nan") if n == 6 else x
    return {"acc": acc, "loss": 1 - acc, "size": float(n)}


def make_study(storage: str | None = None, **kw: Any) -> tn.Study:
    study = tn.Study(name="plots", storage=storage, strategy="random", seed=0,
                     scheduler={"name": "median", "startup_trials": 3, "warmup_steps": 1},
                     constraints={"size": ("<=", 4)}, **kw)
    study.optimize(objective, trials=30)
    return study


@pytest.fixture(scope="module")
def single() -> tn.Study:
    return make_study(objectives={"loss": "min"})


@pytest.fixture(scope="module")
def double() -> tn.Study:
    return make_study(objectives={"acc": "max", "size": "min"})


@pytest.fixture(autouse=True)
def close_figures() -> Any:
    yield
    plt.close("all")


def by_label(ax: Any, label: str) -> Any:
    found = [c for c in [*ax.collections, *ax.get_lines()] if c.get_label() == label]
    assert len(found) == 1, [c.get_label() for c in [*ax.collections, *ax.get_lines()]]
    return found[0]


def points(artist: Any) -> set[tuple[float, float]]:
    return {(float(a), float(b)) for a, b in artist.get_offsets()}


def test_the_studies_have_every_kind_of_trial(single: tn.Study, double: tn.Study) -> None:
    for study in (single, double):
        states = [t.state for t in study.trials]
        assert {COMPLETE, PRUNED, tn.TrialState.FAILED} <= set(states)
        assert any(t.state is COMPLETE and not t.feasible for t in study.trials)


@pytest.mark.parametrize(("fixture", "metric"), [("single", None), ("double", "acc")])
def test_history(fixture: str, metric: str | None, request: pytest.FixtureRequest) -> None:
    study: tn.Study = request.getfixturevalue(fixture)
    name = metric or "loss"
    ax = tn.report.plot_history(study, metric)
    complete = [t for t in study.trials if t.state is COMPLETE]
    pruned = [t for t in study.trials if t.state is PRUNED]
    dots = by_label(ax, "complete")
    assert points(dots) == {(t.number, t.value(name)) for t in complete}
    assert len(dots.get_offsets()) == len(complete)  # failed trials are left out
    grey = [tuple(c) for c in dots.get_facecolors()].count(matplotlib.colors.to_rgba("0.7"))
    assert grey == sum(not t.feasible for t in complete) > 0
    assert points(by_label(ax, "pruned (last report)")) == {
        (t.number, t.intermediate[-1][1][name]) for t in pruned}
    best = by_label(ax, "best so far (feasible)").get_ydata()
    steps = [b - a for a, b in itertools.pairwise(best)]
    feasible = [t.value(name) for t in complete if t.feasible]
    if study.objectives.get(name, "max") == "max":
        assert all(s >= 0 for s in steps) and best[-1] == max(feasible)
    else:
        assert all(s <= 0 for s in steps) and best[-1] == min(feasible)
    assert ax.get_xlabel() == "trial" and ax.get_ylabel() == name
    assert ax.get_legend() is not None


def test_history_of_an_unknown_metric_names_it(single: tn.Study) -> None:
    with pytest.raises(ValueError, match="no metric 'acuracy'"):
        tn.report.plot_history(single, "acuracy")


def test_pareto_front_is_the_study_front(double: tn.Study) -> None:
    _, ax = plt.subplots()
    assert tn.report.plot_pareto(double, ax=ax) is ax
    front = double.pareto_front()
    highlighted = by_label(ax, "Pareto front")
    assert points(highlighted) == {(t.value("acc"), t.value("size")) for t in front}
    assert len(highlighted.get_offsets()) == len(front)
    complete = [t for t in double.trials if t.state is COMPLETE]
    assert len(by_label(ax, "infeasible").get_offsets()) == sum(not t.feasible for t in complete)
    assert len(by_label(ax, "trials").get_offsets()) + len(front) == sum(
        bool(t.feasible) for t in complete)
    line = next(ln for ln in ax.get_lines() if ln.get_drawstyle().startswith("steps"))
    xs = list(line.get_xdata())
    assert xs == sorted(xs) and set(zip(xs, line.get_ydata(), strict=True)) == points(highlighted)
    assert ax.get_xlabel() == "acc (max)" and ax.get_ylabel() == "size (min)"


def test_pareto_needs_two_objectives(single: tn.Study) -> None:
    with pytest.raises(ValueError, match=r"plot_pareto needs two objectives.*'loss'"):
        tn.report.plot_pareto(single)
    ax = tn.report.plot_pareto(single, x="loss", y="size")  # named: any two metrics
    assert by_label(ax, "Pareto front").get_offsets().shape[1] == 2


def test_intermediate_curves(double: tn.Study) -> None:
    ax = tn.report.plot_intermediate(double)
    lines = {ln.get_gid(): ln for ln in ax.get_lines()}
    reported = [t for t in double.trials if t.intermediate]
    assert set(lines) == {f"trial {t.number}" for t in reported}
    for t in reported:
        line = lines[f"trial {t.number}"]
        assert list(line.get_xdata()) == [s for s, _ in t.intermediate]
        assert list(line.get_ydata()) == [m["acc"] for _, m in t.intermediate]
    alpha = {t.state: lines[f"trial {t.number}"].get_alpha() for t in reported}
    assert alpha[PRUNED] < alpha[COMPLETE]
    pruned = [t for t in reported if t.state is PRUNED]
    assert pruned and min(len(t.intermediate) for t in pruned) < 4  # cut short
    assert all(lines[f"trial {t.number}"].get_marker() == "x" for t in pruned)
    assert ax.get_xlabel() == "step" and ax.get_ylabel() == "acc"


def test_missing_matplotlib_says_how_to_install(single: tn.Study,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ImportError, match=r"pip install 'torchnas\[plot\]'"):
        tn.report.plot_history(single)


def run_cli(*argv: str | Path) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in argv])
    return code, out.getvalue(), err.getvalue()


def test_cli_plot_reads_only(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    make_study(str(db), objectives={"acc": "max", "size": "min"}).journal.close()
    before = db.read_bytes()
    for kind, extra in (("history", ()), ("pareto", ()), ("curves", ("--metric", "loss"))):
        out = tmp_path / "figs" / f"{kind}.png"
        code, stdout, stderr = run_cli("plot", db, out, "--kind", kind, *extra)
        assert (code, stderr) == (0, ""), stderr
        assert kind in stdout and str(out) in stdout
        assert out.read_bytes().startswith(b"\x89PNG") and out.stat().st_size > 1000
    code, _, stderr = run_cli("plot", db, tmp_path / "x.png", "--metric", "nope")
    assert code == 2 and "no metric 'nope'" in stderr
    code, _, stderr = run_cli("plot", db, tmp_path / "x.png", "--kind", "pareto", "--metric", "a")
    assert code == 2 and "X,Y" in stderr
    wal = Path(f"{db}-wal")  # SQLite may open an empty one to read a WAL database
    assert db.read_bytes() == before and (not wal.exists() or wal.stat().st_size == 0)
