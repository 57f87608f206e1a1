"""Leave-one-out k-nearest-neighbour accuracy of embeddings on labelled items: how well the
embedding separates the classes a person gave, without training anything. Cosine similarity,
computed in blocks, never an N x N matrix."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

BLOCK = 1024


def normalized(vectors: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    vectors = np.asarray(vectors, np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    out: np.ndarray[Any, Any] = vectors / np.maximum(norms, 1e-12)
    return out


def knn_accuracy(vectors: np.ndarray[Any, Any], labels: Sequence[str], k: int = 5) -> float | None:
    """The share of items whose ``k`` nearest others (cosine) vote for their own label, ties
    going to the nearest neighbour's label; None with fewer than ``k + 1`` items or one class."""
    n = len(labels)
    if n <= k or len(set(labels)) < 2:
        return None
    names, codes = np.unique(np.asarray(labels, dtype=object).astype(str), return_inverse=True)
    unit = normalized(vectors)
    right = 0
    for start in range(0, n, BLOCK):
        block = unit[start : start + BLOCK] @ unit.T
        rows = np.arange(block.shape[0])
        block[rows, rows + start] = -np.inf  # leave the item itself out
        nearest = np.argpartition(-block, k, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(block, nearest, axis=1), axis=1)
        nearest = np.take_along_axis(nearest, order, axis=1)
        votes = codes[nearest]
        for row, voted in enumerate(votes):
            counts = np.bincount(voted, minlength=len(names))
            best = np.flatnonzero(counts == counts.max())
            guess = voted[0] if voted[0] in best else next(v for v in voted if v in best)
            right += int(guess == codes[start + row])
    return right / n
