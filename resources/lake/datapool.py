"""The datapool: every object version already claimed, read from the batch manifests in the
lake (``<lake>/_datapool/<source>/<source>_<seq>.parquet``), which are its only truth."""

from __future__ import annotations

import contextlib
import io
import json
import re
import threading
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.parquet as pq

from resources.errors import ObjectNotFound, PreconditionFailed
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
    ]
)


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
    source: str, batch: str, objects: Sequence[ObjectInfo], uris: Sequence[str], claimer: str
) -> bytes:
    table = pa.table(
        {
            "source": [source] * len(objects),
            "key": [o.key for o in objects],
            "uri": list(uris),
            "size": [o.size for o in objects],
            "change_token": [o.change_token for o in objects],
            "last_modified": [o.last_modified for o in objects],
            "content_type": [o.content_type for o in objects],
            "kind": [object_kind(o.key) for o in objects],
            "metadata": [o.metadata for o in objects],
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


def read_manifest(lake: ObjectStore, batch: str, columns: Sequence[str] | None = None) -> pa.Table:
    data = lake.get(manifest_key(batch))
    table = pq.read_table(pa.BufferReader(data), columns=list(columns) if columns else None)
    return table.replace_schema_metadata(None)


class DatapoolRecord:
    """What one source's datapool holds, refreshed incrementally: each refresh reads only the
    manifests it has not read before."""

    def __init__(self, lake: ObjectStore, source: str) -> None:
        self.lake = lake
        self.source = source
        self.prefix = datapool_prefix(source)
        self._pattern = re.compile(rf"{re.escape(source)}_(\d{{{SEQ_DIGITS}}})\.parquet")
        self._seqs: set[int] = set()
        self._loaded: set[int] = set()
        self._known: set[tuple[str, str]] = set()
        self._since = 1  # manifests before this seq do not count (a process_all pass)
        self.lock = threading.Lock()

    @property
    def batches(self) -> list[str]:
        return [batch_key(self.source, s) for s in sorted(self._seqs)]

    def next_seq(self) -> int:
        return max(self._seqs, default=0) + 1

    def is_claimed(self, obj: ObjectInfo) -> bool:
        return (obj.key, obj.change_token) in self._known

    def __len__(self) -> int:
        return len(self._known)

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
        self._since = since
        self._loaded.clear()
        self._known.clear()

    def refresh(self, *, process_all: bool = False) -> None:
        """Take in the manifests written since the last refresh (by anyone)."""
        for page in self.lake.list_objects(self.prefix):
            for info in page:
                match = self._pattern.fullmatch(info.key[len(self.prefix) :])
                if match:
                    self._seqs.add(int(match.group(1)))
        self._apply_process_all(process_all)
        for seq in sorted(s for s in self._seqs if s >= self._since and s not in self._loaded):
            table = read_manifest(self.lake, batch_key(self.source, seq), ["key", "change_token"])
            self._known.update(
                zip(
                    table.column("key").to_pylist(),
                    table.column("change_token").to_pylist(),
                    strict=True,
                )
            )
            self._loaded.add(seq)

    def add(self, batch: str, objects: Iterable[ObjectInfo]) -> None:
        """Record a manifest this process has just written."""
        _, seq = parse_batch_key(batch)
        self._seqs.add(seq)
        if seq >= self._since:
            self._known.update((o.key, o.change_token) for o in objects)
            self._loaded.add(seq)


_RECORDS: dict[tuple[str, str], DatapoolRecord] = {}
_RECORDS_LOCK = threading.Lock()


def datapool_record(lake: ObjectStore, source: str) -> DatapoolRecord:
    """The process-wide record for one source of one lake (kept between sensor ticks)."""
    with _RECORDS_LOCK:
        record = _RECORDS.get((lake.name, source))
        if record is None:
            record = _RECORDS[(lake.name, source)] = DatapoolRecord(lake, source)
        return record
