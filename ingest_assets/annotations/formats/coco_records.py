"""COCO entries as records: the image and category tables, an instances file's annotations,
and a results file's detections with the area and box pycocotools evaluates them with."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Literal

from pycocotools import mask as coco_mask

from ingest_assets.annotations.formats import coco_fields as fields
from ingest_assets.annotations.formats.coco_fields import Entry
from ingest_assets.annotations.records import Category, FileImage, ItemRef, LabelFileError, Record

IMAGE_FIELDS = frozenset({"id", "file_name", "width", "height"})
CATEGORY_FIELDS = frozenset({"id", "name", "supercategory", "keypoints", "skeleton"})
ANNOTATION_FIELDS = frozenset(
    {"id", "image_id", "category_id", "bbox", "segmentation", "area", "iscrowd"}
    | {"keypoints", "num_keypoints"}
)
#: A result's ``area`` and ``iscrowd`` are left out: pycocotools replaces them when it loads
#: results, so the record holds the values it evaluates with instead.
RESULT_FIELDS = frozenset(
    {"id", "image_id", "category_id", "bbox", "segmentation", "keypoints", "score"}
    | {"area", "iscrowd"}
)
ResultType = Literal["bbox", "segmentation", "keypoints"]
#: In the order ``loadRes`` tries them.
RESULT_TYPES: tuple[ResultType, ...] = ("bbox", "segmentation", "keypoints")


def _entries(value: Any, file: str, name: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise LabelFileError(file, f'"{name}"', f"is {type(value).__name__}; it must be a list")
    return value


def image_table(value: Any, file: str) -> list[FileImage]:
    """The file's ``images``: every id an integer and unique, every entry named."""
    images: list[FileImage] = []
    seen: set[int] = set()
    for n, raw in enumerate(_entries(value, file, "images")):
        entry = Entry(file, f"images[{n}]", raw, "image")
        image_id = entry.required_integer("id")
        entry.where += f" (id {image_id})"
        if image_id in seen:
            entry.fail(f"id {image_id} is used by an earlier image; image ids must be unique")
        seen.add(image_id)
        name = entry.text("file_name")
        assert name is not None  # a required field
        images.append(
            FileImage(
                image_id=image_id,
                file_name=name,
                width=entry.integer("width", required=False),
                height=entry.integer("height", required=False),
                extra={k: v for k, v in raw.items() if k not in IMAGE_FIELDS},
            )
        )
    return images


def category_table(value: Any, file: str) -> list[Category]:
    """The file's ``categories``: every id an integer and unique, every category named."""
    categories: list[Category] = []
    seen: set[int] = set()
    for n, raw in enumerate(_entries(value, file, "categories")):
        entry = Entry(file, f"categories[{n}]", raw, "category")
        category_id = entry.required_integer("id")
        entry.where += f" (id {category_id})"
        if category_id in seen:
            entry.fail(f"id {category_id} is used by an earlier category; ids must be unique")
        seen.add(category_id)
        name = entry.text("name")
        assert name is not None  # a required field
        categories.append(
            Category(
                id=category_id,
                name=name,
                supercategory=entry.text("supercategory", required=False),
                keypoints=_keypoint_names(entry),
                skeleton=_skeleton(entry),
                extra={k: v for k, v in raw.items() if k not in CATEGORY_FIELDS},
            )
        )
    return categories


def _keypoint_names(entry: Entry) -> list[str] | None:
    names = entry.value.get("keypoints")
    if names is not None and not (
        isinstance(names, list) and all(isinstance(name, str) for name in names)
    ):
        entry.fail(f"keypoints is {fields.shown(names)}; a category's keypoints is a list of names")
    return names


def _skeleton(entry: Entry) -> list[list[int]] | None:
    edges = entry.value.get("skeleton")
    if edges is not None and not (
        isinstance(edges, list)
        and all(isinstance(e, list) and len(e) == 2 and fields.all_numbers(e) for e in edges)
    ):
        entry.fail(f"skeleton is {fields.shown(edges)}; a skeleton is a list of [from, to] pairs")
    return edges


def annotation_records(
    items: Iterable[Any],
    file: str,
    images: Mapping[int, FileImage],
    categories: Mapping[int, Category],
) -> Iterator[Record]:
    """An instances file's annotations as records, checked one by one as they are read."""
    seen: set[int] = set()
    for n, raw in enumerate(items):
        entry = Entry(file, f"annotations[{n}]", raw, "annotation")
        yield _annotation_record(entry, images, categories, seen)


