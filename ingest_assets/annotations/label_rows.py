"""``label_annotations`` rows: the class a batch's label strategy gives each item, as an
annotation (origin ``label_strategy``), so that folder labels take part in exports, evaluation
and versions as imported ones do. Every item of the batch has a row, an unlabelled or deleted
one with no label, so that in the current view a later version of an item replaces the label
an earlier one had."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import pyarrow as pa

from ingest_assets.annotations.table import ANNOTATIONS_SCHEMA, annotation_id

ORIGIN = "label_strategy"


def label_rows(items: Iterable[Mapping[str, Any]], batch: str) -> pa.Table:
    """One class annotation per item row (``item_id``, ``key``, ``label``, ``status``)."""
    rows = [
        {
            "item_id": item["item_id"],
            "annotation_id": annotation_id(ORIGIN, item["item_id"]),
            "import": batch,
            "origin": ORIGIN,
            "kind": "class",
            "label": item["label"] if item["status"] != "missing" else None,
            "iscrowd": 0,
            "record": item["key"],
        }
        for item in items
    ]
    return pa.Table.from_pylist(rows, schema=ANNOTATIONS_SCHEMA)
