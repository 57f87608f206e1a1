"""Selection's k-center greedy against the work it cannot avoid, and its picks against random.

**Speed**: exact greedy k-center makes k passes over the N x d matrix, each bound by memory
bandwidth. In the same run: one bare pass (``X @ v`` on the same float32 array, best of 5),
times k, against ``k_center_greedy`` picking k (the target is 2x or less). **Memory**: the peak
of what the greedy allocates (tracemalloc, which numpy reports to), beside the embeddings' own
size (the target is the two together within 1.5x that size).

**Quality**: the coverage radius of the k picks against the mean of 5 random selections of the
same size; and on scikit-learn's digits (pixels as the embedding), the test accuracy of a
logistic regression trained on 50 (and 100) greedy picks against 50 (100) random items, over
the other items.

    .venv/bin/python bench/selection.py [--n 1000000] [--dim 128] [--k 1000] [--real]
"""

from __future__ import annotations

import argparse
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO)]

from ingest_assets.selection.coreset import k_center_greedy, nearest_seed, unit  # noqa: E402


def bare_pass(points: np.ndarray, rounds: int = 5) -> float:
    vector = points[0].copy()
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        points @ vector
        best = min(best, time.perf_counter() - start)
    return best


def pool(n: int, dim: int, real: bool) -> np.ndarray:
    rng = np.random.default_rng(0)
    if not real:
        return unit(rng.standard_normal((n, dim), dtype=np.float32))
    # Real-derived: the digits' pixels, projected to ``dim`` and jittered to N points.
    from sklearn.datasets import load_digits

    digits = load_digits().data.astype(np.float32)
    projection = rng.standard_normal((digits.shape[1], dim), dtype=np.float32)
    base = digits @ projection
    picked = base[rng.integers(0, len(base), n)]
    picked += 0.05 * base.std() * rng.standard_normal(picked.shape, dtype=np.float32)
    return unit(picked)


def speed(points: np.ndarray, k: int) -> dict[str, Any]:
    one = bare_pass(points)
    tracemalloc.start()
    start = time.perf_counter()
    found = k_center_greedy(points, k, normalized=True)
    seconds = time.perf_counter() - start
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rng = np.random.default_rng(1)
    randoms = [
        float(nearest_seed(points, rng.choice(len(points), k, replace=False).tolist()).max())
        for _ in range(5)
    ]
    return {
        "bare_pass_s": one,
        "greedy_s": seconds,
        "ratio_to_k_passes": seconds / (k * one),
        "memory_ratio": (points.nbytes + peak) / points.nbytes,
        "radius": found.radius_after,
        "random_radius": float(np.mean(randoms)),
    }


def digits_quality(sizes: tuple[int, ...] = (50, 100)) -> dict[int, tuple[float, float]]:
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression

    data = load_digits()
    x, y = data.data.astype(np.float32), data.target
    points = unit(x - x.mean(axis=0))
    out = {}
    for size in sizes:
        picks = k_center_greedy(points, size, normalized=True).picks
        rng = np.random.default_rng(0)
        randoms = [rng.choice(len(x), size, replace=False) for _ in range(10)]

        def accuracy(train: np.ndarray) -> float:
            test = np.setdiff1d(np.arange(len(x)), train)
            model = LogisticRegression(max_iter=2000).fit(x[train], y[train])
            return float(model.score(x[test], y[test]))

        out[size] = (accuracy(np.asarray(picks)), float(np.mean([accuracy(r) for r in randoms])))
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--k", type=int, default=1000)
    parser.add_argument("--real", action="store_true", help="real-derived embeddings")
    args = parser.parse_args()
    points = pool(args.n, args.dim, args.real)
    kind = "real-derived" if args.real else "random"
    found = speed(points, args.k)
    print(
        f"N={args.n:,} d={args.dim} k={args.k} ({kind}, {points.nbytes / 2**20:.0f} MiB): "
        f"one pass {found['bare_pass_s'] * 1000:.1f} ms, greedy {found['greedy_s']:.1f} s = "
        f"{found['ratio_to_k_passes']:.2f}x k passes; memory {found['memory_ratio']:.2f}x the "
        f"embeddings; radius {found['radius']:.4f} vs random {found['random_radius']:.4f}"
    )
    for size, (greedy, random) in digits_quality().items():
        print(f"digits, {size} labelled: greedy {greedy:.3f} vs random {random:.3f} accuracy")


if __name__ == "__main__":
    main()
