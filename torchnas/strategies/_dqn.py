"""Q-learning over the decisions of a space, after Baker et al., "Designing Neural Network
Architectures using Reinforcement Learning" (MetaQNN, ICLR 2017).

One trial is one episode: its state before a decision is that decision's label and the
decisions made so far; the action is the value it takes (a finite domain's values, else bins,
encoded as the ``rl`` controller encodes them). The reward comes at the end. Its randomness comes
from the trial's streams and the study seed, never from when things happen, so a study resumed
by replay proposes what an uninterrupted one would.
"""

from __future__ import annotations

import bisect
import random
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from torchnas.space import Domain, arch_key
from torchnas.strategies._base import (
    AskContext,
    Strategy,
    check_int,
    check_real,
    derive_seed,
    register,
    warn_first_objective,
)
from torchnas.strategies._evolution import Score, score
from torchnas.strategies._reinforce import _CACHED_WALKS, _Adam, _Head, _one_thread, _uniform
from torchnas.study._trial import FrozenTrial

__all__ = ["DQNStrategy"]

Step = tuple[_Head, int]  # a decision of an episode: its head and the action taken
Q0 = 0.5
"""Q of an action never learned about (MetaQNN starts its table at 0.5)."""
FAILED, INFEASIBLE = -1.0, -0.5
"""Rewards of a failed trial and of one that misses a constraint (feasible ones: 0 to 1)."""


