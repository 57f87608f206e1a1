"""Uncertainty scores: 0 for a sure model, 1 for a uniform one, ordered as a person would."""

from __future__ import annotations

import numpy as np
import pytest

from ingest_assets.selection.uncertainty import MEASURES, uncertainty

SURE = [1.0, 0.0, 0.0]
UNSURE = [1 / 3, 1 / 3, 1 / 3]
TORN = [0.49, 0.49, 0.02]  # two classes close: the margin sees it, least confidence less so


@pytest.mark.parametrize("measure", MEASURES)
def test_a_sure_model_scores_zero_and_a_uniform_one_scores_one(measure: str) -> None:
    scores = uncertainty(np.array([SURE, UNSURE, [0.7, 0.2, 0.1]]), measure)  # type: ignore[arg-type]
    assert scores[0] == pytest.approx(0.0)
    assert scores[1] == pytest.approx(1.0)
    assert 0.0 < scores[2] < 1.0


def test_margin_ranks_a_torn_prediction_above_a_clear_second_choice() -> None:
    clear = [0.6, 0.2, 0.2]
    margin = uncertainty(np.array([TORN, clear]), "margin")
    least = uncertainty(np.array([TORN, clear]), "least_confidence")
    assert margin[0] == pytest.approx(1.0) and margin[0] > margin[1]
    assert least[0] > least[1]


def test_bad_input_is_refused_naming_what_was_given() -> None:
    with pytest.raises(ValueError, match=r"N x C with C >= 2, not \(3,\)"):
        uncertainty(np.array([0.2, 0.3, 0.5]), "entropy")
    with pytest.raises(ValueError, match="is not one of least_confidence, margin, entropy"):
        uncertainty(np.array([SURE]), "variance")  # type: ignore[arg-type]
