"""Tasks (``Trainer(task=...)``): regression, token sequences and language models end to end on
small real or generated data, the errors of data that does not fit its task, one-shot
supernets trained with the task's loss, and the task in a YAML config."""

from __future__ import annotations

import contextlib
import io
import math
from pathlib import Path
from typing import Any

import pytest
import torch
from sklearn.metrics import r2_score
from torch import nn
from torch.utils.data import Dataset, TensorDataset

import torchnas as tn
from torchnas._util.errors import ConfigError, DataError, SpaceError
from torchnas.cli import main
from torchnas.space import FixedSource

VOCAB = 8  # token ids 1..7; 0 is padding


# -- data of each task -------------------------------------------------------------------------
def regression(n: int = 300, k: int = 1, seed: int = 0) -> tn.data.Data:
    """``y = x @ w`` plus noise: ``(N,)`` targets, or ``(N, k)``."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 6, generator=gen)
    y = x @ torch.randn(6, k, generator=gen) + 0.1 * torch.randn(n, k, generator=gen)
    y = y[:, 0] if k == 1 else y
    a, b = n * 3 // 5, n * 4 // 5
    return tn.data.from_tensors((x[:a], y[:a]), (x[a:b], y[a:b]), (x[b:], y[b:]))


def tokens(n: int = 600, per_token: bool = False, seed: int = 0) -> tn.data.Data:
    """Right-padded token sequences of length 3..12: label 1 when token 3 occurs (per
    sequence), or each token's parity (per token; padding labelled 1, which must not count)."""
    gen = torch.Generator().manual_seed(seed)
    lengths = torch.randint(3, 13, (n,), generator=gen)
    x = tn.data.pad_sequences([torch.randint(1, VOCAB, (int(k),), generator=gen)
                               for k in lengths], length=12)
    if per_token:
        y = x % 2
        y[x == 0] = 1
    else:
        y = (x == 3).any(1).long()
    a, b = n * 3 // 5, n * 4 // 5
    return tn.data.from_tensors((x[:a], y[:a]), (x[a:b], y[a:b]), (x[b:], y[b:]))


def corpus(n: int = 400, length: int = 16, vocab: int = 10, seed: int = 0) -> tn.data.Data:
    """Windows of repeating patterns: ``1 + (start + step * i) % (vocab - 1)``, step 1 or 2
    (the next token depends on the window's step: a recurrent model can tell, a bigram not)."""
    gen = torch.Generator().manual_seed(seed)
    start = torch.randint(0, vocab - 1, (n, 1), generator=gen)
    step = torch.randint(1, 3, (n, 1), generator=gen)
    ids = 1 + (start + step * torch.arange(length + 1)) % (vocab - 1)
    x, y = tn.data.shift_tokens(ids)
    a, b = n * 3 // 5, n * 4 // 5
    return tn.data.from_tensors((x[:a], y[:a]), (x[a:b], y[a:b]), (x[b:], y[b:]),
                                num_classes=vocab)


# -- hand-written spaces of tokens (built-in sequence spaces come later) -----------------------
class Tokens(nn.Module):
    """Embedding, an optional GRU, then a linear head: per token, or mean-pooled over the
    positions that are not padding."""

    def __init__(self, vocab: int, hidden: int, recurrent: bool, outputs: int,
                 per_token: bool) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, hidden)
        self.rnn = nn.GRU(hidden, hidden, batch_first=True) if recurrent else None
        self.head = nn.Linear(hidden, outputs)
        self.per_token = per_token

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.embed(x)
        if self.rnn is not None:
            h, _ = self.rnn(h)
        if self.per_token:
            return self.head(h)
        keep = (x != 0).unsqueeze(-1).float()  # lengths from the padding
        return self.head((h * keep).sum(1) / keep.sum(1).clamp_min(1))


def sequence_space(hp: tn.HP) -> nn.Module:
    return Tokens(VOCAB, hp.choice("hidden", [8, 16]), hp.bool("recurrent"), 2, False)


def token_space(hp: tn.HP) -> nn.Module:
    return Tokens(VOCAB, hp.choice("hidden", [8, 16]), hp.bool("recurrent"), 2, True)


def lm_space(hp: tn.HP) -> nn.Module:
    return Tokens(10, hp.choice("hidden", [16, 32]), hp.bool("recurrent"), 10, True)


def quiet_search(**kwargs: Any) -> tn.ModelSearch:
    return tn.ModelSearch(**{"progress": False, "strategy": "random", **kwargs})


