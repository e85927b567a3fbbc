"""Bad input fails early with a clear error naming the culprit (data, config, Trainer, export);
per-trial data problems fail the trial with a reason that names the split."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import Dataset, TensorDataset

import torchnas as tn
from torchnas._util.config import load_config, parse_value, resolve_object
from torchnas._util.errors import ConfigError, DataError
from torchnas.evaluation import Trainer
from torchnas.export import check_path, load_model, read_export, save_model

X = torch.randn(40, 4)
Y = torch.arange(40) % 2


def _data() -> tn.data.Data:
    return tn.data.from_tensors((X[:30], Y[:30]), (X[30:], Y[30:]))


# -- data ----------------------------------------------------------------------------------------
def test_string_labels_are_a_data_error_naming_the_split() -> None:
    with pytest.raises(DataError, match=r"train split: labels cannot be made a numeric tensor"):
        tn.data.from_tensors((X[:4].numpy(), np.array(["a", "b", "a", "b"])), (X[4:8], Y[4:8]))


def test_ragged_inputs_are_a_data_error_naming_the_split() -> None:
    with pytest.raises(DataError, match=r"val split: inputs cannot be made a numeric tensor"):
        tn.data.from_tensors((X[:4], Y[:4]), ([[1.0], [2.0, 3.0]], [0, 1]))


class _Items(Dataset[Any]):
    """A plain dataset whose item 3 (never among the items validate() samples) is bad."""

    def __init__(self, bad: str) -> None:
        self.bad = bad

    def __len__(self) -> int:
        return 30

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        x, y = X[i].clone(), int(Y[i])
        if i == 3 and self.bad == "nan":
            x[0] = float("nan")
        if i == 3 and self.bad == "label":
            y = 7
        return x, y


@pytest.mark.parametrize(("bad", "message"), [
    ("nan", r"train split: a batch .* holds 1 NaN and 0 inf input values"),
    ("label", r"train split: a batch .* holds label 7; labels must be in \[0, 1\]"),
])
def test_bad_item_missed_by_sampling_fails_the_fit_naming_the_split(bad: str,
                                                                   message: str) -> None:
    data = tn.data.from_datasets(_Items(bad), TensorDataset(X[30:], Y[30:]), num_classes=2)
    with pytest.raises(DataError, match=message):
        Trainer(epochs=1, batch_size=8).fit(nn.Linear(4, 2), data)


def _linear(hp: tn.HP) -> nn.Module:
    hidden = hp.choice("o", [2, 3])  # (each branch gives the data's 2 classes: check runs both)
    return nn.Sequential(nn.Linear(4, hidden), nn.Linear(hidden, 2))


@pytest.mark.parametrize("executor", ["inline", "process"])
def test_bad_item_fails_its_trial_and_stops_the_search(tmp_path: Path, executor: str) -> None:
    # the data is at fault, not the architecture: no other trial would do better
    data = tn.data.from_datasets(_Items("label"), TensorDataset(X[30:], Y[30:]), num_classes=2)
    search = tn.ModelSearch(space=_linear, data=data,
                            trainer=Trainer(epochs=1), strategy="random", trials=4,
                            progress=False, redraws=0, executor=executor,
                            storage=tmp_path / "s.db")
    with pytest.raises(DataError, match="train split: a batch read from the dataset"):
        search.run()
    trials = tn.load_study(tmp_path / "s.db", read_only=True).trials
    assert [t.state.name for t in trials] == ["FAILED"]
    assert "DataError: train split" in (trials[0].error or "")


def test_evaluate_on_a_tuple_says_how_to_wrap_it() -> None:
    with pytest.raises(DataError, match=r"got tuple: wrap \(x, y\) as .*TensorDataset"):
        Trainer().evaluate(nn.Linear(4, 2), (X, Y))  # type: ignore[arg-type]


# -- Trainer -------------------------------------------------------------------------------------
@pytest.mark.parametrize(("kwargs", "message"), [
    ({"epochs": 0}, r"epochs must be an integer >= 1, got 0"),
    ({"lr": "1e-3"}, r"lr must be a finite number"),
    ({"batch_size": 0}, r"batch_size must be an integer >= 1"),
    ({"optimizer": "Adam"}, r"optimizer must be one of .* got 'Adam' \(did you mean 'adam'\?\)"),
    ({"amp": "fp16"}, r"amp must be True, False or one of"),
    ({"device": "gpu"}, r"device must be 'auto', 'cpu', 'cuda\[:N\]'"),
    ({"device": "mps"}, r"device='mps' is not available here"),
])
def test_trainer_settings_are_config_errors_naming_the_argument(kwargs: dict[str, Any],
                                                                message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Trainer(**kwargs).check()
    with pytest.raises(ValueError):  # still a ValueError for callers that catch that
        Trainer(**kwargs).check()


def test_cuda_device_that_does_not_exist() -> None:
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    with pytest.raises(ConfigError, match=r"device='cuda:\d+'"):
        Trainer(device=f"cuda:{count + 3}").check()


# -- YAML config ---------------------------------------------------------------------------------
def test_duplicate_yaml_key_names_key_and_lines(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("space: mlp\ntrials: 1\ndata: digits\ntrials: 3\n")
    with pytest.raises(ConfigError, match=r"c\.yaml:4:1: .*key 'trials' is given twice "
                                          r"\(first on line 2\)"):
        load_config(path)
    with pytest.raises(ConfigError, match=r"key 'epochs' is given twice"):
        path.write_text("trainer: {epochs: 1, epochs: 2}\n")
        load_config(path)
    assert parse_value("{a: 1e-3, b: [1, 2]}") == {"a": 0.001, "b": [1, 2]}


@pytest.fixture
def modules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "bad_syntax_space.py").write_text("def build(hp)\n    return None\n")
    (tmp_path / "bad_import_space.py").write_text("raise RuntimeError('no GPU here')\n")
    (tmp_path / "good_space.py").write_text("def build(hp):\n    return hp\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    for name in ("bad_syntax_space", "bad_import_space", "good_space"):
        sys.modules.pop(name, None)


@pytest.mark.parametrize(("ref", "message"), [
    ("bad_syntax_space:build", r"cfg: space: cannot import 'bad_syntax_space': syntax error in "
                               r".*bad_syntax_space\.py, line 1"),
    ("bad_import_space:build", r"importing 'bad_import_space' raised RuntimeError: no GPU here"),
    (":build", r"':build' is not of the form package\.module:name"),
    ("good_space:", r"'good_space:' is not of the form"),
    ("good_space:biuld", r"'good_space' has no 'biuld'; did you mean 'build'\?"),
    ("no_such_module_xyz:build", r"cannot import 'no_such_module_xyz'"),
])
def test_resolve_object_names_the_culprit(modules: Path, ref: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        resolve_object("cfg: space", ref)


def test_cli_reports_a_space_module_with_a_syntax_error(
        modules: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    from torchnas.cli import main
    monkeypatch.chdir(modules)
    (modules / "c.yaml").write_text("space: bad_syntax_space:build\ndata: digits\ntrials: 1\n")
    assert main(["search", "c.yaml"]) == 2
    assert "syntax error in" in capsys.readouterr().err


# -- export --------------------------------------------------------------------------------------
def test_check_path_before_any_work(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"unknown format '\.h5'"):
        check_path(tmp_path / "best.h5")
    with pytest.raises(ConfigError, match=r"unknown format '\.PT'.*did you mean '\.pt'"):
        check_path(tmp_path / "best.PT")
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match=r"file is a file, not a folder"):
        check_path(tmp_path / "file" / "sub" / "best.pt")
    (tmp_path / "dir.pt").mkdir()
    with pytest.raises(ConfigError, match=r"is a folder"):
        check_path(tmp_path / "dir.pt")
    assert check_path(tmp_path / "new" / "best.pt") == tmp_path / "new" / "best.pt"
    assert not (tmp_path / "new").exists()  # nothing created


def test_save_model_rejects_bad_model_and_arch(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"model must be a torch\.nn\.Module, got str"):
        save_model(tmp_path / "m.pt", "model", {})  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"arch must be a JSON-able dict"):
        save_model(tmp_path / "m.pt", nn.Linear(2, 2), {"act": nn.ReLU()})
    assert not (tmp_path / "m.pt").exists()


def test_load_model_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"missing\.pt: cannot read the model file"):
        read_export(tmp_path / "missing.pt")
    (tmp_path / "text.pt").write_text("hello")
    with pytest.raises(ConfigError, match=r"text\.pt: not a torchnas model export"):
        read_export(tmp_path / "text.pt")

    def space(hp: tn.HP, out: int = 2) -> nn.Module:
        return nn.Linear(4, out * hp.choice("k", [1]))

    save_model(tmp_path / "m.pt", tn.build(space, {"k": 1}), {"k": 1})
    with pytest.raises(ConfigError, match=r"m\.pt: the saved weights do not fit"):
        load_model(tmp_path / "m.pt", space=space, out=3)
    assert isinstance(load_model(tmp_path / "m.pt", space=space), nn.Linear)


# -- the search: space, data, study settings, storage -------------------------------------------
def _mlp(hp: tn.HP) -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(4, hp.choice("units", [4, 8])), nn.ReLU(),
                         nn.Linear(hp.choice("units", [4, 8]), 2))


def _search(tmp_path: Path, **kwargs: Any) -> tn.ModelSearch:
    settings: dict[str, Any] = dict(space=_mlp, data=_data(), trainer=tn.Trainer(epochs=1),
                                    trials=1, storage=tmp_path / "s.db", progress=False)
    return tn.ModelSearch(**{**settings, **kwargs})


def test_a_space_that_returns_no_module_is_named(tmp_path: Path) -> None:
    def returns_none(hp: tn.HP) -> None:
        hp.choice("units", [4, 8])

    with pytest.raises(tn.SpaceError, match=r"returned NoneType, not an nn.Module "
                                            r"\(decisions \{'units': 4\}\)"):
        _search(tmp_path, space=returns_none).check()
    assert not (tmp_path / "s.db").exists()


def test_integer_inputs_get_a_hint_to_convert_them(tmp_path: Path) -> None:
    data = tn.data.from_tensors((X[:30].to(torch.uint8), Y[:30]), (X[30:].to(torch.uint8),
                                                                   Y[30:]))
    with pytest.raises(tn.SpaceError, match=r"\(torch.uint8\).*not floats: convert them"):
        _search(tmp_path, data=data).check()


def test_data_of_the_wrong_kind_names_its_type_not_its_values(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"got tuple; build one with tn.data.from_tensors") as e:
        _search(tmp_path, data=(X, Y)).check()
    assert "tensor(" not in str(e.value)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"seed": "abc"}, r"seed must be an integer, got 'abc'"),
    ({"timeout": -1}, r"timeout"),
    ({"export_to": "best.h5"}, r"unknown format '\.h5'"),
])
def test_search_settings_fail_before_storage_is_touched(tmp_path: Path, kwargs: dict[str, Any],
                                                        message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        _search(tmp_path, **kwargs).run()
    assert not (tmp_path / "s.db").exists()


def test_a_constraint_on_a_metric_the_objective_never_returns_fails_the_trial() -> None:
    study = tn.Study(objectives={"acc": "max"}, constraints={"size": ("<=", 3)},
                     strategy="random")
    study.optimize(lambda hp: {"acc": hp.float("x", 0.0, 1.0), "sise": 1.0}, trials=2)
    assert [t.state for t in study.trials] == [tn.TrialState.FAILED] * 2
    assert all("constraint metric 'size' is not among the trial's metrics" in (t.error or "")
               for t in study.trials)


def test_an_objective_that_is_not_a_function_fails_before_any_trial() -> None:
    study = tn.Study(objectives={"acc": "max"})
    with pytest.raises(ConfigError, match=r"objective must be a function of hp .* got str"):
        study.optimize("train.py", trials=2)  # type: ignore[arg-type]
    assert study.trials == []


@pytest.mark.parametrize("kind", ["folder", "foreign"])
def test_storage_that_cannot_be_a_database_is_named(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "runs.db"
    if kind == "folder":
        path.mkdir()
    else:
        path.write_bytes(b"\x00not sqlite\x00" * 200)
    with pytest.raises(ConfigError, match=rf"storage {path}: cannot use it as a torchnas SQLite"):
        tn.Study(storage=path)
    if kind == "foreign":
        assert path.read_bytes() == b"\x00not sqlite\x00" * 200


def test_cli_data_loader_that_returns_no_data_is_named(
        modules: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    from torchnas.cli import main
    monkeypatch.chdir(modules)
    (modules / "mydata.py").write_text("def load():\n    return [1, 2, 3]\n")
    (modules / "c.yaml").write_text("space: mlp\ndata: mydata:load\ntrials: 1\n")
    try:
        assert main(["search", "c.yaml"]) == 2
    finally:
        sys.modules.pop("mydata", None)
    assert "data: mydata:load returned list, not a torchnas Data" in capsys.readouterr().err
