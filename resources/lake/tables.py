"""Parquet tables in the lake with commit markers, chunked checkpoints and resume (DESIGN §5).

Layout of one table (one asset, one partition)::

    <asset>/<partition>/_COMMITTED              JSON, written last: the files that make the table
    <asset>/<partition>/_LEASE                  the live writer's lease
    <asset>/<partition>/<attempt>/_ATTEMPT.json fingerprint and run of one write attempt
    <asset>/<partition>/<attempt>/part-<n>.parquet
    <asset>/_catalog/                           which partitions are committed (catalog.py)

Each write attempt has its own folder, so a re-run never overwrites a file that the current
marker lists: readers of the old table keep seeing the old table until the new marker lands.

Writers are fenced: the marker is written conditionally on the marker (or its absence) that the
writer saw when it started, and a commit removes only the attempts that existed then. So a
writer that was paused past its lease and overtaken cannot replace its successor's commit, nor
delete the files of its successor's attempt.
"""

from __future__ import annotations

import base64
import io
import json
import re
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from types import TracebackType
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from resources.errors import LakeError, ObjectNotFound, PreconditionFailed, TableChanged
from resources.lake.catalog import CATALOG, Catalog
from resources.lake.current import CHUNK_ROWS, FETCHES, TableFile, each_in_parallel, iter_current
from resources.lake.lease import Lease, read_holder
from resources.stores.base import ObjectStore, check_key

MARKER = "_COMMITTED"
LEASE = "_LEASE"
ATTEMPT = "_ATTEMPT.json"
PART_RE = re.compile(r"^part-(\d{5})\.parquet$")
META_FINGERPRINT = b"bucketlake.fingerprint"
META_INPUT_START = b"bucketlake.input_start"
META_INPUT_END = b"bucketlake.input_end"


def _schema_to_text(schema: pa.Schema) -> str:
    return base64.b64encode(schema.serialize().to_pybytes()).decode("ascii")


def _schema_from_text(text: str) -> pa.Schema:
    return pa.ipc.read_schema(pa.py_buffer(base64.b64decode(text)))


@dataclass(frozen=True)
class Commit:
    """A committed table: the marker's content."""

    files: list[dict[str, Any]]
    rows: int
    schema: pa.Schema
    run_id: str
    time: float
    fingerprint: str
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> bytes:
        return json.dumps(
            {
                **self.extra,
                "files": self.files,
                "rows": self.rows,
                "schema": [{"name": f.name, "type": str(f.type)} for f in self.schema],
                "arrow_schema": _schema_to_text(self.schema),
                "run_id": self.run_id,
                "time": self.time,
                "fingerprint": self.fingerprint,
            },
            indent=1,
        ).encode()

    @staticmethod
    def from_json(data: bytes) -> Commit:
        raw = json.loads(data)
        known = {"files", "rows", "schema", "arrow_schema", "run_id", "time", "fingerprint"}
        return Commit(
            files=raw["files"],
            rows=raw["rows"],
            schema=_schema_from_text(raw["arrow_schema"]),
            run_id=raw["run_id"],
            time=raw["time"],
            fingerprint=raw["fingerprint"],
            extra={k: v for k, v in raw.items() if k not in known},
        )


def _projected(schema: pa.Schema, columns: Sequence[str] | None) -> pa.Schema:
    """``schema`` narrowed to ``columns`` (all of it for None)."""
    return schema if columns is None else pa.schema([schema.field(c) for c in columns])


def _strip(table: pa.Table) -> pa.Table:
    return table.replace_schema_metadata(None)


def _parquet_bytes(table: pa.Table, metadata: dict[bytes, bytes] | None = None) -> bytes:
    if metadata:
        table = table.replace_schema_metadata({**(table.schema.metadata or {}), **metadata})
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue()


def read_parquet(data: bytes, columns: list[str] | None) -> pa.Table:
    """One Parquet file's table. Read as a single file (``pq.read_table`` goes through
    ``pyarrow.dataset``, whose import alone costs a process 0.3 s)."""
    return pq.ParquetFile(pa.BufferReader(data)).read(columns=columns)


