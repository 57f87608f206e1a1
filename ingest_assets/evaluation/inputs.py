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
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ingest_assets.annotations.coco_ids import (
    CategoryOf,
    coco_images,
    coco_tables_of,
    image_ids,
    with_labels,
)
from ingest_assets.evaluation.engine import IOU_TYPES, IouType
from ingest_assets.evaluation.objects import Objects
from ingest_assets.names import (
    DATASET_ITEMS,
    IMPORTED_ANNOTATIONS,
    IMPORTED_PREDICTIONS,
    LABEL_ANNOTATIONS,
)
from resources.lake.tables import Lake

ITEM_COLUMNS = ["item_id", "key", "width", "height", "status"]
ROW_COLUMNS = ["item_id", "import", "kind", "label", "category_id", "bbox", "area", "iscrowd"]
MASK_COLUMNS = ["segmentation"]
KEYPOINT_COLUMNS = ["keypoints", "num_keypoints"]
PREDICTION_COLUMNS = ["confidence", "model", "version", "scored_as"]


@dataclass
class Inputs:
    """One model version's predictions and the ground truth, ready to score."""

    images: list[dict[str, Any]] = field(default_factory=list)
    categories: list[dict[str, Any]] = field(default_factory=list)
    truth: Objects = field(default_factory=Objects)
    results: dict[IouType, Objects] = field(default_factory=dict)
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
        """The ground truth as a COCO instances dict."""
        return {
            "images": self.images,
            "categories": self.categories,
            "annotations": self.truth.annotations(),
        }

    @property
    def iou_types(self) -> list[IouType]:
        """The IoU types there is something to score for: predictions made for them, and
        ground truth that can be scored so (keypoints for keypoints)."""
        found: list[IouType] = []
        for iou_type in IOU_TYPES:
            if not len(self.results.get(iou_type, Objects())):
                continue
            keypoints = self.truth.keypoints
            if iou_type == "keypoints" and not (keypoints and any(k for k in keypoints)):
                continue
            found.append(iou_type)
        return found


def _tables(lake: Lake, asset: str, columns: list[str]) -> Iterator[tuple[str, pa.Table]]:
    """Each committed import's table, ``columns`` only (null for one an older import's table
    lacks), with its partition."""
    for partition, commit in lake.read_commits(asset):
        present = [c for c in columns if c in commit.schema.names]
        table = lake.read_table(asset, partition, present)
        for missing in (c for c in columns if c not in present):
            table = table.append_column(missing, pa.nulls(table.num_rows, pa.string()))
        yield partition, table


