"""SPOS (Guo et al., 2020): single-path one-shot. Train the supernet one uniform path at a time,
then search it by evolution with inherited weights.

Training: every step draws a path uniformly (each op one candidate, each input choice ``k``
inputs) and trains only that path's weights. Search: an evolution over paths whose fitness is
the accuracy on the architecture half of the training split of the supernet run along the path,
with the weights it inherits and its batch norms **recalibrated** on a few training batches
first (running statistics gathered over random paths do not fit any one path). A
``cost_target`` is a hard limit (paths above it are never evaluated); ``cost_weight`` subtracts
the cost, scaled to [0, 1], from the fitness; with ``costs``, every target is a limit and every
weight subtracts its cost.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from torchnas.oneshot._base import OneShot, SearchRun, register
from torchnas.oneshot._batchnorm import recalibrate_bn

__all__ = ["SPOS"]

Path = dict[str, list[int]]


def _key(path: Path) -> str:
    return json.dumps(path, sort_keys=True)


@register("spos")
@dataclass(kw_only=True, repr=False)
class SPOS(OneShot):
    """Single-path one-shot with uniform sampling, then evolution.

    Args:
        population: paths per generation.
        generations: generations of the evolution (the first is random).
        parents: the best paths that breed each generation.
        mutation_prob: probability that a child redraws each label.
        recalibration_batches: training batches that re-estimate batch-norm statistics
            before each path is scored.
        eval_samples: samples of the architecture half each path is scored on (``None``: all).
    """

    population: int = 16
    generations: int = 6
    parents: int = 4
    mutation_prob: float = 0.2
    recalibration_batches: int = 4
    eval_samples: int | None = 512

    def check(self) -> None:
        super().check()
        if self.population < 2 or not 1 <= self.parents <= self.population:
            raise ValueError(f"spos: need population >= 2 and 1 <= parents <= population, got "
                             f"{self.population!r}, {self.parents!r}")

    def fit(self, run: SearchRun) -> Path:
        net = run.net
        opt, sched = run.weight_optimizer()
        parts = {"weight_optimizer": opt, "schedule": sched}
        done, _ = run.resume(parts)
        net.train()
        for epoch in range(done + 1, self.epochs + 1):
            total, steps = 0.0, 0
            for x, y in run.batches("weights"):
                net.set_path(net.random_path(run.rng, self.exclude_zero))
                total += run.weight_step(opt, sched, x, y)
                steps += 1
            run.end_epoch(epoch, {"train_loss": total / max(steps, 1)})
            run.save(epoch, parts)
            if run.timed_out():
                break
        return self.evolve(run)

    def score(self, run: SearchRun, path: Path) -> float:
        """Fitness of a path: the task's score (accuracy; regression's R^2) with inherited
        weights after BN recalibration."""
        run.net.set_path(path)
        recalibrate_bn(run.net, run.cycle("weights"), self.recalibration_batches)
        accuracy = run.score(run.evaluate("arch", self.eval_samples))
        return accuracy - run.path_penalty(path, hard_target=True)

    def feasible(self, run: SearchRun, path: Path) -> bool:
        """Whether a path is within every cost's target."""
        return all(term.target is None or model.of_path(path) <= term.target
                   for term, model in run.costs)

    def evolve(self, run: SearchRun) -> Path:
        """The evolution; returns the fittest path found."""
        net, rng = run.net, run.rng
        scores: dict[str, tuple[float, Path]] = {}

        def add(path: Path) -> None:
            key = _key(path)
            if key not in scores and self.feasible(run, path):
                scores[key] = (self.score(run, path), path)

        tries = 0
        while len(scores) < self.population and tries < 20 * self.population:
            add(net.random_path(rng, self.exclude_zero))
            tries += 1
        if not scores:
            targets = ", ".join(f"{t.target} ({t.metric})" for t, _ in run.costs
                                if t.target is not None)
            raise ValueError(f"spos: no path satisfies cost_target {targets}")
        for generation in range(1, self.generations):
            if run.timed_out():
                break
            ranked = sorted(scores.values(), key=lambda sp: -sp[0])[: self.parents]
            parents = [p for _, p in ranked]
            children: list[Path] = []
            for attempt in range(20 * self.population):
                if len(children) >= self.population:
                    break
                if attempt % 2 and len(parents) > 1:
                    a, b = rng.sample(parents, 2)
                    child = {k: list(rng.choice((a, b))[k]) for k in a}
                else:
                    child = self.mutate(run, rng.choice(parents))
                if _key(child) not in scores and self.feasible(run, child):
                    children.append(child)
                    add(child)
            fittest = max(s for s, _ in scores.values())
            run.history.append({"generation": float(generation), "best_fitness": fittest,
                                "evaluated": float(len(scores))})
        final = sorted(scores.values(), key=lambda sp: -sp[0])[: self.population]
        run.extra["final"] = final
        best_score, best = final[0]
        run.history.append({"generation": float(self.generations), "best_fitness": best_score,
                            "evaluated": float(len(scores))})
        return best

    def mutate(self, run: SearchRun, path: Path) -> Path:
        fresh = run.net.random_path(run.rng, self.exclude_zero)
        child = {k: list(fresh[k]) if run.rng.random() < self.mutation_prob else list(v)
                 for k, v in path.items()}
        if child == path:  # change at least one label
            k = run.rng.choice(sorted(path))
            child[k] = fresh[k]
        return child

    def alphas(self, run: SearchRun) -> dict[str, dict[str, float]]:
        """How often each candidate appears in the final population (the fittest paths)."""
        final = [p for _, p in run.extra.get("final", [])]
        out: dict[str, dict[str, float]] = {}
        for label, c in run.net.choices.items():
            counts = dict.fromkeys(c.names, 0.0)
            for p in final:
                for i in p[label]:
                    counts[c.names[i]] += 1.0 / len(final)
            out[label] = counts
        return out
