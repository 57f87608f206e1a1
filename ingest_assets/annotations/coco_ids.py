"""COCO ids for the lake's items and categories, shared by exports and evaluation: the
categories of the COCO imports (their ids kept) and a category for each other label, the
image id each item had in its COCO import's file (so results naming those ids still find
their images), and the category of an annotation or prediction row."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from ingest_assets.annotations.matching import Item, ItemIndex
from ingest_assets.annotations.reading import coco_tables_key
from ingest_assets.annotations.records import Category, FileImage
from resources.errors import BucketlakeError, ObjectNotFound
from resources.lake.tables import Lake


class CategoryConflict(BucketlakeError):
    """Two COCO imports give one category id different names."""


def coco_tables_of(
    lake: Lake, imports: Iterable[str]
) -> tuple[dict[int, Category], dict[str, list[FileImage]], dict[str, dict[int, str]]]:
    """The categories of the COCO instances imports among ``imports``, and by import their
    images and the item each image was tied to. Two imports giving one category id different
    names cannot share one file."""
    categories: dict[int, Category] = {}
    named_by: dict[int, str] = {}
    images: dict[str, list[FileImage]] = {}
    tied: dict[str, dict[int, str]] = {}
    for key in sorted(imports):
        try:
            body = json.loads(lake.store.get(coco_tables_key(key)))
        except ObjectNotFound:
            continue
        images[key] = [FileImage(**entry) for entry in body["images"]]
        tied[key] = {int(k): v for k, v in body.get("item_ids", {}).items()}
        for entry in body["categories"]:
            category = Category(**entry)
            known = categories.setdefault(category.id, category)
            if known.name != category.name:
                raise CategoryConflict(
                    f"COCO imports {named_by[category.id]} and {key} give category id "
                    f"{category.id} the names {known.name!r} and {category.name!r}; use one of "
                    "them, or import them with the same categories"
                )
            named_by.setdefault(category.id, key)
    return categories, images, tied


def with_labels(categories: dict[int, Category], rows: list[dict[str, Any]]) -> list[Category]:
    """The COCO categories, in id order, then a category for each other label."""
    names = {category.name for category in categories.values()}
    fresh = max(categories, default=0) + 1
    extra = sorted({row["label"] for row in rows if row["label"] is not None} - names)
    added = [Category(id=fresh + n, name=label) for n, label in enumerate(extra)]
    return [categories[i] for i in sorted(categories)] + added


def coco_images(
    items: list[dict[str, Any]],
    coco_images: dict[str, list[FileImage]],
    tied: dict[str, dict[int, str]],
) -> dict[str, FileImage]:
    """By item id, the image of a COCO import's file that names the item (the first import,
    in key order, where several do): the item the import tied the image to, or for an import
    that kept no ties, the item its file name names."""
    wanted = {i["item_id"] for i in items}
    index: ItemIndex | None = None  # only for an import that kept no ties (built once)
    found: dict[str, FileImage] = {}
    for key in sorted(coco_images):
        ties = tied.get(key, {})
        if not ties and index is None:
            index = ItemIndex(
                Item(i["item_id"], i["key"], None, i["width"], i["height"]) for i in items
            )
        for image in coco_images[key]:
            if ties:
                item_id = ties.get(image.image_id) if image.image_id is not None else None
            else:
                assert index is not None
                item, _ = index.find(image.file_name)
                item_id = item.item_id if item is not None else None
            if item_id is not None and item_id in wanted:
                found.setdefault(item_id, image)
    return found


def image_ids(items: list[dict[str, Any]], matched: dict[str, FileImage]) -> dict[str, int]:
    """COCO image ids by item: the id its COCO import's file gave it where no other item has
    it, else a new one, so that results naming the file's ids still find their images."""
    ids: dict[str, int] = {}
    taken: set[int] = set()
    for item in items:
        image = matched.get(item["item_id"])
        if image is not None and image.image_id is not None and image.image_id not in taken:
            ids[item["item_id"]] = image.image_id
            taken.add(image.image_id)
    fresh = max(taken, default=0) + 1
    for item in items:
        if item["item_id"] not in ids:
            ids[item["item_id"]], fresh = fresh, fresh + 1
    return ids


class CategoryOf:
    """A row's category: a COCO import's row keeps its category id; any other row is placed
    by its label (a YOLO class index or a VOC file's order is not a COCO category id)."""

    def __init__(self, categories: list[Category], coco_imports: set[str]) -> None:
        self.by_id = {category.id: category for category in categories}
        self.by_name = {category.name: category for category in categories}
        self.coco_imports = coco_imports

    def of(self, row: dict[str, Any]) -> Category | None:
        by_id = self.by_id.get(row["category_id"]) if row["category_id"] is not None else None
        if by_id is not None and (
            row["import"] in self.coco_imports or row["label"] in (None, by_id.name)
        ):
            return by_id  # a COCO import's id, or a results file's id of one
        return self.by_name.get(row["label"]) if row["label"] is not None else None
