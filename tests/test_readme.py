"""The README's promises: its first commands, and its Python example, which runs as written and
does what its comments say; and what the results example of docs/evaluation.md hands back.
(Every block of every page runs in tests/test_docs.py; these check the outcomes too.)"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import docblocks

import torchnas as tn

ROOT = Path(__file__).resolve().parents[1]


def blocks(language: str | None = None, page: str = "README.md") -> list[tuple[str, str]]:
    """``(language, code)`` of every fenced block of ``page``, in order."""
    return [(b.lang, b.code) for b in docblocks.blocks(ROOT / page)
            if language is None or b.lang == language]


def test_the_first_block_has_the_two_commands() -> None:
    lang, code = blocks()[0]
    assert lang == "bash"
    commands = [line.split("#")[0].strip() for line in code.splitlines()]
    assert [c for c in commands if c] == ["python3 dev.py search", "python3 dev.py test"]


def test_ci_runs_the_test_command() -> None:
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    calls = [line for line in ci.splitlines() if not line.lstrip().startswith("#")]
    assert any(re.search(r"\bdev\.py test\b", line) for line in calls)
    assert (ROOT / "dev.py").is_file()


def test_the_python_example_runs(capsys: Any) -> None:
    _, code = blocks("python")[0]
    namespace: dict[str, Any] = {"__name__": "readme_example"}
    exec(compile(code, "README.md", "exec"), namespace)
    study, search = namespace["study"], namespace["search"]
    assert isinstance(study, tn.Study) and isinstance(search, tn.ModelSearch)
    assert len(study.trials) == 4
    assert all(t.state is tn.TrialState.COMPLETE for t in study.trials)
    assert search.test_accuracy is not None and 0.5 < search.test_accuracy <= 1.0
    best = study.best_trial
    same = namespace["same"]
    assert {k: v.shape for k, v in same.state_dict().items()} == {
        k: v.shape for k, v in namespace["model"].state_dict().items()}
    out = capsys.readouterr().out
    assert "Search space: 7 labels" in out  # check().summary()
    assert str(best.arch) in out
    assert f"test accuracy {search.test_accuracy:.3f}" in out


def test_the_results_example_runs(tmp_path: Path, monkeypatch: Any, capsys: Any) -> None:
    [code] = [c for _, c in blocks("python", "docs/evaluation.md") if "get_best_models" in c]
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, Any] = {"__name__": "readme_results", "tn": tn}
    exec(compile(code, "docs/evaluation.md", "exec"), namespace)
    search = namespace["search"]
    assert len(namespace["models"]) == 2 and len(namespace["archs"]) == 2
    assert search.retrain_report.chosen in ("retrained", "trial")
    assert search.test_metrics["test_accuracy"] > 0.8
    kept = [p for p in (tmp_path / "runs" / "d.artifacts").glob("*/*")
            if not p.name.endswith(".graph.json")]  # every trial's network graph is kept too
    assert sorted(p.suffix for p in kept) == [".json"] * 3 + [".pt"] * 3
    assert "Trainable params" in capsys.readouterr().out
