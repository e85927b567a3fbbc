"""The registry of built-in spaces, and what the ``mlp`` and ``chain_cnn`` spaces promise. The
contract every built-in space keeps (timm's test_models.py, for spaces) runs in
``test_contract_spaces.py`` (``torchnas.testing.spaces``).
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

import torchnas as tn
from torchnas.space import Bool, Categorical, Float, Int

SPACES = tn.spaces.available()


def create(name: str, shape: tuple[int, ...], num_classes: int) -> Any:
    return tn.spaces.create(name, input_shape=shape, num_classes=num_classes)


def test_registry_lists_the_documented_spaces() -> None:
    assert {"mlp", "chain_cnn"} <= set(SPACES)
    assert sorted(SPACES) == SPACES


@pytest.mark.parametrize("name", SPACES)
def test_unknown_space_arguments_are_config_errors(name: str) -> None:
    with pytest.raises(tn.ConfigError, match=name):
        tn.spaces.create(name, input_shape=(1, 40), num_classes=10, no_such_argument=1)


def test_unknown_space_name_suggests_the_closest() -> None:
    with pytest.raises(tn.ConfigError, match=r"unknown space 'chain_cn'.*'chain_cnn'") as info:
        tn.spaces.create("chain_cn")
    for name in SPACES:
        assert name in str(info.value)  # the message lists what exists
    with pytest.raises(tn.ConfigError, match="'mlp'"):
        tn.spaces.get("mpl")


# -- the two spaces' own promises ---------------------------------------------------------------
def test_mlp_is_the_keras_tuner_space() -> None:
    info = tn.explore(create("mlp", (1, 8, 8), 10))
    labels = info.labels
    assert list(labels) == ["num_layers", "units_0", "activation", "units_1", "units_2",
                            "dropout", "lr"]
    assert labels["num_layers"].domain == Int(1, 3)
    for i in range(3):
        assert labels[f"units_{i}"].domain == Int(32, 512, step=32)
    assert labels["activation"].domain == Categorical(("relu", "tanh"))
    assert labels["dropout"].domain == Bool()
    assert labels["lr"].domain == Float(1e-4, 1e-2, log=True)
    assert labels["units_0"].condition == ""
    assert labels["units_1"].condition == "num_layers >= 2"
    assert labels["units_2"].condition == "num_layers >= 3"
    # 16 widths per layer, 2 activations, dropout or not; lr counted once
    assert info.discrete_size == (16 + 16**2 + 16**3) * 2 * 2


def test_mlp_model_follows_its_architecture() -> None:
    space = create("mlp", (1, 8, 8), 10)
    arch = {"num_layers": 2, "units_0": 64, "activation": "tanh", "units_1": 32,
            "dropout": True, "lr": 1e-3}
    model = tn.build(space, arch)
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(64, 64), (64, 32), (32, 10)]
    assert sum(isinstance(m, nn.Tanh) for m in model.modules()) == 2
    assert any(isinstance(m, nn.Dropout) for m in model.modules())
    with pytest.raises(tn.SpaceError, match="units_2"):
        tn.build(space, {**arch, "units_2": 64})  # a label this architecture never meets


def test_chain_cnn_has_the_issue_domains() -> None:
    labels = tn.explore(create("chain_cnn", (1, 40), 10)).labels
    assert labels["conv_layers"].domain == Int(1, 4)
    for i in range(4):
        assert labels[f"filters_{i}"].domain == Categorical((24, 36, 48, 64))
        assert labels[f"kernel_{i}"].domain == Categorical((3, 5, 7))
        assert labels[f"stride_{i}"].domain == Categorical((1, 2))
    assert labels["filters_3"].condition == "conv_layers >= 4"
    assert labels["kernel_1"].condition == "conv_layers >= 2"
    assert labels["lr"].domain.log  # type: ignore[attr-defined]


@pytest.mark.parametrize(("shape", "conv"), [((1, 40), nn.Conv1d), ((40,), nn.Conv1d),
                                             ((1, 8, 8), nn.Conv2d), ((3, 16, 16), nn.Conv2d)])
def test_chain_cnn_convolves_in_the_data_dimension(shape: tuple[int, ...],
                                                   conv: type[nn.Module]) -> None:
    space = create("chain_cnn", shape, 10)
    arch = {"activation": "gelu", "conv_layers": 2, "filters_0": 24, "kernel_0": 7,
            "stride_0": 2, "filters_1": 64, "kernel_1": 3, "stride_1": 1, "dense_layers": 1,
            "units_0": 32, "dropout": False, "lr": 1e-3}
    model = tn.build(space, arch)
    convs = [m for m in model.modules() if isinstance(m, (nn.Conv1d, nn.Conv2d))]
    assert [type(m) for m in convs] == [conv, conv]
    assert [(m.in_channels, m.out_channels) for m in convs] == [(shape[0] if len(shape) > 1
                                                                 else 1, 24), (24, 64)]
    assert convs[0].kernel_size[0] == 7 and convs[0].stride[0] == 2
    assert model.eval()(torch.randn(2, *shape)).shape == (2, 10)


def test_chain_cnn_rejects_inputs_of_more_than_two_spatial_dimensions() -> None:
    with pytest.raises(tn.SpaceError, match=r"\(C, L\) or \(C, H, W\)"):
        tn.explore(create("chain_cnn", (1, 4, 4, 4), 10))
