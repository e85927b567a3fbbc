"""The exact hypervolume algorithms (2-D sweep, 3-D staircase sweep, WFG for 4+ objectives),
exclusive contributions, ``motpe``'s lazy and resumed greedy cut and ``mo_asha``'s rung rule,
against slow references: slicing (the former implementation, kept here), counting the cells of
an integer grid, the plain greedy that recomputes every gain, and sorting every row into fronts.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from torchnas.schedulers import ParetoHalvingScheduler
from torchnas.strategies._motpe import _LastCut, greedy_hypervolume_subset
from torchnas.study._hypervolume import contributions, exclusive, hypervolume
from torchnas.study._objectives import crowding_distance, nondominated_fronts


def slicing(points: np.ndarray, ref: np.ndarray) -> float:
    """HSO (While et al. 2006): sweep the last objective, each slab the hypervolume of the points
    below it in one objective fewer (all minimized; points beyond ``ref`` left out)."""
    p = np.asarray(points, dtype=float).reshape(-1, len(ref))
    p = p[np.isfinite(p).all(1) & (p < ref).all(1)]
    if not len(p):
        return 0.0
    if len(ref) == 1:
        return float(ref[0] - p[:, 0].min())
    p = p[np.argsort(p[:, -1], kind="stable")]
    z = np.append(p[:, -1], ref[-1])
    return float(sum((z[i + 1] - z[i]) * slicing(p[: i + 1, :-1], ref[:-1])
                     for i in range(len(p)) if z[i + 1] > z[i]))


def cells(points: np.ndarray, ref: tuple[int, ...]) -> int:
    """Hypervolume by counting the unit cells (of an integer grid) some point dominates."""
    return sum(any(all(p[i] <= c[i] for i in range(len(c))) for p in points)
               for c in itertools.product(*(range(r) for r in ref)))


def front_like(rng: np.random.Generator, n: int, m: int) -> np.ndarray:
    """Points on the unit sphere (mutually non-dominated), some copied, some dominated, some
    beyond the reference 1.1."""
    p = np.abs(rng.normal(size=(n, m))) + 1e-9
    p /= np.linalg.norm(p, axis=1, keepdims=True)
    extra = [p[: n // 4], p[n // 4: n // 2] + 0.05, np.full((2, m), 1.2), rng.random((3, m)) * 1.3]
    return np.vstack([p, *extra])


@pytest.mark.parametrize("m", [2, 3, 4, 5])
def test_hypervolume_matches_slicing_on_random_fronts(m: int) -> None:
    rng = np.random.default_rng(m)
    ref = np.full(m, 1.1)
    for n in (0, 1, 2, 5, 17, 40 if m < 5 else 20):
        pts = front_like(rng, n, m)
        assert hypervolume(pts, ref) == pytest.approx(slicing(pts, ref), rel=1e-12, abs=1e-15)
        uniform = rng.random((n, m))
        assert hypervolume(uniform, ref) == pytest.approx(slicing(uniform, ref), rel=1e-12)


@settings(max_examples=40, deadline=None)
@given(m=st.integers(2, 5), data=st.data())
def test_hypervolume_and_contributions_are_exact_on_integer_grids(m: int, data: st.DataObject
                                                                  ) -> None:
    ref = (4, 3, 4, 3, 2)[:m]
    pts = data.draw(st.lists(st.tuples(*(st.integers(0, 4) for _ in range(m))), max_size=10))
    arr = np.array(pts, dtype=float).reshape(-1, m)
    assert hypervolume(arr, ref) == cells(arr[(arr < ref).all(1)], ref)  # exact, not approx
    for i, c in enumerate(contributions(arr, ref)):
        rest = np.delete(arr, i, axis=0)
        assert c == cells(arr[(arr < ref).all(1)], ref) - cells(rest[(rest < ref).all(1)], ref)


@pytest.mark.parametrize("m", [2, 3, 4, 5])
def test_contributions_are_what_the_set_loses_without_each_point(m: int) -> None:
    rng = np.random.default_rng(10 + m)
    ref = np.full(m, 1.1)
    n = 12 if m < 5 else 8
    pts = front_like(rng, n, m)
    total = slicing(pts, ref)
    got = contributions(pts, ref)
    for i, c in enumerate(got):
        assert c == pytest.approx(total - slicing(np.delete(pts, i, axis=0), ref), abs=1e-12)
    assert all(c >= 0 for c in got)
    for row in pts[: n // 4]:  # a copied point adds nothing that its copy does not
        assert got[int(np.flatnonzero((pts == row).all(1))[0])] == 0.0
    assert got[-5:-3] == [0.0, 0.0]  # beyond the reference


def test_exclusive_is_the_difference_of_two_hypervolumes() -> None:
    rng = np.random.default_rng(3)
    for m in (2, 3, 4, 5):
        ref = np.full(m, 1.0)
        others, point = rng.random((15, m)), rng.random(m) * 0.8
        want = hypervolume(np.vstack([others, point]), ref) - hypervolume(others, ref)
        assert exclusive(point, others, ref) == pytest.approx(want, abs=1e-12)
        assert exclusive(np.full(m, 1.5), others, ref) == 0.0  # beyond the reference
        assert exclusive(others[0], others, ref) == 0.0  # a copy adds nothing
        assert exclusive(point, np.empty((0, m)), ref) == pytest.approx(np.prod(ref - point))


def test_hypervolume_ignores_nan_and_respects_directions_in_many_objectives() -> None:
    pts = [(1.0, 2.0, 3.0, 4.0), (math.nan, 0.0, 0.0, 0.0), (2.0, 1.0, 4.0, 3.0)]
    want = slicing(np.array(pts[::2]), np.full(4, 5.0))
    assert hypervolume(pts, (5, 5, 5, 5)) == pytest.approx(want)
    flipped = [(-a, b, -c, d) for a, b, c, d in pts]
    assert hypervolume(flipped, (-5, 5, -5, 5), ["max", "min", "max", "min"]) == \
        pytest.approx(want)


def plain_greedy(values: np.ndarray, k: int, reference: np.ndarray) -> list[int]:
    """Greedy subset selection recomputing every gain as a difference of hypervolumes."""
    directions = ["max"] * values.shape[1]
    picked: list[int] = []
    left = list(range(len(values)))
    while left and len(picked) < k:
        base = hypervolume(values[picked], reference, directions) if picked else 0.0
        gains = [hypervolume(values[[*picked, i]], reference, directions) - base for i in left]
        picked.append(left.pop(int(np.argmax(gains))))
    return picked


@pytest.mark.parametrize("m", [2, 3, 4])
def test_lazy_greedy_reaches_the_plain_greedy_hypervolume(m: int) -> None:
    rng = np.random.default_rng(20 + m)
    for n, k in ((6, 3), (25, 8), (40, 12)):
        values = -front_like(rng, n, m)[:n]  # larger is better
        ref = values.min(0) - 0.1
        lazy, plain = greedy_hypervolume_subset(values, k, ref), plain_greedy(values, k, ref)
        assert len(lazy) == len(set(lazy)) == k
        hv = [hypervolume(values[rows], ref, ["max"] * m) for rows in (lazy, plain)]
        assert hv[0] == pytest.approx(hv[1], rel=1e-12)
    ints = -rng.integers(0, 4, size=(30, m)).astype(float)  # ties everywhere: the first row wins
    ref = ints.min(0) - 1
    assert greedy_hypervolume_subset(ints, 10, ref) == plain_greedy(ints, 10, ref)


@pytest.mark.parametrize("m", [2, 3, 4])
def test_resumed_cut_equals_the_greedy_on_the_whole_front(m: int) -> None:
    """A front growing one row at a time (some rows leaving it, k growing, the reference moving
    now and then): the resumed cut is always the greedy of the whole front."""
    rng = np.random.default_rng(30 + m)
    pool = -front_like(rng, 60, m)[:60]
    last = _LastCut()
    ref = pool.min(0) - 0.1
    rows: list[int] = []
    for t in range(len(pool)):
        rows.append(t)
        if t % 7 == 3:
            rows.pop(int(rng.integers(len(rows))))  # a row leaves the front
        if t == 40:
            ref = ref - 0.05
        k = 1 + len(rows) // 3
        idx = np.array(rows)
        assert last.cut(pool[idx], idx, k, ref) == greedy_hypervolume_subset(pool[idx], k, ref)


def reference_promoted(scheduler: ParetoHalvingScheduler, own: list[float],
                       others: list[list[float]]) -> bool:
    """MO-ASHA's rule by sorting every row into fronts (the former implementation)."""
    keep = (len(others) + 1) // scheduler.reduction_factor
    if scheduler.asynchronous:
        keep = max(keep, 1)
    signs = [1.0 if d == "max" else -1.0 for d in scheduler.objectives.values()]
    rows = [tuple(s * x for s, x in zip(signs, r, strict=True)) for r in [own, *others]]
    ahead = 0
    for front in nondominated_fronts(rows):
        if 0 not in front:
            ahead += len(front)
            continue
        crowd = crowding_distance([rows[i] for i in front])
        ahead += sum(c > crowd[front.index(0)] for c in crowd)
        break
    return ahead < keep


@pytest.mark.parametrize("asynchronous", [True, False])
def test_mo_asha_rung_rule_matches_sorting_every_row(asynchronous: bool) -> None:
    rng = np.random.default_rng(40)
    for m in (1, 2, 3, 4):
        scheduler = ParetoHalvingScheduler(asynchronous=asynchronous)
        scheduler.setup({f"f{i}": ("max" if i % 2 else "min") for i in range(m)}, 0)
        for t in range(150):
            n = int(rng.integers(0, 40))
            rows = (rng.integers(0, 4, size=(n + 1, m)).astype(float) if t % 2
                    else rng.random((n + 1, m)))  # ties and duplicates, then none
            own, others = rows[0].tolist(), rows[1:].tolist()
            assert scheduler.promoted_vector(own, others) == \
                reference_promoted(scheduler, own, others)
