"""The ``mobile`` space's own promises (the shared contract is tests/test_contract_spaces.py):
its labels, MobileNetV2's inverted residual blocks in the data's dimension, residuals exactly
where shapes match, and a size that trains in a search on a CPU."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

import torchnas as tn
from torchnas.space import Categorical, Int
from torchnas.space.builtin.mobile import InvertedResidual


def arch(**changes: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for i, width in enumerate((16, 32, 48)):
        out.update({f"stage{i}/width": width, f"stage{i}/depth": 2, f"stage{i}/expand": 6,
                    f"stage{i}/kernel": 5})
    return {**out, "dropout": False, "lr": 1e-3, **changes}


def test_labels_are_per_stage_width_depth_expansion_and_kernel() -> None:
    info = tn.explore(tn.spaces.create("mobile", input_shape=(1, 40), num_classes=10))
    labels = info.labels
    assert list(labels) == [f"stage{i}/{k}" for i in range(3)
                            for k in ("width", "depth", "expand", "kernel")] + ["dropout", "lr"]
    assert labels["stage1/width"].domain == Categorical((24, 32, 48))
    assert labels["stage2/depth"].domain == Int(1, 3)
    assert labels["stage0/expand"].domain == Categorical((1, 3, 6))
    assert labels["stage0/kernel"].domain == Categorical((3, 5, 7))
    assert info.discrete_size == (2 * 3 * 3 * 3) * (3 * 3 * 3 * 3) ** 2 * 2


@pytest.mark.parametrize(("shape", "conv"), [((1, 40), nn.Conv1d), ((40,), nn.Conv1d),
                                             ((3, 16, 16), nn.Conv2d)])
def test_blocks_are_inverted_residuals_in_the_data_dimension(shape: tuple[int, ...],
                                                             conv: type[nn.Module]) -> None:
    space = tn.spaces.create("mobile", input_shape=shape, num_classes=7)
    model = tn.build(space, arch(**{"stage1/expand": 1, "stage2/kernel": 7}))
    blocks = [m for m in model.modules() if isinstance(m, InvertedResidual)]
    assert len(blocks) == 6
    assert {type(m) for m in model.modules() if isinstance(m, (nn.Conv1d, nn.Conv2d))} == {conv}
    depthwise = [m for b in blocks for m in b.modules()
                 if isinstance(m, conv) and m.groups > 1]
    assert [m.in_channels for m in depthwise] == [96, 96, 16, 32, 192, 288]
    assert [m.kernel_size[0] for m in depthwise] == [5, 5, 5, 5, 7, 7]
    assert [m.stride[0] for m in depthwise] == [1, 1, 2, 1, 2, 1]
    # the residual: stride 1 and as many channels out as in
    assert [b.residual for b in blocks] == [True, True, False, True, False, True]
    assert model.eval()(torch.randn(2, *shape)).shape == (2, 7)


def test_a_residual_block_adds_its_input() -> None:
    block = InvertedResidual(1, 8, 8, expand=3, kernel=3, stride=1).eval()
    x = torch.randn(2, 8, 10)
    with torch.no_grad():
        assert torch.allclose(block(x), x + block.body(x))
        assert not InvertedResidual(1, 8, 16, expand=3, kernel=3, stride=1).residual
        assert not InvertedResidual(1, 8, 8, expand=3, kernel=3, stride=2).residual


def test_the_largest_model_stays_small() -> None:
    space = tn.spaces.create("mobile", input_shape=(1, 40), num_classes=10)
    big = tn.build(space, arch(**{f"stage{i}/{k}": v for i, w in enumerate((24, 48, 64))
                                  for k, v in (("width", w), ("depth", 3), ("expand", 6),
                                               ("kernel", 7))}))
    assert tn.metrics.params(big) < 300_000
    assert tn.metrics.flops(big, torch.zeros(1, 1, 40)) < 5e6  # per sample


def test_a_search_of_the_space_trains() -> None:
    x, y = torch.randn(96, 1, 40), torch.arange(96) % 4
    data = tn.data.from_tensors((x[:64], y[:64]), (x[64:], y[64:]))
    search = tn.ModelSearch(space="mobile", data=data, trainer=tn.Trainer(epochs=1),
                            trials=2, strategy="random", progress=False,
                            constraints={"flops": ("<", 3e6)})
    study = search.run()
    assert all(t.state.finished for t in study.trials)
    assert any(t.state is tn.TrialState.COMPLETE and t.metrics["flops"] < 3e6
               for t in study.trials)
