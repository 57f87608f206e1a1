"""One model version scored against the ground truth in the lake: every IoU type its
predictions were made for, and the whole-image classes, as one report with the per-item
table a selection or an explorer sorts by."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from ingest_assets.evaluation.classification import Classification, classify
from ingest_assets.evaluation.detection import Detection, summarize
from ingest_assets.evaluation.engine import evaluate_objects
from ingest_assets.evaluation.inputs import Inputs, read_inputs
from resources.lake.tables import Lake

PER_ITEM_SCHEMA = pa.schema(
    [
        ("item_id", pa.string()),
        ("key", pa.string()),
        ("iou_type", pa.string()),
        ("ground_truth", pa.int64()),
        ("tp", pa.int64()),
        ("fp", pa.int64()),
        ("fn", pa.int64()),
        ("errors", pa.int64()),  # fp + fn: the items where the model fails most sort first
    ]
)


@dataclass
class Report:
    model: str
    version: str
    detection: dict[str, Detection] = field(default_factory=dict)
    classification: Classification | None = None
    inputs: Inputs = field(default_factory=Inputs)

    def per_item(self) -> pa.Table:
        """TP, FP and misses at IoU 0.5 per item and IoU type, most errors first."""
        rows: list[dict[str, Any]] = []
        for iou_type, detection in self.detection.items():
            for image_id, counts in detection.per_image.items():
                item_id, key = self.inputs.items[image_id]
                rows.append(
                    {
                        "item_id": item_id,
                        "key": key,
                        "iou_type": iou_type,
                        "ground_truth": counts.ground_truth,
                        "tp": counts.tp,
                        "fp": counts.fp,
                        "fn": counts.fn,
                        "errors": counts.fp + counts.fn,
                    }
                )
        rows.sort(key=lambda r: (-r["errors"], r["iou_type"], r["key"]))
        return pa.Table.from_pylist(rows, schema=PER_ITEM_SCHEMA)

    def as_dict(self, *, curves: bool = True) -> dict[str, Any]:
        """The report as JSON: per IoU type ``stats`` (pycocotools' order) and ``per_class``,
        and ``classification``, with what was left out and why."""
        body: dict[str, Any] = {"model": self.model, "version": self.version}
        for iou_type, d in self.detection.items():
            body[iou_type] = {
                "engine": d.engine,
                "stats": d.stats,
                "named": d.stats_by_name(),
                "per_class": d.per_class,
            }
            if curves:
                body[iou_type]["pr_curves_iou50"] = {str(k): v for k, v in d.pr_curves.items()}
        if self.classification is not None:
            body["classification"] = self.classification.as_dict()
        body["images"] = len(self.inputs.images)
        body["ground_truth_rows"] = self.inputs.ground_truth_rows
        body["prediction_rows"] = self.inputs.prediction_rows
        body["left_out"] = dict(self.inputs.left_out)
        return body


def evaluate_model(lake: Lake, model: str, version: str, *, engine: str | None = None) -> Report:
    """Score ``model`` ``version``'s predictions in the lake against its ground truth."""
    inputs = read_inputs(lake, model, version)
    report = Report(model, version, inputs=inputs)
    names = {c["id"]: c["name"] for c in inputs.categories}
    if len(inputs.truth) or inputs.images:
        for iou_type in inputs.iou_types:
            scored = evaluate_objects(
                inputs.images,
                inputs.categories,
                inputs.truth,
                inputs.results[iou_type],
                iou_type,
                engine=engine,
            )
            report.detection[iou_type] = summarize(scored, names)
    report.classification = classify(inputs.truth_classes, inputs.predicted_classes)
    return report
