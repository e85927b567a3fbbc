"""``torchnas plot --kind ...`` for every analysis, and ``torchnas trials --compare``."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import pytest

import torchnas as tn
from torchnas.cli import main

pytest.importorskip("matplotlib")


def _cli(*argv: str | Path) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        code = main([str(a) for a in argv])
    return code, out.getvalue()


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("analysis") / "s.db"

    def objective(hp: tn.HP) -> dict[str, float]:
        act = hp.choice("act", ["relu", "tanh"])
        width = hp.int("width", 8, 64)
        score = (act == "relu") + width / 64
        hp.trial.report(1, {"score": score / 2})
        return {"score": score, "ms": width / 8}

    study = tn.Study(name="s", storage=path, objectives={"score": "max", "ms": "min"},
                     strategy="random", seed=0)
    study.optimize(objective, trials=20)
    study.journal.close()
    return path


@pytest.mark.parametrize("kind, extra", [
    ("importance", []), ("parallel", []), ("slice", []), ("slice", ["--label", "act"]),
    ("timeline", []), ("hypervolume", []), ("compare", ["--trials", "0,1,2"]),
    ("history", []), ("pareto", []), ("curves", [])])
def test_every_kind_draws_a_file(db: Path, tmp_path: Path, kind: str, extra: list[str]) -> None:
    out = tmp_path / f"{kind}.png"
    code, text = _cli("plot", db, out, "--kind", kind, *extra)
    assert code == 0, text
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"{kind} plot of 's' written to" in text


@pytest.mark.parametrize("extra, message", [
    (["--kind", "slice", "--label", "depth"], "no decision 'depth'"),
    (["--kind", "compare"], "--trials with two or more numbers"),
    (["--kind", "compare", "--trials", "0,x"], "--trials takes trial numbers"),
    (["--kind", "compare", "--trials", "0,99"], "two or more trials of study 's'"),
    (["--kind", "importance", "--metric", "nope"], "no metric 'nope'"),
])
def test_what_the_study_lacks_is_one_error_line(db: Path, tmp_path: Path, extra: list[str],
                                                message: str) -> None:
    code, text = _cli("plot", db, tmp_path / "x.png", *extra)
    assert code == 2
    assert text.startswith("torchnas: error:") and message in text, text
    assert not (tmp_path / "x.png").exists()


def test_trials_compare_marks_the_differences(db: Path) -> None:
    study = tn.load_study(db, read_only=True)
    a, b = study.trials[0], study.trials[1]
    code, text = _cli("trials", db, "--compare", "0,1")
    assert code == 0, text
    row = next(line for line in text.splitlines() if line[2:].startswith("width "))
    assert row.startswith("*") == (a.arch["width"] != b.arch["width"])


def test_plot_arch_draws_a_searched_trials_network(tmp_path: Path) -> None:
    db, config = tmp_path / "s.db", tmp_path / "s.yaml"
    config.write_text(f"space: chain_cnn\ndata: digits\ntrainer: {{epochs: 1}}\ntrials: 1\n"
                      f"storage: {db}\nprogress: false\n", encoding="utf-8")
    code, text = _cli("search", config)
    assert code == 0, text
    out = tmp_path / "arch.png"
    code, text = _cli("plot", db, out, "--kind", "arch", "--trial", "0")
    assert code == 0, text
    assert out.read_bytes()[:4] == b"\x89PNG"
    code, text = _cli("plot", db, out, "--kind", "arch")
    assert code == 2 and "--kind arch takes --trial N" in text
    code, text = _cli("plot", db, out, "--kind", "arch", "--trial", "5")
    assert code == 2 and "has no trial 5" in text, text
