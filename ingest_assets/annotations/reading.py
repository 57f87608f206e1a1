"""Parsing an import's bytes (one file, or for YOLO a folder of label files and the class
list) with its format's importer. A COCO instances import keeps its image and
category tables in the lake, so that a later ``coco-results`` file resolves its ids."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from ingest_assets.annotations.formats.coco import parse_coco, parse_coco_results
from ingest_assets.annotations.formats.csv_labels import parse_csv_labels
from ingest_assets.annotations.formats.labelstudio import parse_labelstudio
from ingest_assets.annotations.formats.voc import parse_voc
from ingest_assets.annotations.formats.yolo import parse_yolo, read_classes
from ingest_assets.annotations.importing import IMPORTS, ImportSpec
from ingest_assets.annotations.records import Category, FileImage, LabelFileError, Parsed
from resources.lake.tables import Lake

YOLO_CLASS_FILES = ("classes.txt", "data.yaml", "data.yml")


@dataclass
class LabelFiles:
    """The bytes an import reads: one file, or a YOLO folder's label files and class list."""

    uri: str
    files: dict[str, bytes] = field(default_factory=dict)  # name (relative) -> bytes

    @property
    def digest(self) -> str:
        h = hashlib.sha256()
        for name in sorted(self.files):
            h.update(name.encode() + b"\x00" + hashlib.sha256(self.files[name]).digest())
        return h.hexdigest()


def parse_import(spec: ImportSpec, read: LabelFiles, lake: Lake) -> Parsed:
    """The file's records, through its format's importer (raises LabelFileError)."""
    (name, data), *_ = read.files.items()
    file = spec.uri
    if spec.format == "coco":
        return parse_coco(data, file=file)
    if spec.format == "coco-results":
        images, categories = coco_tables(lake, file)
        parsed = parse_coco_results(data, file=file, images=images, categories=categories)
        parsed.images, parsed.categories = list(images.values()), list(categories.values())
        return parsed
    if spec.format == "voc":
        return parse_voc(data, file=file)
    if spec.format == "csv":
        return parse_csv_labels(data, file=file)
    if spec.format == "labelstudio":
        return parse_labelstudio(data, file=file)
    classes = read_classes(data, name)
    labels = {k: v for k, v in read.files.items() if k != name}
    return parse_yolo(labels, file=file, classes=classes)


def coco_tables_key(import_key: str) -> str:
    return f"{IMPORTS}/{import_key}.coco.json"


def save_coco_tables(lake: Lake, import_key: str, parsed: Parsed) -> None:
    """Keep a COCO instances import's images and categories (results files name their ids)."""
    body = {
        "images": [vars(i) for i in parsed.images],
        "categories": [vars(c) for c in parsed.categories],
    }
    lake.store.put(coco_tables_key(import_key), json.dumps(body).encode())


def coco_tables(lake: Lake, file: str) -> tuple[dict[int, FileImage], dict[int, Category]]:
    """The image and category ids of the COCO instances import in the lake that a results
    file's ids refer to (there must be exactly one)."""
    found: list[dict[str, Any]] = []
    for page in lake.store.list_objects(f"{IMPORTS}/"):
        for info in page:
            if info.key.endswith(".coco.json"):
                found.append(json.loads(lake.store.get(info.key)))
    if len(found) != 1:
        raise LabelFileError(
            file,
            "",
            "COCO results name images and categories by the ids of a COCO instances file; "
            + (
                "import that file first (--format coco)"
                if not found
                else f"{len(found)} COCO instances imports are in the lake, so the ids are "
                "ambiguous"
            ),
        )
    images = {
        i["image_id"]: FileImage(**i) for i in found[0]["images"] if i["image_id"] is not None
    }
    categories = {c["id"]: Category(**c) for c in found[0]["categories"]}
    return images, categories
