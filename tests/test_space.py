"""Contract tests of the HP recorder, domains, architectures and their keys."""

from __future__ import annotations

import contextlib
import json
import math
import random
from collections.abc import Mapping
from typing import Any

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import torchnas as tn
from torchnas.space import (
    HP,
    Bool,
    Categorical,
    Domain,
    FixedSource,
    Float,
    InputChoice,
    Inputs,
    Int,
    Op,
    arch_key,
    canonical_json,
    domain_from_json,
)


class SeededSource:
    """Draws every decision from one seeded stream and remembers what it was asked."""

    def __init__(self, seed: int = 0) -> None:
        self.rng = random.Random(seed)
        self.asked: list[str] = []

    def value(self, label: str, domain: Domain, met: Mapping[str, Any]) -> Any:
        self.asked.append(label)
        return domain.sample(self.rng)


class ConstSource:
    """Answers every decision with the same value (to feed a recorder values outside domains)."""

    def __init__(self, value: Any) -> None:
        self.const = value

    def value(self, label: str, domain: Domain, met: Mapping[str, Any]) -> Any:
        return self.const


def recorder(seed: int = 0) -> HP:
    return HP(SeededSource(seed))


def roundtrip(value: Any) -> Any:
    return json.loads(json.dumps(value))


# -- every decision kind ------------------------------------------------------------------------
def test_choice_returns_one_of_the_values_and_records_it() -> None:
    for seed in range(20):
        hp = recorder(seed)
        v = hp.choice("act", ["relu", "gelu", None, 3, 2.5, True])
        assert any(v is c or (type(v) is type(c) and v == c)
                   for c in ["relu", "gelu", None, 3, 2.5, True])
        assert hp.arch == {"act": v}
        assert hp.domains == {"act": Categorical(("relu", "gelu", None, 3, 2.5, True))}


def test_choice_sees_every_value() -> None:
    seen = {recorder(seed).choice("c", ["a", "b", "c"]) for seed in range(60)}
    assert seen == {"a", "b", "c"}


def test_int_with_step_stays_on_its_grid() -> None:
    seen = set()
    for seed in range(200):
        v = recorder(seed).int("units", 32, 512, step=32)
        assert isinstance(v, int) and not isinstance(v, bool)
        assert 32 <= v <= 512 and v % 32 == 0
        seen.add(v)
    assert seen == set(range(32, 513, 32))
    assert Int(32, 512, 32).size == 16
    assert Int(1, 10, 3).values() == [1, 4, 7, 10]
    assert Int(1, 9, 3).values() == [1, 4, 7]


def test_int_log_covers_the_range_and_favours_small_values() -> None:
    values = [recorder(seed).int("width", 1, 1000, log=True) for seed in range(400)]
    assert all(1 <= v <= 1000 for v in values)
    assert min(values) <= 3 and max(values) >= 300
    # log-uniform: about half of the mass lies below sqrt(1 * 1000) ~ 32
    below = sum(v <= 32 for v in values) / len(values)
    assert 0.35 < below < 0.65


def test_float_and_float_log() -> None:
    lin = [recorder(seed).float("p", 0.0, 1.0) for seed in range(300)]
    assert all(isinstance(v, float) and 0.0 <= v <= 1.0 for v in lin)
    assert 0.4 < sum(lin) / len(lin) < 0.6
    logs = [recorder(seed).float("lr", 1e-5, 1e-1, log=True) for seed in range(300)]
    assert all(1e-5 <= v <= 1e-1 for v in logs)
    below = sum(v <= 1e-3 for v in logs) / len(logs)  # log-uniform median is 1e-3
    assert 0.35 < below < 0.65


def test_float_integer_bounds_are_floats() -> None:
    hp = recorder()
    v = hp.float("x", 1, 2)
    assert isinstance(v, float)
    assert hp.domains["x"] == Float(1.0, 2.0)


