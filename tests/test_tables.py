"""Tables and plots people read: ``torchnas trials`` (``--wide``, ``--json``), metric values
(counts as integers), whole-number plot ticks and the CLI's errors in its own words, on a real
study stored in SQLite."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

import torchnas as tn
from torchnas._util.table import format_metric, format_table
from torchnas.cli import main
from torchnas.report import format_arch, leaderboard

ERROR = ("the data loader ran out of shared memory while collating batch 17 of 40; raise "
         "--shm-size or lower num_workers")
TRIALS = 4


def objective(hp: tn.HP) -> dict[str, float]:
    """A long architecture, 3 whole-epoch reports; the third trial fails with a long error."""
    for i in range(4):
        hp.choice(f"block{i}/filters", [16, 32, 64])
        hp.choice(f"block{i}/activation", ["relu", "gelu"])
    lr = hp.float("learning_rate", 1e-4, 1e-2, log=True)
    assert hp.trial is not None
    for epoch in (1, 2, 3):
        hp.trial.report(epoch, {"val_accuracy": 0.3 * epoch * (1 - lr)})
    if hp.int("fail", 0, 1) and hp.float("risk", 0.0, 1.0) > 0.5:
        raise RuntimeError(ERROR)
    return {"val_accuracy": 0.9 * (1 - lr), "params": 123456.0, "epochs": 3.0}


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, tn.Study]]:
    db = str(tmp_path_factory.mktemp("tables") / "s.db")
    study = tn.Study(name="tables", storage=db, strategy="random", seed=0,
                     objectives={"val_accuracy": "max", "params": "min"})
    arch = {**{f"block{i}/{k}": v for i in range(4) for k, v in
               (("filters", 64), ("activation", "gelu"))},
            "learning_rate": 1e-3, "fail": 1, "risk": 0.9}
    study.enqueue(arch)  # one trial surely fails
    study.optimize(objective, trials=TRIALS)
    yield db, study


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_the_study_has_a_failed_trial_and_long_architectures(stored: tuple[str, tn.Study]
                                                             ) -> None:
    states = [t.state for t in stored[1].trials]
    assert len(states) == TRIALS and tn.TrialState.FAILED in states
    assert all(len(format_arch(t.arch, None)) > 100 for t in stored[1].trials)


def test_wide_shows_whole_architectures_and_errors(stored: tuple[str, tn.Study],
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    db, study = stored
    code, narrow, _ = cli(capsys, "trials", db)
    assert code == 0 and ERROR not in narrow
    assert not any(format_arch(t.arch, None) in narrow for t in study.trials)
    code, wide, err = cli(capsys, "trials", db, "--wide")
    assert code == 0, err
    for t in study.trials:
        assert format_arch(t.arch, None) in wide
    assert f"error: RuntimeError: {ERROR}" in wide
    # the error sits under its trial's row, in the architecture's column
    lines = wide.splitlines()
    at = next(i for i, line in enumerate(lines) if "error: " in line)
    assert lines[at].index("error: ") == lines[0].index("architecture")
    assert lines[at - 1].split()[1] == "failed"


def test_json_holds_every_trial(stored: tuple[str, tn.Study],
                                capsys: pytest.CaptureFixture[str]) -> None:
    db, study = stored
    code, out, err = cli(capsys, "trials", db, "--json")
    assert code == 0, err
    records = json.loads(out)
    assert [r["number"] for r in records] == [t.number for t in study.trials]
    for r, t in zip(records, study.trials, strict=True):
        assert r["state"] == t.state.value and r["arch"] == t.arch and r["error"] == t.error
        assert r["metrics"] == t.metrics and r["duration"] == pytest.approx(t.duration)
        assert [x["step"] for x in r["intermediate"]] == [1, 2, 3]
        assert {"budget", "start", "end", "feasible"} <= set(r)
    failed = [r for r in records if r["state"] == "failed"]
    assert failed and failed[0]["error"] == f"RuntimeError: {ERROR}"
    code, out, _ = cli(capsys, "trials", db, "--json", "--state", "failed")
    assert code == 0 and json.loads(out) == failed


def test_counts_are_integers_with_separators(stored: tuple[str, tn.Study],
                                             capsys: pytest.CaptureFixture[str]) -> None:
    assert format_metric(123456.0, "params") == "123,456"
    assert format_metric(3.0, "epochs") == "3"
    assert format_metric(2_000_000.0) == "2,000,000"  # any whole value past 1000
    assert format_metric(0.91254, "val_accuracy") == "0.9125"
    assert format_metric(1234.56, "train_seconds") == "1,234.6"
    assert format_metric(float("nan")) == "-"
    db, study = stored
    _, out, _ = cli(capsys, "trials", db)
    complete = [t for t in study.trials if t.state is tn.TrialState.COMPLETE]
    assert out.count("123,456") == len(complete) and "e+05" not in out
    board = leaderboard(complete, {"val_accuracy": "max"})
    assert board.count("123,456") == len(complete) and "e+05" not in board


def test_a_multi_line_cell_continues_in_its_column() -> None:
    table = format_table(["a", "b"], [["1", "x\ny"], ["22", "z"]]).splitlines()
    assert table == ["a   b", "--  -", "1   x", "    y", "22  z"]


def test_plots_tick_whole_steps_and_trial_numbers(stored: tuple[str, tn.Study]) -> None:
    pytest.importorskip("matplotlib")
    from matplotlib.figure import Figure

    study = stored[1]
    for plot in (tn.report.plot_intermediate, tn.report.plot_history):
        ax = Figure().subplots()
        plot(study, "val_accuracy", ax=ax)
        ticks = [float(x) for x in ax.get_xticks()]
        assert len(ticks) >= 2 and all(x.is_integer() for x in ticks), (plot.__name__, ticks)


def two_studies(path: Path) -> str:
    db = str(path / "two.db")
    for name in ("a", "b"):
        tn.Study(name=name, storage=db, seed=0).optimize(
            lambda hp: hp.float("x", 0.0, 1.0), trials=1)
    return db


def test_cli_errors_name_the_cli_options(tmp_path: Path, stored: tuple[str, tn.Study],
                                         capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("matplotlib")
    db = two_studies(tmp_path)
    for command in ("trials", "best"):
        code, _, err = cli(capsys, command, db)
        assert code == 2 and "pass --name with one of the studies ['a', 'b']" in err, err
    code, _, err = cli(capsys, "plot", db, str(tmp_path / "p.png"), "--name", "a",
                       "--kind", "pareto")
    assert code == 2 and "--metric X,Y" in err and "x=" not in err, err
    code, _, err = cli(capsys, "plot", stored[0], str(tmp_path / "p.png"), "--metric", "nope")
    assert code == 2 and err.startswith("torchnas: error: --metric nope: ") and "recorded" in err


def test_wide_keeps_the_state_filter(stored: tuple[str, tn.Study],
                                     capsys: pytest.CaptureFixture[str]) -> None:
    db, study = stored
    _, out, _ = cli(capsys, "trials", db, "--wide", "--state", "failed")
    rows = [line.split()[:2] for line in out.splitlines()[2:] if line[:1].isdigit()]
    assert rows == [[str(t.number), "failed"] for t in study.trials
                    if t.state is tn.TrialState.FAILED]
