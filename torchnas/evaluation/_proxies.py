"""Zero-cost proxies: scores of an untrained network that rank architectures without training.

Each proxy runs on a copy of the model (the model itself, its running statistics and its
gradients are never touched), under a seeded random stream, and returns one float; higher is
better for every one of them. Weight-based proxies sum over the weights of convolution and
linear layers, as in Abdelfattah et al., "Zero-Cost Proxies for Lightweight NAS" (ICLR 2021).

===========  =================================================================================
synflow      Tanaka et al. 2020: in float64, with the absolute value of every weight and an
             all-ones input of one sample, ``sum |w * d(sum f(1))/dw|``. Data-free. Batch norm
             runs in eval mode with its (untrained) running statistics, which makes it the
             per-channel affine map the papers' BN-free copy computes; dropout is off.
snip         Lee et al. 2019: ``sum |w * dL/dw|`` for the cross-entropy loss of the batch.
grad_norm    ``sum`` over layers of ``||dL/dw||_2`` (Abdelfattah et al.).
naswot       Mellor et al. 2021: ``log |K_H|`` where ``K_H[i, j]`` counts the activation units
             (the sign of the input of every activation module: ReLU, GELU, Tanh, ...) that
             samples ``i`` and ``j`` switch the same way (the binary codes' agreement:
             ``N_A - hamming``). One deviation: ``log |K_H + I|``. The unit ridge is
             negligible beside the diagonal ``N_A`` (all units) of a real network, and keeps
             the score finite, and still ordered, when ``K_H`` is singular (a narrow network
             with fewer units than samples, or samples it cannot tell apart), where the
             paper's score is ``-inf``.
jacob_cov    Mellor et al. 2020 (v1): the correlation matrix ``C`` of the per-sample input
             Jacobians of the summed outputs, ``-sum(log(v + k) + 1/(v + k))`` over its
             eigenvalues ``v``, ``k = 1e-5``.
===========  =================================================================================

Data-dependent proxies run in train mode (batch norm uses the batch's statistics, as in the
papers' code) with dropout switched off, so a score depends only on the weights and the batch.
"""

from __future__ import annotations

import copy
import math
import random
from collections.abc import Callable, Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from torchnas.space import HP, Domain, arch_key

__all__ = ["FLOAT_INPUTS", "PROXIES", "proxy", "rank_architectures"]

#: Modules whose input sign is NASWOT's binary activation code.
ACTIVATION_TYPES: tuple[type[nn.Module], ...] = (
    nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.ELU, nn.SELU, nn.CELU, nn.GELU, nn.SiLU,
    nn.Mish, nn.Hardswish, nn.Tanh, nn.Sigmoid, nn.Hardtanh, nn.Softsign,
)
_DROPOUT = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout)

Proxy = Callable[[nn.Module, torch.Tensor, torch.Tensor], float]


def _weights(net: nn.Module) -> list[torch.Tensor]:
    """The weights proxies sum over: those of convolution and linear layers."""
    return [m.weight for m in net.modules()
            if isinstance(m, (nn.modules.conv._ConvNd, nn.Linear)) and m.weight.requires_grad]


def _train_mode(net: nn.Module) -> nn.Module:
    net.train()
    for m in net.modules():
        if isinstance(m, _DROPOUT):
            m.eval()
    return net


