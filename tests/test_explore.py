"""Exploring spaces: labels, domains, inferred conditions and exact sizes.

Every size here is computed by hand in the space's docstring and checked twice: against what
``tn.explore`` infers and against the number of architectures the grid strategy enumerates.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from torch import nn

import torchnas as tn
from torchnas.space import HP, Bool, Categorical, Float, Inputs, Int, Op, SpaceInfo


def layered(hp: HP) -> None:
    """filters: sum(2**n for n in 1..4) = 30; dropout: 1 + 3 = 4; act: 1 + 1 + 2 + 2 = 6.
    Size 30 * 4 * 6 = 720."""
    n = hp.int("conv_layers", 1, 4)
    for i in range(n):
        hp.choice(f"filters_{i}", [16, 32])
    if hp.bool("dropout"):
        hp.choice("rate", [0.1, 0.3, 0.5])
    act = hp.choice("act", ["relu", "gelu", "tanh", "sigmoid"])
    if act in ("relu", "gelu"):
        hp.choice("slope", ["a", "b"])


def nested(hp: HP) -> None:
    """cnn: 3 kernels * (1 + 2 dilations) = 9; mlp: 4 widths; times C(3, 2) = 3 skips.
    Size (9 + 4) * 3 = 39."""
    kind = hp.choice("kind", ["mlp", "cnn"])
    if kind == "cnn":
        hp.int("kernel", 3, 7, step=2)
        if hp.bool("dilated"):
            hp.int("dilation", 2, 3)
    else:
        hp.int("units", 16, 64, step=16)
    hp.inputs("skip", 3, k=2)


def cells(hp: HP) -> None:
    """depth 1 or 2: 3 ops, depth 3: none -> 3 + 3 + 1 = 7; times C(4, 2) = 6 inputs.
    Size 7 * 6 = 42."""
    depth = hp.int("depth", 1, 3)
    if depth <= 2:
        hp.op("extra", {"a": nn.Identity, "b": nn.ReLU, "c": nn.GELU})
    with hp.scope("cell"):
        hp.inputs("node", [0, 1, 2, 3], k=2)


def with_lr(hp: HP) -> None:
    """The nested space plus a continuous learning rate: infinite, 39 discrete combinations."""
    nested(hp)
    hp.float("lr", 1e-4, 1e-1, log=True)


def joint(hp: HP) -> None:
    """``c`` exists when a and b: no single parent tells. Size 2 * 2 - 1 + 2 = 5."""
    a = hp.bool("a")
    b = hp.bool("b")
    if a and b:
        hp.choice("c", [1, 2])


SIZES: dict[Callable[[HP], None], int] = {layered: 720, nested: 39, cells: 42}


def grid_count(space: Callable[[HP], None], limit: int = 2000) -> tuple[int, int]:
    """(trials the grid ran, distinct architectures among them) until it stopped by itself."""
    study = tn.Study(strategy="grid", objectives={"v": "max"})
    study.optimize(lambda hp: (space(hp), 1.0)[1], trials=limit)
    assert study.strategy.exhausted()
    trials = study.trials
    assert all(t.state is tn.TrialState.COMPLETE for t in trials)
    return len(trials), len({t.key for t in trials})


def conditions(info: SpaceInfo) -> dict[str, str]:
    return {label: i.condition for label, i in info.labels.items()}


def test_layered_space() -> None:
    info = tn.explore(layered)
    assert list(info.labels) == ["conv_layers", "filters_0", "filters_1", "filters_2",
                                 "filters_3", "dropout", "rate", "act", "slope"]
    assert info.labels["conv_layers"].domain == Int(1, 4)
    assert info.labels["filters_2"].domain == Categorical((16, 32))
    assert info.labels["dropout"].domain == Bool()
    assert conditions(info) == {
        "conv_layers": "", "filters_0": "",
        "filters_1": "conv_layers >= 2",
        "filters_2": "conv_layers >= 3",
        "filters_3": "conv_layers >= 4",
        "dropout": "",
        "rate": "dropout == True",
        "act": "",
        "slope": "act in {'gelu', 'relu'}",
    }
    f2 = info.labels["filters_2"]
    assert (f2.parent, set(f2.when or ()), f2.conditional) == ("conv_layers", {3, 4}, True)
    assert info.labels["filters_0"].parent is None and not info.labels["filters_0"].conditional
    assert info.size == info.discrete_size == 720


def test_nested_conditions() -> None:
    info = tn.explore(nested)
    assert conditions(info) == {
        "kind": "",
        "units": "kind == 'mlp'",
        "kernel": "kind == 'cnn'",
        "dilated": "kind == 'cnn'",
        "dilation": "dilated == True",  # its latest deciding parent, not the grandparent
        "skip": "",
    }
    assert info.labels["skip"].domain == Inputs(3, 2)
    assert info.labels["kernel"].domain == Int(3, 7, step=2)
    assert info.size == 39


def test_upper_bound_condition_ops_and_scoped_inputs() -> None:
    info = tn.explore(cells)
    assert conditions(info) == {"depth": "", "extra": "depth <= 2", "cell/node": ""}
    assert info.labels["extra"].domain == Op(("a", "b", "c"))
    assert info.labels["cell/node"].domain == Inputs(4, 2)
    assert info.size == 42


@pytest.mark.parametrize("space", list(SIZES), ids=lambda f: f.__name__)
def test_size_matches_what_the_grid_enumerates(space: Callable[[HP], None]) -> None:
    ran, distinct = grid_count(space)
    assert ran == distinct == SIZES[space] == tn.explore(space).size


def test_continuous_labels_make_the_space_infinite() -> None:
    info = tn.explore(with_lr)
    assert info.labels["lr"].domain == Float(1e-4, 1e-1, log=True)
    assert info.size is None
    assert info.discrete_size == 39
    text = info.summary()
    assert "infinite" in text and "lr" in text and "39 discrete" in text
    # the grid takes float_points values of lr for each of the 39 discrete combinations
    study = tn.Study(strategy={"name": "grid", "float_points": 3}, objectives={"v": "max"})
    study.optimize(lambda hp: (with_lr(hp), 1.0)[1], trials=500)
    assert len(study.trials) == 39 * 3
    assert sorted({t.arch["lr"] for t in study.trials}) == pytest.approx([1e-4, 10**-2.5, 1e-1])


def test_a_label_that_depends_on_several_decisions() -> None:
    info = tn.explore(joint)
    c = info.labels["c"]
    assert c.conditional and c.parent is None
    assert c.condition == "(conditional)"
    assert info.size is None and info.discrete_size is None
    assert "unknown" in info.summary()
    ran, distinct = grid_count(joint)
    assert ran == distinct == 5  # the grid still enumerates it exactly


def test_summary_table() -> None:
    text = tn.explore(layered).summary()
    lines = text.splitlines()
    assert lines[0] == "Search space: 9 labels (seen in 32 runs)"
    assert lines[1].split() == ["label", "domain", "exists", "when"]
    row = next(line for line in lines if line.startswith("filters_3"))
    assert row.split("  ")[0] == "filters_3"
    assert row.endswith("conv_layers >= 4") and "choice[16, 32]" in row
    assert next(line for line in lines if line.startswith("dropout")).split()[-1] == "always"
    assert lines[-1] == "Size: 720 architectures"


def test_explore_is_deterministic_and_runs_can_be_set() -> None:
    assert tn.explore(with_lr, seed=3).summary() == tn.explore(with_lr, seed=3).summary()
    info = tn.explore(layered, runs=64)
    assert info.runs == 64 and info.size == 720
    big = tn.explore(lambda hp: hp.int("n", 1, 100))
    assert big.runs == 256 and big.size == 100  # enough runs to see every value


def test_explore_raises_on_a_malformed_space() -> None:
    def bad(hp: HP) -> None:
        if hp.int("depth", 1, 3) == 3:
            hp.choice("late", [])  # only some runs reach it

    with pytest.raises(tn.SpaceError, match="'late'"):
        tn.explore(bad)


def test_study_space_summary_explores_or_reads_trials() -> None:
    study = tn.Study(strategy="grid", objectives={"v": "max"})
    assert study.space_summary(nested) == tn.explore(nested).summary()
    study.optimize(lambda hp: (nested(hp), 1.0)[1], trials=100)
    from_trials = study.space_summary()
    assert "seen in 39 runs" in from_trials
    assert "Size: 39 architectures" in from_trials
    for cond in ("kind == 'mlp'", "kind == 'cnn'", "dilated == True"):
        assert cond in from_trials


def test_infer_from_architectures() -> None:
    samples: list[dict[str, Any]] = [
        {"n": 1, "a0": "x"},
        {"n": 2, "a0": "y", "a1": "x"},
        {"n": 2, "a0": "x", "a1": "y"},
        {"n": 1, "a0": "y"},
    ]
    domains = {"n": Int(1, 2), "a0": Categorical(("x", "y")), "a1": Categorical(("x", "y"))}
    info = tn.space.infer(samples, domains)
    assert conditions(info) == {"n": "", "a0": "", "a1": "n >= 2"}
    assert info.size == 2 + 4
