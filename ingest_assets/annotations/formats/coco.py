"""COCO label files: instances files (``images``, ``categories``, ``annotations``) and results
files (a list of scored detections), read as records and written back.

An instances file is read in two passes, because JSON does not fix the order of its keys
(the official files put ``categories`` after ``annotations``; some subsets put
``annotations`` first): the first builds everything but the annotations and checks that the
whole file is JSON; the second streams the annotations one at a time, each checked against
the image and category tables as it is read. Memory stays bounded beyond those tables (and
the set of annotation ids seen, for the duplicate check), whatever the key order. A file
given as a stream must stay open until its records are read.

Values are kept exactly as the file gives them: boxes reaching outside their image are not
clipped here, and polygons, RLEs (compressed or not) and areas are passed through.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, BinaryIO

from ingest_assets.annotations.formats.coco_export import export_instances, export_results
from ingest_assets.annotations.formats.coco_json import JsonSource, read_top_level, stream_items
from ingest_assets.annotations.formats.coco_records import (
    annotation_records,
    category_table,
    image_table,
    result_records,
)
from ingest_assets.annotations.records import (
    Category,
    FileImage,
    LabelFileError,
    Parsed,
    Record,
)

__all__ = ["export_coco", "export_coco_results", "parse_coco", "parse_coco_results"]


def parse_coco(data: bytes | BinaryIO, *, file: str) -> Parsed:
    """The categories, images and ``info``/``licenses`` (with any other top-level value, in
    ``extra``) of a COCO instances file, and its annotations as records streamed in file
    order, each ``where`` like ``annotations[12] (id 4031)``.

    Raises LabelFileError (naming the file, the entry and the field) for a file that is not
    JSON or not an object, a bad image or category table, and, while the records are read,
    for the first annotation that names an unknown image or category, reuses an id, or has
    a malformed bbox, polygon, RLE, keypoints or iscrowd."""
    source = JsonSource(data)
    top = read_top_level(source, file, skip="annotations")
    images = image_table(top.pop("images", None), file)
    categories = category_table(top.pop("categories", None), file)
    records = annotation_records(
        stream_items(source, file, "annotations.item"),
        file,
        images={image.image_id: image for image in images if image.image_id is not None},
        categories={category.id: category for category in categories},
    )
    return Parsed(records=records, categories=categories, images=images, extra=top)


def parse_coco_results(
    data: bytes | BinaryIO,
    *,
    file: str,
    images: Mapping[int, FileImage] | None,
    categories: Mapping[int, Category] | None,
) -> Parsed:
    """A COCO results file's detections as records with ``score``, streamed; ``where`` is
    ``results[12]``. ``images`` and ``categories`` are the tables of the instances import
    the results refer to (by id); ``None`` leaves that id unchecked (and a record unlabelled).

    Like pycocotools' ``COCO.loadRes``, the first result decides whether the file holds
    boxes, masks (compressed RLE) or keypoints; each record's ``area`` (and, where the file
    gives none, ``bbox``) is what loadRes computes, listed in ``Record.derived``, and
    ``iscrowd`` is 0. Raises LabelFileError as ``parse_coco`` does, and for a score that is
    not a number in [0, 1]."""
    source = JsonSource(data)
    first = source.first_byte()
    if first != b"[":
        found = "an object" if first == b"{" else "empty" if not first else f"{first!r}"
        raise LabelFileError(
            file,
            "top level",
            f"is {found}; a COCO results file is a JSON list of results "
            '[{"image_id", "category_id", "bbox" | "segmentation" | "keypoints", "score"}] '
            "(a file with images and annotations is an instances file: format coco)",
        )
    records = result_records(stream_items(source, file, "item"), file, images, categories)
    return Parsed(records=records)


def export_coco(
    images: list[FileImage],
    categories: list[Category],
    records: Iterable[Record],
    extra: dict[str, Any] | None = None,
) -> bytes:
    """A COCO instances file (UTF-8 JSON) of every given image, annotated or not, the
    categories, and the records as annotations, their fields as the records hold them.
    ``extra`` adds top-level values (``info``, ``licenses``).

    A record names its image by ``image_id`` (or a ``key`` equal to an image's file name)
    and its category by ``category_id`` (or a ``label`` equal to a category's name); its
    ``source_id`` is its annotation id where no earlier record has it, else it gets a new
    one. An image without an id gets a new one. Raises ValueError for a record whose image
    or category is not given, an image label, or a box in fractions of the image."""
    return export_instances(images, categories, records, extra)


def export_coco_results(records: Iterable[Record]) -> bytes:
    """A COCO results list (UTF-8 JSON) of records with ``image_id``, ``category_id`` and
    ``score``: their bbox, segmentation, keypoints and area as held, less what the importer
    computed (``Record.derived``), so that pycocotools reads it as it read the original.
    Raises ValueError for a record without an image id, category id or score."""
    return export_results(records)
