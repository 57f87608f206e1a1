"""Per-item scores that weight or filter a selection, each in [0, 1] and NaN where unknown:

- uncertainty from a model's predictions (Lightly's WEIGHTS from active-learning scores): for
  a classifier, its top-k confidences (and the mass it left over) through
  :func:`uncertainty`; for a detector, the mean over its boxes of how close each confidence
  is to 0.5 (1 at 0.5, 0 at 0 or 1), as Lightly scores object detections;
- similarity to a query set (SIMILARITY): the cosine similarity to the nearest query item,
  mapped from [-1, 1] to [0, 1], in blocks of rows."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np

from ingest_assets.selection.uncertainty import Measure, uncertainty

Array = np.ndarray[Any, Any]
BLOCK = 8192


def prediction_uncertainty(
    item_ids: Sequence[str],
    predicted_ids: Sequence[str],
    kinds: Sequence[str],
    confidences: Sequence[float | None],
    measure: Measure,
) -> Array:
    """One score per ``item_ids`` entry from the prediction rows (item, kind, confidence)."""
    classes: dict[str, list[float]] = defaultdict(list)
    boxes: dict[str, list[float]] = defaultdict(list)
    for item, kind, confidence in zip(predicted_ids, kinds, confidences, strict=True):
        if confidence is None or not np.isfinite(confidence):
            continue
        (classes if kind == "class" else boxes)[item].append(min(max(float(confidence), 0.0), 1.0))
    out = np.full(len(item_ids), np.nan, np.float32)
    at = {item: i for i, item in enumerate(item_ids)}
    rows = [(at[item], c) for item, c in classes.items() if item in at]
    if rows:
        width = max(len(c) for _, c in rows) + 1
        probabilities = np.zeros((len(rows), width), np.float64)
        for row, (_, found) in enumerate(rows):
            top = sorted(found, reverse=True)
            total = sum(top)
            if total > 1.0:  # scores that are not probabilities: read them as relative
                top = [c / total for c in top]
            probabilities[row, : len(top)] = top
            probabilities[row, -1] = max(0.0, 1.0 - sum(top))
        out[[i for i, _ in rows]] = uncertainty(probabilities, measure)
    for item, found in boxes.items():
        if item in at and np.isnan(out[at[item]]):
            out[at[item]] = float(np.mean([1.0 - abs(2.0 * c - 1.0) for c in found]))
    return out


def query_similarity(points: Array, query: Sequence[int]) -> Array:
    """Each unit point's cosine similarity to its nearest query point, in [0, 1]."""
    if not len(query):
        return np.full(len(points), np.nan, np.float32)
    chosen = points[list(query)]
    out = np.empty(len(points), np.float32)
    for first in range(0, len(points), BLOCK):
        out[first : first + BLOCK] = (points[first : first + BLOCK] @ chosen.T).max(axis=1)
    result: Array = np.clip((out + 1.0) / 2.0, 0.0, 1.0)
    return result
