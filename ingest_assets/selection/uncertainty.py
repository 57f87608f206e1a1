"""Uncertainty from a classifier's class probabilities, as Lightly's active-learning scorers
compute it: each score is in [0, 1], higher meaning the model is less sure, so that it can
weight a selection (Lightly's WEIGHTS strategy) towards what the model gets wrong."""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

Measure = Literal["least_confidence", "margin", "entropy"]
MEASURES: tuple[Measure, ...] = ("least_confidence", "margin", "entropy")


def uncertainty(probabilities: np.ndarray[Any, Any], measure: Measure) -> np.ndarray[Any, Any]:
    """One score per row of ``probabilities`` (N x C, rows summing to 1):

    - ``least_confidence``: (1 - the top probability), scaled by C / (C - 1);
    - ``margin``: 1 - (the top probability - the second);
    - ``entropy``: the entropy of the row over log(C).
    """
    scores = np.asarray(probabilities, dtype=np.float64)
    if scores.ndim != 2 or scores.shape[1] < 2:
        raise ValueError(f"probabilities must be N x C with C >= 2, not {scores.shape}")
    classes = scores.shape[1]
    if measure == "least_confidence":
        out = (1.0 - scores.max(axis=1)) * classes / (classes - 1)
    elif measure == "margin":
        top_two = np.sort(scores, axis=1)[:, -2:]
        out = 1.0 - (top_two[:, 1] - top_two[:, 0])
    elif measure == "entropy":
        safe = np.clip(scores, 1e-12, 1.0)
        out = -(scores * np.log(safe)).sum(axis=1) / np.log(classes)
    else:
        raise ValueError(f"measure {measure!r} is not one of {', '.join(MEASURES)}")
    clipped: np.ndarray[Any, Any] = np.clip(out, 0.0, 1.0)
    return clipped
