"""The datapool: the latest claimed version of every object of a source, read from the batch
manifests in the lake (``<lake>/_datapool/<source>/<source>_<seq>.parquet``), which are its only
truth. A manifest row is an object version, or a tombstone (``deleted``): the version that says
the object was deleted from its source."""

from __future__ import annotations

import contextlib
import io
import json
import re
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from resources.errors import ObjectNotFound, PreconditionFailed
from resources.lake.latest_versions import Entry, LatestVersions, token_hash
from resources.stores.base import ObjectInfo, ObjectStore

DATAPOOL = "_datapool"
SEQ_DIGITS = 6
PROCESS_ALL_MARKER = "_PROCESS_ALL.json"
CLAIM_LEASE = "_CLAIM_LEASE"

VIDEO_EXTENSIONS = {"mp4", "mov", "avi", "mkv", "webm", "m4v"}

MANIFEST_SCHEMA = pa.schema(
    [
        ("source", pa.string()),
        ("key", pa.string()),
        ("uri", pa.string()),
        ("size", pa.int64()),
        ("change_token", pa.string()),
        ("last_modified", pa.timestamp("us", tz="UTC")),
        ("content_type", pa.string()),
        ("kind", pa.string()),
        ("metadata", pa.string()),
        # A tombstone: the object was no longer listed (manifests written before tombstones
        # existed have no such column; read_manifest gives it to them, all false).
        ("deleted", pa.bool_()),
    ]
)

#: Manifests are read in groups of at least this many rows before they are merged into the
#: record's index (a fresh process reads every manifest of the source).
_LOAD_ROWS = 1_000_000


@dataclass(frozen=True)
class Tombstone:
    """An object that a claim found deleted from its source: the version after its last."""

    key: str
    #: When a claim first found the object gone (a tombstone waits for a fuller batch from then).
    last_modified: datetime
    #: The batch whose manifest claimed the version that is gone (it holds the object's uri).
    seq: int


#: The source of the items that COCO imports link (their images need no configured source);
#: no configured source may take the name.
LINKED_SOURCE = "linked"


def batch_key(source: str, seq: int) -> str:
    return f"{source}_{seq:0{SEQ_DIGITS}d}"


def parse_batch_key(batch: str) -> tuple[str, int]:
    """``("src", 12)`` for ``src_000012``; raises ValueError for anything else."""
    match = re.fullmatch(rf"(.+)_(\d{{{SEQ_DIGITS}}})", batch)
    if not match:
        raise ValueError(f"{batch!r} is not a batch key like <source>_000001")
    return match.group(1), int(match.group(2))


def datapool_prefix(source: str) -> str:
    return f"{DATAPOOL}/{source}/"


def manifest_key(batch: str) -> str:
    source, _ = parse_batch_key(batch)
    return f"{datapool_prefix(source)}{batch}.parquet"


def object_kind(key: str) -> str:
    ext = key.rsplit(".", 1)[-1].lower() if "." in key else ""
    return "video" if ext in VIDEO_EXTENSIONS else "image"


def manifest_bytes(
    source: str,
    batch: str,
    objects: Sequence[ObjectInfo | Tombstone],
    uris: Sequence[str],
    claimer: str,
) -> bytes:
    """A batch manifest. A tombstone's row keeps the key and uri, with size 0 and no change
    token, content type or metadata."""
    live = [o if isinstance(o, ObjectInfo) else None for o in objects]
    table = pa.table(
        {
            "source": [source] * len(objects),
            "key": [o.key for o in objects],
            "uri": list(uris),
            "size": [o.size if o else 0 for o in live],
            "change_token": [o.change_token if o else None for o in live],
            "last_modified": [o.last_modified for o in objects],
            "content_type": [o.content_type if o else None for o in live],
            "kind": [object_kind(o.key) for o in objects],
            "metadata": [o.metadata if o else None for o in live],
            "deleted": [o is None for o in live],
        },
        schema=MANIFEST_SCHEMA,
    ).replace_schema_metadata(
        {
            "bucketlake.batch": batch,
            "bucketlake.claimer": claimer,
            "bucketlake.claimed_at": datetime.now(UTC).isoformat(),
        }
    )
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue()


