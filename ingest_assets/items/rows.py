"""One dataset item row from one claimed object version: fetch, hash, inspect, label."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pyarrow as pa

from ingest_assets.items.fetch import DELETED_FROM_SOURCE, FetchRules, fetch_object
from ingest_assets.items.identity import item_id
from ingest_assets.items.inspect import describe_bytes
from ingest_assets.items.labels import label_and_split
from resources.stores.base import ObjectStore

if TYPE_CHECKING:  # the config models are Dagster Config classes: no Dagster at run time
    from resources.config import SourceConfig

#: Bump when item rows would come out differently for the same input (invalidates checkpoints).
ITEMS_CODE_VERSION = "items-3"

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

#: Statuses an item can have (DESIGN §1). ``missing``: deleted from its source (a tombstone, or
#: gone when its batch fetched it); ``unreadable``: the store refused or could not deliver the
#: object's bytes after retries (access, DNS, size cap, deadline, a local file outside the
#: manifest's roots); ``superseded``: the object was rewritten after it was claimed (its new
#: version is claimed by a later batch).
STATUSES = ("ok", "corrupt", "missing", "unreadable", "superseded")


def error_reason(error: str | None) -> str:
    """The reason an error message gives, without its details (for counting by reason)."""
    return (error or "").split(":", 1)[0].strip()


def is_tombstone(row: dict[str, Any]) -> bool:
    """Whether an item row says its object was deleted from the source (not that it is bad)."""
    return row["status"] == "missing" and error_reason(row["error"]) == DELETED_FROM_SOURCE


def item_row_start(raw: dict[str, Any], source: SourceConfig, batch: str) -> dict[str, Any]:
    """The fields of an item row known before its object is fetched."""
    key = raw["key"]
    iid = item_id(source.name, key)
    label, split = label_and_split(
        key, source.label_strategy, item_id=iid, test_fraction=source.test_fraction
    )
    return {
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


def build_item(
    raw: dict[str, Any],
    store: ObjectStore,
    source: SourceConfig,
    batch: str,
    rules: FetchRules | None = None,
) -> dict[str, Any]:
    """The ``dataset_items`` row for one ``raw_items`` row (:func:`fetch_object` with
    ``rules``, by default the source's limits, then :func:`describe_bytes` of what was
    fetched). Bad objects become rows with a status and an error."""
    row = item_row_start(raw, source, batch)
    fetched = fetch_object(raw, store, batch, rules or FetchRules.of(source))
    if fetched.data is None:
        return {**row, **fetched.outcome}
    described = describe_bytes(
        fetched.data, verify=source.verify, max_pixels=source.max_image_pixels
    )
    return {**row, **described}
