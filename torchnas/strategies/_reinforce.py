"""A reinforcement-learning controller, after Zoph & Le, "Neural Architecture Search with
Reinforcement Learning" (ICLR 2017). Its parts are seeded by the study seed and what they are
(never by when they are first met), and sampling draws its uniforms from the trial's streams,
so a study resumed by replay proposes what an uninterrupted one would.
"""

from __future__ import annotations

import bisect
import contextlib
import itertools
import json
import math
import random
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.nn import functional as F

from torchnas.space import Domain, Float, Int
from torchnas.strategies._base import (
    AskContext,
    Strategy,
    check_int,
    check_real,
    derive_seed,
    register,
    warn_first_objective,
)
from torchnas.strategies._evolution import score
from torchnas.study._trial import FrozenTrial

__all__ = ["ReinforceStrategy"]

_MAX_CHOICES = 1024  # a non-numeric domain with more values is sampled uniformly, not learned
_CACHED_WALKS = 256  # trials whose hidden state is kept between suggestions (running ones)


@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    """Tiny ops on one thread: on busy cores a team costs a GRU step 1 ms instead of 30 us."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _uniform(gen: torch.Generator, *shape: int, scale: float) -> torch.nn.Parameter:
    return torch.nn.Parameter((torch.rand(*shape, generator=gen) * 2 - 1) * scale)


class _Adam:
    """Adam for tensors joining at any time (``torch.optim`` would import ``torch._dynamo``)."""

    def __init__(self, lr: float) -> None:
        self.lr = lr
        self._state: dict[int, tuple[torch.Tensor, torch.Tensor, list[int]]] = {}

    def step(self, params: Iterable[torch.Tensor]) -> None:
        b1, b2 = 0.9, 0.999
        with torch.no_grad():
            for p in params:
                if p.grad is None:
                    continue
                if id(p) not in self._state:
                    self._state[id(p)] = (torch.zeros_like(p), torch.zeros_like(p), [0])
                m, v, t = self._state[id(p)]
                t[0] += 1
                m.lerp_(p.grad, 1 - b1)
                v.mul_(b2).addcmul_(p.grad, p.grad, value=1 - b2)
                denom = (v.sqrt() / math.sqrt(1 - b2 ** t[0])).add_(1e-8)
                p.addcdiv_(m, denom, value=-self.lr / (1 - b1 ** t[0]))
                p.grad = None


class _Head:
    """The controller's part for one label and domain: its actions (a finite domain's values,
    else ``bins`` equal bins of the (log) range), embeddings and output layer."""

    def __init__(self, domain: Domain, bins: int, hidden: int, gen: torch.Generator) -> None:
        self.domain = domain
        self.values: list[Any] = []
        self.index: dict[str, int] = {}
        self.edges: list[float] = []
        self.log = isinstance(domain, (Int, Float)) and domain.log
        if isinstance(domain, (Int, Float)) and (domain.size or math.inf) > bins:
            lo, hi = (math.log(domain.low), math.log(domain.high)) if domain.log else (
                float(domain.low), float(domain.high))
            self.edges = [lo + (hi - lo) * i / bins for i in range(bins + 1)]
            self.n = bins
        elif (domain.size or math.inf) <= _MAX_CHOICES:
            self.values = domain.values()
            self.index = {json.dumps(v): i for i, v in enumerate(self.values)}
            self.n = len(self.values)
        else:
            self.n = 1  # not learned: one action, the value drawn uniformly
        self.key = _uniform(gen, hidden, scale=0.1)  # the label, as input
        self.embed = _uniform(gen, self.n, hidden, scale=0.1)  # the value taken, as the next input
        self.weight = torch.nn.Parameter(torch.zeros(self.n, hidden))  # a uniform policy at first
        self.bias = torch.nn.Parameter(torch.zeros(self.n))
        self.params = [self.key, self.embed, self.weight, self.bias]

    def action(self, value: Any) -> int | None:
        """The action that gives ``value`` (``None`` when it is not in the domain)."""
        if not self.domain.contains(value):
            return None
        if self.edges:
            i = bisect.bisect_right(self.edges, math.log(value) if self.log else value) - 1
            return min(max(i, 0), self.n - 1)
        return self.index.get(json.dumps(self.domain.normalize(value))) if self.values else 0

    def value(self, action: int, rng: random.Random) -> Any:
        """A value of ``action``, drawing from ``rng`` where the action leaves a choice."""
        dom = self.domain
        if not isinstance(dom, (Int, Float)) or not self.edges:
            return self.values[action] if self.values else dom.sample(rng)
        t = self.edges[action] + rng.random() * (self.edges[action + 1] - self.edges[action])
        x = math.exp(t) if self.log else t
        if dom.step is not None:  # onto the domain's grid (an int's, a stepped float's)
            k = min((dom.size or 1) - 1, max(0, round((x - dom.low) / dom.step)))
            x = dom.low + k * dom.step
        x = min(dom.high, max(dom.low, x))
        return round(x) if isinstance(dom, Int) else float(x)


@dataclass
class _Walk:
    """One trial's way through the controller: hidden state, next input, decisions taken."""

    h: torch.Tensor
    prev: torch.Tensor
    taken: list[tuple[str, Any]] = field(default_factory=list)