def test_float_step_values_stay_inside_the_bounds() -> None:
    # 0.1 + 3 * 0.2 is 0.7000000000000001 in floating point: the domain must still hold it
    dom = Float(0.1, 0.7, step=0.2)
    assert dom.size == 4
    assert all(dom.contains(v) for v in dom.values())
    assert dom.values()[-1] <= 0.7
    for seed in range(40):
        assert dom.contains(recorder(seed).float("x", 0.1, 0.7, step=0.2))


def test_degenerate_log_float_is_its_bound() -> None:
    # exp(log(3.0)) == 3.0000000000000004
    assert recorder().float("x", 3.0, 3.0, log=True) == 3.0
    assert recorder().int("n", 5, 5, log=True) == 5


@pytest.mark.parametrize("dom", [Float(1e-4, 1e-2, log=True), Float(0.1, 0.7), Float(3.0, 7.0)])
def test_float_grid_points_are_members_and_hit_both_bounds(dom: Float) -> None:
    for points in (1, 2, 3, 5, 7):
        grid = dom.grid(points)
        assert len(grid) == points
        assert all(dom.contains(v) for v in grid)
        assert grid == sorted(grid)
        assert grid[0] == dom.low
        if points > 1:
            assert grid[-1] == dom.high


def test_float_default_is_a_member() -> None:
    for dom in [Float(0.0, 1.0, step=0.3), Float(1e-4, 1e-1, log=True), Float(2.0, 2.0)]:
        assert dom.contains(dom.default)


def test_bool() -> None:
    seen = set()
    for seed in range(30):
        v = recorder(seed).bool("dropout")
        assert v is True or v is False
        seen.add(v)
    assert seen == {False, True}
    assert Bool().size == 2
    assert not Bool().contains(1) and not Bool().contains(0)


def test_op_builds_the_chosen_module_and_records_its_name() -> None:
    candidates = {"conv": lambda: nn.Conv1d(2, 2, 3, padding=1), "skip": nn.Identity,
                  "shared": nn.ReLU()}
    seen = set()
    for seed in range(30):
        hp = recorder(seed)
        m = hp.op("cell0/edge1", candidates)
        name = hp.arch["cell0/edge1"]
        assert name in candidates
        assert isinstance(m, {"conv": nn.Conv1d, "skip": nn.Identity, "shared": nn.ReLU}[name])
        assert hp.domains["cell0/edge1"] == Op(("conv", "skip", "shared"))
        seen.add(name)
    assert seen == set(candidates)


def test_op_candidate_that_is_not_a_module_is_named() -> None:
    with pytest.raises(tn.SpaceError, match=r"'edge'.*'bad'"):
        HP(FixedSource({"edge": "bad"})).op("edge", {"good": nn.Identity, "bad": lambda: 3})


def test_inputs_with_tensors_reduces_the_chosen_ones() -> None:
    xs = [torch.full((2, 3), float(10**i)) for i in range(4)]  # 1, 10, 100, 1000
    hp = HP(FixedSource({"node": [3, 1]}))
    out = hp.inputs("node", xs, k=2)
    assert torch.equal(out, torch.full((2, 3), 1010.0))
    assert hp.arch == {"node": [1, 3]}  # stored sorted
    assert hp.domains == {"node": Inputs(4, 2)}
    mean = HP(FixedSource({"node": [0, 2]})).inputs("node", xs, k=2, reduction="mean")
    assert torch.equal(mean, torch.full((2, 3), 50.5))
    cat = HP(FixedSource({"node": [0, 2]})).inputs("node", xs, k=2, reduction="concat")
    assert cat.shape == (2, 6)
    both = HP(FixedSource({"node": [0, 2]})).inputs("node", xs, k=2, reduction="none")
    assert isinstance(both, list) and len(both) == 2 and both[1] is xs[2]


