"""k-center greedy (Sener and Savarese, 2018), the coreset behind Lightly's DIVERSITY strategy:
each pick is the item farthest from everything picked or already selected, so that a budget
of ``n`` covers the pool with the smallest radius greedy can find.

Memory is O(N d): the vectors and one distance per item, never an N x N matrix. Each pick costs
one float32 matrix-vector product (BLAS); the distances to items selected before are found in
blocks of rows, so seeding with a large earlier selection stays bounded too."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

BLOCK = 4096


@dataclass(frozen=True)
class Coreset:
    picks: list[int]  # indices into the vectors, in the order chosen
    distances: list[float]  # each pick's distance to the nearest item chosen before it
    radius_before: float  # the farthest any item was from the seeds (inf without seeds)
    radius_after: float  # the farthest any item is from seeds and picks together


def unit(vectors: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """``vectors`` as float32 rows of length 1 (a zero row stays zero)."""
    out = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    normalized: np.ndarray[Any, Any] = out / np.maximum(norms, 1e-12)
    return normalized


def _distances(vectors: np.ndarray[Any, Any], point: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """Euclidean distances of unit ``vectors`` to unit ``point``."""
    squared = 2.0 - 2.0 * (vectors @ point)
    found: np.ndarray[Any, Any] = np.sqrt(np.maximum(squared, 0.0, out=squared), out=squared)
    return found


def k_center_greedy(
    vectors: np.ndarray[Any, Any],
    n: int,
    *,
    seeds: Sequence[int] = (),
    excluded: Iterable[int] = (),
    twins: dict[int, Sequence[int]] | None = None,
    min_distance: float = 0.0,
) -> Coreset:
    """Up to ``n`` picks from ``vectors`` (normalized here), none of ``seeds`` or ``excluded``.
    ``twins`` maps an item to its near-duplicates: once one is picked (or a seed), the others
    never are. Picking stops early when the farthest item left is closer than
    ``min_distance`` to what is chosen."""
    points = unit(vectors)
    count = len(points)
    nearest = np.full(count, np.inf, dtype=np.float32)
    blocked = np.zeros(count, dtype=bool)
    blocked[list(excluded)] = True
    twins = twins or {}
    seeds = list(seeds)
    for start in range(0, len(seeds), BLOCK):
        chosen = points[seeds[start : start + BLOCK]]
        for first in range(0, count, BLOCK):
            block = points[first : first + BLOCK] @ chosen.T  # BLOCK x BLOCK at most
            close = np.sqrt(np.maximum(2.0 - 2.0 * block.max(axis=1), 0.0))
            np.minimum(nearest[first : first + BLOCK], close, out=nearest[first : first + BLOCK])
    for seed in seeds:
        blocked[seed] = True
        blocked[list(twins.get(seed, ()))] = True
    open_ = ~blocked
    radius_before = float(nearest[open_].max()) if open_.any() else 0.0
    picks: list[int] = []
    distances: list[float] = []
    if not seeds and open_.any() and n > 0:
        # No seed: start from the item farthest from the pool's mean, a deterministic choice.
        centre = unit(points[open_].mean(axis=0, keepdims=True))[0]
        candidates = np.flatnonzero(open_)
        first_pick = int(candidates[np.argmax(_distances(points[candidates], centre))])
        picks.append(first_pick)
        distances.append(float("inf"))
        np.minimum(nearest, _distances(points, points[first_pick]), out=nearest)
        blocked[first_pick] = True
        blocked[list(twins.get(first_pick, ()))] = True
    score = np.where(blocked, -np.inf, nearest)
    while len(picks) < n:
        pick = int(np.argmax(score))
        far = float(score[pick])
        if far == -np.inf or far < min_distance:
            break
        picks.append(pick)
        distances.append(far)
        np.minimum(nearest, _distances(points, points[pick]), out=nearest)
        blocked[pick] = True
        blocked[list(twins.get(pick, ()))] = True
        score = np.where(blocked, -np.inf, nearest)
    left = ~blocked
    radius_after = float(nearest[left].max()) if left.any() else 0.0
    return Coreset(picks, distances, radius_before, radius_after)