def _loss_grads(net: nn.Module, inputs: torch.Tensor,
                targets: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
    weights = _weights(net)
    loss = F.cross_entropy(_train_mode(net)(inputs).float(), targets.long())
    grads = torch.autograd.grad(loss, weights, allow_unused=True)
    return [(w, g) for w, g in zip(weights, grads, strict=True) if g is not None]


def synflow(net: nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> float:
    """Synaptic flow of the all-ones input through the absolute weights (data-free)."""
    net = net.double().eval()
    with torch.no_grad():
        for tensor in net.state_dict().values():
            if tensor.is_floating_point():
                tensor.abs_()
    weights = _weights(net)
    ones = torch.ones((1, *inputs.shape[1:]), dtype=torch.float64, device=inputs.device)
    grads = torch.autograd.grad(net(ones).sum(), weights, allow_unused=True)
    with torch.no_grad():
        return float(sum((w * g).abs().sum() for w, g in zip(weights, grads, strict=True)
                         if g is not None))


def snip(net: nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> float:
    """Connection sensitivity: ``sum |w * dL/dw|``."""
    pairs = _loss_grads(net, inputs, targets)
    with torch.no_grad():
        return float(sum((w * g).abs().sum() for w, g in pairs))


def grad_norm(net: nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> float:
    """Sum over layers of the gradient's Euclidean norm."""
    return float(sum(g.norm() for _, g in _loss_grads(net, inputs, targets)))


def naswot(net: nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> float:
    """``log |K_H + I|`` of the activation codes' kernel (NAS without training)."""
    n = inputs.shape[0]
    kernel = torch.zeros(n, n, dtype=torch.float64, device=inputs.device)

    def hook(module: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
        nonlocal kernel
        code = (args[0].detach().reshape(n, -1) > 0).double()
        kernel = kernel + code @ code.T + (1 - code) @ (1 - code).T

    hooks = [m.register_forward_pre_hook(hook) for m in net.modules()
             if isinstance(m, ACTIVATION_TYPES)]
    if not hooks:
        raise ValueError("naswot needs activation modules (nn.ReLU, nn.GELU, ...) in the model")
    with torch.no_grad():
        _train_mode(net)(inputs)
    for h in hooks:
        h.remove()
    eye = torch.eye(n, dtype=kernel.dtype, device=kernel.device)
    return float(torch.linalg.slogdet(kernel + eye)[1])


def jacob_cov(net: nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> float:
    """Correlation of input Jacobians across the batch (low correlation scores high)."""
    x = inputs.detach().clone().requires_grad_(True)
    out = _train_mode(net)(x)
    (jacobian,) = torch.autograd.grad(out.sum(), x)
    rows = jacobian.reshape(len(x), -1).double()
    corr = torch.corrcoef(rows).nan_to_num(0.0)  # a constant row correlates with nothing
    corr.fill_diagonal_(1.0)
    v = torch.linalg.eigvalsh(corr).clamp(min=0.0)
    k = 1e-5
    return float(-(torch.log(v + k) + 1.0 / (v + k)).sum())


#: The zero-cost proxies by name: ``fn(model_copy, inputs, targets) -> float`` (higher is better).
PROXIES: dict[str, Proxy] = {
    "synflow": synflow, "snip": snip, "grad_norm": grad_norm, "naswot": naswot,
    "jacob_cov": jacob_cov,
}


#: The proxies that cannot score a model of integer inputs (token ids), and why. ``snip``,
#: ``grad_norm`` and ``naswot`` only differentiate with respect to the weights and run the
#: model on the batch as it is, so they score an embedding model of tokens.
FLOAT_INPUTS: dict[str, str] = {
    "synflow": "it runs the model on an all-ones float64 input",
    "jacob_cov": "it differentiates the outputs with respect to the inputs",
}


def proxy(name: str, model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, *,
          seed: int = 0, device: str | torch.device | None = None) -> float:
    """Score an untrained ``model`` with the zero-cost proxy ``name`` (higher is better).

    Deterministic: it runs on a copy of the model (on ``device``), inside a forked
    random stream seeded with ``seed``; the model is left exactly as it was. A NaN score (a
    degenerate network) is returned as ``-inf``, the worst.

    Args:
        name: one of :data:`PROXIES`.
        model: the (untrained) network.
        inputs: a batch of training inputs (``synflow`` uses only their shape).
        targets: their class labels.
        seed: seed of any randomness inside the pass.
        device: where to compute (default: where the model's parameters are).

    Raises:
        ValueError: for an unknown proxy, or one of :data:`FLOAT_INPUTS` given integer
            inputs.

    Example:
        >>> net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(),
        ...                           torch.nn.Linear(8, 2))
        >>> x, y = torch.randn(6, 4), torch.arange(6) % 2
        >>> proxy("synflow", net, x, y) == proxy("synflow", net, x, y)
        True
    """
    fn = PROXIES.get(name)
    if fn is None:
        raise ValueError(f"unknown proxy {name!r}; available: {', '.join(PROXIES)}")
    if name in FLOAT_INPUTS and not inputs.is_floating_point():
        raise ValueError(f"proxy {name!r} needs float inputs ({FLOAT_INPUTS[name]}); these are "
                         f"{inputs.dtype}")
    first = next(iter(model.parameters()), None)
    dev = torch.device(device) if device is not None else (
        first.device if first is not None else inputs.device)
    cuda = [dev.index or 0] if dev.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda):
        torch.manual_seed(seed)
        net = copy.deepcopy(model).to(dev)
        for p in net.parameters():
            p.grad = None
        score = fn(net, inputs.to(dev), targets.to(dev))
    return score if not math.isnan(score) else -math.inf


class _RandomSource:
    """Every decision drawn from its domain with one seeded stream."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def value(self, label: str, domain: Domain, met: Mapping[str, Any]) -> Any:
        return domain.sample(self.rng)


def rank_architectures(
    space: Callable[[HP], nn.Module], name: str, inputs: torch.Tensor, targets: torch.Tensor,
    *, samples: int, seed: int = 0, device: str | torch.device | None = None,
    accept: Callable[[nn.Module], bool] | None = None,
) -> list[tuple[float, dict[str, Any]]]:
    """Draws ``samples`` distinct architectures of ``space`` at random and scores them with the
    proxy ``name``; returns ``(score, architecture)`` pairs, best first (ties: drawn first).

    Decisions come from one ``random.Random(seed)`` stream; architectures are de-duplicated by
    :func:`~torchnas.space.arch_key` (at most ``10 * samples`` draws for a small space). Each
    model is built with its weights seeded from ``(seed, draw)``. An architecture whose model
    ``accept`` refuses (a constraint it breaks) is left out of the ranking.
    """
    rng = random.Random(seed)
    seen: set[str] = set()
    ranked: list[tuple[float, int, dict[str, Any]]] = []
    for draw in range(10 * samples):
        if len(seen) >= samples:
            break
        hp = HP(_RandomSource(rng))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed((seed * 1_000_003 + draw) % 2**63)
            model = space(hp)
        key = arch_key(hp.arch)
        if key in seen:
            continue
        seen.add(key)
        if accept is None or accept(model):
            score = proxy(name, model, inputs, targets, seed=seed, device=device)
            ranked.append((score, draw, hp.arch))
    ranked.sort(key=lambda r: (-r[0], r[1]))
    return [(score, arch) for score, _, arch in ranked]
