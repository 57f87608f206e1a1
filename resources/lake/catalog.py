"""The catalog of one table's committed partitions, listed in O(partitions / page size) requests.

Object stores have no delimiter listing in the store interface, and a HEAD of every marker costs
a request per partition. So each commit also writes a small entry under ``<asset>/_catalog/``::

    <asset>/_catalog/<partition>.pending   written before the marker: a commit is under way
    <asset>/_catalog/<partition>.json      written after the marker: the partition is committed
    <asset>/_catalog/_INDEXED              the catalog covers every partition committed before
                                           the catalog existed (written once, by a reader)

A commit can die between any two of these writes. A partition with an entry and no pending
commit is committed; one with a pending commit (a commit under way, or one that died) is looked
up by its marker, which stays the only truth. So the catalog never shows a half-written
partition and never loses a committed one, and the common case is a listing alone.
"""

from __future__ import annotations

import json
import re
from concurrent.futures import ThreadPoolExecutor

from resources.errors import AccessDenied
from resources.stores.base import ObjectStore

CATALOG = "_catalog"
PENDING = ".pending"
ENTRY = ".json"
INDEXED = "_INDEXED"
#: Parallel marker lookups for partitions whose commit is pending.
LOOKUPS = 8


def partition_order(partition: str) -> tuple[tuple[str, int], ...]:
    """Names in their natural order: digits compare as numbers, so that ``src_1000000``
    follows ``src_999999`` (a source's batch numbers outgrow their six digits)."""
    return tuple((text, int(number or -1)) for text, number in re.findall(r"(\D*)(\d*)", partition))


class Catalog:
    """The catalog of the table ``asset`` in ``store`` (the lake's root store)."""

    def __init__(self, store: ObjectStore, asset: str, marker: str) -> None:
        self.store = store
        self.asset = asset
        self.prefix = f"{asset}/{CATALOG}/"
        self.marker = marker  # the marker's name inside a partition's folder

    def begin(self, partition: str) -> None:
        """Say a commit of ``partition`` is under way (before its marker is written). The
        first commit of a table that has none catalogs what was committed before."""
        if not self.store.exists(self.prefix + INDEXED):
            self._index_older_partitions(set())
        self.store.put(self.prefix + partition + PENDING, b"{}")

    def record(self, partition: str, summary: dict[str, object]) -> None:
        """Say ``partition`` is committed (after its marker is written)."""
        self.store.put(self.prefix + partition + ENTRY, json.dumps(summary).encode())
        self.store.delete(self.prefix + partition + PENDING)

    def partitions(self) -> list[str]:
        """The committed partitions, in natural name order (:func:`partition_order`)."""
        entries: set[str] = set()
        pending: set[str] = set()
        indexed = False
        for page in self.store.list_objects(self.prefix):
            for info in page:
                name = info.key[len(self.prefix) :]
                if name == INDEXED:
                    indexed = True
                elif name.endswith(ENTRY):
                    entries.add(name.removesuffix(ENTRY))
                elif name.endswith(PENDING):
                    pending.add(name.removesuffix(PENDING))
        if not indexed:
            entries |= self._index_older_partitions(entries)
        committed = entries - pending
        with ThreadPoolExecutor(LOOKUPS) as pool:
            found = pool.map(lambda p: (p, self._has_marker(p)), sorted(pending))
            committed |= {p for p, has in found if has}
        return sorted(committed, key=partition_order)

    def entry_tokens(self) -> dict[str, str]:
        """By committed partition, the change token of its catalog entry, which every commit
        rewrites: a digest of these says whether anything was committed since (one listing)."""
        tokens: dict[str, str] = {}
        pending: set[str] = set()
        for page in self.store.list_objects(self.prefix):
            for info in page:
                name = info.key[len(self.prefix) :]
                if name.endswith(ENTRY):
                    tokens[name.removesuffix(ENTRY)] = info.change_token
                elif name.endswith(PENDING):
                    pending.add(name.removesuffix(PENDING))
        return {p: t for p, t in tokens.items() if p not in pending}

    def _has_marker(self, partition: str) -> bool:
        return self.store.exists(f"{self.asset}/{partition}/{self.marker}")

    def _index_older_partitions(self, catalogued: set[str]) -> set[str]:
        """Once per table: catalog the partitions committed before the catalog existed (those
        not in ``catalogued``), found by one listing of the whole table."""
        found: set[str] = set()
        top = f"{self.asset}/"
        for page in self.store.list_objects(top):
            for info in page:
                partition, _, name = info.key[len(top) :].partition("/")
                if name == self.marker and partition != CATALOG:
                    found.add(partition)
        try:
            for partition in sorted(found - catalogued):
                self.store.put(
                    self.prefix + partition + ENTRY,
                    json.dumps({"partition": partition, "indexed_later": True}).encode(),
                )
            self.store.put(self.prefix + INDEXED, b"{}")
        except AccessDenied:
            pass  # a read-only lake: every reader lists the table once instead
        return found
