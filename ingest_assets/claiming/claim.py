"""Claiming: new or changed object versions of a source become batches, exactly once.

One function serves every claimer (the ``datapool_<source>`` sensor and ``bucketlake sync``).
Under a per-source claim lease it lists the source page by page, walks each page beside the
datapool record (the latest claimed version of every key, sorted by key as every store lists),
keeps the object versions that are not the latest one the record holds for their key, cuts
them into batches and writes each batch's manifest create-only. The manifests are the
datapool's only truth, so a claimer that dies after writing a manifest loses nothing: the next
claim reports that batch as not yet registered, and it is registered then. Even without the
lease, two claimers could not both win a batch: a manifest write that loses the create-only
race re-reads the datapool and drops what the winner decided about the same keys.

Deletions are versions too. A key the record holds (not already deleted) that the listing
passes over is gone from the source: it gets a tombstone, a manifest row that ``dataset_items``
turns into a ``missing`` item, in the same batches as new objects. Keys between two listed keys
are known gone as soon as the later one is listed, so a listing cut by the sensor's deadline
emits those and resumes from its cursor next tick; keys after the last listed key are known gone
only once the listing is exhausted. Only keys the source's include/exclude globs still accept
get tombstones: a key that a changed filter now leaves out is not deleted, and its last claimed
version stays current (a tombstone follows if it disappears while the filter accepts it). Nor
does a version claimed by another claimer after this listing began count as deleted when this
listing misses it. An object that appears again after its tombstone is claimed again, whatever
its change token.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING
from urllib.parse import quote

from ingest_assets.claiming.globs import KeyFilter
from resources.errors import InvalidKey, LakeError, PreconditionFailed, StoreError
from resources.lake.datapool import (
    CLAIM_LEASE,
    DatapoolRecord,
    Tombstone,
    batch_key,
    datapool_prefix,
    datapool_record,
    manifest_bytes,
    manifest_key,
)
from resources.lake.latest_versions import Entry, token_hash
from resources.lake.lease import Lease
from resources.stores.base import ObjectInfo, ObjectStore

if TYPE_CHECKING:  # the config models are Dagster Config classes: no Dagster at run time
    from resources.config import SourceConfig

MAX_CREATE_RACES = 20

#: What a claim puts in a batch: an object version, or a tombstone for an object deleted.
Version = ObjectInfo | Tombstone


@dataclass
class ClaimResult:
    """What one claim did."""

    new_batches: list[str] = field(default_factory=list)
    #: Every manifest in the lake whose partition the caller has not registered (new ones too).
    unregistered: list[str] = field(default_factory=list)
    new_objects: int = 0  # object versions written into new batches, tombstones included
    deleted: int = 0  # of those, tombstones: objects found deleted from the source
    pending: int = 0  # new object versions left for a later claim (a trickle still filling)
    listed: int = 0
    exhausted: bool = True
    #: Something the claimer's user should hear about (said in the sensor's and sync's logs).
    warning: str = ""
    #: Where the next claim should resume a listing this one did not finish ("" = start).
    cursor: str = ""


def cut_batches(
    new: Sequence[Version],
    *,
    batch_size: int,
    min_batch_size: int,
    max_wait_seconds: float,
    now: datetime,
    close_all: bool,
) -> tuple[list[list[Version]], list[Version]]:
    """Cut new object versions (in listing order) into batches; return (batches, pending).

    Full batches are always cut. The remainder becomes a batch when ``close_all`` is set, when
    it holds ``min_batch_size`` objects, or when its oldest object has waited
    ``max_wait_seconds``; otherwise it stays pending, so partitions grow with data, not ticks.
    """
    batches = [list(new[i : i + batch_size]) for i in range(0, len(new), batch_size)]
    if not batches or len(batches[-1]) == batch_size:
        return batches, []
    rest = batches[-1]
    oldest = min(o.last_modified for o in rest)
    waited = (now - oldest).total_seconds()
    if close_all or len(rest) >= min_batch_size or waited >= max_wait_seconds:
        return batches, []
    return batches[:-1], rest


class _Found:
    """The new versions of one claim in key order, handed on a full batch at a time, and what
    a listing that stops here needs to resume without passing over anything left unclaimed."""

    def __init__(
        self,
        start_after: str,
        batch_size: int,
        write: Callable[[list[Version], dict[str, int]], None],
    ) -> None:
        self.batch_size = batch_size
        self.write = write
        self.previous = start_after  # the last key listed
        self.new: list[Version] = []
        #: Per key in ``new``: the batch of its latest claimed version when it was compared.
        self.basis: dict[str, int] = {}
        self.resume_after: str | None = None  # the key before the first object left unsettled
        self.first_new_after = start_after  # the key listed before the first one in ``new``

    def listed(self, key: str) -> None:
        self.previous = key

    def unsettled(self) -> None:
        if self.resume_after is None:
            self.resume_after = self.previous

    def take(self, version: Version, basis: int) -> None:
        if not self.new and self.resume_after is None:
            self.first_new_after = self.previous
        self.new.append(version)
        self.basis[version.key] = basis
        if len(self.new) >= self.batch_size:
            self.write(self.new, self.basis)
            self.new, self.basis = [], {}

    def cursor(self, pending: bool) -> str:
        """Where the next claim resumes a listing this one did not finish."""
        resume_after = self.resume_after
        if pending and resume_after is None:
            resume_after = self.first_new_after
        return self.previous if resume_after is None else resume_after


class Claimer:
    """Claims for one source; built per claim, cheap (the datapool record is cached)."""

    def __init__(
        self,
        source: SourceConfig,
        store: ObjectStore,
        lake: ObjectStore,
        *,
        claimer: str,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.source = source
        self.store = store
        self.lake = lake
        self.claimer = claimer
        self.now = now
        self.keep = KeyFilter(source.include, [*source.exclude, *source.label_globs])
        self.record: DatapoolRecord = datapool_record(lake, source.name)
        self._decided_on = 0  # the record's generation the claim compared the listing with
        self._listing_from = 1  # the first batch written after this claim's listing began

    def lease(self) -> Lease:
        return Lease(self.lake, datapool_prefix(self.source.name) + CLAIM_LEASE, owner=self.claimer)

    def claim(
        self,
        *,
        registered: set[str],
        start_after: str = "",
        deadline: float | None = None,
        close_all: bool = False,
        hold_lease: bool = True,
    ) -> ClaimResult:
        """List, diff and cut under the claim lease (raises LeaseHeld if another claims now).

        ``deadline`` (a ``time.monotonic()`` value) bounds the listing; ``close_all`` closes
        every pending batch whatever its size (``bucketlake sync``). ``hold_lease=False``
        claims without the lease: create-only manifests alone keep every claim exactly-once;
        the lease only spares racing claimers a wasted listing.
        """
        with self.lease() if hold_lease else contextlib.nullcontext(), self.record.lock:
            return self._claim(registered, start_after, deadline, close_all)

    def _claim(
        self, registered: set[str], start_after: str, deadline: float | None, close_all: bool
    ) -> ClaimResult:
        result = ClaimResult()
        record = self.record
        record.refresh(process_all=self.source.process_all)
        self._decided_on = record.generation
        self._listing_from = record.next_seq()
        now = self.now()
        settled_before = now.timestamp() - self.source.settle_seconds

        def write(versions: list[Version], basis: dict[str, int]) -> None:
            self._write_batches([versions], basis, result)

        found = _Found(start_after, self.source.batch_size, write)
        kept = 0  # objects listed that the globs accept
        for page in self.store.list_objects(start_after=start_after):
            if not page:
                continue
            # The record's keys in (last key listed, this page's last key], beside the page.
            known = record.entries(found.previous, page[-1].key)
            entry = next(known, None)
            for obj in page:
                result.listed += 1
                if obj.key <= found.previous:
                    raise StoreError(
                        f"{self.store.name}: listed {obj.key!r} after {found.previous!r}; a "
                        "listing must come in key order, or deleted objects cannot be told",
                        store=self.store.name,
                        key=obj.key,
                    )
                while entry is not None and entry[0] < obj.key:
                    self._gone(entry, found, now)
                    entry = next(known, None)
                latest = None
                if entry is not None and entry[0] == obj.key:
                    latest, entry = entry, next(known, None)
                    record.gone_since.pop(obj.key, None)  # back after a tombstone, if any
                claimed = (
                    latest is not None
                    and not latest[3]
                    and latest[1] == token_hash(obj.change_token)
                )
                accepted = self.keep(obj.key)
                kept += accepted
                if claimed or not accepted:
                    pass
                elif obj.last_modified.timestamp() > settled_before:
                    found.unsettled()
                else:
                    found.take(obj, 0 if latest is None else latest[2])
                found.listed(obj.key)
            if deadline is not None and time.monotonic() > deadline:
                result.exhausted = False
                break
        if result.exhausted and not kept and self._looks_empty(start_after):
            # Nothing at all where objects were claimed: far likelier an unmounted disk, a
            # moved prefix or a wrong bucket than a source emptied on purpose.
            result.warning = (
                f"source {self.source.name}: the listing of {self.store.name} is empty, while "
                "objects claimed from it were there before; none of them is marked deleted. "
                "Check that the source is reachable (mounted, the right bucket and prefix); to "
                "mark them deleted, leave one object in the source and sync again"
            )
        elif result.exhausted:  # what sorts after the last key listed is gone too
            for entry in record.entries(found.previous):
                self._gone(entry, found, now)
        if passed_over := self.store.passed_over():
            result.warning = "\n".join(w for w in (result.warning, _left_out(passed_over)) if w)
        batches, pending = cut_batches(
            found.new,
            batch_size=self.source.batch_size,
            min_batch_size=self.source.min_batch_size,
            max_wait_seconds=self.source.max_batch_wait_seconds,
            now=now,
            close_all=close_all and result.exhausted,
        )
        self._write_batches(batches, found.basis, result)
        result.pending = len(pending)
        # A tombstone's wait for a fuller batch runs from when it was first found.
        record.gone_since = {v.key: v.last_modified for v in pending if isinstance(v, Tombstone)}
        if not result.exhausted:
            result.cursor = found.cursor(bool(pending))
        result.unregistered = [b for b in record.batches if b not in registered]
        return result

    def _looks_empty(self, start_after: str) -> bool:
        """Whether a listing that found no object of the source (from ``start_after``) means
        the source shows none at all while the record holds live objects: then nothing is
        taken for deleted. A listing resumed from a cursor looks at the source's first page."""
        if not self.record.has_live(start_after):
            return False
        if not start_after:
            return True
        first = self.store.list_page(page_size=100)
        return not any(self.keep(obj.key) for obj in first)

    def _gone(self, entry: Entry, found: _Found, now: datetime) -> None:
        """A key of the record that the listing passed over: a tombstone, unless it is one
        already, the globs leave the key out now, or its version was claimed (by another
        claimer) after this listing began: a listing shows what was there when it read each
        part, so an object made since may be missing from it."""
        key, _, seq, deleted = entry
        if deleted or seq >= self._listing_from or not self.keep(key):
            return
        found.take(Tombstone(key, self.record.gone_since.get(key, now), seq), seq)

    def _write_batches(
        self, batches: list[list[Version]], basis: dict[str, int], result: ClaimResult
    ) -> None:
        for versions in batches:
            written = self._write_batch(versions, basis)
            if written:
                batch, kept = written
                result.new_batches.append(batch)
                result.new_objects += len(kept)
                result.deleted += sum(isinstance(v, Tombstone) for v in kept)

    def _write_batch(
        self, versions: list[Version], basis: dict[str, int]
    ) -> tuple[str, list[Version]] | None:
        """Write one manifest create-only; on a lost race, drop every version whose key the
        winner decided about (its latest claimed version is no longer the one it was compared
        with) and take the next sequence number. Returns (batch, versions written) or None if
        nothing was left."""
        for _ in range(MAX_CREATE_RACES):
            if self.record.generation != self._decided_on:
                # Others' manifests came in since this claim compared (a lost race re-reads
                # them), so versions compared before may be theirs already.
                versions = [v for v in versions if self.record.seq_of(v.key) == basis[v.key]]
            if not versions:
                return None
            batch = batch_key(self.source.name, self.record.next_seq())
            body = manifest_bytes(
                self.source.name, batch, versions, self._uris(versions), self.claimer
            )
            try:
                self.lake.put(manifest_key(batch), body, create_only=True)
            except PreconditionFailed:
                self.record.refresh(process_all=self.source.process_all)
                continue
            self.record.add(batch, versions)
            return batch, versions
        raise LakeError(
            f"source {self.source.name}: lost the race for a batch manifest {MAX_CREATE_RACES} "
            "times in a row; another claimer is writing batches as fast as this one"
        )

    def _uris(self, versions: list[Version]) -> list[str]:
        """Each version's uri; a tombstone keeps the one its object had when last claimed."""
        tombstones = [v for v in versions if isinstance(v, Tombstone)]
        had = self.record.uris_claimed(tombstones) if tombstones else {}
        return [
            had[v.key]
            if isinstance(v, Tombstone) and v.key in had
            else listed_uri(self.store, v.key)
            for v in versions
        ]


def listed_uri(store: ObjectStore, key: str) -> str:
    """The URI of a listed object. A key the store cannot address (a backslash, an empty
    segment: names the listing gives but keys refuse) is still claimed, so that its item says
    why it has no bytes instead of the whole source stopping; its URI is spelled out as
    listed."""
    try:
        return store.uri(key)
    except InvalidKey:
        root = store.uri("_")[:-1]
        return root + (quote(key) if root.startswith("file://") else key)


def _left_out(passed_over: list[tuple[str, str]], shown: int = 5) -> str:
    """What a listing left out, for the claimer's log: how many, and the first few."""
    lines = [f"{key}: {why}" for key, why in passed_over[:shown]]
    more = f" (and {len(passed_over) - shown} more)" if len(passed_over) > shown else ""
    return f"left out {len(passed_over)} entries of the source{more}: " + "; ".join(lines)