# -- regression -----------------------------------------------------------------------------------
def test_diabetes_loads_standardized() -> None:
    data = tn.data.load("diabetes")
    assert data.num_classes is None and data.input_shape == (10,) and data.num_outputs == 1
    assert len(data.train) + len(data.val) + len(data.test) == 442
    x, y = data.train.tensors
    assert y.dtype == torch.float32 and abs(float(y.mean())) < 1e-5
    assert abs(float(y.std()) - 1) < 0.01 and float(x.mean(0).abs().max()) < 1e-5
    raw = tn.data.load("diabetes", standardize_target=False)
    assert float(raw.train.tensors[1].min()) >= 25 and float(raw.train.tensors[1].max()) <= 346
    assert torch.equal(raw.train.tensors[0], x)  # the same split, the same features


def test_regression_search_on_diabetes_retrains_with_test_metrics(tmp_path: Path) -> None:
    search = quiet_search(space="mlp", data="diabetes", trials=3, seed=0,
                          trainer=tn.Trainer(task="regression", epochs=30, batch_size=32),
                          storage=str(tmp_path / "d.db"))
    study = search.run()
    assert study.objectives == {"val_mse": "min"}  # the task's default objective
    best = search.best_trial
    assert {"val_mse", "val_mae", "val_r2", "val_loss", "train_loss"} <= set(best.metrics)
    assert best.metrics["val_mse"] == min(t.metrics["val_mse"] for t in study.trials)
    model = search.best_model(retrain=True)
    assert set(search.test_metrics) == {"test_mse", "test_mae", "test_r2", "test_loss"}
    assert search.test_accuracy is None
    assert search.test_metrics["test_r2"] > 0.3, search.test_metrics
    assert search.test_metrics["test_loss"] == pytest.approx(search.test_metrics["test_mse"])
    # the export rebuilds the space with one output
    search.export(tmp_path / "best.pt", model)
    again = tn.load_model(tmp_path / "best.pt")
    x = search.dataset.test.tensors[0][:4]
    assert torch.allclose(model.eval()(x), again.eval()(x)) and again(x).shape == (4, 1)


@pytest.mark.parametrize("loss", ["mse", "l1", "huber"])
def test_regression_of_several_targets_with_each_loss(loss: str) -> None:
    data = regression(k=3)
    assert data.target_shape == (3,) and data.num_outputs == 3
    trainer = tn.Trainer(task="regression", loss=loss, epochs=30, batch_size=32, lr=5e-2)
    model = nn.Linear(6, 3)
    metrics = trainer.fit(model, data)
    assert set(metrics) == {*trainer.metric_names()} == {
        "val_mse", "val_mae", "val_r2", "val_loss", "train_loss", "params", "train_seconds",
        "epochs"}
    assert metrics["val_r2"] > 0.9
    x, y = data.val.tensors
    with torch.no_grad():
        err = model(x) - y
    assert metrics["val_mse"] == pytest.approx(float((err**2).mean()), rel=1e-5)
    assert metrics["val_mae"] == pytest.approx(float(err.abs().mean()), rel=1e-5)
    with torch.no_grad():  # R^2 averaged over the outputs, as scikit-learn's default
        assert metrics["val_r2"] == pytest.approx(r2_score(y.numpy(), model(x).numpy()), rel=1e-5)
    if loss == "l1":
        assert metrics["val_loss"] == pytest.approx(metrics["val_mae"], rel=1e-5)
    test = trainer.evaluate(model, data.test)
    assert set(test) == {"mse", "mae", "r2", "loss"}


def test_builtin_spaces_give_one_output_per_target() -> None:
    for name in ("mlp", "chain_cnn", "mobile", "cell"):
        space = tn.spaces.create(name, input_shape=(1, 16), num_classes=None, num_outputs=2)
        model = space(tn.HP(FixedSource({}, missing="default")))
        assert model.eval()(torch.randn(3, 1, 16)).shape == (3, 2)
    with pytest.raises(SpaceError, match="num_outputs must be an integer >= 1"):
        tn.explore(tn.spaces.create("mlp", input_shape=(4,), num_outputs=0))


