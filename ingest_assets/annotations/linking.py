"""Items a COCO file defines itself, as Deep Lake's linked tensors do: a COCO instances file
alone is a complete dataset. Each image of the file is tied to the item it names; one that no
current item answers to becomes an item of the reserved source ``linked``, its URI the file
name resolved against the import's image root (by default the folder the file is in), its
width and height as the file gives them. Nothing is fetched: a linked item's bytes are read by
whatever needs its pixels later, and its ``format`` and hashes stay empty until then.

A linked item's key is where its URI points, less the scheme (``data/coco/val2014/1.jpg``
for ``file:///data/coco/val2014/1.jpg``, ``bucket/val2014/1.jpg`` for ``s3://bucket/...``), so
the same image linked by two files is one item, two files' ``img_1.jpg`` from different
folders are two, and an export writes each under a path of its own. Free of Dagster: the
import asset writes the rows as a ``dataset_items`` partition of its own (``linked_000001``,
...) before the annotations that name them.
"""

from __future__ import annotations

import json
import posixpath
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote, urlparse

from ingest_assets.annotations.importing import ImportSpec
from ingest_assets.annotations.matching import Item, ItemIndex
from ingest_assets.annotations.records import FileImage
from ingest_assets.annotations.table import RowBuffer
from ingest_assets.items.identity import item_id
from ingest_assets.items.rows import ITEMS_SCHEMA
from resources.lake.datapool import LINKED_SOURCE, batch_key, parse_batch_key

__all__ = [
    "LINKED_SOURCE",
    "Ties",
    "image_root",
    "linked_key",
    "linked_uri",
    "next_linked_batch",
    "tie_images",
]


def image_root(spec: ImportSpec) -> str:
    """Where the relative file names of a COCO import's images are: ``--images``, else the
    folder of the file (as ``file://`` for a local one)."""
    root = spec.images or spec.uri.rstrip("/").rsplit("/", 1)[0]
    return _as_uri(root)


def _as_uri(location: str) -> str:
    if "://" in location:
        return location.rstrip("/")
    return "file://" + quote(posixpath.normpath(location))


def linked_uri(file_name: str, root: str) -> str:
    """The URI an image's ``file_name`` names: itself where it is a URI or an absolute path,
    else ``root``/``file_name``."""
    if "://" in file_name or file_name.startswith("/"):
        return _as_uri(file_name)
    if urlparse(root).scheme == "file":
        folder = unquote(urlparse(root).path)
        return "file://" + quote(posixpath.normpath(posixpath.join(folder, file_name)))
    return f"{root}/{file_name.removeprefix('./')}"


def linked_key(uri: str) -> str:
    """The key of the linked item of ``uri``: its location less the scheme."""
    parsed = urlparse(uri)
    if parsed.scheme == "file":
        return unquote(parsed.path).lstrip("/")
    return f"{parsed.netloc}{parsed.path}"


@dataclass
class Ties:
    """Which item each image of a COCO file names (by image id), and the item rows a linking
    import adds: images no item answered to, and linked items whose size the file changed."""

    items: dict[int, Item] = field(default_factory=dict)
    #: The partition the linked rows go to, and the rows.
    batch: str | None = None
    rows: RowBuffer = field(default_factory=lambda: RowBuffer(ITEMS_SCHEMA))
    matched: int = 0  # images tied to items already in the lake
    linked: int = 0  # new linked items
    resized: int = 0  # linked items whose width or height the file changed
    unmatched: int = 0  # images tied to no item (an import that does not link)

    @classmethod
    def of_ids(cls, item_ids: dict[int, str], index: ItemIndex) -> Ties:
        """The ties an earlier import made (by image id, item id), to the items still current."""
        ties = cls()
        for image_id, item in item_ids.items():
            if item in index.by_id:
                ties.items[image_id] = index.by_id[item]
        return ties

    @property
    def item_ids(self) -> dict[int, str]:
        return {image_id: item.item_id for image_id, item in self.items.items()}

    def summary(self) -> dict[str, int]:
        return {
            "images_matched": self.matched,
            "images_linked": self.linked,
            "images_resized": self.resized,
            "images_unmatched": self.unmatched,
        }


def tie_images(
    images: Iterable[FileImage], index: ItemIndex, spec: ImportSpec, *, batch: str | None
) -> Ties:
    """Tie each image to its item. An import that links (``spec.link``; ``batch`` names the
    partition its rows go to) first looks for the linked item of the image's URI, then for a
    configured source's item by key, reference id or file name, and links the image where
    neither is found; any other import looks for an item by key, reference id or file name."""
    ties = Ties(batch=batch)
    root = image_root(spec) if spec.link else ""
    for image in images:
        if image.image_id is None:
            continue
        if not spec.link:
            found, _ = index.find(image.file_name)
            if found is None:
                ties.unmatched += 1
            else:
                ties.items[image.image_id], ties.matched = found, ties.matched + 1
            continue
        assert batch is not None, "an import that links names the partition of its items"
        uri = linked_uri(image.file_name, root)
        key = linked_key(uri)
        known = next((i for i in index.by_key.get(key, []) if i.source == LINKED_SOURCE), None)
        if known is None:
            found, _ = index.find(image.file_name)
            # A linked item answers by its key (a file exported from this lake names it so),
            # never by a bare file name that another folder's image may share.
            if found is not None and (
                found.source != LINKED_SOURCE or found.key == image.file_name.removeprefix("./")
            ):
                ties.items[image.image_id], ties.matched = found, ties.matched + 1
                continue
        if known is not None and (known.width, known.height) == (image.width, image.height):
            ties.items[image.image_id], ties.matched = known, ties.matched + 1
            continue
        row = linked_row(image, uri, spec, batch)
        item = Item(row["item_id"], key, image.file_name, image.width, image.height, LINKED_SOURCE)
        index.add(item)
        ties.items[image.image_id] = item
        ties.rows.add(row)
        if known is None:
            ties.linked += 1
        else:
            ties.resized += 1
    return ties


def linked_row(image: FileImage, uri: str, spec: ImportSpec, batch: str) -> dict[str, Any]:
    """The ``dataset_items`` row of a linked image: what the file says, nothing fetched."""
    key = linked_key(uri)
    return {
        "item_id": item_id(LINKED_SOURCE, key),
        "batch": batch,
        "source": LINKED_SOURCE,
        "key": key,
        "reference_id": image.file_name,
        "uri": uri,
        "change_token": None,
        "kind": "image",
        "frame": None,
        "width": image.width,
        "height": image.height,
        "format": None,
        "mode": None,
        "frames": None,
        "orientation": None,
        "bytes": None,
        "sha256": None,
        "phash": None,
        "label": None,
        "split": None,
        "status": "ok",
        "error": None,
        "metadata": json.dumps({"linked_by": spec.uri, "image_id": image.image_id}),
    }


def next_linked_batch(committed: Iterable[str]) -> str:
    """The next partition of linked items after the committed ``dataset_items`` partitions."""
    keys = [parse_batch_key(p) for p in committed if p.startswith(f"{LINKED_SOURCE}_")]
    seqs = [seq for source, seq in keys if source == LINKED_SOURCE]
    return batch_key(LINKED_SOURCE, max(seqs, default=0) + 1)
