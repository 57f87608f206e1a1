"""k-center greedy (Sener and Savarese, 2018), the coreset behind Lightly's DIVERSITY strategy:
each pick is the item farthest from everything picked or already selected, so that a budget
of ``n`` covers the pool with the smallest radius greedy can find (within twice the best).

The same loop serves the composed strategies: a per-item ``bonus`` (uncertainty, similarity to
a query, already scaled to [0, 1]) is added to the distance, scaled by the starting radius and
weighted by ``diversity``; ``groups`` with ``quotas`` keep a class from taking more than its
share while another still has room (BALANCE).

Memory is O(N d): the vectors and one distance per item, never an N x N matrix. Each pick costs
one float32 matrix-vector product (BLAS); the distances to items selected before are found in
blocks of rows, so seeding with a large earlier selection stays bounded too, and a caller that
kept them from an earlier run passes them in as ``nearest`` instead."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

BLOCK = 4096

Array = np.ndarray[Any, Any]


@dataclass(frozen=True)
class Coreset:
    picks: list[int]  # indices into the vectors, in the order chosen
    distances: list[float]  # each pick's distance to the nearest item chosen before it
    scores: list[float]  # what each pick won with (its distance when nothing is composed)
    radius_before: float  # the farthest any open item was from the seeds (inf without seeds)
    radius_after: float  # the farthest any open item is from seeds and picks together
    nearest: Array  # every item's distance to the nearest seed or pick, after the picks


def unit(vectors: Array) -> Array:
    """``vectors`` as float32 rows of length 1 (a zero row stays zero)."""
    out = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    normalized: Array = out / np.maximum(norms, 1e-12)
    return normalized


def distances_to(points: Array, point: Array) -> Array:
    """Euclidean distances of unit ``points`` to unit ``point``."""
    squared = 2.0 - 2.0 * (points @ point)
    found: Array = np.sqrt(np.maximum(squared, 0.0, out=squared), out=squared)
    return found


def nearest_seed(points: Array, seeds: Sequence[int], nearest: Array | None = None) -> Array:
    """Each unit point's distance to the nearest of ``seeds`` (inf without any), lowered from
    ``nearest`` where given; blocks of ``BLOCK`` x ``BLOCK`` products, never N x S."""
    count = len(points)
    out = np.full(count, np.inf, np.float32) if nearest is None else nearest.astype(np.float32)
    seeds = list(seeds)
    for start in range(0, len(seeds), BLOCK):
        chosen = points[seeds[start : start + BLOCK]]
        for first in range(0, count, BLOCK):
            block = points[first : first + BLOCK] @ chosen.T
            close = np.sqrt(np.maximum(2.0 - 2.0 * block.max(axis=1), 0.0))
            np.minimum(out[first : first + BLOCK], close, out=out[first : first + BLOCK])
    return out


def k_center_greedy(
    vectors: Array,
    n: int,
    *,
    seeds: Sequence[int] = (),
    excluded: Iterable[int] = (),
    twins: Mapping[int, Sequence[int]] | None = None,
    min_distance: float = 0.0,
    nearest: Array | None = None,
    bonus: Array | None = None,
    diversity: float = 1.0,
    groups: Array | None = None,
    quotas: dict[int, int] | None = None,
    normalized: bool = False,
) -> Coreset:
    """Up to ``n`` picks from ``vectors`` (normalized here unless ``normalized``), none of
    ``seeds`` or ``excluded``. ``twins`` maps an item to its near-duplicates: once one is
    picked (or a seed), the others never are. Picking stops early when the farthest item left
    is closer than ``min_distance`` to what is chosen (with ``diversity`` above 0).

    ``nearest``: each item's distance to the seeds, if already known (the seeds are then not
    compared again). ``bonus``: a score per item added to ``diversity`` x its distance over
    the starting radius. ``groups`` (an int per item, -1 for none) and ``quotas`` (picks
    allowed per group): a group that has reached its quota is passed over while any item of a
    group with room is left."""
    points = vectors if normalized else unit(vectors)
    count = len(points)
    blocked = np.zeros(count, dtype=bool)
    blocked[list(excluded)] = True
    twins = twins or {}
    seeds = list(seeds)
    near = nearest_seed(points, seeds) if nearest is None else nearest.astype(np.float32)
    for seed in seeds:
        blocked[seed] = True
        blocked[list(twins.get(seed, ()))] = True
    open_ = ~blocked
    radius_before = float(near[open_].max()) if open_.any() else 0.0
    extra = np.zeros(count, np.float32) if bonus is None else np.asarray(bonus, np.float32)
    taken: dict[int, int] = {}
    picks: list[int] = []
    distances: list[float] = []
    scores: list[float] = []

    def choose(pick: int, distance: float, score: float) -> None:
        picks.append(pick)
        distances.append(distance)
        scores.append(score)
        np.minimum(near, distances_to(points, points[pick]), out=near)
        blocked[pick] = True
        blocked[list(twins.get(pick, ()))] = True
        if groups is not None:
            taken[int(groups[pick])] = taken.get(int(groups[pick]), 0) + 1

    if not np.isfinite(radius_before) and open_.any() and n > 0:
        # No seed: start from the item farthest from the pool's mean (plus its bonus).
        centre = unit((open_.astype(np.float32) @ points)[None])[0]  # no copy of the pool
        from_centre = distances_to(points, centre)
        first = np.where(open_, diversity * from_centre / 2.0 + extra, -np.inf)
        pick = int(np.argmax(first))
        choose(pick, float("inf"), float(first[pick]))
    left = ~blocked
    scale = float(near[left].max()) if left.any() else 1.0
    scale = scale if np.isfinite(scale) and scale > 0 else 1.0
    while len(picks) < n:
        allowed = ~blocked
        if groups is not None and quotas:
            full = [g for g, limit in quotas.items() if taken.get(g, 0) >= limit]
            if full:
                roomy = allowed & ~np.isin(groups, full)
                if roomy.any():
                    allowed = roomy
        if not allowed.any():
            break
        score = np.where(allowed, diversity * near / scale + extra, -np.inf)
        pick = int(np.argmax(score))
        far = float(near[pick])
        if diversity > 0 and float(near[allowed].max()) < min_distance:
            break
        choose(pick, far, float(score[pick]))
    left = ~blocked
    radius_after = float(near[left].max()) if left.any() else 0.0
    return Coreset(picks, distances, scores, radius_before, radius_after, near)