# -- token sequences ------------------------------------------------------------------------------
def test_sequence_labels_per_sequence_beat_the_majority_class() -> None:
    data = tokens()
    search = quiet_search(space=sequence_space, data=data, trials=2,
                          trainer=tn.Trainer(task="sequence", epochs=8, batch_size=32, lr=1e-2))
    study = search.run()
    assert study.objectives == {"val_accuracy": "max"}
    search.best_model(retrain=True)
    y = data.test.tensors[1].float()
    majority = max(float(y.mean()), 1 - float(y.mean()))
    assert set(search.test_metrics) == {"test_accuracy", "test_loss"}
    assert search.test_accuracy > majority + 0.1, (search.test_metrics, majority)


def test_sequence_labels_per_token_ignore_the_padding() -> None:
    data = tokens(per_token=True)
    assert data.target_shape == (12,)
    trainer = tn.Trainer(task="sequence", epochs=8, batch_size=32, lr=1e-2)
    model = tn.build(token_space, {"hidden": 16, "recurrent": False})
    metrics = trainer.fit(model, data)
    x, y = data.val.tensors
    real = x != 0
    assert metrics["val_accuracy"] > 0.95  # the majority (odd tokens) is 4 of 7
    with torch.no_grad():
        right = (model.eval()(x).argmax(-1) == y)[real].float().mean()
    assert metrics["val_accuracy"] == pytest.approx(float(right))  # padding not counted
    # the padding's labels do not matter
    y2 = y.clone()
    y2[~real] = 0
    other = tn.data.from_tensors(data.train.tensors, (x, y2))
    assert trainer.evaluate(model, other.val) == pytest.approx(trainer.evaluate(model, data.val))
    assert tn.evaluation.SequenceTask().lengths(x).tolist() == real.sum(1).tolist()


def test_language_model_beats_the_unigram_perplexity() -> None:
    data = corpus()
    search = quiet_search(space=lm_space, data=data, trials=3, seed=0,
                          trainer=tn.Trainer(task="language_model", epochs=10, batch_size=32,
                                             lr=1e-2))
    study = search.run()
    assert study.objectives == {"val_perplexity": "min"}
    best = search.best_trial
    assert best.metrics["val_perplexity"] == pytest.approx(math.exp(best.metrics["val_loss"]))
    search.best_model(retrain=True)
    assert set(search.test_metrics) == {"test_perplexity", "test_loss", "test_accuracy"}
    counts = torch.bincount(data.train.tensors[1].flatten(), minlength=10).float()
    unigram = math.exp(-float((counts / counts.sum())[data.test.tensors[1].flatten()]
                              .log().mean()))
    assert search.test_metrics["test_perplexity"] < unigram / 3, (search.test_metrics, unigram)


def test_pad_sequences_and_shift_tokens() -> None:
    assert tn.data.pad_sequences([[5, 6, 7], [8]], pad_id=9).tolist() == [[5, 6, 7], [8, 9, 9]]
    assert tn.data.pad_sequences([[5, 6, 7], [8]], length=2).tolist() == [[5, 6], [8, 0]]
    x, y = tn.data.shift_tokens(torch.tensor([[1, 2, 3, 4]]))
    assert x.tolist() == [[1, 2, 3]] and y.tolist() == [[2, 3, 4]]
    with pytest.raises(DataError, match=r"shift_tokens needs tokens shaped \(N, T \+ 1\)"):
        tn.data.shift_tokens(torch.tensor([1, 2, 3]))


def test_language_model_ignores_padded_targets() -> None:
    data = corpus(n=50)
    x, y = data.val.tensors
    y = y.clone()
    y[:, 8:] = 0  # padding: never a target
    padded = tn.data.from_tensors(data.train.tensors, (x, y), num_classes=10)
    model = tn.build(lm_space, {"hidden": 16, "recurrent": False})
    metrics = tn.Trainer(task="language_model").evaluate(model, padded.val)
    with torch.no_grad():
        out = model.eval()(x)[:, :8]
    loss = nn.functional.cross_entropy(out.reshape(-1, 10), y[:, :8].reshape(-1))
    assert metrics["loss"] == pytest.approx(float(loss), rel=1e-5)
    assert metrics["perplexity"] == pytest.approx(math.exp(float(loss)), rel=1e-5)


# -- data that does not fit its task: clear errors before (or at) the first trial ---------------
X, Y = torch.randn(40, 6), torch.arange(40) % 2


def _linear(hp: tn.HP) -> nn.Module:
    return nn.Linear(6, hp.choice("out", [2]))


