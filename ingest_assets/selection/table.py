"""The ``selection`` table (DESIGN §4): the items one run added, in the order chosen, each with
the strategy, its score, its distance to what was chosen before and the run's parameters."""

from __future__ import annotations

import json
import math
from typing import Any

import pyarrow as pa

from ingest_assets.selection.plan import Plan, Selected
from ingest_assets.selection.reading import ReadPool

#: Bump when the same pool and plan would select differently.
SELECTION_CODE_VERSION = "selection-1"
SCHEMA = pa.schema(
    [
        ("item_id", pa.string()),
        ("key", pa.string()),
        ("source", pa.string()),
        ("rank", pa.int32()),
        ("strategy", pa.string()),
        ("score", pa.float64()),
        ("distance", pa.float64()),
        ("uncertainty", pa.float64()),
        ("similarity", pa.float64()),
        ("params", pa.string()),
    ]
)


def selection_table(
    read: ReadPool, plan: Plan, selected: Selected, params: dict[str, Any]
) -> pa.Table:
    pool, picks = read.pool, selected.coreset.picks
    text = json.dumps(params, sort_keys=True)

    def score(name: str, i: int) -> float | None:
        values = pool.fields.get(name)
        return None if values is None or math.isnan(values[i]) else float(values[i])

    return pa.table(
        {
            "item_id": [pool.item_ids[i] for i in picks],
            "key": [read.keys[i] for i in picks],
            "source": [read.sources[i] for i in picks],
            "rank": list(range(1, len(picks) + 1)),
            "strategy": [plan.strategy] * len(picks),
            "score": [s if math.isfinite(s) else None for s in selected.coreset.scores],
            "distance": [d if math.isfinite(d) else None for d in selected.coreset.distances],
            "uncertainty": [score("uncertainty", i) for i in picks],
            "similarity": [score("similarity", i) for i in picks],
            "params": [text] * len(picks),
        },
        schema=SCHEMA,
    )
