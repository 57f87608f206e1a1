"""What an evaluation reads from the lake, in the form the COCO engines take: the labelled
items as COCO images, the ground truth's objects as annotations, one model version's
predictions as results per IoU type, and the whole-image classes on both sides.

The labelled items are those a COCO import lists (an image with no annotation is labelled as
holding nothing, so a detection on it is a false positive) and those with a ground-truth
object. A prediction on any other item is left out and counted, never scored as a false
positive of an item nobody labelled. Ids follow the COCO imports (their image and category
ids, so the statistics are those of the original files, ties in score broken in the same
order); rows keep their import order, as their files gave them.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from ingest_assets.annotations.coco_ids import (
    CategoryOf,
    coco_images,
    coco_tables_of,
    image_ids,
    with_labels,
)
from ingest_assets.evaluation.engine import IOU_TYPES, IouType
from ingest_assets.names import (
    DATASET_ITEMS,
    IMPORTED_ANNOTATIONS,
    IMPORTED_PREDICTIONS,
    LABEL_ANNOTATIONS,
)
from resources.lake.tables import Lake

ITEM_COLUMNS = ["item_id", "key", "width", "height", "status"]
ROW_COLUMNS = ["item_id", "import", "kind", "label", "category_id", "bbox", "segmentation"]
ROW_COLUMNS += ["area", "iscrowd", "keypoints", "num_keypoints"]
PREDICTION_COLUMNS = [*ROW_COLUMNS, "confidence", "model", "version", "scored_as"]


@dataclass
class Inputs:
    """One model version's predictions and the ground truth, ready to score."""

    images: list[dict[str, Any]] = field(default_factory=list)
    categories: list[dict[str, Any]] = field(default_factory=list)
    annotations: list[dict[str, Any]] = field(default_factory=list)
    results: dict[IouType, list[dict[str, Any]]] = field(default_factory=dict)
    #: COCO image id -> (item id, key).
    items: dict[int, tuple[str, str]] = field(default_factory=dict)
    #: Whole-image classes: the ground truth's, and the predictions' (label, score) by item.
    truth_classes: dict[str, str] = field(default_factory=dict)
    predicted_classes: dict[str, list[tuple[str, float]]] = field(default_factory=dict)
    #: Predictions not scored, by why.
    left_out: Counter[str] = field(default_factory=Counter)
    ground_truth_rows: int = 0
    prediction_rows: int = 0

    def dataset(self) -> dict[str, Any]:
        return {
            "images": self.images,
            "categories": self.categories,
            "annotations": self.annotations,
        }

    @property
    def iou_types(self) -> list[IouType]:
        """The IoU types there is something to score for: predictions made for them, and
        ground truth that can be scored so (masks for segm, keypoints for keypoints)."""
        found: list[IouType] = []
        for iou_type in IOU_TYPES:
            if not self.results.get(iou_type):
                continue
            if iou_type == "keypoints" and not any("keypoints" in a for a in self.annotations):
                continue
            found.append(iou_type)
        return found


def _rows(lake: Lake, asset: str, columns: list[str]) -> Iterator[dict[str, Any]]:
    """Every committed import's rows, ``columns`` only (None for one an older import's
    table lacks); a row dict is built from column lists, faster than row by row."""
    for partition, commit in lake.read_commits(asset):
        present = [c for c in columns if c in commit.schema.names]
        table = lake.read_table(asset, partition, present)
        values = [table.column(c).to_pylist() for c in present]
        missing = [c for c in columns if c not in present]
        for row in zip(*values, strict=True):
            record = dict(zip(present, row, strict=True))
            record.update(dict.fromkeys(missing))
            yield record