def test_inputs_with_other_things_returns_the_item_or_the_list() -> None:
    items = ["h0", "h1", "h2"]
    for seed in range(20):
        hp = recorder(seed)
        got = hp.inputs("skip_from", items)
        assert got == items[hp.arch["skip_from"][0]]
        hp2 = recorder(seed)
        pair = hp2.inputs("pair", items, k=2)
        assert pair == [items[i] for i in hp2.arch["pair"]]
        assert len(set(pair)) == 2


def test_inputs_with_a_count_gives_an_input_choice_module() -> None:
    hp = HP(FixedSource({"mix": [0, 2]}))
    module = hp.inputs("mix", 3, k=2)
    assert isinstance(module, InputChoice) and isinstance(module, nn.Module)
    xs = [torch.ones(1, 2) * v for v in (1.0, 2.0, 4.0)]
    assert torch.equal(module(xs), torch.full((1, 2), 5.0))
    with pytest.raises(ValueError, match="3 inputs"):
        module(xs[:2])
    assert hp.domains == {"mix": Inputs(3, 2)}


def test_inputs_sample_covers_every_subset() -> None:
    seen = {tuple(recorder(seed).inputs("x", 4, k=2).indices) for seed in range(200)}
    assert seen == {(a, b) for a in range(4) for b in range(a + 1, 4)}
    assert Inputs(4, 2).size == 6 == len(Inputs(4, 2).values())


# -- scopes, conditions, reuse ------------------------------------------------------------------
def test_scopes_prefix_labels() -> None:
    hp = recorder()
    with hp.scope("block1"):
        hp.int("depth", 1, 3)
        with hp.scope("conv"):
            hp.choice("kernel", [3, 5])
    hp.bool("head")
    assert list(hp.arch) == ["block1/depth", "block1/conv/kernel", "head"]


@pytest.mark.parametrize("name", ["", "a/b", 3])
def test_bad_scope_name_is_a_space_error(name: Any) -> None:
    with pytest.raises(tn.SpaceError, match="scope"), recorder().scope(name):
        pass


def conditional_space(hp: HP) -> dict[str, Any]:
    n = hp.int("conv_layers", 1, 4)
    for i in range(n):
        hp.choice(f"filters_{i}", [16, 32])
    if hp.bool("dropout"):
        hp.float("rate", 0.1, 0.5)
    return hp.arch


def test_conditional_labels_appear_only_when_reached() -> None:
    for seed in range(40):
        hp = recorder(seed)
        arch = conditional_space(hp)
        n = arch["conv_layers"]
        assert {k for k in arch if k.startswith("filters_")} == {f"filters_{i}" for i in range(n)}
        assert ("rate" in arch) == arch["dropout"]
        assert list(arch) == list(hp.domains)  # every met label has its domain, in order


def test_the_same_label_with_the_same_domain_is_one_decision() -> None:
    source = SeededSource(3)
    hp = HP(source)
    a = hp.int("width", 8, 512)
    b = hp.int("width", 8, 512)
    assert a == b
    assert source.asked == ["width"]  # the second call did not ask again
    assert hp.arch == {"width": a}
    assert "width" in hp and hp.get("width") == a and hp.get("nope", 7) == 7


def test_values_are_checked_against_the_domain() -> None:
    with pytest.raises(tn.SpaceError, match=r"'x'.*99"):
        HP(ConstSource(99)).int("x", 1, 4)
    with pytest.raises(tn.SpaceError, match="'x'"):
        HP(ConstSource(1)).bool("x")  # 1 is not True
    with pytest.raises(tn.SpaceError, match="'x'"):
        HP(ConstSource(2.0)).int("x", 1, 4)  # an int domain takes ints only


