"""DARTS (first and second order) and PC-DARTS: differentiable search over a softmax mix.

Each step updates the architecture logits on a batch of the architecture half (Adam), then the
weights on a batch of the weights half (SGD). First order takes the gradient of the validation
loss at the current weights; second order (``order=2``) takes it at the weights after one
virtual SGD step, with the Hessian-vector product by finite differences (Liu et al., 2019).
PC-DARTS is DARTS with ``partial_channels=4``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from torchnas.oneshot._base import OneShot, SearchRun, register
from torchnas.oneshot._collapse import collapse_counts

__all__ = ["DARTS", "PCDARTS", "Differentiable"]


@dataclass(kw_only=True, repr=False)
class Differentiable(OneShot):
    """The loop DARTS and GDAS share (see :class:`OneShot` for the common settings).

    Args:
        arch_lr, arch_weight_decay: Adam on the architecture logits (betas 0.5, 0.999).
        warmup_epochs: epochs that train the weights only, before the logits move
            (``None``: half the epochs, rounded down). Early on, the parameter-free
            candidates train fastest and would win the logits' first moves; the partial
            channels of PC-DARTS and the single sampled path of GDAS train each candidate
            more slowly still. Measured on MNIST-1D and digits (``benchmarks/oneshot.py``, 10
            search epochs, 3 seeds): half instead of a fifth raised the derived
            architectures' test accuracy of PC-DARTS on MNIST-1D (a seed that collapsed into
            pooling no longer does) and of GDAS and DARTS on digits.
        collapse_guard: ``None``, ``"early_stop"`` (DARTS+) or ``"aux_skip"`` (DARTS-).
    """

    mode: ClassVar[str] = "softmax"
    arch_lr: float = 3e-3
    arch_weight_decay: float = 1e-3
    warmup_epochs: int | None = None
    collapse_guard: str | None = None

    def warmup(self) -> int:
        """The warm-up epochs (``warmup_epochs`` resolved)."""
        return self.epochs // 2 if self.warmup_epochs is None else self.warmup_epochs

    def check(self) -> None:
        super().check()
        w = self.warmup_epochs
        if w is not None and (isinstance(w, bool) or not isinstance(w, int) or w < 0):
            raise ValueError(f"{self.name}: warmup_epochs must be None or an integer >= 0, "
                             f"got {w!r}")

    def begin_epoch(self, run: SearchRun, epoch: int) -> None:
        """Per-epoch schedules: the auxiliary skip's weight decays linearly from 1 to 0."""
        if self.collapse_guard == "aux_skip":
            run.net.state.aux_skip = 1.0 - (epoch - 1) / self.epochs

    def arch_step(self, run: SearchRun, opt: torch.optim.Optimizer, xw: torch.Tensor,
                  yw: torch.Tensor, xa: torch.Tensor, ya: torch.Tensor, lr: float) -> float:
        """One first-order step on the logits: gradient of the loss on the architecture batch
        (plus the cost penalty) at the current weights."""
        alphas = run.net.arch_parameters()
        with run.autocast():
            loss = run.loss(run.net(xa).float(), xa, ya) + run.penalty()
        grads = run.arch_grads(loss, alphas)
        if grads is not None:
            _set_grads(alphas, grads)
            opt.step()
        return float(loss.detach())

    def val_metrics(self, run: SearchRun) -> dict[str, float]:
        """What the history records of the supernet on ``data.val`` after each epoch."""
        return {f"val_{k}": v for k, v in run.evaluate("val").items()}

    def fit(self, run: SearchRun) -> dict[str, list[int]]:
        net = run.net
        net.state.set_mode(self.mode)
        net.train()
        w_opt, sched = run.weight_optimizer()
        a_opt = torch.optim.Adam(net.arch_parameters(), lr=self.arch_lr, betas=(0.5, 0.999),
                                 weight_decay=self.arch_weight_decay)
        arch_batches = run.cycle("arch")
        parts = {"weight_optimizer": w_opt, "schedule": sched, "arch_optimizer": a_opt,
                 "arch_batches": arch_batches}
        done, _ = run.resume(parts)
        before = [a.detach().clone() for a in net.arch_parameters()]
        for epoch in range(done + 1, self.epochs + 1):
            if run.stopped_at is not None:  # a resumed search that had stopped early
                break
            self.begin_epoch(run, epoch)
            searching = epoch > self.warmup()
            train_loss = arch_loss = 0.0
            steps = 0
            for xw, yw in run.batches("weights"):
                if searching:
                    xa, ya = next(arch_batches)
                    lr = w_opt.param_groups[0]["lr"]
                    arch_loss += self.arch_step(run, a_opt, xw, yw, xa, ya, lr)
                train_loss += run.weight_step(w_opt, sched, xw, yw)
                steps += 1
            path = net.best_path(self.exclude_zero)
            free, _, n = collapse_counts(net, path)
            run.counts.append(len(free))
            run.end_epoch(epoch, {"train_loss": train_loss / max(steps, 1),
                                  "arch_loss": arch_loss / max(steps, 1) if searching else 0.0,
                                  **self.val_metrics(run), "param_free": float(len(free))})
            if (self.collapse_guard == "early_stop" and searching and n
                    and len(free) / n > self.collapse_threshold):
                run.stopped_at = epoch  # DARTS+: derive from the epoch before the collapse
                with torch.no_grad():
                    for a, b in zip(net.arch_parameters(), before, strict=True):
                        a.copy_(b)
                run.save(epoch, parts)
                break
            before = [a.detach().clone() for a in net.arch_parameters()]
            run.save(epoch, parts)
            if run.timed_out():
                break
        net.state.aux_skip = 0.0
        return net.best_path(self.exclude_zero)