class Lake:
    """Tables under one root store."""

    def __init__(self, store: ObjectStore) -> None:
        self.store = store

    # -- names -----------------------------------------------------------------------------
    @staticmethod
    def table_prefix(asset: str, partition: str) -> str:
        check_key(f"{asset}/{partition}")
        if partition == CATALOG or "/" in partition:
            raise LakeError(f"{partition!r} cannot name a partition of {asset}: it is reserved")
        return f"{asset}/{partition}/"

    def catalog(self, asset: str) -> Catalog:
        return Catalog(self.store, asset, MARKER)

    def table_uri(self, asset: str, partition: str) -> str:
        return self.store.uri(self.table_prefix(asset, partition) + MARKER).removesuffix(MARKER)

    # -- reading ---------------------------------------------------------------------------
    def read_commit(self, asset: str, partition: str) -> Commit | None:
        try:
            data = self.store.get(self.table_prefix(asset, partition) + MARKER)
        except ObjectNotFound:
            return None
        return Commit.from_json(data)

    def is_committed(self, asset: str, partition: str) -> bool:
        return self.store.exists(self.table_prefix(asset, partition) + MARKER)

    def committed_partitions(self, asset: str) -> list[str]:
        """Every committed partition of ``asset``, sorted, from the catalog: a listing of
        ``<asset>/_catalog/`` rather than a request per partition."""
        return self.catalog(asset).partitions()

    def read_commits(
        self, asset: str, partitions: Sequence[str] | None = None
    ) -> list[tuple[str, Commit]]:
        """The commits of ``partitions`` (default: every committed one), in the order given,
        fetched in parallel; partitions without a commit are left out."""
        names = self.committed_partitions(asset) if partitions is None else list(partitions)
        found = each_in_parallel(names, lambda p: (p, self.read_commit(asset, p)), FETCHES)
        return [(p, c) for p, c in found if c is not None]

    def read_file(
        self, asset: str, file: TableFile, columns: Sequence[str] | None = None
    ) -> pa.Table:
        """One data file of a commit, cast to the commit's schema."""
        prefix = self.table_prefix(asset, file.partition)
        try:
            data = self.store.get(prefix + file.path)
        except ObjectNotFound:
            raise TableChanged(
                f"{asset}/{file.partition} was committed again while being read; read it again"
            ) from None
        schema = _projected(file.commit.schema, columns)
        cols = list(columns) if columns is not None else None
        return _strip(read_parquet(data, cols)).cast(schema)

    def read_table(
        self, asset: str, partition: str, columns: Sequence[str] | None = None
    ) -> pa.Table:
        """Read exactly the files the marker lists. Raises LakeError if nothing is committed."""
        table = self._read_if_committed(asset, partition, columns)
        if table is None:
            raise LakeError(
                f"{asset} has no committed table for partition {partition!r} in "
                f"{self.store.name}; materialize {asset} for that partition first"
            )
        return table

    def _read_if_committed(
        self, asset: str, partition: str, columns: Sequence[str] | None
    ) -> pa.Table | None:
        for _ in range(3):
            commit = self.read_commit(asset, partition)
            if commit is None:
                return None
            files = [TableFile(partition, f["path"], commit) for f in commit.files]
            try:
                tables = [self.read_file(asset, f, columns) for f in files]
            except TableChanged:
                continue  # replaced by a newer commit while reading: read the new marker
            if not tables:
                return _projected(commit.schema, columns).empty_table()
            return pa.concat_tables(tables)
        raise LakeError(f"{asset}/{partition}: the table kept changing while being read")

    def iter_current(
        self,
        asset: str,
        partitions: Sequence[str] | None = None,
        *,
        columns: Sequence[str] | None = None,
        filter: pc.Expression | None = None,
        chunk_rows: int = CHUNK_ROWS,
        commits: Sequence[tuple[str, Commit]] | None = None,
    ) -> Iterator[pa.Table]:
        """The current view (the latest committed row per ``item_id``; later partitions win)
        in chunks of about ``chunk_rows`` rows, in memory bounded by the chunk and the files
        being fetched, not by the table. ``partitions`` in precedence order; by default every
        committed partition, in natural name order (a source's batches in sequence).
        ``filter`` keeps the winning rows that pass it and may name only columns that are
        read. ``commits`` (from :meth:`read_commits`) in place of ``partitions`` reads exactly
        those commits, as a caller that fingerprints them needs. Raises TableChanged if a
        partition is committed again while it streams."""
        if commits is None:
            commits = self.read_commits(asset, partitions)
        return iter_current(
            self, asset, commits, columns=columns, filter=filter, chunk_rows=chunk_rows
        )

    def read_current(
        self,
        asset: str,
        partitions: Sequence[str] | None = None,
        columns: Sequence[str] | None = None,
        *,
        filter: pc.Expression | None = None,
    ) -> pa.Table:
        """The whole current view as one table (see :meth:`iter_current`). Raises LakeError
        if none of the partitions is committed."""
        for _ in range(3):
            commits = self.read_commits(asset, partitions)
            if not commits:
                given = "" if partitions is None else f" among {len(partitions)} given"
                raise LakeError(f"{asset} has no committed partitions{given}")
            schema = _projected(commits[-1][1].schema, columns)
            try:
                chunks = list(iter_current(self, asset, commits, columns=columns, filter=filter))
            except TableChanged:
                continue
            return pa.concat_tables(chunks) if chunks else schema.empty_table()
        raise LakeError(f"{asset}: its partitions kept changing while being read")

    # -- writing ---------------------------------------------------------------------------
    def writer(
        self, asset: str, partition: str, *, fingerprint: str, run_id: str
    ) -> PartitionWriter:
        return PartitionWriter(self, asset, partition, fingerprint=fingerprint, run_id=run_id)