def test_float_targets_given_to_classification_name_the_regression_task() -> None:
    data = regression()
    search = quiet_search(space=_linear, data=data, trainer=tn.Trainer(epochs=1), trials=1)
    with pytest.raises(DataError, match=r"targets of 'custom' are floats: task "
                                        r"'classification' .*Trainer\(task='regression'\)"):
        search.check()
    with pytest.raises(DataError, match=r"use task 'regression' \(Trainer\(task='regression'\); "
                                        r"in YAML, trainer: \{task: regression\}\)"):
        tn.Trainer(epochs=1).fit(nn.Linear(6, 2), data)


def test_integer_targets_given_to_regression_name_the_classification_task() -> None:
    data = tn.data.from_tensors((X[:30], Y[:30]), (X[30:], Y[30:]))
    with pytest.raises(DataError, match=r"integer class indices: task 'regression' needs float "
                                        r"targets. For classes use Trainer\(task="
                                        r"'classification'\)"):
        tn.Trainer(task="regression", epochs=1).fit(nn.Linear(6, 1), data)


def test_float_inputs_given_to_a_task_of_tokens() -> None:
    data = tn.data.from_tensors((X[:30], Y[:30]), (X[30:], Y[30:]))
    with pytest.raises(DataError, match=r"task 'sequence' needs integer token ids as inputs, "
                                        r"shaped \(N, T\); the inputs of 'custom' are "
                                        r"torch.float32"):
        tn.Trainer(task="sequence").check_data(data)
    with pytest.raises(DataError, match=r"next-token targets shaped like the inputs"):
        tn.Trainer(task="language_model").check_data(tokens(n=50))


@pytest.mark.parametrize(("labels", "message"), [
    (torch.full((10,), 2), r"val split: label 2 is out of range for num_classes=2; labels must "
                           r"be in \[0, 1\]"),
    (torch.full((10,), -1), r"val split: label -1 is negative"),
])
def test_class_indices_out_of_range(labels: torch.Tensor, message: str) -> None:
    with pytest.raises(DataError, match=message):
        tn.data.from_tensors((X[:30], Y[:30]), (X[30:], labels), num_classes=2)


def test_nan_targets_are_named_with_their_split_and_sample() -> None:
    y = torch.randn(40)
    y[33] = math.nan
    with pytest.raises(DataError, match=r"val split: targets contain 1 NaN and 0 inf values in "
                                        r"1 samples \(first at index 3\)"):
        tn.data.from_tensors((X[:30], y[:30]), (X[30:], y[30:]))
    with pytest.raises(DataError, match=r"targets must be floats like the train split's"):
        tn.data.from_tensors((X[:30], y[:30].abs()), (X[30:], Y[30:]))


def _too_small(hp: tn.HP) -> nn.Module:
    return Tokens(hp.choice("vocab", [5]), 8, False, 2, False)  # ids go up to 7


def test_a_token_id_past_the_embedding_fails_before_the_first_trial(tmp_path: Path) -> None:
    search = quiet_search(space=_too_small, data=tokens(n=100), trials=2,
                          trainer=tn.Trainer(task="sequence", epochs=1),
                          storage=str(tmp_path / "t.db"))
    with pytest.raises(DataError, match=r"train split: token id 7 at sample \d+ is outside the "
                                        r"model's embedding \('embed': nn.Embedding of 5 "
                                        r"entries, ids 0 to 4\)"):
        search.run()
    assert not (tmp_path / "t.db").exists()
    with pytest.raises(DataError, match=r"train split: token id 7 at sample \d+ is outside"):
        tn.Trainer(task="sequence", epochs=1).fit(tn.build(_too_small, {"vocab": 5}), tokens(n=100))


