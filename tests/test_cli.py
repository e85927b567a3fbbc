"""The ``torchnas`` command, in process (``torchnas.cli.main``) and as a real process, and the
YAML config loader behind it (with property tests)."""

from __future__ import annotations

import contextlib
import inspect
import io
import json
import os
import re
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import torchnas as tn
from torchnas._util.config import apply_overrides, dump_config, load_config
from torchnas.cli import RUN_ONLY, build_search, main
from torchnas.export import read_export
from torchnas.search._model_search import ModelSearch

SMALL = """\
space: mlp
data: digits
trainer:
  epochs: 5
trials: 10
storage: {db}
"""
SEARCH_KEYS = list(inspect.signature(ModelSearch).parameters)
TRAINER_DEFAULTS = tn.Trainer().get_params()


def run_cli(*argv: str | Path) -> tuple[int, str, str]:
    """``main(argv)`` with its stdout and stderr; no exception may escape it."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in argv])
    return code, out.getvalue(), err.getvalue()


def subprocess_env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
            "PYTHONWARNINGS": "ignore"}


@pytest.fixture(scope="module")
def searched(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One search through the CLI, with overrides: 2 trials of 1 epoch instead of 10 of 5."""
    root = tmp_path_factory.mktemp("cli")
    db = root / "runs" / "s.db"
    config = root / "small.yaml"
    config.write_text(SMALL.format(db=db))
    code, out, err = run_cli("search", config, "--set", "trainer.epochs=1", "--set", "trials=2",
                             "--set", "trainer.lr=2e-3")
    return {"code": code, "out": out, "err": err, "db": db, "config": config}


# -- search -------------------------------------------------------------------------------------
def test_search_prints_the_leaderboard_and_progress(searched: dict[str, Any]) -> None:
    assert searched["code"] == 0, searched["err"]
    out = searched["out"]
    assert "Leaderboard of 'mlp-digits' (2 complete)" in out
    assert "rank" in out and "val_accuracy" in out
    study = tn.load_study(str(searched["db"]))
    best = study.best_trial
    rank1 = next(line for line in out.splitlines() if line.startswith("1 "))
    assert rank1.split()[1] == str(best.number)
    assert "search" in searched["err"] and "2/2" in searched["err"]  # the bar, on stderr
    assert "Traceback" not in searched["err"]


def test_overrides_apply(searched: dict[str, Any]) -> None:
    study = tn.load_study(str(searched["db"]))
    assert len(study.trials) == 2
    assert all(t.metrics["epochs"] == 1 for t in study.trials)
    assert [len(t.intermediate) for t in study.trials] == [1, 1]


def test_the_resolved_config_is_written_beside_the_db(searched: dict[str, Any]) -> None:
    path = searched["db"].with_name("s.mlp-digits.config.yaml")
    assert f"Resolved config written to {path}" in searched["out"]
    resolved = yaml.safe_load(path.read_text())
    assert resolved["space"] == "mlp" and resolved["data"] == "digits"
    assert resolved["trials"] == 2
    assert resolved["storage"] == str(searched["db"])
    assert resolved["name"] == "mlp-digits"
    assert resolved["objectives"] == {"val_accuracy": "max"}
    assert resolved["strategy"]["name"] in tn.strategies.available()
    assert resolved["seed"] == 0 and resolved["retrain"] is False
    # every Trainer argument, defaults filled in; the overrides win
    assert resolved["trainer"] == {**TRAINER_DEFAULTS, "epochs": 1, "lr": 0.002}
    # every ModelSearch keyword (from get_params) but those of one run
    assert set(resolved) == set(SEARCH_KEYS) - set(RUN_ONLY)


def test_the_resolved_config_runs_again_and_resumes(searched: dict[str, Any]) -> None:
    path = searched["db"].with_name("s.mlp-digits.config.yaml")
    code, out, err = run_cli("search", path)
    assert "(2 complete)" in out
    assert code == 0, err
    assert len(tn.load_study(str(searched["db"])).trials) == 2  # already done: nothing runs


