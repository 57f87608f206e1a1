"""Claiming: new or changed object versions of a source become batches, exactly once.

One function serves every claimer (the ``datapool_<source>`` sensor and ``bucketlake sync``).
Under a per-source claim lease it lists the source page by page, keeps the object versions the
datapool does not hold, cuts them into batches and writes each batch's manifest create-only.
The manifests are the datapool's only truth, so a claimer that dies after writing a manifest
loses nothing: the next claim reports that batch as not yet registered, and it is registered
then. Even without the lease, two claimers could not both win a batch: a manifest write that
loses the create-only race re-reads the datapool and drops what the winner took.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from ingest_assets.claiming.globs import KeyFilter
from resources.errors import LakeError, PreconditionFailed
from resources.lake.datapool import (
    CLAIM_LEASE,
    DatapoolRecord,
    batch_key,
    datapool_prefix,
    datapool_record,
    manifest_bytes,
    manifest_key,
)
from resources.lake.lease import Lease
from resources.stores.base import ObjectInfo, ObjectStore

if TYPE_CHECKING:  # the config models are Dagster Config classes: no Dagster at run time
    from resources.config import SourceConfig

MAX_CREATE_RACES = 20


@dataclass
class ClaimResult:
    """What one claim did."""

    new_batches: list[str] = field(default_factory=list)
    #: Every manifest in the lake whose partition the caller has not registered (new ones too).
    unregistered: list[str] = field(default_factory=list)
    new_objects: int = 0
    pending: int = 0  # new object versions left for a later claim (a trickle still filling)
    listed: int = 0
    exhausted: bool = True
    #: Where the next claim should resume a listing this one did not finish ("" = start).
    cursor: str = ""


def cut_batches(
    new: Sequence[ObjectInfo],
    *,
    batch_size: int,
    min_batch_size: int,
    max_wait_seconds: float,
    now: datetime,
    close_all: bool,
) -> tuple[list[list[ObjectInfo]], list[ObjectInfo]]:
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
        self.keep = KeyFilter(source.include, source.exclude)
        self.record: DatapoolRecord = datapool_record(lake, source.name)

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
        self.record.refresh(process_all=self.source.process_all)
        now = self.now()
        settled_before = now.timestamp() - self.source.settle_seconds
        new: list[ObjectInfo] = []
        resume_after: str | None = None  # the key before the first object left unclaimed
        previous = start_after
        first_new_after = start_after
        for page in self.store.list_objects(start_after=start_after):
            for obj in page:
                result.listed += 1
                if not self.keep(obj.key) or self.record.is_claimed(obj):
                    previous = obj.key
                    continue
                if obj.last_modified.timestamp() > settled_before:
                    resume_after = previous if resume_after is None else resume_after
                else:
                    if not new and resume_after is None:
                        first_new_after = previous
                    new.append(obj)
                previous = obj.key
                if len(new) >= self.source.batch_size:
                    self._write_batches([new[: self.source.batch_size]], result)
                    new = new[self.source.batch_size :]
            if deadline is not None and time.monotonic() > deadline:
                result.exhausted = False
                break
        batches, pending = cut_batches(
            new,
            batch_size=self.source.batch_size,
            min_batch_size=self.source.min_batch_size,
            max_wait_seconds=self.source.max_batch_wait_seconds,
            now=now,
            close_all=close_all and result.exhausted,
        )
        self._write_batches(batches, result)
        result.pending = len(pending)
        if not result.exhausted:
            if pending and resume_after is None:
                resume_after = first_new_after
            result.cursor = previous if resume_after is None else resume_after
        result.unregistered = [b for b in self.record.batches if b not in registered]
        return result

    def _write_batches(self, batches: list[list[ObjectInfo]], result: ClaimResult) -> None:
        for objects in batches:
            written = self._write_batch(objects)
            if written:
                result.new_batches.append(written[0])
                result.new_objects += written[1]

    def _write_batch(self, objects: list[ObjectInfo]) -> tuple[str, int] | None:
        """Write one manifest create-only; on a lost race, drop what the winner claimed and
        take the next sequence number. Returns (batch, objects) or None if nothing was left."""
        for _ in range(MAX_CREATE_RACES):
            objects = [o for o in objects if not self.record.is_claimed(o)]
            if not objects:
                return None
            batch = batch_key(self.source.name, self.record.next_seq())
            body = manifest_bytes(
                self.source.name,
                batch,
                objects,
                [self.store.uri(o.key) for o in objects],
                self.claimer,
            )
            try:
                self.lake.put(manifest_key(batch), body, create_only=True)
            except PreconditionFailed:
                self.record.refresh(process_all=self.source.process_all)
                continue
            self.record.add(batch, objects)
            return batch, len(objects)
        raise LakeError(
            f"source {self.source.name}: lost the race for a batch manifest {MAX_CREATE_RACES} "
            "times in a row; another claimer is writing batches as fast as this one"
        )
