"""Fetching the object version an item was claimed as, and what becomes of one that cannot be
had. Free of Pyarrow and Dagster: item worker processes import it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from resources.errors import AccessDenied, ObjectChanged, ObjectNotFound
from resources.stores.base import ObjectStore

if TYPE_CHECKING:  # the config models are Dagster Config classes: no Dagster at run time
    from resources.config import VerifyLevel

#: The error reason of a tombstone's item: the claim found the object deleted from its source.
DELETED_FROM_SOURCE = "deleted from the source"


@dataclass(frozen=True)
class Fetched:
    """What fetching one claimed object gave: its bytes, or the row's status and error."""

    data: bytes | None
    outcome: dict[str, Any] = field(default_factory=dict)  # status, error (and bytes: None)


def fetch_object(raw: dict[str, Any], store: ObjectStore, batch: str) -> Fetched:
    """The bytes of the version that was claimed. Objects that cannot be had become an
    outcome; only store failures worth retrying (transient errors) raise. A tombstone
    (``deleted``) is not fetched: its row is ``missing``."""
    key = raw["key"]
    if raw.get("deleted"):
        return Fetched(
            None,
            {
                "bytes": None,
                "status": "missing",
                "error": f"{DELETED_FROM_SOURCE}: {raw['uri']} was no longer listed when batch "
                f"{batch} was claimed",
            },
        )
    try:
        return Fetched(store.get(key, if_token=raw["change_token"]))
    except ObjectChanged:
        error = (
            f"object rewritten since it was claimed: {store.uri(key)}; its new version is "
            "claimed by the next claim"
        )
        return Fetched(None, {"status": "superseded", "error": error})
    except ObjectNotFound:
        return Fetched(
            None, {"status": "missing", "error": f"object no longer exists: {store.uri(key)}"}
        )
    except AccessDenied as exc:
        return Fetched(None, {"status": "unreadable", "error": f"access denied: {exc}"})


_LOCAL_STORES: dict[str, ObjectStore] = {}


def fetch_and_describe_local(
    root: str, raws: list[dict[str, Any]], batch: str, verify: VerifyLevel, max_pixels: int
) -> list[dict[str, object]]:
    """For a group of items of a local folder source, in a worker process: each item's
    fields from its bytes, or why it has none. The worker reads the files itself, so that
    the bytes never cross a pipe."""
    from ingest_assets.items.inspect import describe_bytes
    from resources.stores.local import LocalFolderStore

    store = _LOCAL_STORES.get(root)
    if store is None:
        store = _LOCAL_STORES[root] = LocalFolderStore(root)
    described: list[dict[str, object]] = []
    for raw in raws:
        fetched = fetch_object(raw, store, batch)
        if fetched.data is None:
            described.append(fetched.outcome)
        else:
            described.append(describe_bytes(fetched.data, verify=verify, max_pixels=max_pixels))
    return described