def test_trials_lists_them(searched: dict[str, Any]) -> None:
    code, out, _ = run_cli("trials", searched["db"])
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["trial", "state", "val_accuracy"]
    rows = [line.split() for line in lines[2:]]
    assert [r[:2] for r in rows] == [["0", "complete"], ["1", "complete"]]
    assert "num_layers=" in out
    code, out, _ = run_cli("trials", searched["db"], "--state", "failed")
    assert code == 0 and len(out.splitlines()) == 2  # the header only


def test_export_retrains_the_best_or_a_chosen_trial(searched: dict[str, Any],
                                                   tmp_path: Path) -> None:
    study = tn.load_study(str(searched["db"]))
    out = tmp_path / "best.pt"
    code, text, err = run_cli("export", searched["db"], out)
    assert code == 0, err
    saved = read_export(out)
    assert saved["arch"] == study.best_trial.arch
    assert saved["meta"]["trial"] == study.best_trial.number
    assert f"written to {out}, retrained on train+val: test accuracy" in text
    assert saved["meta"]["test_accuracy"] > 0.5  # 1 epoch on digits, from 10 % chance
    other = next(t for t in study.trials if t.number != study.best_trial.number)
    code, text, err = run_cli("export", searched["db"], tmp_path / "other.pt", "--trial",
                              other.number, "--no-retrain")
    assert code == 0, err
    assert "test accuracy" not in text
    assert read_export(tmp_path / "other.pt")["arch"] == other.arch
    code, _, err = run_cli("export", searched["db"], tmp_path / "x.pt", "--trial", 99)
    assert code == 2 and "trial 99" in err and "complete: [0, 1]" in err
    code, _, err = run_cli("export", searched["db"], tmp_path / "x.pt", "--config",
                           tmp_path / "none.yaml")
    assert code == 2 and "none.yaml not found" in err
    assert not (tmp_path / "x.pt").exists()


def test_best_as_json(searched: dict[str, Any]) -> None:
    code, out, _ = run_cli("best", searched["db"], "--json")
    assert code == 0
    record = json.loads(out)
    best = tn.load_study(str(searched["db"])).best_trial
    assert record["study"] == "mlp-digits"
    assert record["trial"] == best.number
    assert record["arch"] == best.arch and record["key"] == best.key
    assert record["metrics"]["val_accuracy"] == best.metrics["val_accuracy"]
    code, text, _ = run_cli("best", searched["db"], "--name", "mlp-digits")
    assert code == 0 and f"#{best.number}" in text and "units_0:" in text


def test_space_prints_labels_and_size(searched: dict[str, Any]) -> None:
    code, out, _ = run_cli("space", searched["config"])
    assert code == 0
    for label in ("num_layers", "units_0", "units_2", "activation", "dropout", "lr"):
        assert label in out
    assert "num_layers >= 3" in out
    assert "Size: infinite (continuous: lr); 17,472 discrete combinations" in out


