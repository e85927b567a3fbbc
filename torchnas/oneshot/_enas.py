"""ENAS (Pham et al., 2018): an LSTM controller samples paths of a weight-sharing supernet.

Each epoch first trains the shared weights on paths the controller samples, then trains the
controller with REINFORCE: the reward of a sampled path is its accuracy (the task's score:
regression's R^2, ...) on a batch of the architecture half (batch statistics for batch norm),
minus the scaled cost with ``cost_weight`` (with ``costs``: each cost's weight times its scaled
cost, or for a target alone its excess ``relu(cost / target - 1)``); a moving-average baseline
lowers the variance and an entropy bonus keeps it exploring. The derived architecture is the
best, on the architecture half, of the controller's greedy path and ``derive_samples`` sampled
ones.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import torch
from torch import nn

from torchnas.oneshot._base import OneShot, SearchRun, register
from torchnas.oneshot._batchnorm import batch_stats
from torchnas.oneshot._supernet import Supernet

__all__ = ["ENAS", "Controller"]

Path = dict[str, list[int]]


class Controller(nn.Module):
    """An LSTM that decides the searched labels in order, each conditioned on those before.

    Args:
        choices: ``(label, number of candidates, k)`` for each searched label.
        hidden: the LSTM's width.
        banned: ``{label: indices}`` never sampled.
    """

    def __init__(self, choices: list[tuple[str, int, int]], hidden: int = 32,
                 banned: dict[str, list[int]] | None = None) -> None:
        super().__init__()
        self.choices = choices
        self.banned = dict(banned or {})
        self.offsets = [sum(n for _, n, _ in choices[:i]) for i in range(len(choices))]
        self.embed = nn.Embedding(sum(n for _, n, _ in choices) + 1, hidden)
        self.cell = nn.LSTMCell(hidden, hidden)
        self.heads = nn.ModuleList([nn.Linear(hidden, n) for _, n, _ in choices])

    def sample(self, generator: torch.Generator | None = None, greedy: bool = False
               ) -> tuple[Path, torch.Tensor, torch.Tensor]:
        """A path, the sum of its log-probabilities and of the entropies of its decisions."""
        device = self.embed.weight.device
        token = torch.zeros(1, dtype=torch.long, device=device)  # the start token
        state = None
        path: Path = {}
        log_prob = torch.zeros((), device=device)
        entropy = torch.zeros((), device=device)
        for (label, n, k), head, offset in zip(self.choices, self.heads, self.offsets,
                                               strict=True):
            picked: list[int] = []
            for _ in range(k):
                state = self.cell(self.embed(token), state)
                logits = head(state[0])[0]
                if picked or label in self.banned:
                    mask = torch.zeros(n, dtype=torch.bool, device=device)
                    mask[picked + self.banned.get(label, [])] = True
                    logits = logits.masked_fill(mask, float("-inf"))
                probs = torch.softmax(logits, -1)
                if greedy:
                    i = int(probs.argmax())
                else:
                    i = int(torch.multinomial(probs.detach().cpu(), 1, generator=generator))
                log_prob = log_prob + torch.log(probs[i] + 1e-12)
                entropy = entropy - (probs * torch.log(probs + 1e-12)).sum()
                picked.append(i)
                token = torch.tensor([1 + offset + i], device=device)
            path[label] = sorted(picked)
        return path, log_prob, entropy


@register("enas")
@dataclass(kw_only=True, repr=False)
class ENAS(OneShot):
    """Efficient neural architecture search via parameter sharing.

    Args:
        controller_lr: Adam's learning rate for the controller.
        controller_steps: controller updates per epoch.
        hidden: the controller LSTM's width.
        entropy_weight: weight of the entropy bonus.
        baseline_decay: decay of the reward's moving-average baseline.
        derive_samples: sampled paths compared with the greedy one at the end.
    """

    controller_lr: float = 5e-3
    controller_steps: int = 20
    hidden: int = 32
    entropy_weight: float = 1e-3
    baseline_decay: float = 0.9
    derive_samples: int = 8

    def controller(self, net: Supernet) -> Controller:
        return Controller([(label, len(c.names), c.k) for label, c in net.choices.items()],
                          self.hidden, net.zero_candidates() if self.exclude_zero else None)

    def reward(self, run: SearchRun, path: Path, x: torch.Tensor, y: torch.Tensor) -> float:
        run.net.set_path(path)
        tally = run.task.tally()
        with batch_stats(run.net), run.autocast(), torch.no_grad():
            tally.add(run.net(x).float(), x, y)
        return run.score(tally.result()) - run.path_penalty(path)

    def fit(self, run: SearchRun) -> Path:
        net = run.net
        ctrl = self.controller(net).to(run.device)
        run.extra["controller"] = ctrl
        c_opt = torch.optim.Adam(ctrl.parameters(), lr=self.controller_lr)
        opt, sched = run.weight_optimizer()
        arch_batches = run.cycle("arch")
        parts = {"controller": ctrl, "controller_optimizer": c_opt, "weight_optimizer": opt,
                 "schedule": sched, "arch_batches": arch_batches}
        done, saved = run.resume(parts)
        baseline: float | None = saved.get("baseline")
        for epoch in range(done + 1, self.epochs + 1):
            net.train()
            total, steps = 0.0, 0
            for x, y in run.batches("weights"):
                with torch.no_grad():
                    path, _, _ = ctrl.sample(run.generator)
                net.set_path(path)
                total += run.weight_step(opt, sched, x, y)
                steps += 1
            rewards = []
            for _ in range(self.controller_steps):
                path, log_prob, entropy = ctrl.sample(run.generator)
                reward = self.reward(run, path, *next(arch_batches))
                baseline = reward if baseline is None else (
                    self.baseline_decay * baseline + (1 - self.baseline_decay) * reward)
                loss = -(reward - baseline) * log_prob - self.entropy_weight * entropy
                c_opt.zero_grad(set_to_none=True)
                loss.backward()
                c_opt.step()
                rewards.append(reward)
            run.end_epoch(epoch, {"train_loss": total / max(steps, 1),
                                  "reward": sum(rewards) / max(len(rewards), 1)})
            run.save(epoch, parts, {"baseline": baseline})
            if run.timed_out():
                break
        return self.derive(run, ctrl)

    def derive(self, run: SearchRun, ctrl: Controller) -> Path:
        """The best of the greedy path and ``derive_samples`` sampled ones."""
        with torch.no_grad():
            paths = [ctrl.sample(greedy=True)[0]]
            paths += [ctrl.sample(run.generator)[0] for _ in range(self.derive_samples)]
        best, best_score = paths[0], -1.0
        seen: set[str] = set()
        for path in paths:
            key = json.dumps(path, sort_keys=True)
            if key in seen:
                continue
            seen.add(key)
            run.net.set_path(path)
            score = run.score(run.evaluate("arch", 512, batch_norm="batch"))
            if score > best_score:
                best, best_score = path, score
        return best

    def alphas(self, run: SearchRun) -> dict[str, dict[str, float]]:
        """How often the trained controller samples each candidate (200 draws)."""
        ctrl: Controller = run.extra["controller"]
        draws = 200
        out = {label: dict.fromkeys(c.names, 0.0) for label, c in run.net.choices.items()}
        with torch.no_grad():
            for _ in range(draws):
                path, _, _ = ctrl.sample(run.generator)
                for label, indices in path.items():
                    names = run.net.choices[label].names
                    for i in indices:
                        out[label][names[i]] += 1.0 / draws
        return out
