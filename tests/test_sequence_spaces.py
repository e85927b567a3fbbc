"""The sequence spaces ``rnn`` and ``transformer``: how they read token ids and float
sequences, their outputs per sequence and per token, every decision, ``hp.scale``, padding,
causal masking, their errors, what a search passes them, and short searches that learn. The
contract every built-in space keeps runs in ``test_contract_spaces.py``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

import torchnas as tn
from torchnas import cli
from torchnas.search._objective import space_function
from torchnas.space import HP, FixedSource
from torchnas.testing.spaces import sampled

SPACES = ("rnn", "transformer")
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def tokens(n: int, t: int, vocab: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(1, vocab, (n, t), generator=torch.Generator().manual_seed(seed))


def build(space: Any, arch: dict[str, Any] | None = None, width: float = 1.0) -> nn.Module:
    hp = HP(FixedSource(arch or {}, missing="default"))
    hp.width = width
    model: nn.Module = space(hp)
    return model.eval()


@pytest.mark.parametrize("name", SPACES)
@pytest.mark.parametrize("per_token", [False, True])
def test_token_inputs_give_logits_per_sequence_or_per_token(name: str, per_token: bool) -> None:
    space = tn.spaces.create(name, input_shape=(12,), num_classes=5, vocab_size=20,
                             per_token=per_token)
    x = tokens(3, 12, 20)
    x[1, 7:] = 0  # right padding
    for _, model in sampled(space, n=6):
        assert isinstance(model.inputs.embed, nn.Embedding)
        out = model.train()(x)
        assert out.shape == ((3, 12, 5) if per_token else (3, 5))
        assert torch.isfinite(out).all()
    assert ("readout" in tn.explore(space).labels) is not per_token


@pytest.mark.parametrize("name", SPACES)
@pytest.mark.parametrize("shape, steps, features", [
    ((40,), 40, 1), ((1, 40), 40, 1), ((28, 28), 28, 28), ((1, 28, 28), 28, 28),
    ((3, 8, 6), 8, 18),
])
def test_float_inputs_are_steps_of_features(name: str, shape: tuple[int, ...], steps: int,
                                            features: int) -> None:
    space = tn.spaces.create(name, input_shape=shape, num_classes=4)
    model = build(space)
    proj = model.inputs.embed
    assert isinstance(proj, nn.Linear) and proj.in_features == features
    seen: list[int] = []
    proj.register_forward_hook(lambda m, i, o: seen.append(o.shape[1]))
    with torch.no_grad():
        assert model(torch.randn(2, *shape)).shape == (2, 4)
    assert seen == [steps]


def test_rows_of_an_image_are_the_steps() -> None:
    """(C, H, W) is H rows: swapping two rows of the image swaps two steps of the input."""
    space = tn.spaces.create("rnn", input_shape=(2, 5, 3), num_classes=3)
    model = build(space)
    x = torch.randn(1, 2, 5, 3)
    steps, _ = model.inputs(x)
    for h in range(5):
        assert torch.allclose(steps[0, h], model.inputs.embed(x[0, :, h, :].reshape(-1)))


@pytest.mark.parametrize("name", SPACES)
@pytest.mark.parametrize("tokens_in", [False, True])
def test_every_decision_value_builds_and_runs(name: str, tokens_in: bool) -> None:
    kw: dict[str, Any] = ({"input_shape": (10,), "vocab_size": 12} if tokens_in
                          else {"input_shape": (1, 10)})
    space = tn.spaces.create(name, num_classes=3, **kw)
    labels = tn.explore(space).labels
    base = {"num_layers": space.max_layers}
    x = tokens(2, 10, 12) if tokens_in else torch.randn(2, 1, 10)
    for label, info in labels.items():
        if info.domain.size is None:
            continue  # lr
        for value in info.domain.values():
            model = build(space, {**base, label: value})
            with torch.no_grad():
                out = model(x)
            assert out.shape == (2, 3) and torch.isfinite(out).all(), (label, value)
            model.train()(x).sum().backward()


def test_rnn_decisions() -> None:
    space = tn.spaces.create("rnn", input_shape=(1, 40), num_classes=10)
    labels = set(tn.explore(space).labels)
    assert {"embed_dim", "num_layers", "cell_0", "hidden_0", "bidirectional_0", "dropout_0",
            "cell_1", "readout", "lr"} <= labels
    model = build(space, {"num_layers": 2, "cell_0": "lstm", "cell_1": "gru",
                          "bidirectional_0": True, "hidden_0": 64, "hidden_1": 32})
    assert isinstance(model.layers[0].rnn, nn.LSTM) and model.layers[0].rnn.bidirectional
    assert isinstance(model.layers[1].rnn, nn.GRU) and model.layers[1].rnn.input_size == 128


def test_transformer_decisions() -> None:
    space = tn.spaces.create("transformer", input_shape=(1, 40), num_classes=10)
    labels = set(tn.explore(space).labels)
    assert {"num_layers", "width", "heads", "ff_ratio", "norm", "positions", "activation",
            "dropout", "readout", "lr"} <= labels
    model = build(space, {"num_layers": 3, "width": 64, "heads": 4, "ff_ratio": 2,
                          "norm": "pre"})
    assert len(model.layers) == 3
    layer = model.layers[0]
    assert layer.self_attn.num_heads == 4 and layer.self_attn.embed_dim == 64
    assert layer.linear1.out_features == 128 and layer.norm_first
    assert isinstance(model.norm, nn.LayerNorm)


@pytest.mark.parametrize("name", SPACES)
def test_scale_halves_the_width(name: str) -> None:
    space = tn.spaces.create(name, input_shape=(16,), num_classes=4, vocab_size=30)
    arch = {"heads": 4, "width": 64} if name == "transformer" else {"hidden_0": 64}
    full, half = build(space, arch), build(space, arch, width=0.5)
    if name == "rnn":
        assert half.layers[0].rnn.hidden_size == 32 == full.layers[0].rnn.hidden_size // 2
    else:
        assert full.layers[0].self_attn.embed_dim == 64
        assert half.layers[0].self_attn.embed_dim == 32 and half.layers[0].self_attn.num_heads == 4
    assert half.inputs.embed.embedding_dim * 2 == full.inputs.embed.embedding_dim


@pytest.mark.parametrize("name, arch", [
    ("rnn", {"readout": "mean", "bidirectional_0": False}),
    ("rnn", {"readout": "last", "bidirectional_0": False}),
    ("rnn", {"readout": "attention", "bidirectional_0": False}),
    ("transformer", {"readout": "mean", "positions": "sinusoidal"}),
    ("transformer", {"readout": "attention", "positions": "none"}),
])
def test_padding_changes_nothing(name: str, arch: dict[str, Any]) -> None:
    """A sequence right-padded to 9 tokens gives what it gives unpadded (same weights)."""
    short = tn.spaces.create(name, input_shape=(5,), num_classes=3, vocab_size=10)
    long = tn.spaces.create(name, input_shape=(9,), num_classes=3, vocab_size=10)
    a, b = build(short, arch), build(long, arch)
    b.load_state_dict(a.state_dict())
    x = tokens(4, 5, 10)
    padded = torch.cat([x, torch.zeros(4, 4, dtype=torch.long)], 1)
    with torch.no_grad():
        assert torch.allclose(a(x), b(padded), atol=1e-5)


def test_pad_id_none_reads_every_token() -> None:
    space = tn.spaces.create("rnn", input_shape=(6,), num_classes=3, vocab_size=10, pad_id=None)
    model = build(space, {"readout": "mean"})
    assert model.inputs.embed.padding_idx is None
    x = tokens(2, 6, 10)
    x[:, 3:] = 0
    with torch.no_grad():
        assert model(x).shape == (2, 3)


@pytest.mark.parametrize("name", SPACES)
def test_causal_models_never_see_later_tokens(name: str) -> None:
    space = tn.spaces.create(name, input_shape=(8,), num_classes=12, vocab_size=12,
                             per_token=True, causal=True)
    labels = tn.explore(space).labels
    assert not any(label.startswith("bidirectional") for label in labels)
    x = tokens(2, 8, 12)
    changed = x.clone()
    changed[:, 5:] = tokens(2, 3, 12, seed=1)
    for _, model in sampled(space, n=5):
        model.eval()
        with torch.no_grad():
            a, b = model(x), model(changed)
        assert a.shape == (2, 8, 12)
        assert torch.allclose(a[:, :5], b[:, :5], atol=1e-5)


@pytest.mark.parametrize("name", SPACES)
def test_bad_inputs_name_the_space_and_argument(name: str) -> None:
    def explore(**kw: Any) -> None:
        tn.explore(tn.spaces.create(name, **{"num_classes": 3, **kw}))

    with pytest.raises(tn.SpaceError, match=rf"{name}.*vocab_size.*input_shape \(T,\)"):
        explore(input_shape=(1, 40), vocab_size=10)
    with pytest.raises(tn.SpaceError, match=rf"{name}.*vocab_size must be"):
        explore(input_shape=(10,), vocab_size=1)
    with pytest.raises(tn.SpaceError, match=rf"{name}.*input_shape must be"):
        explore(input_shape=(1, 2, 3, 4))
    with pytest.raises(tn.DataError, match=rf"{name}.*channels-last.*transpose"):
        explore(input_shape=(40, 1))
    with pytest.raises(tn.SpaceError, match=rf"{name}.*causal.*per_token"):
        explore(input_shape=(10,), vocab_size=10, causal=True)
    token_model = build(tn.spaces.create(name, input_shape=(10,), num_classes=3, vocab_size=10))
    with pytest.raises(tn.DataError, match=rf"{name}.*token ids.*float"):
        token_model(torch.randn(2, 10))
    float_model = build(tn.spaces.create(name, input_shape=(10,), num_classes=3))
    with pytest.raises(tn.DataError, match=rf"{name}.*float features.*vocab_size"):
        float_model(tokens(2, 10, 10))


def test_bad_settings_are_space_errors() -> None:
    with pytest.raises(tn.SpaceError, match=r"rnn.*cells"):
        tn.explore(tn.spaces.create("rnn", cells=("lstm", "mamba")))
    with pytest.raises(tn.SpaceError, match=r"transformer.*width 48 with 32 heads"):
        tn.explore(tn.spaces.create("transformer", widths=(48,), heads=(32,)))
    with pytest.raises(tn.SpaceError, match=r"transformer.*positions"):
        tn.explore(tn.spaces.create("transformer", positions=("rotary",)))


# -- what a search passes the spaces ---------------------------------------------------------------
def created(name: str, data: tn.data.Data) -> Any:
    return space_function(name, None, data)


def test_search_passes_vocab_size_for_token_inputs() -> None:
    recall = tn.data.load("recall", samples=200, test_samples=50)
    space = created("rnn", recall)
    x = torch.cat([recall.train.tensors[0], recall.val.tensors[0], recall.test.tensors[0]])
    assert space.vocab_size == int(x.max()) + 1
    assert not space.per_token and not space.causal
    copy = created("transformer", tn.data.load("copy", samples=200))
    assert copy.per_token and not copy.causal
    floats = created("rnn", tn.data.load("adding", samples=200))
    assert floats.vocab_size is None and floats.num_outputs == 1
    mlp = created("mlp", recall)  # spaces without vocab_size are left alone
    assert not hasattr(mlp, "vocab_size")


def language_model_data(vocab: int = 12, n: int = 240, t: int = 10) -> tn.data.Data:
    """Windows of a repeating token pattern (1, 2, ..., vocab - 1, 1, 2, ...)."""
    start = torch.randint(0, vocab - 1, (n, 1), generator=torch.Generator().manual_seed(0))
    windows = (start + torch.arange(t + 1)) % (vocab - 1) + 1
    x, y = tn.data.shift_tokens(windows)
    return tn.data.from_tensors((x[:200], y[:200]), (x[200:], y[200:]), num_classes=vocab,
                                name="pattern")


def test_search_makes_a_language_model_causal() -> None:
    data = language_model_data()
    for name in SPACES:
        space = created(name, data)
        assert space.per_token and space.causal and space.vocab_size == 12


# -- short searches that learn ---------------------------------------------------------------------
@pytest.mark.parametrize("name", SPACES)
def test_a_short_search_learns_associative_recall(name: str) -> None:
    data = tn.data.load("recall", pairs=2, keys=4, values=4, samples=1500, test_samples=0)
    search = tn.ModelSearch(space=name, data=data, trials=2, seed=0, progress=False,
                            trainer=tn.Trainer(epochs=3, batch_size=64, task="sequence",
                                               threads=1))
    search.run()
    best = search.best_trial.metrics["val_accuracy"]
    assert best > 0.4, best  # chance: 0.25


def test_a_short_search_learns_a_language_model() -> None:
    data = language_model_data()
    search = tn.ModelSearch(space="transformer", data=data, trials=1, seed=0, progress=False,
                            space_kwargs={"max_layers": 1},
                            trainer=tn.Trainer(epochs=4, batch_size=32,
                                               task="language_model", threads=1))
    search.run()
    ppl = search.best_trial.metrics["val_perplexity"]
    assert ppl < 6, ppl  # a uniform guess over the 11 tokens: 11


def test_sequence_example_config_builds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """examples/sequence.yaml: a recurrent search on MNIST-1D, built and checked (not run)."""
    monkeypatch.chdir(tmp_path)
    config = cli.load_config(EXAMPLES / "sequence.yaml")
    assert config["space"] == "rnn" and config["data"] == "mnist1d"
    search = cli.build_search(config, where="examples/sequence.yaml")
    summary = search.check().summary()
    assert "cell_0" in summary and "readout" in summary


def test_a_token_model_exported_by_a_search_loads_again(tmp_path: Path) -> None:
    data = tn.data.load("recall", pairs=2, keys=4, values=4, samples=300, test_samples=0)
    out = tmp_path / "best.pt"
    search = tn.ModelSearch(space="rnn", data=data, trials=1, seed=0, progress=False,
                            export_to=str(out),
                            trainer=tn.Trainer(epochs=1, batch_size=64, task="sequence",
                                               threads=1))
    search.run()
    model = tn.load_model(out)  # rebuilt with the vocabulary the search created it with
    x = data.val.tensors[0][:5]  # type: ignore[attr-defined]
    assert model(x).shape == (5, data.num_classes)
