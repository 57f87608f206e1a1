"""Parsing an import's bytes (one file, or for YOLO a folder of label files and the class
list) with its format's importer. A COCO instances import keeps its image and
category tables in the lake, so that a later ``coco-results`` file resolves its ids."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any, BinaryIO

from ingest_assets.annotations.formats.coco import parse_coco, parse_coco_results
from ingest_assets.annotations.formats.csv_labels import parse_csv_labels
from ingest_assets.annotations.formats.labelstudio import parse_labelstudio
from ingest_assets.annotations.formats.voc import parse_voc
from ingest_assets.annotations.formats.yolo import parse_yolo, read_classes
from ingest_assets.annotations.importing import IMPORTS, ImportSpec
from ingest_assets.annotations.records import Category, FileImage, LabelFileError, Parsed
from ingest_assets.names import IMPORTED_ANNOTATIONS
from resources.lake.tables import Lake

YOLO_CLASS_FILES = ("classes.txt", "data.yaml", "data.yml")


@dataclass
class LabelFiles:
    """What an import reads: one file, or a YOLO folder's label files and class list. A large
    JSON file is a seekable stream (a temporary file) rather than bytes in memory."""

    uri: str
    files: dict[str, bytes | BinaryIO] = field(default_factory=dict)  # name (relative) -> data
    #: The SHA-256 of each file's bytes, by name.
    digests: dict[str, bytes] = field(default_factory=dict)

    def add(self, name: str, data: bytes | BinaryIO, digest: bytes | None = None) -> None:
        """Add a file; a stream comes with the digest of its bytes."""
        if digest is None:
            assert isinstance(data, bytes), "a stream comes with its digest"
            digest = hashlib.sha256(data).digest()
        self.files[name], self.digests[name] = data, digest

    @property
    def digest(self) -> str:
        h = hashlib.sha256()
        for name in sorted(self.files):
            h.update(name.encode() + b"\x00" + self.digests[name])
        return h.hexdigest()

    def close(self) -> None:
        """Close the streams (their temporary files go with them)."""
        for data in self.files.values():
            if not isinstance(data, bytes):
                data.close()

    def __enter__(self) -> LabelFiles:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def bytes_of(self, name: str) -> bytes:
        data = self.files[name]
        return data if isinstance(data, bytes) else data.read()


def parse_import(spec: ImportSpec, read: LabelFiles, lake: Lake) -> Parsed:
    """The file's records, through its format's importer (raises LabelFileError)."""
    (name, data), *_ = read.files.items()
    file = spec.uri
    if spec.format not in ("coco", "coco-results"):  # the formats read from a stream
        data = read.bytes_of(name)
    if spec.format == "coco":
        return parse_coco(data, file=file)
    if spec.format == "coco-results":
        images, categories, item_ids = coco_tables(lake, file)
        parsed = parse_coco_results(data, file=file, images=images, categories=categories)
        parsed.images, parsed.categories = list(images.values()), list(categories.values())
        parsed.item_ids = item_ids
        return parsed
    assert isinstance(data, bytes)
    if spec.format == "voc":
        return parse_voc(data, file=file)
    if spec.format == "csv":
        return parse_csv_labels(data, file=file)
    if spec.format == "labelstudio":
        return parse_labelstudio(data, file=file)
    classes = read_classes(data, name)
    labels = {k: read.bytes_of(k) for k in read.files if k != name}
    return parse_yolo(labels, file=file, classes=classes)


COCO_TABLES = ".coco.json"


def coco_tables_key(import_key: str) -> str:
    return f"{IMPORTS}/{import_key}{COCO_TABLES}"


def save_coco_tables(lake: Lake, import_key: str, parsed: Parsed, item_ids: dict[int, str]) -> None:
    """Keep a COCO instances import's images and categories, and the item each image was
    tied to (results files name images and categories by their ids)."""
    body = {
        "images": [asdict(i) for i in parsed.images],
        "categories": [asdict(c) for c in parsed.categories],
        "item_ids": {str(image_id): item for image_id, item in item_ids.items()},
    }
    lake.store.put(coco_tables_key(import_key), json.dumps(body).encode())


def coco_tables(
    lake: Lake, file: str
) -> tuple[dict[int, FileImage], dict[int, Category], dict[int, str]]:
    """The images and categories of the COCO instances import in the lake that a results
    file's ids refer to (there must be exactly one), by id, and by image id the item each
    image was tied to."""
    committed = set(lake.committed_partitions(IMPORTED_ANNOTATIONS))
    found: list[dict[str, Any]] = []
    for page in lake.store.list_objects(f"{IMPORTS}/"):
        for info in page:
            name = info.key.removeprefix(f"{IMPORTS}/")
            if name.endswith(COCO_TABLES) and name.removesuffix(COCO_TABLES) in committed:
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
    item_ids = {int(k): v for k, v in found[0].get("item_ids", {}).items()}
    return images, categories, item_ids
