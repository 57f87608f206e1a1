"""Fetching the object version an item was claimed as, and what becomes of one that cannot be
had. Free of Pyarrow and Dagster: item worker processes import it.

Every fetch failure that survives the store's retries becomes the item's status and error, its
reason first (the text before the first ``:``, which the metadata counts): ``missing`` (gone),
``superseded`` (rewritten since the claim) or ``unreadable`` (refused, unresolvable, a key the
store cannot address, larger than ``max_object_bytes``, past ``fetch_deadline_seconds``,
unavailable after retries, ...). Objects
are read within the source's limits, and one whose listed size is already over the cap is not
read at all.

One exception: while the step has retries left (:attr:`FetchRules.raise_transient`), a
transient failure raises, so that Dagster runs the step again after a pause (resuming after the
last checkpoint) rather than record as unreadable an object that could be read a minute later.
Whether a whole batch failing so means the store is down is decided over the batch
(:mod:`ingest_assets.assets.item_workers`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from resources.errors import (
    BAD_CREDENTIALS,
    TOO_LARGE,
    ObjectChanged,
    ObjectNotFound,
    StoreError,
    TransientStoreError,
    read_failure_reason,
)
from resources.stores.base import NO_LIMITS, ObjectStore, ReadLimits, shown_uri

if TYPE_CHECKING:  # the config models are Dagster Config classes: no Dagster at run time
    from resources.config import SourceConfig, VerifyLevel

#: The error reason of a tombstone's item: the claim found the object deleted from its source.
DELETED_FROM_SOURCE = "deleted from the source"
#: Error reasons of unreadable items (besides those of ``resources.errors``).
UNAVAILABLE = "unavailable after retries"
#: Reasons that say more about the store than about the object (see item_workers' outage rule).
STORE_FAILURES = frozenset({UNAVAILABLE, BAD_CREDENTIALS})


@dataclass(frozen=True)
class FetchRules:
    """How a batch fetches its objects: within ``limits``; with ``raise_transient``, transient
    failures raise (the step will be run again) instead of becoming items."""

    limits: ReadLimits = NO_LIMITS
    raise_transient: bool = False

    @classmethod
    def of(cls, source: SourceConfig, *, raise_transient: bool = False) -> FetchRules:
        limits = ReadLimits(source.max_object_bytes, source.fetch_deadline_seconds)
        return cls(limits, raise_transient)


@dataclass(frozen=True)
class Fetched:
    """What fetching one claimed object gave: its bytes, or the row's status and error."""

    data: bytes | None
    outcome: dict[str, Any] = field(default_factory=dict)  # status, error (and bytes: None)


def fetch_object(
    raw: dict[str, Any], store: ObjectStore, batch: str, rules: FetchRules = FetchRules()
) -> Fetched:
    """The bytes of the version that was claimed, or the outcome of an object that cannot be
    had (see the module's docstring). A tombstone (``deleted``) is not fetched: its row is
    ``missing``."""
    uri = shown_uri(raw["uri"])
    if raw.get("deleted"):
        return Fetched(
            None,
            {
                "bytes": None,
                "status": "missing",
                "error": f"{DELETED_FROM_SOURCE}: {uri} was no longer listed when batch "
                f"{batch} was claimed",
            },
        )
    listed, limits = raw.get("size") or 0, rules.limits
    if limits.max_bytes is not None and listed > limits.max_bytes:
        found = f"its listed size is {listed} bytes"
        return _unreadable(TOO_LARGE, uri, limits.too_large(found, uri, store=store.name, key=uri))
    try:
        return Fetched(store.get_bounded(raw["key"], if_token=raw["change_token"], limits=limits))
    except ObjectChanged:
        error = (
            f"object rewritten since it was claimed: {uri}; its new version is claimed by the "
            "next claim"
        )
        return Fetched(None, {"status": "superseded", "error": error})
    except ObjectNotFound:
        return Fetched(None, {"status": "missing", "error": f"object no longer exists: {uri}"})
    except TransientStoreError as exc:
        if rules.raise_transient:
            raise
        return _unreadable(UNAVAILABLE, uri, exc)
    except StoreError as exc:
        return _unreadable(read_failure_reason(exc), uri, exc)


def _unreadable(reason: str, uri: str, exc: StoreError) -> Fetched:
    """An unreadable item's outcome; its error names the location and what failed."""
    detail = str(exc)
    if uri not in detail:
        detail = f"{uri}: {detail}"
    return Fetched(None, {"status": "unreadable", "error": f"{reason}: {detail}"})


_LOCAL_STORES: dict[tuple[str, bool], ObjectStore] = {}


def fetch_and_describe_local(
    root: str,
    raws: list[dict[str, Any]],
    batch: str,
    verify: VerifyLevel,
    max_pixels: int,
    rules: FetchRules = FetchRules(),
    follow_symlinks: bool = False,
) -> list[dict[str, object]]:
    """For a group of items of a local folder source, in a worker process: each item's
    fields from its bytes, or why it has none. The worker reads the files itself (as the
    source's store would: ``follow_symlinks`` is its setting), so that the bytes never cross
    a pipe."""
    from ingest_assets.items.inspect import describe_bytes
    from resources.stores.local import LocalFolderStore

    store = _LOCAL_STORES.get((root, follow_symlinks))
    if store is None:
        store = LocalFolderStore(root, follow_symlinks=follow_symlinks)
        _LOCAL_STORES[(root, follow_symlinks)] = store
    described: list[dict[str, object]] = []
    for raw in raws:
        fetched = fetch_object(raw, store, batch, rules)
        if fetched.data is None:
            described.append(fetched.outcome)
        else:
            described.append(describe_bytes(fetched.data, verify=verify, max_pixels=max_pixels))
    return described
