"""Classification metrics on a small case worked by hand: accuracy, per-class precision,
recall and F1, their averages, the confusion matrix and top-k."""

from __future__ import annotations

import pytest

from ingest_assets.evaluation.classification import classify


def test_a_worked_case() -> None:
    truth = {"a": "cat", "b": "cat", "c": "dog", "d": "dog", "e": "bird", "f": "cat"}
    predicted = {
        "a": [("cat", 0.9), ("dog", 0.1)],
        "b": [("dog", 0.6), ("cat", 0.4)],
        "c": [("dog", 0.8)],
        "d": [("cat", 0.7), ("bird", 0.2), ("dog", 0.1)],
        "e": [("bird", 0.5)],
        "x": [("cat", 0.5)],  # no ground truth: not scored
    }

    got = classify(truth, predicted)

    assert got is not None
    assert (got.items, got.without_truth, got.without_prediction) == (5, 1, 1)
    assert got.accuracy == pytest.approx(3 / 5)
    assert got.labels == ["bird", "cat", "dog"]
    assert got.confusion == [[1, 0, 0], [0, 1, 1], [0, 1, 1]]
    cat = next(c for c in got.per_class if c["label"] == "cat")
    assert (cat["precision"], cat["recall"], cat["support"]) == (0.5, 0.5, 2)
    assert got.macro["f1"] == pytest.approx((1.0 + 0.5 + 0.5) / 3)
    assert got.weighted["recall"] == pytest.approx((1 * 1 + 0.5 * 2 + 0.5 * 2) / 5)
    assert got.top_k == {"top1": pytest.approx(0.6), "top3": pytest.approx(1.0)}


def test_nothing_to_score() -> None:
    assert classify({"a": "cat"}, {"b": [("cat", 1.0)]}) is None
