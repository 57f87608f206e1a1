"""Writing records as COCO: an instances file (images, categories, annotations) or a results
list. Every value is written as the record holds it; nothing is rounded or recomputed."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from ingest_assets.annotations.records import Category, FileImage, Record

_TABLES = ("images", "categories", "annotations")
_OBJECT_FIELDS = ("bbox", "segmentation", "area")
_POINT_FIELDS = ("keypoints", "num_keypoints")


def export_instances(
    images: list[FileImage],
    categories: list[Category],
    records: Iterable[Record],
    extra: Mapping[str, Any] | None,
) -> bytes:
    clash = set(_TABLES) & set(extra or {})
    if clash:
        raise ValueError(f"extra holds {sorted(clash)}; the export writes those tables itself")
    image_entries, image_ids, ids_by_name = _image_entries(images)
    category_ids = {category.id for category in categories}
    if len(category_ids) != len(categories):
        raise ValueError("two categories share an id; each category needs its own")
    ids_by_label = {category.name: category.id for category in categories}
    annotations = [
        _annotation(r, image_ids, ids_by_name, category_ids, ids_by_label) for r in records
    ]
    _number_annotations(annotations)
    # The tables come before the annotations, so that a streaming reader meets them first.
    body = {
        **(extra or {}),
        "images": image_entries,
        "categories": [_category_entry(category) for category in categories],
        "annotations": annotations,
    }
    return _json(body)


def _image_entries(
    images: list[FileImage],
) -> tuple[list[dict[str, Any]], set[int], dict[str, int]]:
    """The ``images`` entries (an image without an id gets a new one), their ids, and the
    ids by file name (for records that name their image by key)."""
    given = [image.image_id for image in images if image.image_id is not None]
    if len(set(given)) != len(given):
        raise ValueError("two images share an id; each image needs its own")
    fresh = max(given, default=0) + 1
    entries: list[dict[str, Any]] = []
    by_name: dict[str, int] = {}
    for image in images:
        image_id = image.image_id
        if image_id is None:
            image_id, fresh = fresh, fresh + 1
        entry: dict[str, Any] = {**image.extra, "id": image_id, "file_name": image.file_name}
        for name in ("width", "height"):
            if getattr(image, name) is not None:
                entry[name] = getattr(image, name)
        entries.append(entry)
        by_name.setdefault(image.file_name, image_id)
    return entries, {entry["id"] for entry in entries}, by_name


def _category_entry(category: Category) -> dict[str, Any]:
    entry: dict[str, Any] = {**category.extra, "id": category.id, "name": category.name}
    for name in ("supercategory", "keypoints", "skeleton"):
        if getattr(category, name) is not None:
            entry[name] = getattr(category, name)
    return entry


def _annotation(
    record: Record,
    image_ids: set[int],
    ids_by_name: Mapping[str, int],
    category_ids: set[int],
    ids_by_label: Mapping[str, int],
) -> dict[str, Any]:
    _check_exportable(record)
    image_id = record.item.image_id
    if image_id is None and record.item.key is not None:
        image_id = ids_by_name.get(record.item.key)
    if image_id not in image_ids:
        raise ValueError(f"{record.where}: {record.item.describe()} is not one of the images")
    category_id = record.category_id
    if category_id is None and record.label is not None:
        category_id = ids_by_label.get(record.label)
    if category_id not in category_ids:
        named = record.label if record.category_id is None else record.category_id
        raise ValueError(f"{record.where}: category {named!r} is not one of the categories")
    entry: dict[str, Any] = {"id": record.source_id, "image_id": image_id}
    entry["category_id"] = category_id
    _put(entry, record, _OBJECT_FIELDS)
    entry["iscrowd"] = record.iscrowd
    _put(entry, record, (*_POINT_FIELDS, "score"))
    return _with_attributes(entry, record)


def _check_exportable(record: Record) -> None:
    if record.kind != "object":
        raise ValueError(
            f"{record.where}: is a label of the whole image (kind {record.kind!r}); COCO "
            "instances hold objects"
        )
    if record.units != "pixel":
        raise ValueError(
            f"{record.where}: its box is in fractions of the image; place it in pixels first"
        )


def _put(entry: dict[str, Any], record: Record, names: Iterable[str]) -> None:
    for name in names:
        value = getattr(record, name)
        if value is not None:
            entry[name] = value


def _number_annotations(annotations: list[dict[str, Any]]) -> None:
    """Keep each annotation's id (its record's source id) unless it has none or an earlier
    annotation has it; those get new ids above every given one."""
    fresh = max((a["id"] for a in annotations if a["id"] is not None), default=0) + 1
    taken: set[int] = set()
    for annotation in annotations:
        if annotation["id"] is None or annotation["id"] in taken:
            annotation["id"], fresh = fresh, fresh + 1
        taken.add(annotation["id"])


def export_results(records: Iterable[Record]) -> bytes:
    return _json([_result(record) for record in records])


def _result(record: Record) -> dict[str, Any]:
    _check_exportable(record)
    if record.item.image_id is None or record.category_id is None or record.score is None:
        raise ValueError(
            f"{record.where}: a COCO result needs an image_id, a category_id and a score"
        )
    entry: dict[str, Any] = {"image_id": record.item.image_id}
    entry["category_id"] = record.category_id
    # What the importer computed stays out: written back, a box computed from a mask would
    # make pycocotools read the whole file as box results.
    given = [n for n in ("bbox", "segmentation", "keypoints", "area") if n not in record.derived]
    _put(entry, record, given)
    entry["score"] = record.score
    if record.source_id is not None:
        entry["id"] = record.source_id
    return _with_attributes(entry, record)


def _with_attributes(entry: dict[str, Any], record: Record) -> dict[str, Any]:
    return {**entry, **{k: v for k, v in record.attributes.items() if k not in entry}}


def _json(body: Any) -> bytes:
    # allow_nan=False: NaN and Infinity are not JSON, and pycocotools' readers refuse them.
    return json.dumps(body, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()
