"""What a label or prediction file says, before it is tied to items: the records every format's
importer yields, the items a file may define itself, and the error that names where a file is
wrong. Free of Dagster and Pyarrow: importers are plain functions over bytes.

Coordinates follow COCO: a box is ``[x, y, width, height]`` from the image's top-left corner,
in pixels. Formats that give fractions of the image (YOLO's normalised boxes, Label Studio's
percentages) say so with ``units="fraction"``; the importer turns them into pixels once the
item's width and height are known, and never rounds what a pixel-based file gave.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

#: The formats the config (``annotations: [{glob, format}]``) and ``bucketlake import`` take.
FORMATS = ("coco", "coco-results", "yolo", "voc", "csv", "labelstudio")
Format = Literal["coco", "coco-results", "yolo", "voc", "csv", "labelstudio"]

#: ``object``: a located thing (box, and maybe a mask or keypoints); ``class``: a label of the
#: whole image (classification).
Kind = Literal["object", "class"]
Units = Literal["pixel", "fraction"]


class LabelFileError(ValueError):
    """A label file that cannot be imported as it is; the message names the file, the record
    and the field, and what to change. Nothing of the file is imported."""

    def __init__(self, file: str, where: str, problem: str) -> None:
        self.file, self.where, self.problem = file, where, problem
        super().__init__(f"{file}: {where}: {problem}" if where else f"{file}: {problem}")


@dataclass(frozen=True)
class ItemRef:
    """How a record names its item. Matched in this order: ``image_id`` through the file's
    own image table, then ``key`` (a key or file name relative to a source), then
    ``reference_id``."""

    key: str | None = None
    reference_id: str | None = None
    image_id: int | None = None

    def describe(self) -> str:
        for name in ("key", "reference_id", "image_id"):
            value = getattr(self, name)
            if value is not None:
                return f"{name} {value!r}"
        return "no item reference"


@dataclass
class Record:
    """One annotation (or, with ``score``, one prediction) as its file gives it."""

    item: ItemRef
    #: Where in the file, for messages: ``annotations[12] (id 4031)``, ``line 7``.
    where: str
    kind: Kind = "object"
    label: str | None = None
    category_id: int | None = None
    bbox: list[float] | None = None  # [x, y, width, height]
    units: Units = "pixel"
    #: A COCO segmentation as given: polygons ``[[x1, y1, x2, y2, ...], ...]`` or an RLE
    #: ``{"size": [h, w], "counts": ...}`` (compressed string or uncompressed list).
    segmentation: Any = None
    area: float | None = None
    iscrowd: int = 0
    keypoints: list[float] | None = None  # x, y, visibility triples
    num_keypoints: int | None = None
    score: float | None = None
    #: The record's own id in its file (COCO annotation id), kept for round trips.
    source_id: int | None = None
    attributes: dict[str, Any] = field(default_factory=dict)
    #: The fields the importer computed rather than read (a COCO result's ``area`` and
    #: ``bbox``, as pycocotools computes them); an exporter leaves them out, so that the file
    #: it writes says what the original said and evaluates the same.
    derived: frozenset[str] = frozenset()
    #: What a COCO results file's detections are scored as (``bbox``, ``segm`` or
    #: ``keypoints``: the type pycocotools' ``loadRes`` takes from the file's first result).
    result_type: str | None = None


@dataclass(frozen=True, slots=True)
class FileImage:
    """An image a label file describes itself (COCO ``images``): it may link items directly,
    with the size the file gives, without fetching anything."""

    image_id: int | None
    file_name: str
    width: int | None = None
    height: int | None = None
    #: The rest of the entry (license, coco_url, date_captured, ...), kept for round trips.
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Category:
    id: int
    name: str
    supercategory: str | None = None
    keypoints: list[str] | None = None
    skeleton: list[list[int]] | None = None
    #: The rest of the entry (a colour, LVIS's frequency, ...), kept for round trips.
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Parsed:
    """What an importer gives for one file: its categories and images (where the format has
    them), then its records, streamed."""

    records: Iterator[Record]
    categories: list[Category] = field(default_factory=list)
    images: list[FileImage] = field(default_factory=list)
    #: Anything else of the file worth keeping for a round trip (COCO ``info``, ``licenses``).
    extra: dict[str, Any] = field(default_factory=dict)
    #: By image id, the item an earlier import tied the image to (a COCO results file's
    #: images are those of the instances import in the lake).
    item_ids: dict[int, str] = field(default_factory=dict)


def finite_number(text: str, file: str, where: str, field: str) -> float:
    """``text`` as a finite number, or LabelFileError naming the file, record and field."""
    try:
        value = float(text)
    except ValueError:
        raise LabelFileError(file, where, f"{field} {text!r} is not a number") from None
    if not math.isfinite(value):
        raise LabelFileError(file, where, f"{field} {text!r} is not a finite number")
    return value


def number_text(value: float) -> str:
    """A number as a text label file writes it: plain decimals, no exponent, no float noise
    (``0.4386875``, not ``0.43868750000000003``; ``48`` for 48.0); it reads back to 1e-12."""
    text = f"{round(value, 12) + 0.0:.12f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text