def _annotation_record(
    entry: Entry,
    images: Mapping[int, FileImage],
    categories: Mapping[int, Category],
    seen: set[int],
) -> Record:
    annotation_id = entry.required_integer("id")
    entry.where += f" (id {annotation_id})"
    if annotation_id in seen:
        entry.fail(f"id {annotation_id} is used by an earlier annotation; ids must be unique")
    seen.add(annotation_id)
    image = fields.known_image(entry, images)
    category = fields.known_category(entry, categories)
    assert category is not None  # known_category raises for an id not in the table
    raw = entry.value
    return Record(
        item=ItemRef(image_id=raw["image_id"]),
        where=entry.where,
        label=category.name,
        category_id=category.id,
        bbox=fields.bbox(entry),
        segmentation=fields.segmentation(entry, image),
        area=entry.number("area"),
        iscrowd=fields.iscrowd(entry),
        keypoints=fields.keypoints(entry, category),
        num_keypoints=entry.integer("num_keypoints", required=False),
        source_id=annotation_id,
        attributes={k: v for k, v in raw.items() if k not in ANNOTATION_FIELDS},
    )


def result_records(
    items: Iterable[Any],
    file: str,
    images: Mapping[int, FileImage] | None,
    categories: Mapping[int, Category] | None,
) -> Iterator[Record]:
    """A results file's detections as records with their score, and with the ``area`` (and,
    where the file has none, the ``bbox``) that pycocotools' ``COCO.loadRes`` computes, so
    that an evaluation of the records scores as one of the file does."""
    result_type: ResultType | None = None
    for n, raw in enumerate(items):
        entry = Entry(file, f"results[{n}]", raw, "result")
        if result_type is None:
            result_type = _result_type(entry)
        yield _result_record(entry, result_type, images, categories)


def _result_type(entry: Entry) -> ResultType:
    """What the file's results are, from the first as ``loadRes`` decides it: boxes if it
    has a ``bbox``, else masks if it has a ``segmentation``, else keypoints."""
    for result_type in RESULT_TYPES:
        if result_type in entry.value:
            return result_type
    entry.fail(
        "has no bbox, segmentation or keypoints; a COCO result gives one of them with its score"
    )


def _result_record(
    entry: Entry,
    result_type: ResultType,
    images: Mapping[int, FileImage] | None,
    categories: Mapping[int, Category] | None,
) -> Record:
    raw = entry.value
    if raw.get(result_type) is None:
        entry.fail(
            f"has no {result_type}; the first result has one, and pycocotools reads every "
            f"result of a file as the first ({result_type} results)"
        )
    image = fields.known_image(entry, images)
    category = fields.known_category(entry, categories)
    record = Record(
        item=ItemRef(image_id=raw["image_id"]),
        where=entry.where,
        label=category.name if category is not None else None,
        category_id=raw["category_id"],
        bbox=fields.bbox(entry),
        segmentation=fields.segmentation(entry, image),
        keypoints=fields.keypoints(entry, category),
        score=fields.score(entry),
        source_id=entry.integer("id", required=False),
        attributes={k: v for k, v in raw.items() if k not in RESULT_FIELDS},
    )
    _evaluated_geometry(record, result_type, entry)
    return record


def _evaluated_geometry(record: Record, result_type: ResultType, entry: Entry) -> None:
    """Set the area and box as ``COCO.loadRes`` (pycocotools 2.0.11) computes them."""
    record.result_type = {"bbox": "bbox", "segmentation": "segm"}.get(result_type, "keypoints")
    if result_type == "bbox":
        assert record.bbox is not None
        record.area = record.bbox[2] * record.bbox[3]
        record.derived = frozenset({"area"})
    elif result_type == "segmentation":
        rle = record.segmentation
        if not (isinstance(rle, dict) and isinstance(rle.get("counts"), str)):
            entry.fail(
                "segmentation is not a compressed RLE; pycocotools takes a mask result's area "
                "from its compressed RLE (encode masks with pycocotools.mask.encode)"
            )
        record.area = float(coco_mask.area(rle))
        record.derived = frozenset({"area"})
        if record.bbox is None:
            record.bbox = [float(v) for v in coco_mask.toBbox(rle)]
            record.derived = frozenset({"area", "bbox"})
    else:
        _keypoint_extent(record, entry)


def _keypoint_extent(record: Record, entry: Entry) -> None:
    # loadRes spans every keypoint, unlabelled (0, 0) ones included, and replaces any box.
    points = record.keypoints
    if not points:
        entry.fail("keypoints is empty; a keypoint result needs its x, y, visibility triples")
    xs, ys = points[0::3], points[1::3]
    x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
    record.area = (x1 - x0) * (y1 - y0)
    record.bbox = [x0, y0, x1 - x0, y1 - y0]
    record.derived = frozenset({"area", "bbox"})