# -- errors: exit code 2, one line naming the culprit, no traceback -----------------------------
ERRORS = {
    "unknown-key": ("space: mlp\ndata: digits\ntrails: 2\n", [],
                    r"unknown key 'trails'; did you mean 'trials'"),
    "unknown-trainer-key": ("space: mlp\ndata: digits\ntrainer: {epochz: 1}\n", [],
                            r"trainer: unknown key 'epochz'; did you mean 'epochs'"),
    "wrong-type": ('space: mlp\ndata: digits\ntrials: "many"\n', [],
                   r"key 'trials' must be int or null, got 'many'"),
    "malformed-yaml": ("space: mlp\ndata: digits\ntrials: [1, 2\nseed: 3\n", [],
                       r"{config}:4:\d+: malformed YAML"),
    "unknown-strategy": ("space: mlp\ndata: digits\nstrategy: randm\n", [],
                         r"unknown strategy 'randm'; did you mean 'random'"),
    "unknown-dataset": ("space: mlp\ndata: digitz\n", [],
                        r"unknown dataset 'digitz'; did you mean 'digits'"),
    "unknown-space": ("space: mlpp\ndata: digits\n", [], r"unknown space 'mlpp'.*'mlp'"),
    "missing-space": ("data: digits\n", [], r"missing required key\(s\) \['space'\]"),
    "bad-import": ("space: no_such_module:build\ndata: digits\n", [],
                   r"space: cannot import 'no_such_module'"),
    "bad-trainer-value": ("space: mlp\ndata: digits\ntrainer: {epochs: 0}\n", [],
                          r"trainer: epochs must be an integer >= 1, got 0"),
    "bad-override": ("space: mlp\ndata: digits\n", ["--set", "trials"],
                     r"override 'trials': expected key=value"),
    "override-into-scalar": ("space: mlp\ndata: digits\ntrials: 2\n", ["--set", "trials.x=1"],
                             r"override 'trials.x=1': 'trials' is 2, not a mapping"),
    "unknown-override": ("space: mlp\ndata: digits\n", ["--set", "trainer.epoch=1"],
                         r"trainer: unknown key 'epoch'; did you mean 'epochs'"),
    "unknown-objective": ("space: mlp\ndata: digits\nobjectives: {val_acc: max}\n", [],
                          r"'val_acc' is not a metric of the trials; did you mean 'val_accuracy'"),
    "bad-constraint": ("space: mlp\ndata: digits\nconstraints: {params: [<, x]}\n", [],
                       r"constraint 'params': bound must be a number"),
    "not-a-mapping": ("- space\n- data\n", [], r"the config must be a mapping"),
}


@pytest.mark.parametrize("case", list(ERRORS))
@pytest.mark.parametrize("command", ["search", "space"])
def test_config_errors_exit_2_naming_the_culprit(case: str, command: str,
                                                 tmp_path: Path) -> None:
    text, extra, message = ERRORS[case]
    config = tmp_path / "bad.yaml"
    config.write_text(text)
    db = tmp_path / "never.db"
    code, out, err = run_cli(command, config, "--set", f"storage={db}", *extra)
    assert code == 2
    assert err.startswith("torchnas: error: ") and err.count("\n") == 1, err
    assert re.search(message.format(config=re.escape(str(config))), err), err
    assert "Traceback" not in err and out == ""
    assert not db.exists()  # failed before any trial (before the study was even created)


def test_missing_files_exit_2(tmp_path: Path) -> None:
    calls: list[list[str | Path]] = [["search", tmp_path / "nope.yaml"],
                                     ["trials", tmp_path / "nope.db"],
                                     ["best", tmp_path / "nope.db"]]
    for argv in calls:
        code, _, err = run_cli(*argv)
        assert code == 2 and "nope." in err and "Traceback" not in err
    not_db = tmp_path / "config.yaml"
    not_db.write_text("space: mlp\n" * 200)
    code, _, err = run_cli("trials", not_db)
    assert code == 2 and "not a torchnas SQLite storage" in err
    foreign = tmp_path / "other.db"  # another program's SQLite file: refused, left alone
    with sqlite3.connect(foreign) as conn:
        conn.execute("CREATE TABLE notes (text TEXT)")
    conn.close()
    before = foreign.read_bytes()
    code, _, err = run_cli("trials", foreign)
    assert code == 2 and "not a torchnas SQLite storage (it has no studies" in err
    assert foreign.read_bytes() == before and not Path(f"{foreign}-wal").exists()
    latin1 = tmp_path / "latin1.yaml"
    latin1.write_bytes("name: caf\u00e9\n".encode("latin-1"))
    code, _, err = run_cli("search", latin1)
    assert code == 2 and f"{latin1}: not UTF-8 text" in err


