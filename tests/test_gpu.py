"""CUDA paths, run where a GPU is present (skipped elsewhere: CI has none).

``pytest tests/test_gpu.py`` on a machine with a CUDA GPU checks what no CPU run can: the type
``amp=True`` picks, training on the device, real out-of-memory errors becoming failed trials
(with the device's memory released), peak memory measured by CUDA's allocator, and a one-shot
search on the GPU.
"""

from __future__ import annotations

import pytest
import torch
from helpers import output_dtypes, signals
from torch import nn

import torchnas as tn
from torchnas.evaluation import Trainer

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def mlp(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))


@pytest.mark.parametrize("amp", [True, "float16"])
def test_training_on_cuda_autocasts_and_learns(amp: bool | str) -> None:
    data = tn.data.load("digits")
    model = mlp()
    seen = output_dtypes(model, nn.Linear)
    result = Trainer(epochs=6, batch_size=64, lr=1e-2, amp=amp, grad_clip=5.0,
                     device="cuda").fit(model, data)
    if amp is True:
        expected = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    else:
        expected = torch.float16
    assert set(seen) == {expected}
    assert result["val_accuracy"] > 0.85
    assert all(p.device.type == "cuda" and p.dtype == torch.float32
               for p in model.parameters())


def test_a_cuda_out_of_memory_trial_fails_and_the_search_goes_on() -> None:
    def objective(hp: tn.HP) -> float:
        size = hp.choice("size", [1, 1 << 48])  # 1 << 48 floats: more than any GPU holds
        x = torch.ones(size, device="cuda")
        return float(x.sum()) / size

    torch.cuda.empty_cache()
    before = torch.cuda.memory_allocated()
    study = tn.Study(objectives={"v": "max"}, strategy="grid", storage=None)
    study.optimize(objective, trials=2)
    states = {t.arch["size"]: t for t in study.trials}
    assert states[1].state is tn.TrialState.COMPLETE
    failed = states[1 << 48]
    assert failed.state is tn.TrialState.FAILED
    assert failed.error and "OutOfMemoryError" in failed.error
    assert torch.cuda.memory_allocated() == before


def test_peak_memory_on_cuda_is_the_allocators() -> None:
    model = nn.Linear(1024, 1024)
    x = torch.zeros(256, 1024)
    measured = tn.metrics.peak_memory(model, x, device="cuda")
    assert measured >= 4 * (1024 * 1024 + 256 * 1024)  # the weights and the output at least


def test_a_one_shot_search_runs_on_cuda_in_mixed_precision() -> None:
    def space(hp: tn.HP) -> nn.Module:
        ops = {"skip": nn.Identity, "conv": lambda: nn.Conv1d(1, 1, 3, padding=1)}
        return nn.Sequential(hp.op("e1", ops), nn.Flatten(), nn.Linear(16, 2))

    method = tn.oneshot.DARTS(epochs=2, batch_size=32, device="cuda")  # amp=True by default
    data = signals(256)
    net = method.supernet(space, data, seed=0)
    seen = output_dtypes(net, nn.Conv1d)
    result = method.search(space, data, seed=0, net=net)
    expected = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    assert set(seen) == {expected}
    assert set(result.arch) == {"e1"}
    assert all(p.device.type == "cuda" for p in net.parameters())