# -- malformed spaces ---------------------------------------------------------------------------
MALFORMED = {
    "empty choice": lambda hp: hp.choice("L", []),
    "choice not a list": lambda hp: hp.choice("L", "abc"),
    "non-JSON choice": lambda hp: hp.choice("L", [1, object()]),
    "module as a choice": lambda hp: hp.choice("L", [nn.ReLU(), nn.GELU()]),
    "NaN choice": lambda hp: hp.choice("L", [1.0, math.nan]),
    "duplicate choices": lambda hp: hp.choice("L", ["a", "b", "a"]),
    "int low > high": lambda hp: hp.int("L", 5, 1),
    "int step 0": lambda hp: hp.int("L", 1, 5, step=0),
    "int float bound": lambda hp: hp.int("L", 1, 5.5),
    "int log low 0": lambda hp: hp.int("L", 0, 5, log=True),
    "int log with step": lambda hp: hp.int("L", 1, 9, step=2, log=True),
    "float low > high": lambda hp: hp.float("L", 1.0, 0.5),
    "float log low 0": lambda hp: hp.float("L", 0.0, 1.0, log=True),
    "float log low < 0": lambda hp: hp.float("L", -1.0, 1.0, log=True),
    "float infinite": lambda hp: hp.float("L", 0.0, math.inf),
    "float step 0": lambda hp: hp.float("L", 0.0, 1.0, step=0.0),
    "float step not a number": lambda hp: hp.float("L", 0.0, 1.0, step="0.1"),
    "empty op": lambda hp: hp.op("L", {}),
    "op not a dict": lambda hp: hp.op("L", [nn.ReLU]),
    "inputs k > n": lambda hp: hp.inputs("L", 3, k=4),
    "inputs k = 0": lambda hp: hp.inputs("L", [1, 2], k=0),
    "inputs no candidates": lambda hp: hp.inputs("L", []),
    "inputs k not an int": lambda hp: hp.inputs("L", 3, k=1.5),
    "inputs bad reduction": lambda hp: hp.inputs("L", 3, reduction="max"),
    "reused with another domain": lambda hp: (hp.int("L", 1, 4), hp.int("L", 1, 5)),
    "reused with another kind": lambda hp: (hp.int("L", 0, 1), hp.bool("L")),
    "reused with ints for bools": lambda hp: (hp.choice("L", [1, 0]),
                                              hp.choice("L", [True, False])),
}


def test_a_space_that_raises_for_some_decisions_names_them_before_any_trial() -> None:
    def build(hp: tn.HP) -> nn.Module:
        if hp.int("n", 1, 3) == 2:
            raise ZeroDivisionError("division by zero")
        return nn.Linear(4, 2)

    with pytest.raises(tn.SpaceError, match=r"raised ZeroDivisionError: division by zero with "
                       r"the decisions \{'n': 2\}") as info:
        tn.space.explore(build)
    assert isinstance(info.value.__cause__, ZeroDivisionError)
    with pytest.raises(tn.SpaceError, match="'L'") as own:  # the recorder's own errors as they are
        tn.space.explore(MALFORMED["empty choice"])
    assert own.value.__cause__ is None


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_space_raises_space_error_naming_the_label(case: str) -> None:
    hp = recorder()
    with pytest.raises(tn.SpaceError) as info:
        MALFORMED[case](hp)
    assert "'L'" in str(info.value)
    # inside a scope the message names the full label
    hp = recorder()
    with pytest.raises(tn.SpaceError) as info, hp.scope("blk"):
        MALFORMED[case](hp)
    assert "'blk/L'" in str(info.value)


@pytest.mark.parametrize("label", ["", None, 3])
def test_bad_labels(label: Any) -> None:
    with pytest.raises(tn.SpaceError, match="label"):
        recorder().int(label, 1, 2)


def test_space_error_is_a_value_error() -> None:
    assert issubclass(tn.SpaceError, ValueError)


