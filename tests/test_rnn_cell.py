"""The ``rnn_cell`` space (a searched recurrent cell, DARTS/ENAS style): token and float inputs,
outputs per sequence and per token, every decision, padding, ``hp.scale``, its errors, what a
search passes it, a short multi-trial search that learns and DARTS, GDAS and ENAS on it. The
contract every built-in space keeps runs in ``test_contract_spaces.py``."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

import torchnas as tn
from torchnas.oneshot import Supernet
from torchnas.search._space_args import builtin_space_kwargs
from torchnas.space import HP, FixedSource

SMALL = {"hidden": (8, 16)}


def build(space: Any, arch: dict[str, Any] | None = None, width: float = 1.0) -> nn.Module:
    hp = HP(FixedSource(arch or {}, missing="default"))
    hp.width = width
    model: nn.Module = space(hp)
    return model


def tokens(n: int, t: int, vocab: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(1, vocab, (n, t), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("per_token", [False, True])
def test_token_inputs_give_logits_per_sequence_or_per_token(per_token: bool) -> None:
    space = tn.spaces.create("rnn_cell", input_shape=(12,), num_classes=5, vocab_size=20,
                             per_token=per_token, **SMALL)
    model = build(space)
    out = model(tokens(3, 12, 20))
    assert out.shape == ((3, 12, 5) if per_token else (3, 5))
    out.sum().backward()
    assert isinstance(model.inputs.embed, nn.Embedding)  # type: ignore[union-attr]


@pytest.mark.parametrize("shape,steps", [((1, 40), 40), ((40,), 40), ((3, 10), 10),
                                         ((1, 8, 8), 8)])
def test_float_inputs_are_read_as_steps(shape: tuple[int, ...], steps: int) -> None:
    space = tn.spaces.create("rnn_cell", input_shape=shape, num_classes=4, **SMALL)
    model = build(space)
    calls = []
    model.cell.register_forward_hook(lambda *_: calls.append(1))  # type: ignore[union-attr]
    assert model(torch.randn(2, *shape)).shape == (2, 4)
    assert len(calls) == steps  # one cell step per time step


def test_every_decision_value_builds_and_trains() -> None:
    space = tn.spaces.create("rnn_cell", input_shape=(2, 6), num_classes=3, nodes=3, **SMALL)
    info = tn.explore(space)
    assert {"hidden", "act_1", "act_2", "act_3", "input_2", "input_3", "dropout", "readout",
            "lr"} == set(info.labels)
    assert "input_1" not in info.labels  # node 1 can only read node 0
    x = torch.randn(4, 2, 6)
    for label, found in info.labels.items():
        if found.domain.kind == "float":
            continue
        for value in found.domain.values():
            model = build(space, {label: value})
            out = model.train()(x)
            assert out.shape == (4, 3) and torch.isfinite(out).all(), (label, value)
            out.sum().backward()
            grads = [p.grad for p in model.parameters() if p.grad is not None]
            assert grads and all(torch.isfinite(g).all() for g in grads), (label, value)


def test_input_choice_picks_the_node_that_feeds_each_node() -> None:
    space = tn.spaces.create("rnn_cell", input_shape=(1, 5), num_classes=2, nodes=3, **SMALL)
    model = build(space, {"input_2": [0], "input_3": [1]})
    assert [c.indices for c in model.cell.choosers] == [[0], [1]]  # type: ignore[union-attr]


def test_padding_steps_keep_the_state() -> None:
    space = tn.spaces.create("rnn_cell", input_shape=(9,), num_classes=3, vocab_size=10,
                             pad_id=0, **SMALL)
    x = tokens(4, 6, 10)
    padded = torch.cat([x, torch.zeros(4, 3, dtype=torch.long)], 1)
    for readout in ("last", "mean", "attention"):
        torch.manual_seed(0)
        model = build(space, {"readout": readout}).eval()
        with torch.no_grad():
            assert torch.allclose(model(x), model(padded), atol=1e-6), readout


def test_scale_narrows_the_hidden_size() -> None:
    space = tn.spaces.create("rnn_cell", input_shape=(1, 10), num_classes=2)
    wide, narrow = build(space, {"hidden": 64}), build(space, {"hidden": 64}, width=0.5)
    assert wide.cell.hidden == 64 and narrow.cell.hidden == 32  # type: ignore[union-attr]


@pytest.mark.parametrize("kwargs,match", [
    ({"activations": ("tanh", "gelu")}, "activations"),
    ({"activations": ()}, "activations"),
    ({"readouts": ("max",)}, "readouts"),
    ({"nodes": 0}, "nodes"),
    ({"hidden": (0,)}, "hidden"),
    ({"causal": True}, "per_token"),
    ({"vocab_size": 1, "input_shape": (5,)}, "vocab_size"),
])
def test_bad_settings_are_space_errors(kwargs: dict[str, Any], match: str) -> None:
    kwargs = {"input_shape": (1, 10), "num_classes": 2, **kwargs}
    with pytest.raises(tn.SpaceError, match=match):
        tn.explore(tn.spaces.create("rnn_cell", **kwargs))


def test_a_search_passes_the_vocabulary() -> None:
    data = tn.data.load("recall", pairs=2, keys=4, values=4, samples=100, test_samples=0)
    kwargs = builtin_space_kwargs("rnn_cell", None, data)
    assert kwargs["vocab_size"] == 9 and kwargs["per_token"] is False
    assert build(tn.spaces.create("rnn_cell", **kwargs))(data.val.tensors[0][:2]).shape == (
        2, 4)


def test_supernet_mixes_inputs_and_activations_and_gdas_draws_one_per_pass() -> None:
    space = tn.spaces.create("rnn_cell", input_shape=(1, 7), num_classes=2, **SMALL)
    net = Supernet(space, torch.randn(2, 1, 7))
    assert set(net.choices) == {"act_1", "act_2", "act_3", "act_4", "input_2", "input_3",
                                "input_4"}
    net.state.set_mode("gumbel")
    op = next(m for m in net.mixed_ops() if m.label == "act_2")
    calls = [0] * len(op.candidates)
    for i, m in enumerate(op.candidates):
        m.register_forward_hook(lambda *_, i=i: calls.__setitem__(i, calls[i] + 1))
    net(torch.randn(3, 1, 7)).sum().backward()
    assert sorted(calls) == [0, 0, 0, 7]  # one activation, the same at every step
    assert all(p.grad is not None for p in net.arch_parameters())
    model = tn.build(space, net.derive())
    assert model(torch.randn(3, 1, 7)).shape == (3, 2)


def test_a_short_search_learns_associative_recall() -> None:
    data = tn.data.load("recall", pairs=2, keys=4, values=4, samples=1500, test_samples=0)
    search = tn.ModelSearch(space="rnn_cell", data=data, trials=2, seed=0, progress=False,
                            strategy="random",
                            trainer=tn.Trainer(epochs=3, batch_size=64, task="sequence",
                                               threads=1))
    search.run()
    best = search.best_trial.metrics["val_accuracy"]
    assert best > 0.4, best  # chance: 0.25


@pytest.mark.parametrize("method", ["darts", "gdas", "enas"])
def test_one_shot_methods_derive_a_cell_that_builds_and_trains(method: str) -> None:
    data = tn.data.load("recall", pairs=2, keys=4, values=4, samples=400, test_samples=0)
    search = tn.ModelSearch(space="rnn_cell", data=data, seed=0, progress=False,
                            space_kwargs={"hidden": (16,)},
                            strategy={"name": method, "epochs": 2, "batch_size": 64},
                            trainer=tn.Trainer(epochs=1, batch_size=64, task="sequence",
                                               threads=1))
    study = search.run()
    result = search.oneshot_result
    assert result is not None
    trial = study.best_trial
    assert trial.arch == result.arch
    assert {f"act_{i}" for i in range(1, 5)} | {f"input_{i}" for i in range(2, 5)} <= set(
        result.arch)
    assert trial.metrics["val_accuracy"] >= 0.0
    # activations have no parameters, but neither has any alternative: no collapse to report
    assert not result.collapse.collapsed and result.collapse.param_free == {}
    space = tn.spaces.create("rnn_cell", **builtin_space_kwargs(
        "rnn_cell", {"hidden": (16,)}, data))
    model = tn.build(space, result.arch)
    assert model(data.val.tensors[0][:3]).shape == (3, 4)
