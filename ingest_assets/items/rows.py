"""One dataset item row from one claimed object version: fetch, hash, inspect, label."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from ingest_assets.items.identity import item_id
from ingest_assets.items.inspect import inspect_image
from ingest_assets.items.labels import label_and_split
from resources.errors import AccessDenied, ObjectChanged, ObjectNotFound
from resources.stores.base import ObjectStore

if TYPE_CHECKING:  # the config models are Dagster Config classes: no Dagster at run time
    from resources.config import SourceConfig

#: Bump when item rows would come out differently for the same input (invalidates checkpoints).
ITEMS_CODE_VERSION = "items-2"

ITEMS_SCHEMA = pa.schema(
    [
        ("item_id", pa.string()),
        ("batch", pa.string()),
        ("source", pa.string()),
        ("key", pa.string()),
        ("reference_id", pa.string()),
        ("uri", pa.string()),
        ("change_token", pa.string()),
        ("kind", pa.string()),
        ("frame", pa.int32()),
        ("width", pa.int32()),
        ("height", pa.int32()),
        ("format", pa.string()),
        ("mode", pa.string()),
        ("frames", pa.int32()),
        ("orientation", pa.int16()),
        ("bytes", pa.int64()),
        ("sha256", pa.string()),
        ("phash", pa.string()),
        ("label", pa.string()),
        ("split", pa.string()),
        ("status", pa.string()),
        ("error", pa.string()),
        ("metadata", pa.string()),
    ]
)

#: Statuses an item can have (DESIGN §1). ``unreadable``: the store refused to give the object's
#: bytes; ``superseded``: the object was rewritten after it was claimed (its new version is
#: claimed by a later batch).
STATUSES = ("ok", "corrupt", "missing", "unreadable", "superseded")


def error_reason(error: str | None) -> str:
    """The reason an error message gives, without its details (for counting by reason)."""
    return (error or "").split(":", 1)[0].strip()


def build_item(
    raw: dict[str, Any], store: ObjectStore, source: SourceConfig, batch: str
) -> dict[str, Any]:
    """The ``dataset_items`` row for one ``raw_items`` row. Bad objects become rows with a
    status and an error; only store failures worth retrying (transient errors) raise."""
    key = raw["key"]
    iid = item_id(source.name, key)
    label, split = label_and_split(
        key, source.label_strategy, item_id=iid, test_fraction=source.test_fraction
    )
    row: dict[str, Any] = {
        "item_id": iid,
        "batch": batch,
        "source": source.name,
        "key": key,
        "reference_id": key,
        "uri": raw["uri"],
        "change_token": raw["change_token"],
        "kind": raw["kind"],
        "frame": None,
        "bytes": raw["size"],
        "label": label,
        "split": split,
        "metadata": raw.get("metadata"),
    }
    try:
        data = store.get(key, if_token=raw["change_token"])  # the version that was claimed
    except ObjectChanged:
        return {
            **row,
            "status": "superseded",
            "error": f"object rewritten since it was claimed: {store.uri(key)}; its new version "
            "is claimed by the next claim",
        }
    except ObjectNotFound:
        return {**row, "status": "missing", "error": f"object no longer exists: {store.uri(key)}"}
    except AccessDenied as exc:
        return {**row, "status": "unreadable", "error": f"access denied: {exc}"}
    facts = inspect_image(data, verify=source.verify, max_pixels=source.max_image_pixels)
    return {
        **row,
        "bytes": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "width": facts.width,
        "height": facts.height,
        "format": facts.format,
        "mode": facts.mode,
        "frames": facts.frames,
        "orientation": facts.orientation,
        "phash": facts.phash,
        "status": facts.status,
        "error": facts.error,
    }
