"""Tying a label file's records to items: by key, by reference id, or by a file name that only
one item has, and turning fractions of an image into pixels once the item's size is known.
A record that no item answers to is never dropped in silence: it comes back unmatched, with
the reason."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ingest_assets.annotations.records import FileImage, ItemRef, Record


@dataclass(frozen=True, slots=True)
class Item:
    """What matching needs of an item (a row of the current ``dataset_items``)."""

    item_id: str
    key: str
    reference_id: str | None
    width: int | None
    height: int | None
    source: str | None = None


class ItemIndex:
    """The items a file's records may name, looked up by id, key, reference id and file
    name. A name that several items answer to names none of them: the record is reported as
    ambiguous, never tied to one of them at random."""

    def __init__(self, items: Iterable[Item]) -> None:
        self.by_id: dict[str, Item] = {}
        self.by_key: dict[str, list[Item]] = defaultdict(list)
        self.by_reference: dict[str, list[Item]] = defaultdict(list)
        self.by_name: dict[str, list[Item]] = defaultdict(list)
        self.by_stem: dict[str, list[Item]] = defaultdict(list)
        for item in items:
            self.add(item)

    def _lists(self, item: Item) -> list[list[Item]]:
        lists = [
            self.by_key[item.key],
            self.by_name[_name(item.key)],
            self.by_stem[_name(_stem(item.key))],
        ]
        return [*lists, self.by_reference[item.reference_id]] if item.reference_id else lists

    def add(self, item: Item) -> None:
        """Index ``item``, in place of the item with its id indexed before."""
        old = self.by_id.get(item.item_id)
        if old is not None:
            for found in self._lists(old):
                found.remove(old)
        self.by_id[item.item_id] = item
        for found in self._lists(item):
            found.append(item)

    @classmethod
    def of_rows(cls, rows: Iterable[Mapping[str, Any]]) -> ItemIndex:
        return cls(
            Item(
                r["item_id"],
                r["key"],
                r.get("reference_id"),
                r.get("width"),
                r.get("height"),
                r.get("source"),
            )
            for r in rows
        )

    def find(self, name: str) -> tuple[Item | None, str]:
        """The item ``name`` (a key, file name or reference id) names, or None and why not."""
        name = name.removeprefix("./")
        for what, value, candidates in (
            ("key", name, self.by_key.get(name, [])),
            ("reference id", name, self.by_reference.get(name, [])),
            ("file name", _name(name), self.by_name.get(_name(name), [])),
        ):
            if candidates:
                return _one(candidates, f"the {what} {value!r}")
        return None, "no item has this key, reference id or file name"

    def find_stem(self, stem: str) -> tuple[Item | None, str]:
        """The one item whose key, less its extension, is ``stem`` or ends with ``/stem`` (a
        YOLO label file names its image so), or None and why not."""
        candidates = [
            c
            for c in self.by_stem.get(_name(stem), [])
            if _stem(c.key) == stem or _stem(c.key).endswith("/" + stem)
        ]
        if candidates:
            return _one(candidates, f"keys ending in {stem!r}")
        return None, f"no item's key, less its extension, ends in {stem!r}"


def _one(candidates: list[Item], what: str) -> tuple[Item | None, str]:
    """The one candidate, or None and a reason that names some of them."""
    if len(candidates) == 1:
        return candidates[0], ""
    keys = ", ".join(sorted(f"{c.source or '?'}:{c.key}" for c in candidates)[:3])
    return None, f"{len(candidates)} items have {what} ({keys}...)"


def _name(key: str) -> str:
    return key.rsplit("/", 1)[-1]


def _stem(key: str) -> str:
    name = _name(key)
    dot = name.rfind(".")
    return key[: len(key) - len(name) + dot] if dot > 0 else key


@dataclass(frozen=True)
class Unmatched:
    """A record whose item could not be found, named for the person who fixes the file."""

    where: str
    reference: str
    reason: str


def resolve(
    record: Record, index: ItemIndex, images: Mapping[int, FileImage]
) -> tuple[Item | None, str]:
    """The item a record names, or None and why not."""
    ref: ItemRef = record.item
    if ref.image_id is not None:
        image = images.get(ref.image_id)
        if image is None:
            return None, f"image id {ref.image_id} is not in the file's images"
        return index.find(image.file_name)
    stem = record.attributes.get("key_stem")
    if isinstance(stem, str):
        return index.find_stem(stem)
    if ref.key is not None:
        item, why = index.find(ref.key)
        if item is not None or ref.reference_id is None:
            return item, why
    if ref.reference_id is not None:
        return index.find(ref.reference_id)
    return None, "the record names no item"


def in_pixels(record: Record, item: Item) -> Record | None:
    """The record with fractions of the image turned into pixels (None when the item's size is
    unknown, as for an item whose bytes could not be read)."""
    if record.units == "pixel":
        return record
    if not item.width or not item.height:
        return None
    w, h = float(item.width), float(item.height)
    bbox = None
    if record.bbox is not None:
        x, y, bw, bh = record.bbox
        bbox = [x * w, y * h, bw * w, bh * h]
    segmentation = record.segmentation
    if isinstance(segmentation, list):
        segmentation = [
            [v * (w if i % 2 == 0 else h) for i, v in enumerate(polygon)]
            for polygon in segmentation
        ]
    keypoints = record.keypoints
    if keypoints is not None:
        keypoints = [
            v * w if i % 3 == 0 else v * h if i % 3 == 1 else v for i, v in enumerate(keypoints)
        ]
    area = record.area * w * h if record.area is not None else None
    return Record(
        **{
            **record.__dict__,
            "bbox": bbox,
            "segmentation": segmentation,
            "keypoints": keypoints,
            "area": area,
            "units": "pixel",
        }
    )


def outside(record: Record, item: Item) -> bool:
    """Whether the record's box reaches outside its image."""
    if record.bbox is None or not item.width or not item.height:
        return False
    x, y, w, h = record.bbox
    return x < 0 or y < 0 or x + w > item.width or y + h > item.height


def clipped(record: Record, item: Item) -> Record:
    """The record with its box cut to the image (``boxes: clip``); its area follows the box
    when the record has no mask."""
    assert record.bbox is not None and item.width and item.height
    x, y, w, h = record.bbox
    x0, y0 = min(max(x, 0.0), item.width), min(max(y, 0.0), item.height)
    x1, y1 = min(max(x + w, 0.0), item.width), min(max(y + h, 0.0), item.height)
    bbox = [x0, y0, x1 - x0, y1 - y0]
    area = record.area if record.segmentation else bbox[2] * bbox[3]
    return Record(**{**record.__dict__, "bbox": bbox, "area": area})