def read_inputs(lake: Lake, model: str, version: str) -> Inputs:
    """The ground truth and the predictions of ``model`` ``version`` in the lake now."""
    out = Inputs()
    current = lake.read_current(DATASET_ITEMS, columns=ITEM_COLUMNS)
    current = current.filter(pc.equal(current.column("status"), "ok"))
    items = {row["item_id"]: row for row in current.to_pylist()}
    wanted = [*ROW_COLUMNS, *MASK_COLUMNS, *KEYPOINT_COLUMNS, *PREDICTION_COLUMNS]
    of_version = (
        (
            p,
            t.filter(
                pc.and_(pc.equal(t.column("model"), model), pc.equal(t.column("version"), version))
            ),
        )
        for p, t in _tables(lake, IMPORTED_PREDICTIONS, wanted)
    )
    predicted = [(p, t) for p, t in of_version if t.num_rows]
    masks = any(t.column("segmentation").null_count < t.num_rows for _, t in predicted)
    keypoints = any(t.column("keypoints").null_count < t.num_rows for _, t in predicted)
    columns = (
        ROW_COLUMNS + (MASK_COLUMNS if masks else []) + (KEYPOINT_COLUMNS if keypoints else [])
    )
    ok = pa.array(list(items), type=pa.string())
    truth = [
        (partition, t.filter(pc.is_in(t.column("item_id"), value_set=ok)))
        for partition, t in _tables(lake, IMPORTED_ANNOTATIONS, columns)
    ]
    out.ground_truth_rows = sum(t.num_rows for _, t in truth)
    out.prediction_rows = sum(t.num_rows for _, t in predicted)
    coco_categories, coco_imgs, tied = coco_tables_of(lake, {p for p, t in truth if t.num_rows})
    labels = [
        {"label": label}
        for t in [*(t for _, t in truth), *(t for _, t in predicted)]
        for label in pc.unique(t.column("label")).to_pylist()
    ]
    categories = with_labels(coco_categories, labels)
    place = CategoryOf(categories, set(coco_imgs))
    labelled = {item for ties in tied.values() for item in ties.values() if item in items}
    for _, t in truth:
        objects = t.filter(pc.equal(t.column("kind"), "object"))
        labelled.update(objects.column("item_id").to_pylist())
    chosen = sorted((items[i] for i in labelled), key=lambda i: i["key"])
    ids = image_ids(chosen, coco_images(chosen, coco_imgs, tied))
    out.images = [
        {"id": ids[i["item_id"]], "width": i["width"], "height": i["height"], "file_name": i["key"]}
        for i in sorted(chosen, key=lambda i: ids[i["item_id"]])
    ]
    out.items = {ids[i["item_id"]]: (i["item_id"], i["key"]) for i in chosen}
    out.categories = [_category(c) for c in categories]
    out.truth = Objects.concat(
        [_truth_objects(out, partition, t, place, ids) for partition, t in truth]
    )
    _predictions(out, predicted, place, ids, items)
    for _, t in _tables(lake, LABEL_ANNOTATIONS, ["item_id", "kind", "label"]):
        for row in t.filter(pc.equal(t.column("kind"), "class")).to_pylist():
            if row["label"] and row["item_id"] in items:
                out.truth_classes.setdefault(row["item_id"], row["label"])  # imported first
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


def _category_ids(partition: str, table: pa.Table, place: CategoryOf) -> np.ndarray:
    """Each row's category id (-1 for a class the categories lack); a table has a few
    distinct (id, label) pairs, so each is placed once."""
    placed: dict[tuple[Any, Any], int] = {}

    def of(category_id: Any, label: Any) -> int:
        row = {"import": partition, "category_id": category_id, "label": label}
        category = place.of(row)
        return category.id if category is not None else -1

    ids, labels = table.column("category_id").to_pylist(), table.column("label").to_pylist()
    found = [
        placed[pair] if pair in placed else placed.setdefault(pair, of(*pair))
        for pair in zip(ids, labels, strict=True)
    ]
    return np.asarray(found, dtype=np.int64)


def _located(
    partition: str, table: pa.Table, place: CategoryOf, ids: dict[str, int]
) -> tuple[pa.Table, np.ndarray, np.ndarray]:
    """The rows that are objects with a box on a labelled item of a known category, their
    COCO image ids and category ids."""
    table = table.filter(
        pc.and_(pc.equal(table.column("kind"), "object"), pc.is_valid(table.column("bbox")))
    )
    image = np.asarray([ids.get(i, -1) for i in table.column("item_id").to_pylist()], np.int64)
    category = _category_ids(partition, table, place)
    keep = (image >= 0) & (category >= 0)
    return table.filter(pa.array(keep)), image[keep], category[keep]


def _boxes(table: pa.Table) -> np.ndarray:
    flat = pc.list_flatten(table.column("bbox")).to_numpy(zero_copy_only=False)
    return np.asarray(flat, dtype=np.float64).reshape(-1, 4)


def _json_column(table: pa.Table, name: str) -> list[Any]:
    return [None if v is None else json.loads(v) for v in table.column(name).to_pylist()]