def manifest_table(data: bytes, columns: Sequence[str] | None = None) -> pa.Table:
    """A manifest's rows from its bytes; one written before tombstones gets ``deleted``
    (false) too."""
    wanted = list(columns) if columns else None
    parquet = pq.ParquetFile(pa.BufferReader(data))
    present = set(parquet.schema_arrow.names)
    table = parquet.read(columns=[c for c in wanted if c in present] if wanted else None)
    table = table.replace_schema_metadata(None)
    if "deleted" not in present and (wanted is None or "deleted" in wanted):
        table = table.append_column(
            pa.field("deleted", pa.bool_()), pa.array([False] * table.num_rows, pa.bool_())
        )
    return table.select(wanted) if wanted else table


def read_manifest(lake: ObjectStore, batch: str, columns: Sequence[str] | None = None) -> pa.Table:
    return manifest_table(lake.get(manifest_key(batch)), columns)


class DatapoolRecord:
    """What one source's datapool holds: the latest claimed version of each key, a tombstone
    included (see :class:`~resources.lake.latest_versions.LatestVersions`), refreshed
    incrementally: each refresh reads only the manifests it has not read before, in sequence
    order (a later manifest wins per key)."""

    def __init__(self, lake: ObjectStore, source: str) -> None:
        self.lake = lake
        self.source = source
        self.prefix = datapool_prefix(source)
        self._pattern = re.compile(rf"{re.escape(source)}_(\d{{{SEQ_DIGITS}}})\.parquet")
        self._seqs: set[int] = set()
        self._loaded: set[int] = set()
        self._latest = LatestVersions()
        self._since = 1  # manifests before this seq do not count (a process_all pass)
        self.lock = threading.Lock()
        #: Deleted objects left waiting in a trickle, and when a claim first found each gone.
        self.gone_since: dict[str, datetime] = {}
        #: Counts the refreshes that took in manifests written by others (or started over).
        self.generation = 0

    @property
    def batches(self) -> list[str]:
        return [batch_key(self.source, s) for s in sorted(self._seqs)]

    def next_seq(self) -> int:
        return max(self._seqs, default=0) + 1

    def latest(self, key: str) -> tuple[int, int, bool] | None:
        """(change token hash, batch seq, deleted) of the key's latest claimed version."""
        return self._latest.get(key)

    def seq_of(self, key: str) -> int:
        """The batch that claimed the key's latest version (0: none has)."""
        found = self._latest.get(key)
        return 0 if found is None else found[1]

    def is_claimed(self, obj: ObjectInfo) -> bool:
        """Whether ``obj`` is the latest version claimed of its key (and not deleted since)."""
        found = self._latest.get(obj.key)
        return found is not None and not found[2] and found[0] == token_hash(obj.change_token)

    def entries(self, after: str = "", upto: str | None = None) -> Iterator[Entry]:
        """(key, token hash, batch seq, deleted) of each key in (``after``, ``upto``], in key
        order (``upto`` None: to the last key)."""
        return self._latest.entries(after, upto)

    def __len__(self) -> int:
        return len(self._latest)

    def has_live(self, after: str = "") -> bool:
        """Whether any key (after ``after``) has an object, not a tombstone, as its latest
        claimed version."""
        return any(not deleted for *_, deleted in self.entries(after))

    @property
    def nbytes(self) -> int:
        """Bytes the record's index holds."""
        return self._latest.nbytes

    def _apply_process_all(self, process_all: bool) -> None:
        marker = self.prefix + PROCESS_ALL_MARKER
        if not process_all:
            if self._since != 1:
                self._reset(1)
            self.lake.delete(marker)
            return
        body = json.dumps({"since_seq": self.next_seq()}).encode()
        with contextlib.suppress(PreconditionFailed):
            self.lake.put(marker, body, create_only=True)
        try:
            since = int(json.loads(self.lake.get(marker))["since_seq"])
        except ObjectNotFound:
            since = 1
        if since != self._since:
            self._reset(since)

    def _reset(self, since: int) -> None:
        self.generation += 1
        self._since = since
        self._loaded.clear()
        self._latest = LatestVersions()
        self.gone_since.clear()

    def refresh(self, *, process_all: bool = False) -> None:
        """Take in the manifests written since the last refresh (by anyone)."""
        for page in self.lake.list_objects(self.prefix):
            for info in page:
                match = self._pattern.fullmatch(info.key[len(self.prefix) :])
                if match:
                    self._seqs.add(int(match.group(1)))
        self._apply_process_all(process_all)
        unread = sorted(s for s in self._seqs if s >= self._since and s not in self._loaded)
        if unread and self._loaded and unread[0] < max(self._loaded):
            # Manifests are created in sequence order, so this takes a manifest put back by
            # hand: later ones must win, so everything is read again in order.
            self._reset(self._since)
            unread = sorted(s for s in self._seqs if s >= self._since)
        if unread:
            self.generation += 1
        group: list[_Read] = []
        rows = 0
        for seq in unread:
            table = read_manifest(self.lake, batch_key(self.source, seq), _INDEXED)
            group.append(_Read.of(seq, table))
            rows += table.num_rows
            if rows >= max(_LOAD_ROWS, self._latest.size_hint):
                self._take(group)
                group, rows = [], 0
        self._take(group)

    def _take(self, manifests: list[_Read]) -> None:
        """Index manifests read, in sequence order."""
        if sum(len(m.tokens) for m in manifests) <= self._latest.overlay_room:
            for read in manifests:
                self._latest.add(
                    read.keys.to_pylist(), read.tokens.tolist(), read.seq, read.deleted.tolist()
                )
                self._loaded.add(read.seq)
            return
        seqs = [m.seq for m in manifests]
        keys = pa.concat_arrays([m.keys for m in manifests])
        tokens = np.concatenate([m.tokens for m in manifests])
        deleted = np.concatenate([m.deleted for m in manifests])
        counts = [len(m.tokens) for m in manifests]
        manifests.clear()  # the caller's list too: what was read goes before the merge's peak
        self._latest.merge(keys, tokens, np.repeat(np.array(seqs, dtype=np.int32), counts), deleted)
        del keys
        self._loaded.update(seqs)
        # The load's scratch space (sorting a million keys takes several times their size)
        # goes back to the system, not only to Arrow's pool.
        pa.default_memory_pool().release_unused()

    def add(self, batch: str, objects: Sequence[ObjectInfo | Tombstone]) -> None:
        """Record a manifest this process has just written."""
        _, seq = parse_batch_key(batch)
        self._seqs.add(seq)
        if seq >= self._since:
            self._latest.add(
                [o.key for o in objects],
                [token_hash(o.change_token) if isinstance(o, ObjectInfo) else 0 for o in objects],
                seq,
                [isinstance(o, Tombstone) for o in objects],
            )
            self._loaded.add(seq)

    def uris_claimed(self, tombstones: Iterable[Tombstone]) -> dict[str, str]:
        """The uri each tombstone's object had, from the manifest that claimed its last
        version (a manifest source's entry that is gone has no other record of it)."""
        wanted: dict[int, set[str]] = {}
        for tombstone in tombstones:
            wanted.setdefault(tombstone.seq, set()).add(tombstone.key)
        uris: dict[str, str] = {}
        for seq, keys in sorted(wanted.items()):
            try:
                table = read_manifest(self.lake, batch_key(self.source, seq), ["key", "uri"])
            except ObjectNotFound:
                continue
            for key, uri in zip(
                table.column("key").to_pylist(), table.column("uri").to_pylist(), strict=True
            ):
                if key in keys:
                    uris[key] = uri
        return uris


