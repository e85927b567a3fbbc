"""ModelSearch, the NAS path: search, leaderboard, retrain, export, resume, and bad input that
fails before the first trial. Real training on scikit-learn's digits (seconds on a CPU)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import torch
from helpers import quick_search
from torch import nn
from torch.utils.data import TensorDataset

import torchnas as tn
from torchnas.evaluation import evaluate
from torchnas.export import read_export
from torchnas.storage import get_storage

COMPLETE, FAILED, PRUNED = tn.TrialState.COMPLETE, tn.TrialState.FAILED, tn.TrialState.PRUNED
TRIAL_METRICS = {"val_accuracy", "val_loss", "train_loss", "params", "train_seconds", "epochs"}


@pytest.fixture(scope="module")
def digits() -> tn.data.Data:
    return tn.data.load("digits")


quick = quick_search


def held_out(data: tn.data.Data) -> TensorDataset:
    assert isinstance(data.test, TensorDataset)
    return data.test


def recorded(path: Path) -> int:
    """Trials recorded in a SQLite file, over all its studies (0 when there is no file)."""
    if not path.exists():
        return 0
    names = get_storage(str(path)).study_names()
    return sum(len(tn.load_study(str(path), name=n).trials) for n in names)


@pytest.fixture(scope="module")
def searched(digits: tn.data.Data) -> tuple[tn.ModelSearch, tn.Study, nn.Module]:
    search = quick(digits, trainer=tn.Trainer(epochs=3), trials=4)
    study = search.run()
    model = search.best_model(retrain=True)
    return search, study, model


# -- a search from start to end -----------------------------------------------------------------
def test_run_returns_the_study_with_its_trials(searched: Any) -> None:
    search, study, _ = searched
    assert search.study is study
    assert [t.number for t in study.trials] == [0, 1, 2, 3]
    assert all(t.state is COMPLETE for t in study.trials)
    assert len({t.key for t in study.trials}) == 4
    for t in study.trials:
        assert set(t.metrics) == TRIAL_METRICS  # nothing measured on the test split
        assert 0.0 <= t.metrics["val_accuracy"] <= 1.0
        assert t.metrics["epochs"] == 3
        assert [step for step, _ in t.intermediate] == [1, 2, 3]
        assert t.metrics["params"] == sum(
            p.numel() for p in tn.build(search.space_fn, t.arch).parameters())


def test_the_best_trial_is_chosen_by_val_accuracy(searched: Any) -> None:
    search, study, _ = searched
    best = max(study.trials, key=lambda t: t.metrics["val_accuracy"])
    assert search.best_trial.number == study.best_trial.number == best.number


def test_leaderboard_ranks_the_best_trial_first(searched: Any) -> None:
    search, study, _ = searched
    board = search.leaderboard()
    lines = board.splitlines()
    assert "mlp-digits" in lines[0] and "4 complete" in lines[0]
    first = lines[3].split()  # header, column names, rule, then rank 1
    best = study.best_trial
    assert first[:3] == ["1", str(best.number), f"{best.metrics['val_accuracy']:.4f}"]
    assert f"units_0={best.arch['units_0']}" in lines[3]
    assert len(lines) == 3 + 4


def test_best_model_is_retrained_and_tested_once(searched: Any, digits: tn.data.Data) -> None:
    search, study, model = searched
    assert search.test_accuracy is not None and search.test_accuracy > 0.8
    assert evaluate(model, held_out(digits))["accuracy"] == pytest.approx(search.test_accuracy)
    assert not any("test" in k for t in study.trials for k in t.metrics)


def test_retraining_uses_train_and_val(digits: tn.data.Data) -> None:
    data = tn.data.load("digits", val_fraction=0.9)  # 145 train, 1293 val samples
    search = quick(data, trainer=tn.Trainer(epochs=3), trials=1)
    study = search.run()
    search.best_model(retrain=True)
    arch = study.best_trial.arch
    train_only = tn.build(search.space_fn, arch)
    tn.Trainer(epochs=3).fit(train_only, data, params=arch)
    assert search.test_accuracy is not None
    assert search.test_accuracy > evaluate(train_only, held_out(data))["accuracy"] + 0.1


def test_export_round_trips(searched: Any, digits: tn.data.Data, tmp_path: Path) -> None:
    search, study, model = searched
    x = torch.stack([held_out(digits)[i][0] for i in range(50)])
    model.eval()
    with torch.no_grad():
        expected = model(x)
    pt = search.export(tmp_path / "best.pt", model)
    loaded = tn.load_model(pt)
    with torch.no_grad():
        assert torch.equal(loaded(x), expected)
    saved = read_export(pt)
    assert saved["arch"] == study.best_trial.arch
    assert saved["space"] == "mlp"
    assert saved["meta"]["test_accuracy"] == search.test_accuracy
    assert saved["meta"]["trial"] == study.best_trial.number
    ts = search.export(tmp_path / "best.ts", model)
    traced = torch.jit.load(str(ts))
    with torch.no_grad():
        assert torch.allclose(traced(x), expected, atol=1e-6)
        assert torch.equal(traced(x).argmax(1), expected.argmax(1))
    with pytest.raises(tn.ConfigError, match=r"torch\.jit\.load"):
        tn.load_model(ts)
    with pytest.raises(ValueError, match="unknown format"):
        search.export(tmp_path / "best.onnx2", model)


def test_export_to_onnx_and_torch_export_keeps_a_dynamic_batch(searched: Any,
                                                               digits: tn.data.Data,
                                                               tmp_path: Path) -> None:
    ort = pytest.importorskip("onnxruntime")
    search, _, model = searched
    model.eval()
    onnx_file = search.export(tmp_path / "best.onnx", model)
    session = ort.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["input"]
    program = torch.export.load(search.export(tmp_path / "best.pt2", model)).module()
    for size in (1, 7):  # neither the example's batch size nor fixed
        x = torch.stack([held_out(digits)[i][0] for i in range(size)])
        with torch.no_grad():
            expected = model(x)
            assert torch.allclose(program(x), expected, atol=1e-5)
        (out,) = session.run(["logits"], {"input": x.numpy()})
        assert out.shape == tuple(expected.shape)
        assert torch.allclose(torch.from_numpy(out), expected, atol=1e-4)
    with pytest.raises(tn.ConfigError, match="onnxruntime"):
        tn.load_model(onnx_file)
    assert not list(tmp_path.glob("*.partial"))


def test_run_retrains_and_exports_when_asked(digits: tn.data.Data, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "sub" / "best.pt"
    search = quick(digits, trainer=tn.Trainer(epochs=1), trials=2, retrain=True,
                   export_to=str(out), progress=True)
    search.run()
    captured = capsys.readouterr()
    assert "Leaderboard of 'mlp-digits'" in captured.out
    assert "test accuracy" in captured.out and f"Best model written to {out}" in captured.out
    assert "search" in captured.err and "trial" in captured.err  # the progress bar
    assert "Leaderboard" not in captured.err
    assert search.test_accuracy is not None
    assert read_export(out)["meta"]["test_accuracy"] == search.test_accuracy


def test_builtin_cnn_adapts_to_images(digits: tn.data.Data, tmp_path: Path) -> None:
    search = quick(digits, space="chain_cnn", trainer=tn.Trainer(epochs=1), trials=1)
    study = search.run()
    assert study.trials[0].state is COMPLETE
    model = search.best_model(retrain=False)
    assert any(isinstance(m, nn.Conv2d) for m in model.modules())
    path = search.export(tmp_path / "cnn.pt", model.eval())
    x = torch.stack([digits.val[i][0] for i in range(8)])
    with torch.no_grad():
        assert torch.equal(tn.load_model(path)(x), model(x))


# -- resume -------------------------------------------------------------------------------------
def test_resumed_search_only_runs_the_remaining_trials(digits: tn.data.Data,
                                                       tmp_path: Path) -> None:
    db = tmp_path / "runs" / "s.db"
    kw: dict[str, Any] = {"trainer": tn.Trainer(epochs=1), "storage": str(db), "name": "res"}
    first = quick(digits, trials=2, **kw).run().trials
    assert len(first) == 2
    study = quick(digits, trials=4, **kw).run()
    assert [t.number for t in study.trials] == [0, 1, 2, 3]
    assert study.trials[:2] == first  # untouched: same records, same times
    assert all(t.state is COMPLETE for t in study.trials)
    again = quick(digits, trials=4, **kw).run()
    assert again.trials == study.trials  # the total is reached: nothing more runs
    # resume is replay: the same as one uninterrupted search
    straight = quick(digits, trials=4, trainer=tn.Trainer(epochs=1), name="res").run()
    assert [t.arch for t in straight.trials] == [t.arch for t in study.trials]


# -- a space of your own ------------------------------------------------------------------------
def tiny_space(hp: tn.HP, classes: int = 10) -> nn.Module:
    width = hp.choice("width", [16, 32])
    act = nn.ReLU() if hp.bool("relu") else nn.Tanh()
    hp.float("lr", 3e-3, 3e-2, log=True)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, width), act, nn.Linear(width, classes))


def test_a_space_function_of_your_own(digits: tn.data.Data, tmp_path: Path) -> None:
    search = quick(digits, space=tiny_space, trials=2, space_kwargs={"classes": 10})
    study = search.run()
    assert study.name == "tiny_space-digits"
    assert set(study.best_trial.arch) == {"width", "relu", "lr"}
    assert search.space_name is None
    model = search.best_model(retrain=True).eval()
    path = search.export(tmp_path / "mine.pt", model)
    x = torch.stack([held_out(digits)[i][0] for i in range(16)])
    with torch.no_grad():
        assert torch.equal(tn.load_model(path, space=tiny_space)(x), model(x))
    with pytest.raises(tn.ConfigError, match=r"space function of your own.*space=build"):
        tn.load_model(path)


# -- bad input fails before the first trial -----------------------------------------------------
def wrong_classes(hp: tn.HP) -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(64, hp.choice("width", [8, 16])), nn.ReLU(),
                         nn.Linear(hp.get("width"), 3))


def empty_choice(hp: tn.HP) -> nn.Module:
    width = hp.int("width", 8, 16)
    hp.choice("activation", [])
    return nn.Linear(64, width)


def wrong_input(hp: tn.HP) -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(100, 10))


@pytest.mark.parametrize(("space", "message"), [
    (wrong_classes, r"output \(2, 3\).*needs \(batch, 10\)"),
    (empty_choice, "'activation'"),
    (wrong_input, r"fails on a batch of 'digits' shaped \(2, 1, 8, 8\)"),
    ("no_such_space", "unknown space 'no_such_space'"),
])
def test_bad_spaces_fail_before_any_trial(digits: tn.data.Data, tmp_path: Path, space: Any,
                                          message: str) -> None:
    db = tmp_path / "bad.db"
    search = quick(digits, space=space, storage=str(db))
    with pytest.raises((tn.SpaceError, tn.ConfigError), match=message):
        search.run()
    assert recorded(db) == 0
    with pytest.raises((tn.SpaceError, tn.ConfigError), match=message):
        quick(digits, space=space).check()


@pytest.mark.parametrize(("settings", "message"), [
    ({"trainer": tn.Trainer(epochs=0)}, "trainer: epochs must be an integer >= 1"),
    ({"trainer": tn.Trainer(optimizer="adamm")}, "trainer: optimizer must be one of"),
    ({"strategy": "randm"}, "unknown strategy 'randm'; did you mean 'random'"),
    ({"strategy": {"name": "grid", "points": 3}}, "strategy 'grid'"),
    ({"objectives": {"val_acc": "max"}}, "'val_acc' is not a metric.*'val_accuracy'"),
    ({"objectives": {"val_accuracy": "up"}}, "direction must be 'max' or 'min'"),
    ({"constraints": {"param": ("<=", 1e5)}}, "'param' is not a metric.*'params'"),
])
def test_bad_settings_fail_before_storage_is_touched(digits: tn.data.Data, tmp_path: Path,
                                                     settings: dict[str, Any],
                                                     message: str) -> None:
    db = tmp_path / "bad.db"
    with pytest.raises(tn.ConfigError, match=message):
        quick(digits, storage=str(db), **settings).run()
    assert not db.exists()


def test_same_seed_same_search(digits: tn.data.Data) -> None:
    runs = []
    for _ in range(2):
        torch.rand(7)  # the global RNG moves between the runs: no effect on the search
        search = quick(digits, trainer=tn.Trainer(epochs=1), trials=2)
        trials = search.run().trials
        search.best_model(retrain=True)
        runs.append(([(t.arch, {k: v for k, v in t.metrics.items() if k != "train_seconds"})
                      for t in trials], search.test_accuracy))
    assert runs[0] == runs[1]


def test_bad_data_fails_before_any_trial(digits: tn.data.Data, tmp_path: Path) -> None:
    x, y = torch.rand(60, 1, 8, 8), torch.arange(60) % 10
    nan = x.clone()
    nan[7, 0, 3, 3] = float("nan")
    with pytest.raises(tn.DataError, match=r"train split: inputs contain 1 NaN.*index 7"):
        tn.data.from_tensors((nan, y), (x, y))
    with pytest.raises(tn.DataError, match=r"val split: label 12 is out of range"):
        tn.data.from_tensors((x, y), (x, torch.full((60,), 12)), num_classes=10)
    # a bundle put together by hand skips from_tensors' checks; the search still runs them
    db = tmp_path / "bad.db"
    for train, val, message in [
        (TensorDataset(nan, y), TensorDataset(x, y), "train split: inputs contain 1 NaN"),
        (TensorDataset(x, y), TensorDataset(x, y + 5), "val split: label 14 is out of range"),
    ]:
        data = tn.data.Data(train, val, None, (1, 8, 8), 10, "hand-made")
        with pytest.raises(tn.DataError, match=message):
            quick(data, storage=str(db)).run()
    assert recorded(db) == 0


def test_the_test_split_does_not_steer_the_search(digits: tn.data.Data) -> None:
    x, y = held_out(digits).tensors
    scrambled = tn.data.Data(digits.train, digits.val, TensorDataset(x.flip(0), (y + 1) % 10),
                             digits.input_shape, digits.num_classes, "digits")
    without = tn.data.Data(digits.train, digits.val, None, digits.input_shape,
                           digits.num_classes, "digits")
    runs = [quick(d, trainer=tn.Trainer(epochs=1)).run().trials for d in (scrambled, without)]
    a, b = ([(t.arch, t.metrics["val_accuracy"], t.metrics["val_loss"]) for t in r]
            for r in runs)
    assert a == b


# -- trials that stop early or break ------------------------------------------------------------
def slow_space(hp: tn.HP) -> nn.Module:
    if hp.trial is not None:  # slow in trials only, not while the space is explored
        time.sleep(1.2)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, hp.choice("width", [16, 32])), nn.ReLU(),
                         nn.Linear(hp.get("width"), 10))


def test_timeout_prunes_the_running_trial_and_stops(digits: tn.data.Data) -> None:
    search = quick(digits, space=slow_space, trainer=tn.Trainer(epochs=200), trials=100,
                   timeout=1.0)
    start = time.monotonic()
    study = search.run()
    assert time.monotonic() - start < 20  # 200 epochs would take far longer
    [trial] = study.trials
    assert trial.state is PRUNED
    assert [step for step, _ in trial.intermediate] == [1]  # stopped after its first epoch
    assert trial.metrics["val_accuracy"] == trial.intermediate[0][1]["val_accuracy"]
    assert trial.error is not None and "timeout" in trial.error


class Broken(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:  # check() runs every branch in eval mode: it fails in training
            return x
        raise RuntimeError("this block is broken")


def flaky_space(hp: tn.HP) -> nn.Module:
    block = hp.choice("block", ["fine", "broken"])
    width = hp.choice("width", [16, 32])
    return nn.Sequential(nn.Flatten(), nn.Linear(64, width),
                         nn.ReLU() if block == "fine" else Broken(), nn.Linear(width, 10))


def test_failing_trials_are_recorded_and_the_search_goes_on(digits: tn.data.Data) -> None:
    search = quick(digits, space=flaky_space, trainer=tn.Trainer(epochs=1), trials=8)
    study = search.run()
    trials = study.trials
    assert len(trials) == 8
    failed = [t for t in trials if t.arch["block"] == "broken"]
    assert failed and len(failed) < 8
    for t in trials:
        if t.arch["block"] == "broken":
            assert t.state is FAILED
            assert t.error == "RuntimeError: this block is broken"
        else:
            assert t.state is COMPLETE and t.error is None
    assert search.best_trial.arch["block"] == "fine"
    assert "failed" in search.leaderboard().splitlines()[0]


def three_models(hp: tn.HP) -> nn.Module:
    """A space of exactly three architectures."""
    width = hp.choice("width", [4, 8, 16])
    return nn.Sequential(nn.Flatten(), nn.Linear(64, width), nn.ReLU(), nn.Linear(width, 10))


def test_trials_never_repeat_an_architecture_while_new_ones_remain(digits: tn.data.Data) -> None:
    search = quick(digits, space=three_models, trials=3)
    study = search.run()
    widths = [t.arch["width"] for t in study.trials]
    assert sorted(widths) == [4, 8, 16]
    # without de-duplication random search repeats itself on this space (same seed)
    plain = quick(digits, space=three_models, trials=3, redraws=0).run()
    assert len({t.arch["width"] for t in plain.trials}) < 3


class Stubborn(tn.strategies.Strategy):
    """Proposes the same architecture every time, as a model that has converged can."""

    name = "stubborn"

    def ask(self, ctx: tn.strategies.AskContext) -> dict[str, Any]:
        return {"width": 4}

    def suggest(self, ctx: tn.strategies.AskContext, label: str, domain: Any) -> Any:
        return domain.sample(ctx.rng(label))


def test_redraws_turn_uniform_when_the_strategy_keeps_repeating(digits: tn.data.Data) -> None:
    search = quick(digits, space=three_models, trials=3, strategy=Stubborn(), redraws=16,
                   trainer=tn.Trainer(epochs=1))
    widths = [t.arch["width"] for t in search.run().trials]
    assert sorted(widths) == [4, 8, 16]


def test_too_many_failures_in_a_row_stop_the_search(digits: tn.data.Data) -> None:
    def broken(hp: tn.HP) -> nn.Module:
        hp.int("units", 8, 64)
        if hp.trial is not None:  # exploration before the search passes; every trial fails
            raise RuntimeError("this block is broken")
        return nn.Sequential(nn.Flatten(), nn.Linear(64, 10))

    search = quick(digits, space=broken, trials=10, max_failures=3)
    with pytest.raises(tn.TooManyFailures, match="3 trials failed in a row"):
        search.run()


def test_a_search_where_nothing_completes_ends_without_a_crash(digits: tn.data.Data,
                                                               tmp_path: Path) -> None:
    search = quick(digits, trials=2, timeout=1e-9, retrain=True,
                   export_to=str(tmp_path / "best.pt"), trainer=tn.Trainer(epochs=3))
    study = search.run()
    assert all(t.state is not tn.TrialState.COMPLETE for t in study.trials)
    assert search.test_accuracy is None and not (tmp_path / "best.pt").exists()


def test_every_report_carries_the_costs_for_multi_objective_schedulers(
        digits: tn.data.Data) -> None:
    search = quick(digits, trials=4, objectives={"val_accuracy": "max", "params": "min"},
                   scheduler={"name": "mo_asha", "max_budget": 2, "min_budget": 1})
    trials = search.run().trials
    for t in trials:
        assert t.intermediate and all(m["params"] == t.metrics["params"]
                                      for _, m in t.intermediate)
        assert all("val_accuracy" in m for _, m in t.intermediate)
    single = quick(digits, trials=1).run().trials[0]
    assert all("params" not in m for _, m in single.intermediate)  # not named: not measured


def _narrow(hp: tn.HP) -> nn.Module:
    width = hp.int("units", 8, 32, step=8)
    if hp.bool("deep"):
        hp.float("lr", 1e-3, 1e-1, log=True)  # a conditional label: met on some runs only
        return nn.Sequential(nn.Flatten(), nn.Linear(64, width), nn.ReLU(),
                             nn.Linear(width, 10))
    return nn.Sequential(nn.Flatten(), nn.Linear(64, width), nn.Tanh(), nn.Linear(width, 10))


def _wide(hp: tn.HP) -> nn.Module:
    width = hp.int("units", 8, 64, step=8)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, width), nn.ReLU(), nn.Linear(width, 10))


def test_reopening_a_study_with_an_edited_space_warns(tmp_path: Path) -> None:
    import warnings

    kw: dict[str, Any] = dict(data="digits", trainer=tn.Trainer(epochs=1), name="s",
                              storage=tmp_path / "s.db", progress=False, strategy="random")
    tn.ModelSearch(space=_narrow, trials=4, **kw).run()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the same space, conditional labels included: quiet
        tn.ModelSearch(space=_narrow, trials=5, **kw).run()
    # another space function: the stored settings name the old one
    with pytest.raises(tn.ConfigError, match=r"space: \"test_model_search:_narrow\" -> "
                                             r"\"test_model_search:_wide\""):
        tn.ModelSearch(space=_wide, trials=6, **kw).run()
    with pytest.warns(UserWarning, match=r"study 's' holds trials of another space \('units' "
                                         r"was int\[8, 32, step=8\], is int\[8, 64, step=8\]; "
                                         r"labels this space never meets: 'deep'") as record:
        study = tn.ModelSearch(space=_wide, trials=6, override_settings=True, **kw).run()
    assert len(study.trials) == 6 and len(record) == 1


def test_more_trials_than_architectures_is_said_up_front(caplog: pytest.LogCaptureFixture
                                                         ) -> None:
    def two(hp: tn.HP) -> nn.Module:
        act = nn.ReLU() if hp.bool("relu") else nn.Tanh()
        return nn.Sequential(nn.Flatten(), nn.Linear(64, 10), act)

    with caplog.at_level("WARNING", logger="torchnas"):
        tn.ModelSearch(space=two, data="digits", trainer=tn.Trainer(epochs=1), trials=3,
                       progress=False, strategy="grid").run()
    assert "the space has 2 architecture(s) and trials=3" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="torchnas"):
        tn.ModelSearch(space=two, data="digits", trainer=tn.Trainer(epochs=1), trials=2,
                       progress=False, strategy="grid").run()
    assert "architecture(s)" not in caplog.text


def test_get_params_gives_the_keywords_as_given() -> None:
    trainer = tn.Trainer(epochs=1)
    search = tn.ModelSearch(space="mlp", data="digits", trainer=trainer, trials=3,
                            cost={"repeats": 3}, fidelity=tn.search.Fidelity(width=0.5))
    params = search.get_params()
    assert list(params)[:3] == ["space", "data", "trainer"] and params["trainer"] is trainer
    assert params["cost"] == {"repeats": 3} and params["trials"] == 3
    assert tn.ModelSearch(**params).get_params() == params
    assert repr(search).startswith("ModelSearch(space='mlp', data='digits', trainer=")


def test_cost_warm_start_and_fidelity_are_typed_settings_or_mappings() -> None:
    from torchnas.search import CostSettings, Fidelity, WarmStart

    assert CostSettings.parse(None) == CostSettings()
    assert CostSettings.parse({"repeats": 3}) == CostSettings(repeats=3)
    assert WarmStart.parse(None) is None and WarmStart.parse({}) == WarmStart()
    assert Fidelity.parse({"epochs": 2.0, "width": 1}) == Fidelity(width=1.0, epochs=2)
    assert Fidelity(data=0.5).to_dict() == {"width": 1.0, "epochs": None, "data": 0.5}
    for make, message in [
        (lambda: CostSettings(batch_size=0), "cost: batch_size must be an integer >= 1"),
        (lambda: CostSettings.parse({"repeat": 3}), "cost: unknown key 'repeat'; did you "
                                                    "mean 'repeats'"),
        (lambda: WarmStart(proxy="synflo"), "warm_start: proxy must be one of"),
        (lambda: Fidelity(epochs=float("inf")), "fidelity: epochs must be an integer >= 1"),
        (lambda: Fidelity.parse([0.5]), "fidelity must be a mapping"),
    ]:
        with pytest.raises(tn.ConfigError, match=message):
            make()
    typed = tn.ModelSearch(space="mlp", data="digits", cost=CostSettings(repeats=3),
                           warm_start=WarmStart(top=2), fidelity=Fidelity(width=0.5))
    assert typed.model_metrics.cost.repeats == 3 and typed.model_metrics.warm_start.top == 2
    assert typed.objective.fidelity == Fidelity(width=0.5)