def _truth_objects(
    out: Inputs, partition: str, table: pa.Table, place: CategoryOf, ids: dict[str, int]
) -> Objects:
    for row in table.filter(pc.equal(table.column("kind"), "class")).to_pylist():
        if row["label"]:
            out.truth_classes[row["item_id"]] = row["label"]
    objects, image, category = _located(partition, table, place, ids)
    boxes = _boxes(objects)
    area = objects.column("area").to_numpy(zero_copy_only=False).astype(np.float64)
    area = np.where(np.isnan(area), boxes[:, 2] * boxes[:, 3], area)  # a box format's: w * h
    crowd = pc.fill_null(objects.column("iscrowd"), 0).to_numpy(zero_copy_only=False)
    names = objects.column_names
    return Objects(
        image_ids=image,
        category_ids=category,
        boxes=boxes,
        area=area,
        iscrowd=np.asarray(crowd, dtype=np.int64),
        segmentation=_json_column(objects, "segmentation") if "segmentation" in names else None,
        keypoints=objects.column("keypoints").to_pylist() if "keypoints" in names else None,
        num_keypoints=objects.column("num_keypoints").to_pylist()
        if "num_keypoints" in names
        else None,
    )


def _predictions(
    out: Inputs,
    tables: list[tuple[str, pa.Table]],
    place: CategoryOf,
    ids: dict[str, int],
    items: dict[str, Any],
) -> None:
    """Sort the predictions into the IoU types they are scored as, and the classes."""
    parts: dict[IouType, list[Objects]] = {t: [] for t in IOU_TYPES}
    ok = pa.array(list(items), pa.string())
    for partition, every in tables:
        table = every.filter(pc.is_in(every.column("item_id"), value_set=ok))
        out.left_out["predictions of items no longer current"] += every.num_rows - table.num_rows
        for row in table.filter(pc.equal(table.column("kind"), "class")).to_pylist():
            if row["label"]:
                scores = out.predicted_classes.setdefault(row["item_id"], [])
                scores.append((row["label"], float(row["confidence"] or 0.0)))
        objects = table.filter(pc.equal(table.column("kind"), "object"))
        unlabelled = sum(i not in ids for i in objects.column("item_id").to_pylist())
        out.left_out["predictions of items without ground truth"] += unlabelled
        located, image, category = _located(partition, objects, place, ids)
        unknown = objects.num_rows - unlabelled - located.num_rows
        out.left_out["predictions of a class the ground truth does not have"] += unknown
        has_mask = pc.is_valid(located["segmentation"]).to_numpy(zero_copy_only=False)
        given = np.asarray([s or "" for s in located["scored_as"].to_pylist()], dtype=object)
        scored = np.where(given == "", np.where(has_mask, "segm", "bbox"), given)
        picks = {
            "bbox": scored == "bbox",
            # mask results, and box results that carry a mask
            "segm": (scored == "segm") | ((scored == "bbox") & has_mask),
            "keypoints": scored == "keypoints",
        }
        boxes = _boxes(located)
        scores = located["confidence"].to_numpy(zero_copy_only=False).astype(np.float64)
        for iou_type in IOU_TYPES:
            chosen = np.asarray(picks[iou_type], dtype=bool)
            if not chosen.any():
                continue
            taken = located.take(pa.array(np.flatnonzero(chosen)))
            masked = iou_type == "segm"
            parts[iou_type].append(
                Objects(
                    image_ids=image[chosen],
                    category_ids=category[chosen],
                    boxes=boxes[chosen],
                    scores=scores[chosen],
                    segmentation=_json_column(taken, "segmentation")
                    if iou_type == "segm"
                    else None,
                    keypoints=taken["keypoints"].to_pylist() if iou_type == "keypoints" else None,
                    boxed=list(scored[chosen] == "bbox") if masked else None,
                )
            )
    out.results = {t: Objects.concat(p) for t, p in parts.items() if p}
    out.left_out = +out.left_out  # drop the reasons nothing had
