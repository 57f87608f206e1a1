"""Each strategy's effect on a crafted pool: two tight clusters and a spread of loners."""

from __future__ import annotations

import numpy as np
import pytest

from ingest_assets.selection.coreset import unit
from ingest_assets.selection.plan import Plan, Pool, Threshold, select
from ingest_assets.selection.scores import prediction_uncertainty, query_similarity


def pool(count: int = 200, seed: int = 0) -> Pool:
    rng = np.random.default_rng(seed)
    vectors = unit(rng.normal(size=(count, 8)))
    ids = [f"i{n:03d}" for n in range(count)]
    classes = ["cat" if n % 10 else "dog" for n in range(count)]  # dogs are 10%
    return Pool(ids, vectors, fields={"width": np.arange(count, dtype=np.float32)}, classes=classes)


def test_diversity_alone_is_k_center_greedy_and_spreads_over_the_pool() -> None:
    p = pool()
    chosen = select(p, Plan(n=20)).coreset
    assert len(chosen.picks) == 20 == len(set(chosen.picks))
    assert chosen.distances[1:] == sorted(chosen.distances[1:], reverse=True)


def test_weights_pull_the_picks_towards_uncertain_items() -> None:
    p = pool()
    uncertain = np.zeros(200, np.float32)
    uncertain[150:] = 1.0
    p.fields["uncertainty"] = uncertain
    plain = set(select(p, Plan(n=20)).coreset.picks)
    weighted = set(select(p, Plan(n=20, weights=2.0)).coreset.picks)
    only = select(p, Plan(n=20, diversity=0.0, weights=1.0)).coreset.picks
    assert sum(i >= 150 for i in weighted) > sum(i >= 150 for i in plain)
    assert all(i >= 150 for i in only)


def test_thresholds_leave_out_items_outside_the_bounds_or_unknown() -> None:
    p = pool()
    p.fields["width"][5] = np.nan
    picks = select(p, Plan(n=50, thresholds=(Threshold("width", min=100, max=180),))).coreset.picks
    assert picks and all(100 <= i <= 180 for i in picks)
    with pytest.raises(ValueError, match="no field 'height'"):
        select(p, Plan(n=5, thresholds=(Threshold("height", min=1),)))


def test_balance_keeps_the_target_shares_while_each_class_has_items() -> None:
    p = pool()
    picks = select(p, Plan(n=40, balance={"uniform": 1.0})).coreset.picks
    dogs = sum(p.classes[i] == "dog" for i in picks)  # type: ignore[index]
    assert dogs == 20  # 20 of the 20 dogs there are, not the 10% diversity alone would give
    skewed = select(p, Plan(n=40, balance={"dog": 1, "cat": 3})).coreset.picks
    assert sum(p.classes[i] == "dog" for i in skewed) == 10  # type: ignore[index]


def test_similarity_finds_more_like_the_query() -> None:
    p = pool()
    query = [0]
    target = p.vectors[0]
    near = np.argsort(-(p.vectors @ target))[1:11]
    p.fields["similarity"] = query_similarity(p.vectors, query)
    p.excluded = set(query)
    picks = select(p, Plan(n=10, diversity=0.0, similarity=1.0)).coreset.picks
    assert set(picks) == set(near.tolist())


def test_seeds_twins_and_excluded_items_are_never_picked() -> None:
    p = pool()
    p.seeds = [1, 2, 3]
    p.excluded = {4, 5}
    p.twins = {6: [7], 7: [6], 1: [8]}
    picks = select(p, Plan(n=199)).coreset.picks
    assert not {1, 2, 3, 4, 5, 8} & set(picks)
    assert not {6, 7} <= set(picks)
    assert len(picks) == 200 - 3 - 2 - 1 - 1


def test_min_distance_and_the_pool_running_out_stop_the_run() -> None:
    p = pool(count=30)
    assert len(select(p, Plan(n=100)).coreset.picks) == 30
    stopped = select(p, Plan(n=100, min_distance=1.0)).coreset
    assert 1 < len(stopped.picks) < 30 and stopped.radius_after < 1.0


def test_uncertainty_from_classifier_and_detector_predictions() -> None:
    scores = prediction_uncertainty(
        ["sure", "torn", "boxes", "none"],
        ["sure", "sure", "torn", "torn", "boxes", "boxes"],
        ["class", "class", "class", "class", "bbox", "bbox"],
        [0.98, 0.01, 0.5, 0.49, 0.5, 0.9],
        "margin",
    )
    assert scores[0] < 0.1 and scores[1] > 0.95
    assert np.isclose(scores[2], (1.0 + 0.2) / 2)
    assert np.isnan(scores[3])
