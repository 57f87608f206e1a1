"""A model's outputs as ``predictions_<model>`` rows, in the form of ``imported_predictions``
(DESIGN §4: as annotations plus confidence, model and version), so that evaluation and export
read both alike. Free of Dagster and torch."""

from __future__ import annotations

from typing import Any

import numpy as np

from ingest_assets.annotations.table import annotation_id


def class_rows(
    items: list[dict[str, Any]],
    scores: np.ndarray[Any, Any],
    labels: tuple[str, ...],
    *,
    model: tuple[str, str],
    batch: str,
    top_k: int,
    threshold: float,
) -> list[dict[str, Any]]:
    """The ``top_k`` labels of each item at least ``threshold`` confident."""
    origin = f"model:{model[0]}_{model[1]}"
    out: list[dict[str, Any]] = []
    best = np.argsort(-scores, axis=1)[:, :top_k]
    for item, row_scores, order in zip(items, scores, best, strict=True):
        for rank, index in enumerate(order):
            confidence = float(row_scores[index])
            if confidence < threshold:
                break
            label = labels[index] if index < len(labels) else str(int(index))
            out.append(
                _row(item, origin, batch, model, f"{item['item_id']}/class/{rank}")
                | {
                    "kind": "class",
                    "label": label,
                    "category_id": int(index),
                    "confidence": confidence,
                }
            )
    return out


def object_rows(
    items: list[dict[str, Any]],
    detections: list[dict[str, np.ndarray[Any, Any]]],
    labels: tuple[str, ...],
    *,
    model: tuple[str, str],
    batch: str,
    threshold: float,
) -> list[dict[str, Any]]:
    """Each box at least ``threshold`` confident, as COCO ``[x, y, w, h]`` in image pixels."""
    origin = f"model:{model[0]}_{model[1]}"
    out: list[dict[str, Any]] = []
    for item, found in zip(items, detections, strict=True):
        for index, (box, label_id, score) in enumerate(
            zip(found["boxes"], found["labels"], found["scores"], strict=True)
        ):
            if float(score) < threshold:
                continue
            x0, y0, x1, y1 = (float(v) for v in box)
            width, height = max(0.0, x1 - x0), max(0.0, y1 - y0)
            category = int(label_id)
            out.append(
                _row(item, origin, batch, model, f"{item['item_id']}/object/{index}")
                | {
                    "kind": "object",
                    "label": labels[category] if 0 <= category < len(labels) else str(category),
                    "category_id": category,
                    "bbox": [x0, y0, width, height],
                    "area": width * height,
                    "iscrowd": 0,
                    "confidence": float(score),
                    "scored_as": "bbox",
                }
            )
    return out


def _row(
    item: dict[str, Any], origin: str, batch: str, model: tuple[str, str], where: str
) -> dict[str, Any]:
    return {
        "item_id": item["item_id"],
        "annotation_id": annotation_id(origin, where),
        "import": batch,
        "origin": origin,
        "model": model[0],
        "version": model[1],
        "record": where,
    }