def read_inputs(lake: Lake, model: str, version: str) -> Inputs:
    """The ground truth and the predictions of ``model`` ``version`` in the lake now."""
    out = Inputs()
    items = {
        row["item_id"]: row
        for row in lake.read_current(DATASET_ITEMS, columns=ITEM_COLUMNS).to_pylist()
        if row["status"] == "ok"
    }
    predictions = [
        r
        for r in _rows(lake, IMPORTED_PREDICTIONS, PREDICTION_COLUMNS)
        if r["model"] == model and r["version"] == version
    ]
    masks = any(r["segmentation"] is not None for r in predictions if r["kind"] == "object")
    columns = ROW_COLUMNS if masks else [c for c in ROW_COLUMNS if c != "segmentation"]
    truth = [r for r in _rows(lake, IMPORTED_ANNOTATIONS, columns) if r["item_id"] in items]
    out.ground_truth_rows, out.prediction_rows = len(truth), len(predictions)
    coco_categories, coco_imgs, tied = coco_tables_of(lake, {r["import"] for r in truth})
    categories = with_labels(coco_categories, [*truth, *predictions])
    place = CategoryOf(categories, set(coco_imgs))
    labelled = {item for ties in tied.values() for item in ties.values() if item in items}
    labelled |= {r["item_id"] for r in truth if r["kind"] == "object"}
    chosen = sorted((items[i] for i in labelled), key=lambda i: i["key"])
    ids = image_ids(chosen, coco_images(chosen, coco_imgs, tied))
    out.images = [
        {"id": ids[i["item_id"]], "width": i["width"], "height": i["height"], "file_name": i["key"]}
        for i in sorted(chosen, key=lambda i: ids[i["item_id"]])
    ]
    out.items = {ids[i["item_id"]]: (i["item_id"], i["key"]) for i in chosen}
    out.categories = [_category(c) for c in categories]
    _predictions(out, predictions, place, ids, items)
    _truth(out, truth, place, ids, masks=masks)
    for row in _rows(lake, LABEL_ANNOTATIONS, ["item_id", "kind", "label"]):
        if row["kind"] == "class" and row["label"] and row["item_id"] in items:
            out.truth_classes.setdefault(row["item_id"], row["label"])  # imported ones first
    return out


def _category(category: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"id": category.id, "name": category.name}
    if category.supercategory is not None:
        body["supercategory"] = category.supercategory
    if category.keypoints is not None:
        body["keypoints"] = category.keypoints
    if category.skeleton is not None:
        body["skeleton"] = category.skeleton
    return body


def _truth(
    out: Inputs,
    rows: list[dict[str, Any]],
    place: CategoryOf,
    ids: dict[str, int],
    *,
    masks: bool,
) -> None:
    """The ground truth's objects as COCO annotations (their masks only where predictions
    are scored as masks: parsing them costs more than the box evaluation itself)."""
    for row in rows:
        if row["kind"] == "class":
            if row["label"]:
                out.truth_classes[row["item_id"]] = row["label"]
            continue
        category = place.of(row)
        if category is None or row["bbox"] is None:
            continue
        bbox = row["bbox"]
        annotation: dict[str, Any] = {
            "id": len(out.annotations) + 1,
            "image_id": ids[row["item_id"]],
            "category_id": category.id,
            "bbox": bbox,
            "area": row["area"] if row["area"] is not None else bbox[2] * bbox[3],
            "iscrowd": row["iscrowd"] or 0,
        }
        if masks and row.get("segmentation") is not None:
            annotation["segmentation"] = json.loads(row["segmentation"])
        if row["keypoints"] is not None:
            annotation["keypoints"] = row["keypoints"]
            annotation["num_keypoints"] = row["num_keypoints"] or 0
        out.annotations.append(annotation)


def _predictions(
    out: Inputs,
    rows: list[dict[str, Any]],
    place: CategoryOf,
    ids: dict[str, int],
    items: dict[str, Any],
) -> None:
    results: dict[IouType, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        if row["item_id"] not in items:
            out.left_out["predictions of items no longer current"] += 1
            continue
        if row["kind"] == "class":
            if row["label"]:
                scores = out.predicted_classes.setdefault(row["item_id"], [])
                scores.append((row["label"], float(row["confidence"] or 0.0)))
            continue
        if row["item_id"] not in ids:
            out.left_out["predictions of items without ground truth"] += 1
            continue
        category = place.of(row)
        if category is None:
            out.left_out["predictions of a class the ground truth does not have"] += 1
            continue
        scored_as = row["scored_as"] or ("segm" if row["segmentation"] else "bbox")
        result: dict[str, Any] = {
            "image_id": ids[row["item_id"]],
            "category_id": category.id,
            "score": row["confidence"],
        }
        if scored_as == "segm":
            # No box: given one, loadRes would score the result as a box (area w * h).
            result["segmentation"] = json.loads(row["segmentation"])
        elif scored_as == "keypoints":
            result["keypoints"] = row["keypoints"]
        else:
            result["bbox"] = row["bbox"]
            if row["segmentation"] is not None:
                # A box result that carries a mask is scored as a mask too, as loadRes loads
                # it: box first, so its area is the box's. (A mask result is scored as a
                # mask only, so two files of one model version do not mix.)
                results["segm"].append({**result, "segmentation": json.loads(row["segmentation"])})
        results[scored_as].append(result)  # type: ignore[index]
    out.results = dict(results)
