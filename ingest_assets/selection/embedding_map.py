"""An embedding map for the selection's picture: the pool projected on its two main axes
(PCA over a sample), each point marked as the pool (0), chosen before (1) or chosen now (2)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

Array = np.ndarray[Any, Any]
#: The most points drawn: every pick and seed, then a sample of the rest.
SHOWN = 4000


def embedding_map(
    points: Array, seeds: Sequence[int], picks: Sequence[int], seed: int = 0
) -> tuple[Array, Array]:
    """2-D coordinates and marks of at most ``SHOWN`` points (every pick and seed among them
    while they fit)."""
    marks = np.zeros(len(points), np.int8)
    marks[list(seeds)] = 1
    marks[list(picks)] = 2
    chosen = np.flatnonzero(marks > 0)[:SHOWN]
    rest = np.flatnonzero(marks == 0)
    room = max(SHOWN - len(chosen), 0)
    if len(rest) > room:
        rest = np.random.default_rng(seed).choice(rest, room, replace=False)
    shown = np.concatenate([rest, chosen])
    sample = points[shown].astype(np.float64)
    centred = sample - sample.mean(axis=0)
    if len(shown) < 2:
        return np.zeros((len(shown), 2)), marks[shown]
    _, _, axes = np.linalg.svd(centred, full_matrices=False)
    flat: Array = centred @ axes[:2].T
    if flat.shape[1] < 2:
        flat = np.pad(flat, ((0, 0), (0, 2 - flat.shape[1])))
    return flat, marks[shown]