# -- build: rebuild a model from its architecture -----------------------------------------------
def model_space(hp: HP, in_ch: int = 2) -> nn.Module:
    layers: list[nn.Module] = []
    ch = in_ch
    for i in range(hp.int("depth", 1, 3)):
        with hp.scope(f"layer{i}"):
            out = hp.choice("width", [4, 8, 16])
            k = hp.choice("kernel", [1, 3])
            layers.append(nn.Conv1d(ch, out, k, padding=k // 2))
            layers.append(hp.op("act", {"relu": nn.ReLU, "gelu": nn.GELU, "id": nn.Identity}))
            if hp.bool("norm"):
                layers.append(nn.BatchNorm1d(out))
            ch = out
    layers.append(nn.Flatten())
    layers.append(nn.Linear(ch * 8, 3, bias=hp.bool("bias")))
    return nn.Sequential(*layers)


def shapes(model: nn.Module) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def test_build_rebuilds_exactly_the_same_model() -> None:
    for seed in range(15):
        hp = recorder(seed)
        model = model_space(hp)
        arch = roundtrip(hp.arch)  # as stored
        hp2 = HP(FixedSource(arch))
        again = model_space(hp2)
        assert hp2.arch == hp.arch
        assert shapes(again) == shapes(model)
        assert [type(m) for m in again.modules()] == [type(m) for m in model.modules()]
        rebuilt = tn.build(model_space, arch)
        assert shapes(rebuilt) == shapes(model)
        assert str(rebuilt) == str(model)


def test_build_passes_extra_arguments() -> None:
    arch = {"depth": 1, "layer0/width": 4, "layer0/kernel": 3, "layer0/act": "relu",
            "layer0/norm": False, "bias": False}
    model = tn.build(model_space, arch, 5)
    assert model[0].in_channels == 5
    model = tn.build(model_space, arch, in_ch=6)
    assert model[0].in_channels == 6


def test_build_with_a_missing_label_names_it() -> None:
    arch = {"depth": 2, "layer0/width": 4, "layer0/kernel": 3, "layer0/act": "relu",
            "layer0/norm": False, "bias": False}
    with pytest.raises(tn.SpaceError, match="'layer1/width'"):
        tn.build(model_space, arch)


def test_build_with_an_unknown_label_names_it() -> None:
    arch = {"depth": 1, "layer0/width": 4, "layer0/kernel": 3, "layer0/act": "relu",
            "layer0/norm": False, "bias": False, "layer1/width": 8}
    with pytest.raises(tn.SpaceError, match="layer1/width"):
        tn.build(model_space, arch)
    model = tn.build(model_space, arch, strict=False)  # the unknown label is ignored
    known = {k: v for k, v in arch.items() if k != "layer1/width"}
    assert str(model) == str(tn.build(model_space, known))
    assert shapes(model) == shapes(tn.build(model_space, known))


def test_build_with_a_value_outside_the_domain_names_the_label() -> None:
    arch = {"depth": 1, "layer0/width": 5, "layer0/kernel": 3, "layer0/act": "relu",
            "layer0/norm": False, "bias": False}
    with pytest.raises(tn.SpaceError, match=r"'layer0/width'.*5"):
        tn.build(model_space, arch)
    arch = {**arch, "layer0/width": 4, "layer0/act": "swish"}
    with pytest.raises(tn.SpaceError, match=r"'layer0/act'.*swish"):
        tn.build(model_space, arch)


def test_fixed_source_defaults() -> None:
    hp = HP(FixedSource({}, missing="default"))
    assert hp.int("a", 3, 10) == 3
    assert hp.choice("b", ["x", "y"]) == "x"
    assert hp.float("c", 0.0, 1.0, step=0.3) in Float(0.0, 1.0, step=0.3).values()
    assert hp.inputs("d", 1000, k=3).indices == [0, 1, 2]
    with pytest.raises(ValueError, match="missing"):
        FixedSource({}, missing="ignore")


# -- architecture keys --------------------------------------------------------------------------
def test_arch_key_is_stable_and_order_independent() -> None:
    a = {"depth": 2, "act": "relu", "lr": 0.001, "skip": [0, 2], "norm": True}
    b = dict(reversed(list(a.items())))
    assert list(a) != list(b)
    assert arch_key(a) == arch_key(b)
    assert arch_key(a) == arch_key(roundtrip(a))
    assert len(arch_key(a)) == 16 and set(arch_key(a)) <= set("0123456789abcdef")
    # the key is a pure function of the canonical JSON (stable across processes and machines)
    assert canonical_json(a) == '{"act":"relu","depth":2,"lr":0.001,"norm":true,"skip":[0,2]}'
    assert arch_key({"lr": 0.001}) == arch_key({"lr": 1e-3})


@pytest.mark.parametrize("other", [
    {"depth": 3}, {"depth": 2.0}, {"depth": True}, {"depth": "2"}, {"depth": 2, "x": None}, {},
])
def test_arch_key_separates_different_architectures(other: dict[str, Any]) -> None:
    assert arch_key({"depth": 2}) != arch_key(other)


def test_arch_key_rejects_non_finite_floats() -> None:
    with pytest.raises(ValueError):
        arch_key({"lr": math.nan})


# -- domains as data ----------------------------------------------------------------------------
ALL_DOMAINS: list[Domain] = [
    Categorical(("a", 1, 2.5, None, True)),
    Op(("conv", "skip")),
    Bool(),
    Int(1, 10),
    Int(0, 100, step=5),
    Int(1, 1024, log=True),
    Float(0.0, 1.0),
    Float(1e-5, 1e-1, log=True),
    Float(0.0, 1.0, step=0.25),
    Inputs(5, 2),
]


@pytest.mark.parametrize("dom", ALL_DOMAINS, ids=lambda d: d.describe())
def test_domain_json_round_trip(dom: Domain) -> None:
    data = roundtrip(dom.to_json())
    back = domain_from_json(data)
    assert back == dom
    assert type(back) is type(dom)
    assert back.describe() == dom.describe()
    rng = random.Random(0)
    for _ in range(20):
        v = dom.normalize(dom.sample(rng))
        assert dom.contains(v) and dom.contains(roundtrip(v)) and back.contains(roundtrip(v))
    if dom.size is not None:
        assert len(dom.values()) == dom.size
        assert all(dom.contains(v) for v in dom.values())


def test_domain_from_json_unknown_kind() -> None:
    with pytest.raises(tn.SpaceError, match="'tensor'"):
        domain_from_json({"kind": "tensor", "shape": [2]})


# -- properties ---------------------------------------------------------------------------------
LABELS = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789_/.-", min_size=1, max_size=12)
SCALARS = st.one_of(
    st.text(max_size=5), st.integers(-10**6, 10**6), st.booleans(), st.none(),
    st.floats(allow_nan=False, allow_infinity=False, width=64),
)


@st.composite
def int_domains(draw: st.DrawFn) -> Int:
    log = draw(st.booleans())
    low = draw(st.integers(1 if log else -10**6, 10**6))
    high = draw(st.integers(low, low + draw(st.sampled_from([0, 1, 10, 10**4, 10**6]))))
    step = 1 if log else draw(st.integers(1, 50))
    return Int(low, high, step, log)


@st.composite
def float_domains(draw: st.DrawFn) -> Float:
    kind = draw(st.sampled_from(["linear", "log", "step"]))
    if kind == "log":
        low = draw(st.floats(1e-12, 1e6))
        high = draw(st.floats(low, low * draw(st.sampled_from([1.0, 1.5, 10.0, 1e6]))))
        return Float(low, high, log=True)
    low = draw(st.floats(-1e6, 1e6))
    high = draw(st.floats(low, low + draw(st.sampled_from([0.0, 1e-3, 1.0, 1e6]))))
    if kind == "step":
        step = draw(st.floats(max(1e-3, (high - low) / 1000), max(1e-3, high - low + 1.0)))
        return Float(low, high, step=step)
    return Float(low, high)


@st.composite
def categorical_domains(draw: st.DrawFn) -> Categorical:
    values = draw(st.lists(SCALARS, min_size=1, max_size=6,
                           unique_by=lambda v: json.dumps(v)))
    return Categorical(tuple(values))


VALID = st.one_of(int_domains(), float_domains(), categorical_domains(),
                  st.builds(Inputs, st.integers(1, 8), st.just(1)),
                  st.integers(1, 8).flatmap(lambda n: st.builds(Inputs, st.just(n),
                                                                st.integers(1, n))))


def decide(hp: HP, label: str, dom: Domain) -> Any:
    """The public recorder call that makes ``dom``."""
    if isinstance(dom, Int):
        return hp.int(label, dom.low, dom.high, step=dom.step, log=dom.log)
    if isinstance(dom, Float):
        return hp.float(label, dom.low, dom.high, log=dom.log, step=dom.step)
    if isinstance(dom, Inputs):
        return hp.inputs(label, dom.n, k=dom.k).indices
    assert isinstance(dom, Categorical)
    return hp.choice(label, list(dom.choices))


@settings(max_examples=300, deadline=None)
@given(label=LABELS, dom=VALID, seed=st.integers(0, 2**32))
def test_sampled_values_are_members_and_survive_json(label: str, dom: Domain, seed: int) -> None:
    hp = recorder(seed)
    decide(hp, label, dom)
    value = hp.arch[label]
    assert hp.domains[label] == dom
    assert dom.contains(value)
    stored = roundtrip(hp.arch)
    assert dom.contains(stored[label])
    assert domain_from_json(roundtrip(dom.to_json())) == dom
    again = HP(FixedSource(stored))
    decide(again, label, dom)
    assert canonical_json(again.arch) == canonical_json(hp.arch)
    assert arch_key(again.arch) == arch_key(hp.arch)


@st.composite
def malformed(draw: st.DrawFn) -> tuple[str, Any]:
    """A malformed decision: (what it is, a function of (hp, label) that makes it)."""
    a = draw(st.integers(-100, 100))
    b = draw(st.integers(a + 1, a + 1000))  # a < b
    fa = draw(st.floats(-1e6, 1e6))
    fb = draw(st.floats(fa, 1e7).filter(lambda x: x > fa))
    nonpos = draw(st.floats(-1e6, 0.0))
    n = draw(st.integers(1, 10))
    extra = draw(st.integers(1, 5))
    values = draw(st.lists(SCALARS, min_size=1, max_size=4, unique_by=json.dumps))
    cases = [
        ("int low > high", lambda hp, lb: hp.int(lb, b, a)),
        ("float low > high", lambda hp, lb: hp.float(lb, fb, fa)),
        ("int log low <= 0", lambda hp, lb: hp.int(lb, min(a, 0), b, log=True)),
        ("float log low <= 0", lambda hp, lb: hp.float(lb, nonpos, abs(fb) + 1, log=True)),
        ("empty choice", lambda hp, lb: hp.choice(lb, [])),
        ("duplicate choice", lambda hp, lb: hp.choice(lb, [*values, values[-1]])),
        ("non-JSON choice", lambda hp, lb: hp.choice(lb, [*values, {"a": 1}])),
        ("k > n", lambda hp, lb: hp.inputs(lb, n, k=n + extra)),
        ("reused", lambda hp, lb: (hp.int(lb, a, b), hp.int(lb, a, b + 1))),
    ]
    return draw(st.sampled_from(cases))


@settings(max_examples=300, deadline=None)
@given(label=LABELS, case=malformed(), scope=st.sampled_from([None, "s", "deep/er"]))
def test_malformed_decisions_raise_space_error_naming_the_label(
    label: str, case: tuple[str, Any], scope: str | None
) -> None:
    _, make = case
    hp = recorder()
    scopes = scope.split("/") if scope else []
    with pytest.raises(tn.SpaceError) as info, contextlib.ExitStack() as stack:
        for name in scopes:
            stack.enter_context(hp.scope(name))
        make(hp, label)
    assert repr("/".join([*scopes, label])) in str(info.value)
    assert hp.arch == {} or case[0] == "reused"
