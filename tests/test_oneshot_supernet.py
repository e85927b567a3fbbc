"""Supernet mode of the HP recorder: the same space functions, every candidate built at once.

The built-in ``cell`` space and a hand-written space with ``hp.op``, ``hp.inputs`` (a count, a
list of tensors, a list of modules) and value decisions; parameters kept apart; derive ->
``tn.build`` -> the same architecture; partial channels measured to save memory.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

import torchnas as tn
from torchnas.oneshot import MixedInput, MixedOp, Supernet, SupernetHP, training_memory


class Zero(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * 0.0


class Branches(nn.Module):
    def __init__(self, hp: tn.HP) -> None:
        super().__init__()
        self.a = hp.op("a", {"lin": lambda: nn.Linear(8, 8), "skip": nn.Identity, "none": Zero})
        self.b = hp.op("b", {"lin": lambda: nn.Linear(8, 8), "tanh": nn.Tanh})
        self.pick = hp.inputs("pick", 3, k=2)
        self.act = hp.choice("act", ["relu", "gelu"])  # a value decision: fixed
        self.head = nn.Linear(8, hp.int("classes", 2, 4))  # changes shapes: fixed
        self.which = hp.inputs("which", [nn.Linear(8, 8), nn.Sequential(nn.Linear(8, 8))])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h1 = self.a(x)
        h2 = self.b(h1)
        mixed = self.pick([x, h1, h2])
        return self.head(self.which(torch.relu(mixed)))


def branchy(hp: tn.HP) -> nn.Module:
    return Branches(hp)


def cell(shape: tuple[int, ...] = (1, 8, 8), **kw: Any) -> Any:
    kw.setdefault("channels", 4)
    kw.setdefault("stages", 2)
    return tn.spaces.create("cell", input_shape=shape, num_classes=3, **kw)


@pytest.mark.parametrize("shape", [(1, 20), (20,), (1, 8, 8)])
def test_cell_space_is_a_supernet(shape: tuple[int, ...]) -> None:
    space = cell(shape)
    net = Supernet(space, torch.randn(2, *shape))
    labels = list(tn.explore(space).labels)
    assert list(net.choices) == labels == [f"cell/edge_{j}_{i}" for j in range(1, 4)
                                           for i in range(j)]
    assert all(a.shape == (5,) for a in net.arch_parameters())
    assert len(net.mixed_ops()) == 6 * 2  # two stages share the labels
    assert net(torch.randn(3, *shape)).shape == (3, 3)
    zero = {op.names[i] for op in net.mixed_ops() for i, z in enumerate(op.zero) if z}
    assert zero == {"none"}  # found by running the candidates, not by name
    arch = net.derive()
    model = tn.build(space, arch)
    assert isinstance(model, nn.Module) and model.eval()(torch.randn(2, *shape)).shape == (2, 3)


def test_arch_and_weight_parameters_are_disjoint() -> None:
    net = Supernet(cell(), torch.randn(2, 1, 8, 8))
    arch = {id(p) for p in net.arch_parameters()}
    weights = {id(p) for p in net.weight_parameters()}
    assert arch and weights and not arch & weights
    assert arch | weights == {id(p) for p in net.parameters()}
    assert not arch & {id(p) for p in net.model.parameters()}  # the model never holds them
    net.to(torch.float64)  # moved with the module, still the same objects
    assert {id(p) for p in net.arch_parameters()} == arch
    assert all(c.logits.dtype == torch.float64 for c in net.choices.values())


def test_hand_written_space_mixes_ops_and_inputs() -> None:
    net = Supernet(branchy, torch.randn(2, 8))
    assert list(net.choices) == ["a", "b", "pick", "which"]
    assert [c.kind for c in net.choices.values()] == ["op", "op", "inputs", "inputs"]
    model = net.model
    assert isinstance(model, Branches)
    assert isinstance(model.a, MixedOp) and isinstance(model.pick, MixedInput)
    assert isinstance(model.which, MixedOp)  # a list of modules: mixed like an op
    assert model.act == "relu" and model.head.out_features == 2  # value decisions: defaults
    x = torch.randn(5, 8)
    for mode in ("softmax", "gumbel"):
        net.state.set_mode(mode)
        out = net(x)
        out.sum().backward()
        assert out.shape == (5, 2)
        # gumbel: "b" is unused when "pick" draws x and h1; the other labels are always met
        used = list(net.choices) if mode == "softmax" else ["a", "pick", "which"]
        for label in used:
            grad = net.choices[label].logits.grad
            assert grad is not None and grad.abs().sum() > 0, (mode, label)
        net.zero_grad()
    arch = net.derive()
    assert len(arch["pick"]) == 2 and arch["pick"] == sorted(arch["pick"])
    net.set_path(net.path_of(arch))
    again = tn.build(branchy, arch)
    hp = tn.HP(tn.space.FixedSource(arch))
    branchy(hp)
    assert hp.arch == arch and list(arch) == ["a", "b", "pick", "act", "classes", "which"]
    chosen = {"lin": nn.Linear, "skip": nn.Identity, "none": Zero}[arch["a"]]
    assert type(again.a) is chosen and not isinstance(again.a, MixedOp)


def test_fixed_values_and_fixed_ops_are_not_searched() -> None:
    net = Supernet(branchy, torch.randn(2, 8), fixed={"classes": 4, "act": "gelu", "b": "tanh"})
    assert list(net.choices) == ["a", "pick", "which"]
    arch = net.derive()
    assert arch["classes"] == 4 and arch["act"] == "gelu" and arch["b"] == "tanh"
    assert net(torch.randn(3, 8)).shape == (3, 4)
    with pytest.raises(tn.SpaceError, match="classes"):
        Supernet(branchy, fixed={"classes": 9})


def test_a_label_used_twice_shares_its_weights() -> None:
    def twice(hp: tn.HP) -> nn.Module:
        ops = {"lin": lambda: nn.Linear(4, 4), "skip": nn.Identity}
        return nn.Sequential(hp.op("op", ops), hp.op("op", ops), nn.Linear(4, 2))

    net = Supernet(twice, torch.randn(2, 4))
    first, second = net.mixed_ops()
    assert len(net.arch_parameters()) == 1 and first is not second
    assert first.candidates[0] is not second.candidates[0]  # own weights, one decision
    assert tn.build(twice, net.derive())[0].__class__ is tn.build(twice, net.derive())[1].__class__


def test_candidates_of_different_shapes_fail_naming_the_label() -> None:
    def bad(hp: tn.HP) -> nn.Module:
        with hp.scope("block"):
            op = hp.op("op", {"wide": lambda: nn.Linear(4, 8), "narrow": lambda: nn.Linear(4, 2)})
        return nn.Sequential(op, nn.LazyLinear(2))

    with pytest.raises(tn.SpaceError, match=r"'block/op'.*wide.*narrow"):
        Supernet(bad, torch.randn(2, 4))


def test_supernet_hp_records_domains_like_the_plain_recorder() -> None:
    hp = SupernetHP()
    branchy(hp)
    plain = tn.HP(tn.space.FixedSource({}, missing="default"))
    branchy(plain)
    assert list(hp.domains) == list(plain.domains)
    assert hp.domains == plain.domains


def test_gumbel_mode_runs_one_candidate_per_op_per_pass() -> None:
    net = Supernet(cell(), torch.randn(2, 1, 8, 8))
    calls: dict[int, int] = {}
    for op in net.mixed_ops():
        for m in op.candidates:
            m.register_forward_hook(lambda mod, *_: calls.__setitem__(id(mod), 1 + calls.get(
                id(mod), 0)))
    net.state.set_mode("gumbel")
    for _ in range(3):
        calls.clear()
        net(torch.randn(4, 1, 8, 8)).sum().backward()
        ran = [sum(calls.get(id(m), 0) for m in op.candidates) for op in net.mixed_ops()]
        assert ran == [1] * len(net.mixed_ops())
        # the two uses of a label (one per stage) take the same candidate in one pass
        chosen = {}
        for op in net.mixed_ops():
            picked = [i for i, m in enumerate(op.candidates) if calls.get(id(m))]
            assert chosen.setdefault(op.label, picked) == picked


def test_partial_channels_cut_the_training_memory() -> None:
    space = cell((3, 12, 12), channels=8)
    x = torch.randn(16, 3, 12, 12)
    full = Supernet(space, x[:2])
    lean = Supernet(space, x[:2], partial_channels=4)
    assert lean(x).shape == full(x).shape == (16, 3)
    full_bytes, lean_bytes = training_memory(full, x), training_memory(lean, x)
    assert lean_bytes < 0.6 * full_bytes, (lean_bytes, full_bytes)
    arch = lean.derive()
    assert tn.build(space, arch).eval()(x[:2]).shape == (2, 3)  # the model has all channels


def test_partial_channels_need_a_space_that_builds_narrow_candidates() -> None:
    def plain(hp: tn.HP) -> nn.Module:
        op = hp.op("op", {"conv": lambda: nn.Conv1d(8, 8, 3, padding=1), "skip": nn.Identity})
        return nn.Sequential(nn.Conv1d(1, 8, 1), op, nn.Flatten(), nn.LazyLinear(2))

    with pytest.raises(tn.SpaceError, match=r"'op'.*partial_channels"):
        Supernet(plain, torch.randn(2, 1, 10), partial_channels=2)
