"""What a person watches during a search: the progress bar, its live leaderboard on a terminal,
new-best lines elsewhere, and the state counts of the summaries."""

from __future__ import annotations

import io
import math
import re

import torchnas as tn
from torchnas.report._console import ProgressBar, leaderboard, state_counts


class FakeTerminal(io.StringIO):
    """A text stream that says it is a terminal (tqdm then redraws in place)."""

    def isatty(self) -> bool:
        return True


def objective(hp: tn.HP) -> dict[str, float]:
    x = hp.float("x", -3.0, 3.0)
    width = hp.choice("width", [1, 2, 3])
    return {"score": width - (x - 1.0) ** 2, "size": float(10 * width)}


def run(file: io.StringIO, trials: int = 12, live_top: int = 3,
        enabled: bool = True) -> tuple[tn.Study, ProgressBar]:
    study = tn.Study(objectives={"score": "max"}, strategy="random", seed=3)
    bar = ProgressBar(trials, None, ("score", "max"), enabled=enabled, live_top=live_top,
                      file=file)
    study.optimize(objective, trials=trials, callbacks=[bar])
    return study, bar


def test_terminal_shows_the_best_trials_live_under_the_bar() -> None:
    out = FakeTerminal()
    study, bar = run(out)
    # the live rows (header, rule, 3 trials) hold the 3 best trials, best first
    by_score = sorted(study.trials, key=lambda t: -t.value("score"))[:3]
    lines = [row.desc for row in bar.rows]
    assert lines[0].split()[:3] == ["rank", "trial", "score"]
    assert set(lines[1]) <= {"-", " "}
    shown = [int(line.split()[1]) for line in lines[2:]]
    assert shown == [t.number for t in by_score]
    bar.close()
    text = out.getvalue()
    assert "\x1b[A" in text  # redrawn in place (cursor up), not appended
    assert "new best" not in text
    # every trial that entered the top 3 was shown at some point
    assert all(re.search(rf"\n?\r?[123]\s+{t.number}\s", text) for t in by_score)


def test_elsewhere_each_new_best_gets_a_line_in_order() -> None:
    out = io.StringIO()
    study, bar = run(out, trials=15)
    bar.close()
    assert bar.rows == []
    lines = re.findall(r"trial (\d+): new best score (-?[\d.]+)", out.getvalue())
    # the trials that improved on every earlier one (inline: they finish in number order)
    best, improved = -math.inf, []
    for t in sorted(study.trials, key=lambda t: t.number):
        if t.value("score") > best:
            best = t.value("score")
            improved.append(t.number)
    assert [int(n) for n, _ in lines] == improved
    assert float(lines[-1][1]) == round(study.best_trial.value("score"), 4)


def test_disabled_bar_writes_nothing() -> None:
    out = FakeTerminal()
    _, bar = run(out, trials=4, enabled=False)
    bar.close()
    assert out.getvalue() == ""
    assert bar.rows == []


def test_no_live_rows_without_live_top() -> None:
    out = FakeTerminal()
    _, bar = run(out, trials=4, live_top=0)
    bar.close()
    assert bar.rows == []
    assert "rank" not in out.getvalue() and "new best" not in out.getvalue()


def test_state_counts_set_apart_complete_trials_that_break_a_constraint() -> None:
    study = tn.Study(objectives={"score": "max"}, constraints={"size": ("<=", 20)},
                     strategy="grid", seed=0)

    def maybe_fail(hp: tn.HP) -> dict[str, float]:
        if hp.float("x", -3.0, 3.0) > 2.5:
            raise RuntimeError("boom")
        return objective(hp)

    study.optimize(maybe_fail, trials=15)
    complete = [t for t in study.trials if t.state is tn.TrialState.COMPLETE]
    infeasible = sum(t.value("size") > 20 for t in complete)
    failed = sum(t.state is tn.TrialState.FAILED for t in study.trials)
    assert infeasible and failed  # the grid covers widths 1-3 and x up to 3
    expected = f"{len(complete)} complete ({infeasible} infeasible), {failed} failed"
    assert state_counts(study.trials) == expected
    assert study.results_summary().splitlines()[0] == f"Study 'study': {expected}"


def test_leaderboard_leaves_out_extra_metrics_no_trial_has() -> None:
    study, _ = run(io.StringIO(), trials=5, enabled=False)
    ranked = sorted(study.trials, key=lambda t: -t.value("score"))
    head = leaderboard(ranked, {"score": "max"}, extra=("size", "train_seconds")).splitlines()[0]
    assert head.split() == ["rank", "trial", "score", "size", "architecture"]