#: The manifest columns the record indexes.
_INDEXED = ("key", "change_token", "deleted")


@dataclass(frozen=True)
class _Read:
    """One manifest as the index takes it: keys, token hashes, deleted flags."""

    seq: int
    keys: pa.LargeStringArray
    tokens: np.ndarray
    deleted: np.ndarray

    @classmethod
    def of(cls, seq: int, table: pa.Table) -> _Read:
        tokens = table.column("change_token").to_pylist()
        return cls(
            seq,
            table.column("key").combine_chunks().cast(pa.large_string()),
            np.fromiter((token_hash(t) for t in tokens), dtype=np.int64, count=len(tokens)),
            table.column("deleted")
            .fill_null(False)
            .combine_chunks()
            .to_numpy(zero_copy_only=False)
            .astype(np.bool_),
        )


_RECORDS: dict[tuple[str, str], DatapoolRecord] = {}
_RECORDS_LOCK = threading.Lock()


def datapool_record(lake: ObjectStore, source: str) -> DatapoolRecord:
    """The process-wide record for one source of one lake (kept between sensor ticks)."""
    with _RECORDS_LOCK:
        record = _RECORDS.get((lake.name, source))
        if record is None:
            record = _RECORDS[(lake.name, source)] = DatapoolRecord(lake, source)
        return record