class _Plain(Dataset[Any]):
    """Token items one by one (the DataLoader path): item 5 holds id 7."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.x[i], self.y[i]


def test_a_token_id_past_the_embedding_in_a_loaded_batch() -> None:
    x = torch.randint(1, 5, (40, 6))
    x[5, 2] = 7
    y = torch.arange(40) % 2
    data = tn.data.from_datasets(_Plain(x[:30], y[:30]), TensorDataset(x[30:], y[30:]))
    model = Tokens(5, 8, False, 2, False)
    with pytest.raises(DataError, match=r"train split: token id 7 in a batch read from the "
                                        r"dataset is outside the model's embedding"):
        tn.Trainer(task="sequence", epochs=1, batch_size=8).fit(model, data)


def test_bad_task_settings_are_config_errors() -> None:
    with pytest.raises(ConfigError, match=r"task 'classification': loss must be one of "
                                          r"'cross_entropy', got 'l1'"):
        tn.Trainer(loss="l1").check()
    with pytest.raises(ConfigError, match=r"unknown task 'regresion'; did you mean "
                                          r"'regression'"):
        tn.Trainer(task="regresion").check()
    with pytest.raises(ConfigError, match=r"label_smoothing applies to class labels"):
        tn.Trainer(task="regression", label_smoothing=0.1).check()
    with pytest.raises(ConfigError, match=r"pad_id must be None or an integer >= 0"):
        tn.Trainer(task={"name": "sequence", "pad_id": -1}).check()
    with pytest.raises(ConfigError, match=r"trainer: .*loss must be one of 'mse'"):
        quiet_search(space="mlp", data=regression(),
                     trainer=tn.Trainer(task="regression", loss="hinge")).check()


def test_a_regression_model_of_the_wrong_width_is_named() -> None:
    def three(hp: tn.HP) -> nn.Module:
        return nn.Linear(6, hp.choice("out", [1, 3]))

    search = quiet_search(space=three, data=regression(), trainer=tn.Trainer(task="regression"))
    with pytest.raises(SpaceError, match=r"output \(2, 3\) with out=3 .*'custom' needs \(batch, "
                                         r"1\) or \(batch,\) outputs"):
        search.check()


def test_the_stored_settings_name_the_task_only_when_it_is_not_classification() -> None:
    plain = quiet_search(space="mlp", data="digits").objective.settings()["trainer"]
    assert "task" not in plain and "loss" not in plain  # studies made before tasks resume
    data = regression()
    settings = quiet_search(space="mlp", data=data, trainer=tn.Trainer(
        task="regression", loss="huber")).objective.settings()["trainer"]
    assert settings["task"] == "regression" and settings["loss"] == "huber"


# -- one-shot -------------------------------------------------------------------------------------
def _op_space(hp: tn.HP) -> nn.Module:
    act = hp.op("act", {"relu": nn.ReLU, "tanh": nn.Tanh, "skip": nn.Identity})
    return nn.Sequential(nn.Linear(6, 16), act, nn.Linear(16, 1))


def test_darts_trains_its_supernet_with_the_regression_loss() -> None:
    search = quiet_search(space=_op_space, data=regression(),
                          trainer=tn.Trainer(task="regression", epochs=5, batch_size=32),
                          strategy={"name": "darts", "epochs": 3, "batch_size": 32,
                                    "lr": 0.02, "amp": False})
    study = search.run()
    result = search.oneshot_result
    assert result is not None
    history = [h for h in result.history if "val_mse" in h]
    assert len(history) == 3 and {"val_mae", "val_r2", "train_loss"} <= set(history[0])
    assert history[-1]["val_mse"] < history[0]["val_mse"]  # the MSE it trains on goes down
    assert study.objectives == {"val_mse": "min"}
    assert "val_mse" in study.trials[0].metrics
    # the same run, standalone: tn.oneshot takes the task
    method = tn.oneshot.create("spos", epochs=2, batch_size=32, population=4, generations=2)
    found = method.search(_op_space, regression(), task=tn.Trainer(task="regression").get_task())
    assert set(found.arch) == {"act"}


# -- YAML -----------------------------------------------------------------------------------------
def test_a_yaml_config_with_the_regression_task(tmp_path: Path) -> None:
    db = tmp_path / "r.db"
    config = tmp_path / "r.yaml"
    config.write_text(f"space: mlp\ndata: diabetes\ntrainer:\n  task: regression\n  epochs: 2\n"
                      f"trials: 2\nretrain: true\nstorage: {db}\n")
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["search", str(config)])
    assert code == 0, err.getvalue()
    assert "val_mse" in out.getvalue() and "test r2" in out.getvalue()
    study = tn.load_study(str(db))
    assert study.objectives == {"val_mse": "min"}
    assert all("val_r2" in t.metrics for t in study.trials)


def test_the_cli_export_of_a_regression_search_prints_its_test_metrics(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "r.yaml"
    cfg.write_text(f"space: mlp\ndata: diabetes\ntrainer: {{task: regression, epochs: 2}}\n"
                   f"trials: 2\nstrategy: random\nprogress: false\nstorage: {tmp_path / 'r.db'}\n")
    assert main(["search", str(cfg)]) == 0
    capsys.readouterr()
    assert main(["export", str(tmp_path / "r.db"), str(tmp_path / "best.pt")]) == 0
    out = capsys.readouterr().out
    assert "retrained on train+val: test mse " in out and ", r2 " in out
    assert "accuracy" not in out