@register("dqn")
class DQNStrategy(Strategy):
    """Q-learning with epsilon-greedy exploration and experience replay (MetaQNN).

    Each decision the space meets is taken at random with probability epsilon, else the action
    of the highest Q-value given the decisions made so far (ties at random), leaving out a value
    that would complete an architecture already finished (MetaQNN does not train a model twice;
    a random decision may still repeat one). Epsilon is 1 for the first ``explore`` trials, then
    falls linearly to ``epsilon`` over the next ``decay`` trials (MetaQNN's schedule, in trials);
    a trial drawn again because it repeated an architecture explores more with each attempt.
    Numeric domains with more than ``bins`` values are binned as ``rl`` bins them (a value drawn
    uniformly within the bin, in log space on log domains); a non-numeric domain of over 1,024
    values is drawn uniformly.

    The reward of a finished trial is its first objective scaled between the worst (0) and the
    best (1) of the finished feasible trials (larger is better whatever the direction; scaled
    anew each time it is replayed, as MetaQNN's reward is an accuracy); an infeasible trial gets
    -0.5, a failed one -1, a pruned one its last value (none: it is left out). After each trial,
    ``replay`` episodes (the newest and ones drawn from all finished trials) are replayed, with
    the target ``r`` at the last decision and ``gamma * max Q`` of the next state before it.
    While the space has at most ``tabular`` architectures (actions of the domains told so far,
    multiplied) Q is a table keyed by (label, decisions so far), starting at 0.5 and updated
    backwards through each episode at rate ``alpha``; past that, it is a small network: the
    embeddings of the label and of the decisions so far, summed, a ``hidden``-unit ReLU layer
    and one output per action of the label, trained by one Adam step (rate ``lr``) on the
    replayed episodes after each trial (the targets from the same network, held fixed).

    Args:
        explore: trials with epsilon 1 (all random).
        decay: trials over which epsilon then falls to ``epsilon``.
        epsilon: the final epsilon.
        gamma: discount per decision.
        replay: episodes replayed after each finished trial.
        alpha: the table's learning rate.
        lr: the network's Adam learning rate.
        hidden: the network's hidden units (and embedding size).
        bins: bins of a numeric domain with more values than this.
        tabular: the most architectures for which Q is a table (0: always the network).

    Example:
        >>> import torchnas as tn
        >>> study = tn.Study(objectives={"score": "max"}, strategy="dqn", seed=0)
        >>> study.optimize(lambda hp: float(hp.choice("op", ["a", "b", "c"]) == "b"), trials=40)
        >>> qs = study.strategy.q_values("op", tn.space.Categorical(("a", "b", "c")))
        >>> max(range(3), key=qs.__getitem__)
        1
    """

    def __init__(self, explore: int = 25, decay: int = 50, epsilon: float = 0.1,
                 gamma: float = 1.0, replay: int = 32, alpha: float = 0.3, lr: float = 0.01,
                 hidden: int = 32, bins: int = 10, tabular: int = 4096) -> None:
        self.explore = explore
        self.decay = decay
        self.epsilon = epsilon
        self.gamma = gamma
        self.replay = replay
        self.alpha = alpha
        self.lr = lr
        self.hidden = hidden
        self.bins = bins
        self.tabular = tabular

    def check(self) -> None:
        for key, low in (("explore", 0), ("decay", 0), ("replay", 1), ("hidden", 1),
                         ("bins", 2), ("tabular", 0)):
            check_int("dqn", key, getattr(self, key), low)
        check_real("dqn", "epsilon", self.epsilon, 0.0, 1.0)
        check_real("dqn", "gamma", self.gamma, 0.0, 1.0)
        check_real("dqn", "alpha", self.alpha, 0.0, 1.0, open_low=True)
        check_real("dqn", "lr", self.lr, 0.0, open_low=True)

    def setup(self, objectives: Mapping[str, str], seed: int) -> None:
        super().setup(objectives, seed)
        warn_first_objective(self.name, objectives)
        gen = torch.Generator().manual_seed(derive_seed(seed, "dqn") % 2**63)
        scale = self.hidden ** -0.5
        self._w1 = _uniform(gen, self.hidden, self.hidden, scale=scale)
        self._b1 = _uniform(gen, self.hidden, scale=scale)
        self._adam = _Adam(self.lr)
        self._heads: dict[tuple[str, str], _Head] = {}
        self._domains: dict[str, Domain] = {}  # of the told trials, as ``rl`` keeps them
        self._walks: dict[int, dict[str, _Head]] = {}  # heads of a running trial's suggestions
        self._table: dict[tuple[Any, ...], list[float]] = {}
        self._seen: set[str] = set()  # keys of the finished architectures
        self._memory: list[tuple[list[Step], Score]] = []
        self._values: list[float] = []  # the finished feasible trials' values, sorted
        self._space = 1  # architectures of the domains told (actions multiplied)
        self._told: set[int] = set()  # the heads counted in it
        self._net = self.tabular == 0

    def _head(self, label: str, domain: Domain) -> _Head:
        key = (label, repr(domain))
        head = self._heads.get(key)
        if head is None:  # seeded by what it is, not by when it is first met
            gen = torch.Generator().manual_seed(derive_seed(self.seed, "dqn", *key) % 2**63)
            head = self._heads[key] = _Head(domain, self.bins, self.hidden, gen)
        return head

    @property
    def q_function(self) -> str:
        """``"table"`` or ``"network"``: what Q is now (a table until the space is too large)."""
        return "network" if self._net else "table"

    def exploration(self, number: int, attempt: int = 0) -> float:
        """Epsilon for trial ``number`` (drawn again ``attempt`` times)."""
        if number < self.explore:
            return 1.0
        done = min(1.0, (number - self.explore + 1) / self.decay) if self.decay else 1.0
        eps = 1.0 - (1.0 - self.epsilon) * done
        return 1.0 - (1.0 - eps) ** (1 + attempt)

    def _steps(self, items: Sequence[tuple[str, Any]], heads: Mapping[str, _Head],
               domains: Mapping[str, Domain]) -> list[Step]:
        """The decisions ``items`` as steps (those without a known domain or action: left out)."""
        steps = []
        for label, value in items:
            head = heads.get(label)
            if head is None and label in domains:
                head = self._head(label, domains[label])
            action = None if head is None else head.action(value)
            if head is not None and action is not None:
                steps.append((head, action))
        return steps

    def _key(self, prefix: Sequence[Step], head: _Head) -> tuple[Any, ...]:
        return (id(head), *((id(h), a) for h, a in prefix))

    def _hidden(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(torch.nn.functional.linear(x, self._w1, self._b1))

    def _net_q(self, prefix: Sequence[Step], head: _Head) -> torch.Tensor:
        x = head.key + sum((h.embed[a] for h, a in prefix), torch.zeros(self.hidden))
        return torch.nn.functional.linear(self._hidden(x), head.weight, head.bias) + Q0

    def _q(self, prefix: Sequence[Step], head: _Head) -> list[float]:
        if not self._net:
            return list(self._table.get(self._key(prefix, head), [Q0] * head.n))
        with _one_thread(), torch.no_grad():
            return self._net_q(prefix, head).tolist()

    def q_values(self, label: str, domain: Domain,
                 arch: Mapping[str, Any] | None = None) -> list[float]:
        """The Q-values of ``label``'s actions (its values, or its bins) after the decisions
        ``arch`` (in the order met; their domains as last told)."""
        prefix = self._steps(list((arch or {}).items()), {}, self._domains)
        return self._q(prefix, self._head(label, domain))

    def suggest(self, ctx: AskContext, label: str, domain: Domain) -> Any:
        head = self._head(label, domain)
        walk = self._walks.setdefault(ctx.number, {})
        while len(self._walks) > _CACHED_WALKS:  # trials asked but never told
            del self._walks[next(iter(self._walks))]
        rng = ctx.rng(label)
        if rng.random() >= self.exploration(ctx.number, ctx.attempt) and self._memory:
            qs = self._q(self._steps(list(ctx.params.items()), walk, self._domains), head)
            new = [i for i in range(head.n) if not self._repeats(ctx.params, label, head, i)]
            best = max(qs[i] for i in new or range(head.n))
            ties = [i for i in new or range(head.n) if qs[i] >= best - 1e-9]
            action = ties[rng.randrange(len(ties))] if len(ties) > 1 else ties[0]
        else:
            action = rng.randrange(head.n)
        walk[label] = head
        return head.value(action, rng)

    def _repeats(self, params: Mapping[str, Any], label: str, head: _Head, action: int) -> bool:
        """Whether ``action`` would end the trial as an architecture already finished (a
        finite domain's value completing one: the run meets the same labels, so it ends)."""
        return bool(head.values) and arch_key({**params, label: head.values[action]}) in self._seen

    def tell(self, trial: FrozenTrial) -> None:
        self._walks.pop(trial.number, None)
        self._seen.add(arch_key(trial.arch))
        self._domains.update(trial.domains)
        s = score(trial, self.objectives)
        if s is None:
            return
        steps = self._steps(list(trial.arch.items()), {}, trial.domains)
        for head in {id(h): h for h, _ in steps}.values():
            if id(head) not in self._told:
                self._told.add(id(head))
                self._space *= head.n
        if s[0] == 2:
            bisect.insort(self._values, s[1][0])
        if not steps:
            return
        self._memory.append((steps, s))
        self._net = self._net or self._space > self.tabular
        rng = random.Random(derive_seed(self.seed, "dqn", "replay", len(self._memory)))
        batch = [len(self._memory) - 1] + [rng.randrange(len(self._memory))
                                           for _ in range(self.replay - 1)]
        replayed = [(self._memory[i][0], self._reward(self._memory[i][1])) for i in batch]
        if not self._net:
            for episode, reward in replayed:
                self._update(episode, reward)
            return
        with _one_thread():
            self._learn(replayed)

    def _reward(self, s: Score) -> float:
        """Failed, infeasible, else the value scaled to [0, 1] between the worst and the best."""
        if s[0] == 0:
            return FAILED
        if s[0] == 1:
            return INFEASIBLE
        lo, hi = self._values[0], self._values[-1]
        return 1.0 if hi <= lo else (s[1][0] - lo) / (hi - lo)

    def _update(self, episode: list[Step], reward: float) -> None:
        """One tabular Q-learning pass, last decision first."""
        target = reward
        for t in range(len(episode) - 1, -1, -1):
            head, action = episode[t]
            row = self._table.setdefault(self._key(episode[:t], head), [Q0] * head.n)
            row[action] += self.alpha * (target - row[action])
            target = self.gamma * max(row)

    def _learn(self, batch: list[tuple[list[Step], float]]) -> None:
        """One Adam step of the network towards the Q-learning targets of the episodes."""
        xs, targets, last = [], [], []
        for episode, reward in batch:
            embeds = torch.stack([h.embed[a] for h, a in episode])
            before = torch.cat([torch.zeros(1, self.hidden), embeds.cumsum(0)[:-1]])
            xs.append(torch.stack([h.key for h, _ in episode]) + before)
            last += [False] * (len(episode) - 1) + [True]
            targets += [0.0] * (len(episode) - 1) + [reward]
        steps = [step for episode, _ in batch for step in episode]
        hs = self._hidden(torch.cat(xs))
        weight = torch.stack([h.weight[a] for h, a in steps])
        bias = torch.stack([h.bias[a] for h, a in steps])
        taken = (hs * weight).sum(1) + bias + Q0
        heads = {id(h): h for h, _ in steps}
        with torch.no_grad():  # max Q of each state, by head
            best = torch.empty(len(steps))
            for key, head in heads.items():
                at = torch.tensor([i for i, (h, _) in enumerate(steps) if id(h) == key])
                best[at] = torch.nn.functional.linear(hs[at], head.weight, head.bias).amax(1)
            target = torch.tensor(targets)
            after = ~torch.tensor(last)  # not the last decision: gamma * max Q of the next state
            target[after] = self.gamma * (best.roll(-1)[after] + Q0)
        torch.nn.functional.mse_loss(taken, target).backward()
        self._adam.step([self._w1, self._b1, *(p for h in heads.values() for p in h.params)])
