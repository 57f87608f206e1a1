"""k-center greedy against a plain implementation that holds every distance, on clustered
points: the same picks, seeds and near-duplicates respected, and the radius it promises."""

from __future__ import annotations

import numpy as np

from ingest_assets.selection.coreset import k_center_greedy, unit


def clusters(count: int = 600, centres: int = 12, dim: int = 16, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    middle = rng.normal(size=(centres, dim))
    which = rng.integers(0, centres, size=count)
    return (middle[which] + 0.05 * rng.normal(size=(count, dim))).astype(np.float32)


def plain(vectors: np.ndarray, n: int, seeds: list[int]) -> list[int]:
    points = unit(vectors).astype(np.float64)
    every = np.linalg.norm(points[:, None, :] - points[None, :, :], axis=2)  # N x N: tests only
    chosen = list(seeds)
    picks: list[int] = []
    while len(picks) < n:
        nearest = every[:, chosen].min(axis=1)
        nearest[chosen] = -1
        pick = int(np.argmax(nearest))
        picks.append(pick)
        chosen.append(pick)
    return picks


def test_the_picks_are_those_of_the_plain_algorithm_and_cover_every_cluster() -> None:
    vectors = clusters()
    seeds = [0, 1]
    found = k_center_greedy(vectors, 20, seeds=seeds)
    assert found.picks == plain(vectors, 20, seeds)
    assert found.distances == sorted(found.distances, reverse=True)  # greedy never gains
    assert found.radius_after < found.radius_before
    truth = np.linalg.norm(
        unit(vectors)[:, None] - unit(vectors)[[*seeds, *found.picks]][None], axis=2
    ).min(axis=1)
    assert np.isclose(found.radius_after, truth.max(), atol=1e-5)


def test_seeds_excluded_items_and_twins_are_never_picked() -> None:
    vectors = clusters()
    first = k_center_greedy(vectors, 5)
    excluded = {first.picks[1]}
    twins = {first.picks[0]: [first.picks[2]], first.picks[2]: [first.picks[0]]}
    again = k_center_greedy(vectors, 30, seeds=[3], excluded=excluded, twins=twins)
    assert 3 not in again.picks and not excluded & set(again.picks)
    assert not {first.picks[0], first.picks[2]} <= set(again.picks)
    assert len(set(again.picks)) == 30


def test_min_distance_stops_once_the_pool_is_covered() -> None:
    vectors = clusters(centres=5)
    found = k_center_greedy(vectors, 500, min_distance=0.3)
    assert 5 <= len(found.picks) < 60
    assert found.radius_after < 0.3


def test_the_greedy_radius_is_within_twice_the_best_possible() -> None:
    """Brute force over every choice of k centres on small sets: greedy's radius is at most
    twice the optimum (Gonzalez's bound), for each set and budget."""
    from itertools import combinations

    for seed in range(6):
        points = unit(clusters(count=14, centres=4, dim=3, seed=seed))
        every = np.linalg.norm(points[:, None] - points[None], axis=2)
        for k in (2, 3, 4):
            best = min(every[:, list(c)].min(axis=1).max() for c in combinations(range(14), k))
            found = k_center_greedy(points, k)
            assert len(found.picks) == k
            radius = every[:, found.picks].min(axis=1).max()
            assert np.isclose(found.radius_after, radius, atol=1e-5)
            assert radius <= 2 * best + 1e-6, (seed, k, radius, best)


def test_distances_kept_from_an_earlier_run_give_the_same_picks_as_its_seeds() -> None:
    from ingest_assets.selection.coreset import nearest_seed

    vectors = clusters()
    first = k_center_greedy(vectors, 10)
    again = k_center_greedy(vectors, 10, seeds=first.picks)
    kept = nearest_seed(unit(vectors), first.picks)
    resumed = k_center_greedy(vectors, 10, seeds=first.picks, nearest=kept)
    assert resumed.picks == again.picks
    assert np.allclose(first.nearest, kept, atol=1e-3)  # float32 near 0