@register("rl")
class ReinforceStrategy(Strategy):
    """A recurrent controller trained by REINFORCE (Zoph & Le, 2017).

    Decisions are drawn one by one, in the order the space meets them, from a GRU policy fed
    each label's embedding plus the previous decision's (fixed decisions are fed as they are).
    Each finished trial is one REINFORCE update: reward (the first objective, sign-flipped when
    minimized; below the worst seen for failed or infeasible trials) minus a moving-average
    baseline, over a running scale, plus an entropy bonus. The policy starts uniform.

    Args:
        lr: Adam's learning rate.
        baseline_decay: decay of the moving averages of the reward and of its spread.
        entropy: weight of the entropy bonus.
        bins: bins of a numeric domain with more values than this (a value is drawn uniformly
            within the chosen bin, in log space for log domains).
        hidden: size of the controller's hidden state and embeddings.

    Example:
        >>> import torchnas as tn
        >>> study = tn.Study(objectives={"score": "max"}, strategy="rl")
        >>> study.optimize(lambda hp: float(hp.choice("op", ["a", "b", "c"]) == "b"), trials=5)
        >>> len(study.strategy.probabilities("op", tn.space.Categorical(("a", "b", "c"))))
        3
    """

    def __init__(self, lr: float = 0.01, baseline_decay: float = 0.95, entropy: float = 1e-3,
                 bins: int = 10, hidden: int = 64) -> None:
        self.lr = lr
        self.baseline_decay = baseline_decay
        self.entropy = entropy
        self.bins = bins
        self.hidden = hidden

    def check(self) -> None:
        check_real("rl", "lr", self.lr, 0.0, open_low=True)
        check_real("rl", "baseline_decay", self.baseline_decay, 0.0, 1.0, open_high=True)
        check_real("rl", "entropy", self.entropy, 0.0)
        check_int("rl", "bins", self.bins, 2)
        check_int("rl", "hidden", self.hidden, 1)

    def setup(self, objectives: Mapping[str, str], seed: int) -> None:
        super().setup(objectives, seed)
        warn_first_objective(self.name, objectives)
        gen = torch.Generator().manual_seed(derive_seed(seed, "rl") % 2**63)
        self._cell = torch.nn.GRUCell(self.hidden, self.hidden)
        for p in self._cell.parameters():  # torch's own init, seeded
            torch.nn.init.uniform_(p, -self.hidden**-0.5, self.hidden**-0.5, generator=gen)
        self._start = _uniform(gen, self.hidden, scale=0.1)
        self._adam = _Adam(self.lr)
        self._heads: dict[tuple[str, str], _Head] = {}
        self._domains: dict[str, Domain] = {}
        self._walks: dict[int, _Walk] = {}
        self._baseline: float | None = None
        self._var = 0.0  # moving average of the squared advantage
        self._worst: float | None = None

    def _head(self, label: str, domain: Domain) -> _Head:
        key = (label, repr(domain))
        head = self._heads.get(key)
        if head is None:  # seeded by what it is, not by when it is first met
            gen = torch.Generator().manual_seed(derive_seed(self.seed, "rl", *key) % 2**63)
            head = self._heads[key] = _Head(domain, self.bins, self.hidden, gen)
        return head

    def _step(self, h: torch.Tensor, prev: torch.Tensor, head: _Head) -> torch.Tensor:
        return self._cell((head.key + prev).unsqueeze(0), h)

    def _policy(self, walk: _Walk, head: _Head) -> tuple[torch.Tensor, list[float]]:
        """The next hidden state and the probabilities of ``head``'s actions (no grad)."""
        h = self._step(walk.h, walk.prev, head)
        return h, torch.softmax(F.linear(h, head.weight, head.bias)[0], 0).tolist()

    def _advance(self, walk: _Walk, label: str, domain: Domain | None,
                 value: Any) -> tuple[_Head, int] | None:
        """Feeds a decision made (``walk.h``: the state it was made in); ``None``: passed over."""
        head = None if domain is None else self._head(label, domain)
        action = None if head is None else head.action(value)
        walk.taken.append((label, value))
        if head is None or action is None:
            return None
        walk.h = self._step(walk.h, walk.prev, head)
        walk.prev = head.embed[action].clone()
        return head, action

    def _walk(self, ctx: AskContext) -> _Walk:
        """The trial's walk, caught up with the decisions made so far."""
        made = list(ctx.params.items())
        walk = self._walks.get(ctx.number)
        if walk is None or made[:len(walk.taken)] != walk.taken:
            walk = self._walks[ctx.number] = _Walk(torch.zeros(1, self.hidden), self._start)
            while len(self._walks) > _CACHED_WALKS:  # trials asked but never told
                del self._walks[next(iter(self._walks))]
        for label, value in made[len(walk.taken):]:
            self._advance(walk, label, self._domains.get(label), value)
        return walk

    def suggest(self, ctx: AskContext, label: str, domain: Domain) -> Any:
        with _one_thread(), torch.no_grad():
            walk = self._walk(ctx)
            head = self._head(label, domain)
            h, probs = self._policy(walk, head)
            rng = ctx.rng(label)
            cum = list(itertools.accumulate(probs))  # inverse CDF; one action: no draw
            u = rng.random() * cum[-1] if head.n > 1 else 0.0
            action = min(bisect.bisect_right(cum, u), head.n - 1)
            value = head.value(action, rng)
            taken = head.action(value)  # a value snapped to a grid may fall in the next bin
            walk.h, walk.prev = h, head.embed[action if taken is None else taken].clone()
            walk.taken.append((label, value))
        return value

    def probabilities(self, label: str, domain: Domain,
                      arch: Mapping[str, Any] | None = None) -> list[float]:
        """The policy's probabilities for ``label``'s actions (its values, or its bins) after
        the decisions ``arch`` (in the order met; their domains as last told)."""
        with _one_thread(), torch.no_grad():
            walk = _Walk(torch.zeros(1, self.hidden), self._start)
            for lbl, value in (arch or {}).items():
                self._advance(walk, lbl, self._domains.get(lbl), value)
            return self._policy(walk, self._head(label, domain))[1]

    def tell(self, trial: FrozenTrial) -> None:
        self._walks.pop(trial.number, None)
        self._domains.update(trial.domains)
        reward = self._reward(trial)
        if reward is None:
            return
        if self._baseline is None:
            self._baseline = reward
            return
        dev, d = reward - self._baseline, self.baseline_decay
        self._var = dev * dev if self._var == 0 else d * self._var + (1 - d) * dev * dev
        self._baseline = d * self._baseline + (1 - d) * reward
        if self._var > 0:
            with _one_thread():
                self._update(trial, dev / math.sqrt(self._var))

    def _reward(self, trial: FrozenTrial) -> float | None:
        s = score(trial, self.objectives)
        if s is None:
            return None
        if s[0] == 2:
            self._worst = min(math.inf if self._worst is None else self._worst, s[1][0])
            return s[1][0]
        if self._worst is None:  # nothing to be worse than yet
            return None
        return self._worst - (math.sqrt(self._var) if self._var > 0 else abs(self._worst) or 1.0)

    def _update(self, trial: FrozenTrial, advantage: float) -> None:
        walk = _Walk(torch.zeros(1, self.hidden), self._start)
        params: list[torch.Tensor] = [*self._cell.parameters(), self._start]
        logps: list[torch.Tensor] = []
        entropies: list[torch.Tensor] = []
        for label, value in trial.arch.items():
            fed = self._advance(walk, label, trial.domains.get(label), value)
            if fed is not None and fed[0].n > 1:
                logp = F.log_softmax(F.linear(walk.h, fed[0].weight, fed[0].bias)[0], 0)
                logps.append(logp[fed[1]])
                entropies.append(-(logp.exp() * logp).sum())
            params.extend(fed[0].params if fed is not None else ())
        if not logps:
            return
        loss = -advantage * torch.stack(logps).sum() - self.entropy * torch.stack(entropies).sum()
        loss.backward()
        self._adam.step(params)
