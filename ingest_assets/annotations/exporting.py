"""An export of the lake's current items and their imported annotations in one label format,
as files (relative path -> bytes) that the caller writes. Free of Dagster: it reads a ``Lake``.

What is exported: the current ``dataset_items`` whose status is ``ok`` (tombstoned, missing,
unreadable, corrupt and superseded items are left out and counted), filtered by split and
source, and every committed ``imported_annotations`` row of those items. Images are linked,
never copied: COCO gives each image its uri as ``coco_url``, VOC as ``<path>``.

Categories: those of the COCO imports the rows come from (same ids and names), then every
other label, numbered after them in name order. A COCO import's rows keep their category id;
other rows are placed by label, since a YOLO class index is not a COCO category id.

What a format cannot hold is left out and named in :attr:`Export.left_out`, never refused:
whole-image labels in COCO, YOLO and VOC (export them as CSV); objects in CSV; masks,
keypoints and crowd flags in YOLO, VOC and Label Studio, which write each object as its box
(the box the import stored, so that it reads back the same).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from ingest_assets.annotations.coco_ids import (
    CategoryConflict,
    CategoryOf,
    coco_images,
    coco_tables_of,
    image_ids,
    with_labels,
)
from ingest_assets.annotations.current import iter_annotations
from ingest_assets.annotations.formats.coco import export_coco
from ingest_assets.annotations.formats.csv_labels import export_csv_labels
from ingest_assets.annotations.formats.labelstudio import export_labelstudio
from ingest_assets.annotations.formats.voc import export_voc
from ingest_assets.annotations.formats.yolo import CLASSES_FILE, export_yolo, image_key_stem
from ingest_assets.annotations.records import Category, FileImage, ItemRef, Record
from resources.errors import BucketlakeError, LakeError
from resources.lake.tables import Lake

EXPORT_FORMATS = ("coco", "yolo", "voc", "csv", "labelstudio")
ExportFormat = Literal["coco", "yolo", "voc", "csv", "labelstudio"]

ITEMS = "dataset_items"
ANNOTATIONS = "imported_annotations"
ITEM_COLUMNS = ["item_id", "key", "uri", "source", "width", "height", "label", "split", "status"]
COCO_FILE = "annotations.json"
CSV_FILE = "labels.csv"
LABELSTUDIO_FILE = "tasks.json"
VOC_FOLDER = "Annotations"
#: Attributes that say where a record was in its own file; written back they would place it
#: there again instead of on its item.
_PLACEMENT_ATTRIBUTES = ("key_stem",)


class ExportError(BucketlakeError):
    """An export that cannot be made as asked; the message says why and what to do."""


@dataclass
class Export:
    """The files of one export and what went into them."""

    format: ExportFormat
    files: dict[str, bytes]
    items: int
    annotations: int
    #: What the format could not hold, by what and how many.
    left_out: Counter[str] = field(default_factory=Counter)


@dataclass
class _Selection:
    """What an export writes: the items (in key order), the categories and the records."""

    items: list[dict[str, Any]]
    categories: list[Category]
    records: list[Record]
    #: By item id: the image a COCO import's file gave the item (its id, license ...).
    coco_images: dict[str, FileImage]
    image_ids: dict[str, int]


def export_lake(
    lake: Lake,
    fmt: ExportFormat,
    *,
    splits: Sequence[str] = (),
    sources: Sequence[str] = (),
) -> Export:
    """The current items (of ``splits`` and ``sources`` where given) and their annotations as
    ``fmt`` files. Raises ExportError when nothing is ingested, no item matches the filters,
    two items would share a file name, or a record cannot be written."""
    if fmt not in EXPORT_FORMATS:
        raise ExportError(f"format {fmt!r} is not one of {', '.join(EXPORT_FORMATS)}")
    left_out: Counter[str] = Counter()
    items = _items(lake, splits, sources, left_out)
    rows = _annotation_rows(lake, {item["item_id"] for item in items})
    try:
        coco_categories, coco_imgs, tied = coco_tables_of(lake, {row["import"] for row in rows})
    except CategoryConflict as exc:
        raise ExportError(f"cannot export these imports together: {exc}") from exc
    categories = with_labels(coco_categories, rows)
    matched = coco_images(items, coco_imgs, tied)
    ids = image_ids(items, matched)
    by_id = {item["item_id"]: item for item in items}
    place = CategoryOf(categories, set(coco_imgs))
    records = [_record(row, by_id[row["item_id"]], place, ids) for row in rows]
    selection = _Selection(items, categories, records, matched, ids)
    try:
        files, written = _WRITERS[fmt](selection, left_out)
    except ValueError as exc:
        raise ExportError(f"cannot export as {fmt}: {exc}") from exc
    return Export(fmt, files, len(items), written, left_out)


# -- reading --------------------------------------------------------------------------------


def _items(
    lake: Lake, splits: Sequence[str], sources: Sequence[str], left_out: Counter[str]
) -> list[dict[str, Any]]:
    try:
        current = lake.read_current(ITEMS, columns=ITEM_COLUMNS).to_pylist()
    except LakeError as exc:
        raise ExportError(
            f"nothing to export: {exc}; ingest items first (bucketlake sync)"
        ) from exc
    chosen = [
        item
        for item in current
        if (not splits or item["split"] in splits) and (not sources or item["source"] in sources)
    ]
    if not chosen:
        known_splits = ", ".join(sorted({str(i["split"]) for i in current}))
        known_sources = ", ".join(sorted({str(i["source"]) for i in current}))
        raise ExportError(
            f"no current item is in split {list(splits) or 'any'} and source "
            f"{list(sources) or 'any'}; the splits are {known_splits}, the sources "
            f"{known_sources}"
        )
    for item in chosen:
        if item["status"] != "ok":
            left_out[f"{item['status']} items"] += 1
    exported = sorted((i for i in chosen if i["status"] == "ok"), key=lambda i: i["key"])
    _check_unique_names(exported)
    return exported


def _check_unique_names(items: list[dict[str, Any]]) -> None:
    """Every format names an image by its key (YOLO and VOC by the key less its extension),
    so two items named alike would be one image to whoever reads the export."""
    seen: dict[str, dict[str, Any]] = {}
    for item in items:
        stem = image_key_stem(item["key"])
        other = seen.setdefault(stem, item)
        if other is not item:
            raise ExportError(
                f"items {other['key']!r} (source {other['source']}) and {item['key']!r} "
                f"(source {item['source']}) would share a file name in the export; export "
                "one source at a time (--source)"
            )


def _annotation_rows(lake: Lake, item_ids: set[str]) -> list[dict[str, Any]]:
    return [
        row
        for table in iter_annotations(lake, ANNOTATIONS)
        for row in table.to_pylist()
        if row["item_id"] in item_ids
    ]


def _record(
    row: dict[str, Any], item: dict[str, Any], place: CategoryOf, image_ids: dict[str, int]
) -> Record:
    category = place.of(row)
    attributes = json.loads(row["attributes"]) if row["attributes"] else {}
    return Record(
        item=ItemRef(key=item["key"], image_id=image_ids[item["item_id"]]),
        where=f"import {row['import']}, {row['record']}",
        kind=row["kind"],
        label=row["label"] if row["label"] is not None else getattr(category, "name", None),
        category_id=category.id if category is not None else None,
        bbox=row["bbox"],
        segmentation=None if row["segmentation"] is None else json.loads(row["segmentation"]),
        area=row["area"],
        iscrowd=row["iscrowd"] or 0,
        keypoints=row["keypoints"],
        num_keypoints=row["num_keypoints"],
        source_id=row["source_id"],
        attributes={k: v for k, v in attributes.items() if k not in _PLACEMENT_ATTRIBUTES},
    )


# -- writing --------------------------------------------------------------------------------

_Written = tuple[dict[str, bytes], int]


def _objects(records: list[Record], left_out: Counter[str], fmt: str) -> list[Record]:
    kept = [record for record in records if record.kind == "object"]
    if len(kept) < len(records):
        reason = f"whole-image labels ({fmt} holds objects; export them with --format csv)"
        left_out[reason] += len(records) - len(kept)
    return kept


def _boxes(records: list[Record]) -> list[Record]:
    """The records without their masks. YOLO and Label Studio could hold a polygon, but read
    back they would give its extent as the box, which is not the box the file gave (COCO's
    boxes reach a pixel past their polygons)."""
    return [replace(record, segmentation=None) for record in records]


def _note(left_out: Counter[str], records: Iterable[Record], fmt: str) -> None:
    """Count what a box format leaves out of the objects."""
    for record in records:
        if record.kind != "object":
            continue
        if record.keypoints is not None:
            left_out[f"keypoint sets ({fmt} holds none)"] += 1
        if record.iscrowd:
            left_out[f"crowd flags (written as plain objects; {fmt} has no crowd regions)"] += 1
        if record.segmentation is not None:
            left_out[f"masks (written as their boxes; {fmt} holds boxes)"] += 1


def _sizes(selection: _Selection) -> list[tuple[str, int, int]]:
    return [(item["key"], item["width"], item["height"]) for item in selection.items]


def _coco(selection: _Selection, left_out: Counter[str]) -> _Written:
    objects = _objects(selection.records, left_out, "COCO")
    images = []
    for item in selection.items:
        given = selection.coco_images.get(item["item_id"])
        extra = {**(given.extra if given is not None else {}), "coco_url": item["uri"]}
        image_id = selection.image_ids[item["item_id"]]
        images.append(FileImage(image_id, item["key"], item["width"], item["height"], extra))
    return {COCO_FILE: export_coco(images, selection.categories, objects)}, len(objects)


def _yolo(selection: _Selection, left_out: Counter[str]) -> _Written:
    if any(image_key_stem(item["key"]) == "classes" for item in selection.items):
        raise ExportError(
            f"an item's labels would overwrite the export's class list ({CLASSES_FILE}); "
            "export with --source or --split to leave it out, or use another format"
        )
    objects = _objects(selection.records, left_out, "YOLO")
    _note(left_out, objects, "YOLO")
    objects = _boxes(objects)
    return export_yolo(_sizes(selection), selection.categories, objects), len(objects)


def _voc(selection: _Selection, left_out: Counter[str]) -> _Written:
    objects = _objects(selection.records, left_out, "VOC")
    _note(left_out, objects, "VOC")
    by_key: dict[str | None, list[Record]] = {item["key"]: [] for item in selection.items}
    for record in objects:
        by_key[record.item.key].append(record)
    files = {}
    for item in selection.items:
        extra = {"path": item["uri"]}
        image = FileImage(None, item["key"], item["width"], item["height"], extra)
        files[f"{VOC_FOLDER}/{image_key_stem(item['key'])}.xml"] = export_voc(
            image, by_key[item["key"]]
        )
    return files, len(objects)


def _csv(selection: _Selection, left_out: Counter[str]) -> _Written:
    """Each item's imported whole-image labels, else its folder label (if it has one)."""
    labels = [r for r in selection.records if r.kind == "class" and r.label is not None]
    if len(labels) < len(selection.records):
        left_out["objects (CSV holds whole-image labels)"] += len(selection.records) - len(labels)
    rows = [
        Record(
            ItemRef(key=r.item.key),
            r.where,
            "class",
            r.label,
            score=r.score,
            attributes=r.attributes,
        )
        for r in labels
    ]
    labelled = {record.item.key for record in rows}
    rows += [
        Record(ItemRef(key=item["key"]), f"item {item['key']}", "class", item["label"])
        for item in selection.items
        if item["key"] not in labelled and item["label"] is not None
    ]
    rows.sort(key=lambda record: str(record.item.key))
    return {CSV_FILE: export_csv_labels(rows)}, len(rows)


def _labelstudio(selection: _Selection, left_out: Counter[str]) -> _Written:
    _note(left_out, selection.records, "Label Studio")
    records = _boxes(selection.records)
    body = export_labelstudio(_sizes(selection), selection.categories, records)
    return {LABELSTUDIO_FILE: body}, len(records)


_WRITERS: dict[str, Callable[[_Selection, Counter[str]], _Written]] = {
    "coco": _coco,
    "yolo": _yolo,
    "voc": _voc,
    "csv": _csv,
    "labelstudio": _labelstudio,
}
