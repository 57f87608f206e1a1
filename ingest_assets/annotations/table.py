"""The rows of ``imported_annotations`` and ``imported_predictions`` (DESIGN §4): one per
record tied to an item. A mask or polygon is kept as the file gave it (JSON text), so that an
export scores exactly as the file it came from."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pyarrow as pa

from ingest_assets.annotations.matching import Item
from ingest_assets.annotations.records import Record

ANNOTATION_FIELDS: list[tuple[str, pa.DataType]] = [
    ("item_id", pa.string()),
    ("annotation_id", pa.string()),
    ("import", pa.string()),
    ("origin", pa.string()),
    ("kind", pa.string()),
    ("label", pa.string()),
    ("category_id", pa.int64()),
    ("bbox", pa.list_(pa.float64())),
    ("segmentation", pa.string()),
    ("area", pa.float64()),
    ("iscrowd", pa.int32()),
    ("keypoints", pa.list_(pa.float64())),
    ("num_keypoints", pa.int32()),
    ("attributes", pa.string()),
    ("source_id", pa.int64()),
    ("record", pa.string()),
]
ANNOTATIONS_SCHEMA = pa.schema(ANNOTATION_FIELDS)
PREDICTIONS_SCHEMA = pa.schema(
    [
        *ANNOTATION_FIELDS,
        ("confidence", pa.float64()),
        ("model", pa.string()),
        ("version", pa.string()),
        # The IoU type an object is scored as: a COCO results file's type, else segm for a
        # mask and bbox for a box.
        ("scored_as", pa.string()),
    ]
)


def annotation_id(origin: str, where: str) -> str:
    """A record's id: the same for the same record of the same file, whenever imported."""
    return hashlib.sha256(f"{origin}\x00{where}".encode()).hexdigest()[:32]


def row(
    record: Record, item: Item, *, import_key: str, origin: str, model: tuple[str, str] | None
) -> dict[str, Any]:
    """The table row of one record tied to its item (``model``: name and version of a
    prediction's model)."""
    out: dict[str, Any] = {
        "item_id": item.item_id,
        "annotation_id": annotation_id(origin, record.where),
        "import": import_key,
        "origin": origin,
        "kind": record.kind,
        "label": record.label,
        "category_id": record.category_id,
        "bbox": record.bbox,
        "segmentation": None if record.segmentation is None else json.dumps(record.segmentation),
        "area": record.area,
        "iscrowd": record.iscrowd,
        "keypoints": record.keypoints,
        "num_keypoints": record.num_keypoints,
        "attributes": json.dumps(record.attributes, sort_keys=True) if record.attributes else None,
        "source_id": record.source_id,
        "record": record.where,
    }
    if model is not None:
        out.update(confidence=record.score, model=model[0], version=model[1])
        out["scored_as"] = scored_as(record)
    return out


class RowBuffer:
    """Rows collected for one chunk of a table, held as Arrow batches of ``batch_rows`` rather
    than as dicts (a row's dict costs several times its Arrow form)."""

    def __init__(self, schema: pa.Schema, batch_rows: int = 5_000) -> None:
        self.schema, self.batch_rows = schema, batch_rows
        self._rows: list[dict[str, Any]] = []
        self._batches: list[pa.RecordBatch] = []
        self.count = 0

    def add(self, row: dict[str, Any]) -> None:
        self._rows.append(row)
        self.count += 1
        if len(self._rows) >= self.batch_rows:
            self._batches.append(pa.RecordBatch.from_pylist(self._rows, schema=self.schema))
            self._rows = []

    def take(self) -> pa.Table:
        """Everything added since the last take, as one table."""
        if self._rows:
            self._batches.append(pa.RecordBatch.from_pylist(self._rows, schema=self.schema))
        table = pa.Table.from_batches(self._batches, schema=self.schema)
        self._rows, self._batches, self.count = [], [], 0
        return table


def scored_as(record: Record) -> str | None:
    """The IoU type a predicted object is scored as (None for a whole-image class)."""
    if record.kind != "object":
        return None
    if record.result_type is not None:
        return record.result_type
    return "segm" if record.segmentation is not None else "bbox"
