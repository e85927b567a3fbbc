"""A config is code: the reading commands run none from a file they were not handed (issue 15,
item 7); a small YAML file cannot hang the CLI or exhaust memory with nested aliases (item 8)."""

from __future__ import annotations

import contextlib
import io
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import torchnas as tn
from torchnas._util.config import MAX_NODES, check_keys, code_refs, load_config, resolve_object
from torchnas._util.errors import ConfigError
from torchnas.cli import main


def run_cli(*argv: str | Path) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in argv])
    return code, out.getvalue(), err.getvalue()


# -- item 7: configs read beside a DB run no code unless trusted --------------------------------
LOADER = """\
from pathlib import Path

import torchnas as tn


def load(marker):
    Path(marker).write_text("ran")
    return tn.data.load("digits")
"""


@pytest.fixture
def received(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Path]]:
    """A study and the config beside it, as received: its data names a loader that writes a
    marker file when called."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "marker_loader.py").write_text(LOADER)
    db = tmp_path / "s.db"
    (tmp_path / "c.yaml").write_text(f"space: mlp\ndata: digits\ntrainer: {{epochs: 1}}\n"
                                     f"strategy: random\ntrials: 1\nprogress: false\n"
                                     f"storage: {db}\nname: s\n")
    code, _, err = run_cli("search", tmp_path / "c.yaml")
    assert code == 0, err
    beside = tmp_path / "s.s.config.yaml"
    marker = tmp_path / "marker.txt"
    text = beside.read_text().replace("data: digits",
                                      f"data: {{name: 'marker_loader:load', marker: '{marker}'}}")
    assert text != beside.read_text()
    beside.write_text(text)
    yield {"db": db, "beside": beside, "marker": marker}
    sys.modules.pop("marker_loader", None)


def test_export_refuses_code_named_in_the_config_beside_the_db(received: dict[str, Path],
                                                               tmp_path: Path) -> None:
    code, out, err = run_cli("export", received["db"], tmp_path / "best.pt")
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("torchnas: error: ")
    assert "data.name: 'marker_loader:load'" in err and "--trust-config" in err
    assert not received["marker"].exists() and "marker_loader" not in sys.modules
    assert not (tmp_path / "best.pt").exists()


def test_export_runs_it_with_trust_config_or_a_config_handed_over(received: dict[str, Path],
                                                                  tmp_path: Path) -> None:
    code, _, err = run_cli("export", received["db"], tmp_path / "best.pt", "--trust-config")
    assert code == 0, err
    assert received["marker"].read_text() == "ran" and (tmp_path / "best.pt").exists()
    received["marker"].unlink()
    code, _, err = run_cli("export", received["db"], tmp_path / "b2.pt", "--config",
                           received["beside"])
    assert code == 0, err
    assert received["marker"].exists()


def test_code_refs_finds_every_key_that_names_code() -> None:
    assert code_refs({"space": "mlp", "data": {"name": "digits"}, "strategy": "tpe"}) == []
    assert code_refs({"space": "m:build", "data": "m:load", "train_fn": "m:fit",
                      "strategy": {"name": "optuna", "sampler": "os.system"}}) == [
        ("space", "m:build"), ("train_fn", "m:fit"), ("data", "m:load"),
        ("strategy.sampler", "os.system")]
    assert code_refs({"data": {"name": "m:load"}}) == [("data.name", "m:load")]


@pytest.mark.parametrize(("ref", "message"), [
    ("os:system", r"'os:system' names the standard library's 'os', not a function"),
    ("subprocess:run", r"names the standard library's 'subprocess'"),
    ("builtins:eval", r"names the standard library's 'builtins'"),
    ("os.path:join", r"names the standard library's 'os.path'"),
    ("torchnas:__version__", r"torchnas:__version__ is a str, not a function"),
])
def test_resolve_object_refuses_the_stdlib_and_what_cannot_be_called(ref: str,
                                                                     message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        resolve_object("cfg: data", ref)


def test_search_with_os_system_as_data_calls_nothing(tmp_path: Path) -> None:
    marker = tmp_path / "ran.txt"
    config = tmp_path / "c.yaml"
    config.write_text(f"space: mlp\ndata: {{name: 'os:system', command: 'touch {marker}'}}\n"
                      f"storage: {tmp_path / 's.db'}\n")
    code, _, err = run_cli("search", config)
    assert code == 2 and "names the standard library's 'os'" in err
    assert not marker.exists()


# -- item 8: alias bombs ------------------------------------------------------------------------
def bomb(levels: int = 9) -> str:
    """Nested anchors, each level 9 aliases of the one before: 9**levels strings."""
    lines = ['x: &l0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, levels):
        lines.append(f"x{i}: &l{i} [" + ",".join([f"*l{i - 1}"] * 9) + "]")
    return "{" + ", ".join(lines) + "}"


@pytest.mark.parametrize("key", ["trainer", "cost", "strategy", "data", "space_kwargs"])
def test_an_alias_bomb_is_refused_fast_naming_the_file(tmp_path: Path, key: str) -> None:
    config = tmp_path / "bomb.yaml"
    text = f"space: mlp\ndata: digits\nstorage: {tmp_path / 's.db'}\n{key}: {bomb()}\n"
    config.write_text(text.replace("data: digits\n", "") if key == "data" else text)
    assert len(config.read_bytes()) < 600
    start = time.perf_counter()
    with pytest.raises(ConfigError, match=rf"{config}:\d+:\d+: .*aliases expand to more than"):
        load_config(config)
    code, _, err = run_cli("search", config)
    assert time.perf_counter() - start < 2
    assert code == 2 and "aliases expand to more than" in err and len(err) < 300
    assert not (tmp_path / "s.db").exists()


def test_a_bomb_as_the_whole_value_and_a_self_reference_are_refused(tmp_path: Path) -> None:
    config = tmp_path / "b.yaml"
    config.write_text(f"a: {bomb()}\ntrainer: *l8\n")
    start = time.perf_counter()
    with pytest.raises(ConfigError, match="aliases expand"):
        load_config(config)
    config.write_text("space: mlp\ndata: digits\ntrainer: &t {epochs: 1, x: *t}\n")
    with pytest.raises(ConfigError, match="an alias refers to the value that contains it"):
        load_config(config)
    assert time.perf_counter() - start < 2


def test_a_large_legit_config_with_aliases_still_loads(tmp_path: Path) -> None:
    config = tmp_path / "big.yaml"
    widths = "[" + ", ".join(str(i) for i in range(1000)) + "]"
    blocks = "\n".join(f"  b{i}: *w" for i in range(MAX_NODES // 1000 - 10))
    config.write_text(f"space: mlp\ndata: digits\nwidths: &w {widths}\nspace_kwargs:\n{blocks}\n")
    loaded = load_config(config)
    assert len(loaded["space_kwargs"]) == MAX_NODES // 1000 - 10
    assert loaded["space_kwargs"]["b7"] == list(range(1000))


def test_messages_show_a_bounded_repr_of_a_huge_value() -> None:
    huge = [["x" * 1000] * 1000] * 1000
    with pytest.raises(ConfigError) as info:
        check_keys("c.yaml: trainer", {"epochs": huge}, tn.Trainer)
    assert "key 'epochs' must be int, got [[" in str(info.value)
    assert len(str(info.value)) < 300