def test_any_study_name_gives_a_config_file_name(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(SMALL.format(db=tmp_path / "s.db"))
    code, out, err = run_cli("search", config, "--set", "name=exp 1/b", "--set", "trials=1",
                             "--set", "trainer.epochs=1")
    assert code == 0 and "(1 complete)" in out, err
    written = tmp_path / "s.exp_1_b.config.yaml"
    assert written.exists() and load_config(written)["name"] == "exp 1/b"


def test_unknown_study_name_exits_2(searched: dict[str, Any]) -> None:
    code, _, err = run_cli("best", searched["db"], "--name", "other")
    assert code == 2 and "'other'" in err and "mlp-digits" in err


def test_as_a_real_process(tmp_path: Path, searched: dict[str, Any]) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("space: mlp\ndata: digits\ntrails: 2\n")
    cmd = [sys.executable, "-m", "torchnas.cli"]
    bad = subprocess.run([*cmd, "search", str(config)], capture_output=True, text=True,
                         env=subprocess_env(), timeout=120)
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == [
        f"torchnas: error: {config}: unknown key 'trails'; did you mean 'trials' or 'trainer' "
        "or 'retries'? (valid: " + ", ".join(SEARCH_KEYS) + ")"
    ]
    ok = subprocess.run([*cmd, "best", str(searched["db"]), "--json"], capture_output=True,
                        text=True, env=subprocess_env(), timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["study"] == "mlp-digits"


# -- the config loader, property-tested ---------------------------------------------------------
VALID = set(SEARCH_KEYS) | set(TRAINER_DEFAULTS)
scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6),
                    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=8))
unknown_keys = st.one_of(st.text(min_size=1, max_size=12), st.integers(-99, 99)).filter(
    lambda k: k not in VALID)


def yaml_round_trip(config: dict[Any, Any]) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "c.yaml"
        path.write_text(dump_config(config), encoding="utf-8")
        return load_config(path)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(unknown_keys, scalars, min_size=1, max_size=4))
def test_unknown_keys_are_always_named(extra: dict[Any, Any]) -> None:
    config = yaml_round_trip({"space": "mlp", "data": "digits", **extra})
    assert config == {"space": "mlp", "data": "digits", **extra}
    with pytest.raises(tn.ConfigError) as info:
        build_search(config)
    message = str(info.value)
    assert any(f"unknown key {k!r}" in message for k in extra), message
    with pytest.raises(tn.ConfigError, match="unknown key"):
        build_search({"space": "mlp", "data": "digits", "trainer": {**extra}})


names = st.text(st.characters(categories=["L", "N"], include_characters="-_."), min_size=1,
                max_size=12)
positive = st.floats(min_value=1e-8, max_value=1e6, allow_nan=False, allow_infinity=False)
overrides = st.fixed_dictionaries({}, optional={
    "trials": st.integers(1, 10**6),
    "seed": st.integers(0, 2**31),
    "timeout": st.one_of(st.none(), positive),
    "name": names,
    "retrain": st.booleans(),
    "trainer.epochs": st.integers(1, 1000),
    "trainer.lr": positive,
    "trainer.batch_size": st.integers(1, 4096),
    "trainer.optimizer": st.sampled_from(["adam", "adamw", "sgd"]),
    "trainer.grad_clip": st.one_of(st.none(), positive),
    "data.val_fraction": st.floats(0.01, 0.99),
})


