"""The analysis of a study: importance (conditional labels included), parallel coordinates,
slices, the timeline, the hypervolume history and trials side by side."""

from __future__ import annotations

import itertools
import math

import pytest

import torchnas as tn
from torchnas.report import (
    compare_trials,
    hypervolume_history,
    importance,
    plot_comparison,
    plot_hypervolume,
    plot_importance,
    plot_parallel,
    plot_slice,
    plot_timeline,
)
from torchnas.report._analysis import _lanes
from torchnas.study._hypervolume import hypervolume

pytest.importorskip("matplotlib")
from matplotlib.figure import Figure


def objective(hp: tn.HP) -> dict[str, float]:
    act = hp.choice("act", ["relu", "gelu", "tanh"])
    width = hp.int("width", 8, 64)
    hp.float("unused", 0.0, 1.0)
    value = {"relu": 0.0, "gelu": 0.5, "tanh": 0.2}[act] + width / 640
    if act == "gelu":  # a decision that exists only under a condition, and matters most
        value += 3.0 * hp.float("approx", 0.0, 1.0)
    hp.trial.report(1, {"score": value / 2})
    hp.trial.report(2, {"score": value})
    return {"score": value, "ms": width / 8}


@pytest.fixture(scope="module")
def study() -> tn.Study:
    s = tn.Study(objectives={"score": "max", "ms": "min"}, strategy="random", seed=0)
    s.optimize(objective, trials=80)
    return s


def test_importance_ranks_a_conditional_label_that_matters_and_ignores_one_that_does_not(
        study: tn.Study) -> None:
    shares = importance(study, "score")
    assert list(shares)[:2] == ["approx", "act"] or list(shares)[:2] == ["act", "approx"]
    assert shares["unused"] < 0.05
    assert math.isclose(sum(shares.values()), 1.0)
    assert importance(study, "score") == shares  # seeded: the same again
    assert next(iter(importance(study, "ms"))) == "width"


def test_importance_needs_trials_and_says_so() -> None:
    s = tn.Study(objectives={"x": "max"})
    s.optimize(lambda hp: hp.float("a", 0, 1), trials=3)
    with pytest.raises(ValueError, match="at least 4 complete trials with a finite 'x'"):
        importance(s)
    s.optimize(lambda hp: hp.float("a", 0, 1) * 0 + 1.0, trials=6)
    flat = tn.Study(objectives={"x": "max"})
    flat.optimize(lambda hp: hp.float("a", 0, 1) * 0 + 1.0, trials=6)
    assert importance(flat) == {"a": 0.0}


def _ax() -> object:
    return Figure().subplots()


def test_each_plot_draws_what_the_study_holds(study: tn.Study) -> None:
    complete = [t for t in study.trials if t.state is tn.TrialState.COMPLETE]
    ax = plot_importance(study, "score", ax=_ax())
    assert len(ax.patches) == 4  # act, width, unused, approx
    ax = plot_parallel(study, "score", ax=_ax())
    assert len(ax.lines) == len(complete)
    assert [t.get_text() for t in ax.get_xticklabels()][-1] == "score"
    ax = plot_slice(study, "act", "score", ax=_ax())
    assert [t.get_text() for t in ax.get_xticklabels()] == ["gelu", "relu", "tanh"]
    ax = plot_slice(study, "approx", ax=_ax())  # numeric, absent where act is not gelu
    assert len(ax.collections[0].get_offsets()) == len(complete)
    with pytest.raises(ValueError, match="no decision 'depth'"):
        plot_slice(study, "depth", ax=_ax())
    ax = plot_timeline(study, ax=_ax())
    assert len(ax.patches) == len(study.trials)
    ax = plot_hypervolume(study, ax=_ax())
    assert len(ax.lines) == 1
    fig = plot_comparison(study, [0, 1, 2], fig=Figure())
    assert len(fig.axes) == 2 and len(fig.axes[0].lines) == 3


def test_the_hypervolume_history_grows_to_the_whole_fronts(study: tn.Study) -> None:
    numbers, volumes = hypervolume_history(study, reference=[0.0, 10.0])
    assert len(numbers) == len(study.trials)
    assert all(b >= a - 1e-9 * abs(a) for a, b in itertools.pairwise(volumes))  # round-off
    points = [[t.metrics["score"], t.metrics["ms"]] for t in study.trials]
    assert math.isclose(volumes[-1], hypervolume(points, [0.0, 10.0], ["max", "min"]))


def test_compare_marks_the_labels_on_which_trials_differ(study: tn.Study) -> None:
    a, b = study.trials[0], study.trials[1]
    text = compare_trials(study, [a.number, b.number])
    lines = {line.split()[-3] if line.startswith("*") else "": line
             for line in text.splitlines()}
    for label in ("act", "width"):
        row = next(line for line in text.splitlines() if line[2:].startswith(label + " "))
        assert row.startswith("*") == (a.arch[label] != b.arch[label])
    assert "epochs reported" in text and lines
    with pytest.raises(ValueError, match="two or more trials"):
        compare_trials(study, [0, 999])


def test_overlapping_trials_of_one_process_get_rows_of_their_own() -> None:
    def trial(n: int, owner: str, start: float, end: float) -> tn.FrozenTrial:
        return tn.FrozenTrial(number=n, state=tn.TrialState.COMPLETE, owner=owner,
                              start=start, end=end)

    rows = _lanes([trial(0, "h:1:1", 0, 5), trial(1, "h:1:1", 1, 3), trial(2, "h:1:1", 3.5, 6),
                   trial(3, "h:2:1", 0, 1)])
    assert rows[0] != rows[1] and rows[2] == rows[1] and rows[3] not in (rows[0], rows[1])