@register("darts")
@dataclass(kw_only=True, repr=False)
class DARTS(Differentiable):
    """Differentiable architecture search (Liu et al., 2019) on any space function.

    Args:
        order: 1 (first-order approximation) or 2 (unrolled, second order).
        arch_lr: Adam's learning rate on the logits; 0.03, ten times GDAS' (a search of a
            few epochs moves the logits too little at 3e-3 to tell candidates apart).

    Example:
        >>> import torchnas as tn
        >>> method = tn.oneshot.DARTS(epochs=1)
        >>> result = method.search(tn.spaces.create("cell", input_shape=(1, 8, 8), channels=4),
        ...                        tn.data.load("digits"))
        >>> sorted(result.arch)[:2]
        ['cell/edge_1_0', 'cell/edge_2_0']
    """

    order: int = 1
    arch_lr: float = 0.03

    def check(self) -> None:
        super().check()
        if self.order not in (1, 2):
            raise ValueError(f"darts: order must be 1 or 2, got {self.order!r}")

    def arch_step(self, run: SearchRun, opt: torch.optim.Optimizer, xw: torch.Tensor,
                  yw: torch.Tensor, xa: torch.Tensor, ya: torch.Tensor, lr: float) -> float:
        if self.order == 1:
            return super().arch_step(run, opt, xw, yw, xa, ya, lr)
        net = run.net
        alphas, weights = net.arch_parameters(), net.weight_parameters()
        saved = [w.detach().clone() for w in weights]
        # the virtual step w' = w - lr * (dL_train/dw + weight decay * w)
        grads = torch.autograd.grad(run.loss(net(xw), xw, yw), weights, allow_unused=True)
        with torch.no_grad():
            for w, g in zip(weights, grads, strict=True):
                if g is not None:
                    w.sub_(lr * (g + self.weight_decay * w))
        loss = run.loss(net(xa), xa, ya) + run.penalty()
        found = torch.autograd.grad(loss, [*alphas, *weights], allow_unused=True)
        d_alpha, d_w = found[: len(alphas)], found[len(alphas):]
        norm = torch.sqrt(torch.stack([(g * g).sum() for g in d_w if g is not None]).sum() + 1e-24)
        eps = 0.01 / float(norm)

        def alpha_grads(sign: float) -> tuple[Any, ...]:
            with torch.no_grad():
                for w, s, g in zip(weights, saved, d_w, strict=True):
                    w.copy_(s if g is None else s + sign * eps * g)
            return torch.autograd.grad(run.loss(net(xw), xw, yw), alphas, allow_unused=True)

        plus, minus = alpha_grads(1.0), alpha_grads(-1.0)
        with torch.no_grad():
            for w, s in zip(weights, saved, strict=True):
                w.copy_(s)
        total = [None if a is None else a - lr * (_z(p, a) - _z(m, a)) / (2 * eps)
                 for a, p, m in zip(d_alpha, plus, minus, strict=True)]
        _set_grads(alphas, total)
        opt.step()
        return float(loss.detach())


@register("pc_darts")
@dataclass(kw_only=True, repr=False)
class PCDARTS(DARTS):
    """PC-DARTS (Xu et al., 2020): DARTS with partial channels (``partial_channels=4``), the
    memory-lean option. Needs a space that builds its op candidates for
    ``channels // hp.partial_channels`` channels, as the built-in ``cell`` space does."""

    partial_channels: int = 4


def _z(g: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor:
    return torch.zeros_like(like) if g is None else g


def _set_grads(params: list[torch.nn.Parameter], grads: Any) -> None:
    for p, g in zip(params, grads, strict=True):
        p.grad = None if g is None else g.detach()