def typed(value: Any) -> str:
    """A value as a person types it after ``--set key=``."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    return repr(value)  # 1e-05, 0.25, 1e+16, 7


@settings(max_examples=80, deadline=None)
@given(overrides)
def test_valid_overrides_round_trip(values: dict[str, Any]) -> None:
    base = {"space": "mlp", "data": "digits", "trainer": {"epochs": 3}}
    config = apply_overrides(base, [f"{k}={typed(v)}" for k, v in values.items()])
    assert base == {"space": "mlp", "data": "digits", "trainer": {"epochs": 3}}  # untouched
    assert yaml_round_trip(config) == config
    search = build_search(config)
    trainer = search.trainer.get_params()
    for key, value in values.items():
        head, _, tail = key.partition(".")
        if head == "trainer":
            assert trainer[tail] == value and type(trainer[tail]) is type(value)
        elif head == "data":
            assert config["data"] == {"name": "digits", tail: value}
            assert isinstance(search.data, tn.data.Data) and search.data.num_classes == 10
        else:
            assert getattr(search, key) == value
    if "trainer.epochs" not in values:
        assert trainer["epochs"] == 3


def test_scientific_notation_is_a_number(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(textwrap.dedent("""\
        space: mlp
        data: digits
        trainer: {lr: 1e-3, weight_decay: 5E-4}
        timeout: 1e3
        name: "1e5"
    """))
    loaded = load_config(config)
    assert loaded["trainer"] == {"lr": 0.001, "weight_decay": 0.0005}
    assert loaded["timeout"] == 1000.0 and loaded["name"] == "1e5"
    assert yaml_round_trip(loaded) == loaded
    search = build_search(loaded)
    assert search.trainer.lr == 0.001


def test_a_space_module_in_the_working_directory_is_found(tmp_path: Path) -> None:
    (tmp_path / "mypkg").mkdir()
    (tmp_path / "mypkg" / "__init__.py").write_text("")
    (tmp_path / "mypkg" / "spaces.py").write_text(
        "from torch import nn\n\n\ndef build(hp):\n"
        "    units = hp.choice('units', [8, 16])\n"
        "    return nn.Sequential(nn.Flatten(), nn.Linear(64, units), nn.ReLU(),\n"
        "                         nn.Linear(units, 10))\n")
    (tmp_path / "c.yaml").write_text("space: mypkg.spaces:build\ndata: digits\n")
    script = Path(sys.executable).with_name("torchnas")
    if not script.exists():
        pytest.skip("needs the installed torchnas command (python -m adds the directory itself)")
    done = subprocess.run([str(script), "space", "c.yaml"], cwd=tmp_path, capture_output=True,
                          text=True, env=subprocess_env(), timeout=120)
    assert done.returncode == 0, done.stderr
    assert "units" in done.stdout


# -- end to end: the README's main job, shortened -----------------------------------------------
@pytest.mark.slow
def test_mnist1d_search_end_to_end(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[1]
    script = Path(sys.executable).with_name("torchnas")
    cmd = [str(script)] if script.exists() else [sys.executable, "-m", "torchnas.cli"]
    db, best = tmp_path / "m.db", tmp_path / "best.pt"
    argv = [*cmd, "search", "examples/mnist1d.yaml", "--set", "trials=3",
            "--set", "trainer.epochs=3", "--set", f"storage={db}", "--set", f"export_to={best}"]

    def search() -> subprocess.CompletedProcess[str]:
        done = subprocess.run(argv, cwd=root, capture_output=True, text=True,
                              env=subprocess_env(), timeout=300)
        assert done.returncode == 0, done.stderr
        assert "Traceback" not in done.stderr
        return done

    first = search()
    assert "search:" in first.stderr and "3/3" in first.stderr  # the progress bar
    assert "Leaderboard" not in first.stderr and "search:" not in first.stdout
    assert "Leaderboard of 'mnist1d-chain_cnn' (3 complete)" in first.stdout
    found = re.search(r"test accuracy (\d\.\d+)", first.stdout)
    assert found, first.stdout
    assert f"Best model written to {best}" in first.stdout
    model = tn.load_model(best)
    data = tn.data.load("mnist1d")
    assert data.test is not None
    accuracy = tn.evaluation.evaluate(model, data.test)["accuracy"]
    assert accuracy == pytest.approx(float(found.group(1)), abs=1e-4)
    assert accuracy > 0.3  # ten classes; three short trainings already do far better
    trials = tn.load_study(str(db)).trials
    assert len(trials) == 3

    second = search()  # finished trials are not run again
    assert "Leaderboard of 'mnist1d-chain_cnn' (3 complete)" in second.stdout
    assert tn.load_study(str(db)).trials == trials
    assert db.with_name("m.mnist1d-chain_cnn.config.yaml").exists()


def test_the_cli_bounds_onednn_kernel_cache_unless_the_user_did(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ONEDNN_PRIMITIVE_CACHE_CAPACITY", raising=False)
    assert run_cli("space", "missing.yaml")[0] == 2
    assert os.environ["ONEDNN_PRIMITIVE_CACHE_CAPACITY"] == "256"
    monkeypatch.setenv("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "32")
    run_cli("space", "missing.yaml")
    assert os.environ["ONEDNN_PRIMITIVE_CACHE_CAPACITY"] == "32"