@dataclass
class _Chunk:
    path: str
    size: int
    rows: int
    input_start: int
    input_end: int


class PartitionWriter:
    """Writes one partition's table in chunks under a lease, resuming an interrupted attempt
    with the same fingerprint, and makes it visible with one marker write.

    Usage::

        with lake.writer("dataset_items", "src_000001", fingerprint=fp, run_id=rid) as w:
            for start in range(w.resume_from, n, step):
                w.write_chunk(rows_for(start, step), input_end=min(start + step, n))
            w.commit(schema)
    """

    def __init__(
        self, lake: Lake, asset: str, partition: str, *, fingerprint: str, run_id: str
    ) -> None:
        self.lake = lake
        self.store = lake.store
        self.asset = asset
        self.partition = partition
        self.prefix = Lake.table_prefix(asset, partition)
        self.fingerprint = fingerprint
        self.run_id = run_id
        self.lease = Lease(self.store, self.prefix + LEASE, owner=f"run {run_id}")
        self.attempt = ""
        self.chunks: list[_Chunk] = []
        self.resumed_rows = 0
        self.committed: Commit | None = None
        #: What this writer saw when it started: the marker's change token ("" when there was
        #: no marker), which the commit is conditional on, and the attempts it may remove.
        self._marker_token = ""
        self._attempts_at_start: set[str] = set()

    @property
    def resume_from(self) -> int:
        """The input index after the last complete chunk (0 for a fresh attempt)."""
        return self.chunks[-1].input_end if self.chunks else 0

    @property
    def rows_written(self) -> int:
        return sum(c.rows for c in self.chunks)

    def __enter__(self) -> PartitionWriter:
        self.lease.acquire()
        try:
            self._resume_or_start()
        except BaseException:
            self.lease.release()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.lease.release()

    def _attempt_files(self) -> dict[str, list[tuple[str, int]]]:
        by_attempt: dict[str, list[tuple[str, int]]] = {}
        for page in self.store.list_objects(self.prefix):
            for info in page:
                rel = info.key[len(self.prefix) :]
                if "/" in rel:
                    attempt, name = rel.split("/", 1)
                    by_attempt.setdefault(attempt, []).append((name, info.size))
        return by_attempt

    def _resume_or_start(self) -> None:
        """Start a new attempt folder, resuming (by reference) the longest run of complete
        chunks that an earlier attempt with this fingerprint left. Never writing into another
        attempt's folder: its writer may be paused, not dead, and wake up to write there."""
        try:
            self._marker_token = self.store.head(self.prefix + MARKER).change_token
        except ObjectNotFound:
            self._marker_token = ""
        current = self.lake.read_commit(self.asset, self.partition)
        live = {f["path"].split("/", 1)[0] for f in current.files} if current else set()
        attempts = self._attempt_files()
        self._attempts_at_start = set(attempts)
        sizes = {f"{a}/{name}": size for a, files in attempts.items() for name, size in files}
        for attempt in attempts:
            if attempt in live:
                continue
            chunks = self._complete_chunks(attempt, sizes)
            if chunks is not None and len(chunks) > len(self.chunks):
                self.chunks = chunks
        self.resumed_rows = self.rows_written  # rows, not inputs: they may differ
        self.attempt = f"w-{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}"
        record = {
            "fingerprint": self.fingerprint,
            "run_id": self.run_id,
            "started": time.time(),
            "resumed": [asdict(c) for c in self.chunks],
        }
        self.store.put(self.prefix + f"{self.attempt}/{ATTEMPT}", json.dumps(record).encode())

    def _complete_chunks(self, attempt: str, sizes: dict[str, int]) -> list[_Chunk] | None:
        """The attempt's contiguous run of valid chunks (those it resumed from earlier
        attempts, then its own), or None if it cannot be resumed."""
        try:
            record = json.loads(self.store.get(self.prefix + f"{attempt}/{ATTEMPT}"))
        except (ObjectNotFound, ValueError):
            return None
        if record.get("fingerprint") != self.fingerprint:
            return None
        chunks = [_Chunk(**c) for c in record.get("resumed", [])]
        if any(sizes.get(c.path) != c.size for c in chunks):
            return None  # a file it resumed from is gone (removed by a later commit)
        own = {
            int(m.group(1))
            for k in sizes
            if k.startswith(f"{attempt}/")
            if (m := PART_RE.match(k.split("/", 1)[1]))
        }
        number = len(chunks)
        while number in own:
            path = f"{attempt}/part-{number:05d}.parquet"
            meta = pq.read_metadata(pa.BufferReader(self.store.get(self.prefix + path)))
            kv = meta.metadata or {}
            start = int(kv.get(META_INPUT_START, b"-1"))
            if kv.get(META_FINGERPRINT) != self.fingerprint.encode() or start != (
                chunks[-1].input_end if chunks else 0
            ):
                break
            chunks.append(_Chunk(path, sizes[path], meta.num_rows, start, int(kv[META_INPUT_END])))
            number += 1
        return chunks

    def write_chunk(self, table: pa.Table, *, input_end: int) -> None:
        """Write the next chunk: the rows for inputs ``[resume_from, input_end)``."""
        if self.lease.lost:
            raise self._lease_lost()
        start = self.resume_from
        if input_end <= start and table.num_rows:
            raise LakeError(f"chunk input range [{start}, {input_end}) is empty")
        number = len(self.chunks)
        path = f"{self.attempt}/part-{number:05d}.parquet"
        data = _parquet_bytes(
            table,
            {
                META_FINGERPRINT: self.fingerprint.encode(),
                META_INPUT_START: str(start).encode(),
                META_INPUT_END: str(input_end).encode(),
            },
        )
        self.store.put(self.prefix + path, data)
        self.chunks.append(_Chunk(path, len(data), table.num_rows, start, input_end))

    def iter_chunks(self, columns: Sequence[str] | None = None) -> Iterator[pa.Table]:
        """The rows already written by this attempt (resumed chunks included), chunk by chunk."""
        for chunk in list(self.chunks):
            data = self.store.get(self.prefix + chunk.path)
            cols = list(columns) if columns is not None else None
            yield _strip(read_parquet(data, cols))

    def commit(self, schema: pa.Schema, **extra: Any) -> Commit:
        """Write the marker (the table becomes visible), then remove superseded attempts."""
        holder = read_holder(self.store, self.lease.key)
        if self.lease.lost or holder is None or not holder[0].held_by(self.lease):
            raise self._lease_lost()
        commit = Commit(
            files=[{"path": c.path, "size": c.size, "rows": c.rows} for c in self.chunks],
            rows=self.rows_written,
            schema=schema,
            run_id=self.run_id,
            time=time.time(),
            fingerprint=self.fingerprint,
            extra={"resumed_rows": self.resumed_rows, **extra},
        )
        catalog = self.lake.catalog(self.asset)
        catalog.begin(self.partition)
        body = commit.to_json()
        try:
            if self._marker_token:
                self.store.put(self.prefix + MARKER, body, if_token=self._marker_token)
            else:
                self.store.put(self.prefix + MARKER, body, create_only=True)
        except PreconditionFailed:
            # Unless a retried write's first attempt landed and lost only its answer:
            if not self._marker_is(body):
                raise self._overtaken() from None
        self.committed = commit
        catalog.record(
            self.partition,
            {"run_id": self.run_id, "rows": commit.rows, "fingerprint": self.fingerprint},
        )
        # Only attempts that existed when this writer started (a successor's are not ours),
        # and never a file this commit lists (it may have resumed an earlier attempt's chunks).
        listed = {f["path"] for f in commit.files}
        for attempt, files in self._attempt_files().items():
            if attempt != self.attempt and attempt in self._attempts_at_start:
                for name, _size in files:
                    if f"{attempt}/{name}" not in listed:
                        self.store.delete(self.prefix + f"{attempt}/{name}")
        return commit

    def _marker_is(self, body: bytes) -> bool:
        try:
            return self.store.get(self.prefix + MARKER) == body
        except ObjectNotFound:
            return False

    def _lease_lost(self) -> LakeError:
        """Refused before it writes a chunk or its commit: the same words either way, as which
        of the two first sees the lease gone depends on when its heartbeat last ran."""
        return LakeError(
            f"{self.asset}/{self.partition}: this writer's lease was taken over by another "
            "writer (its heartbeat went stale); it stops writing, and nothing was committed by "
            "this run"
        )

    def _overtaken(self) -> LakeError:
        return LakeError(
            f"{self.asset}/{self.partition}: another writer committed this partition after "
            "this one started (this writer was paused past its lease and taken over); its "
            "table stands, and nothing was committed by this run"
        )
