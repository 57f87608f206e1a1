"""``dataset_items``: one row per claimed object with its image metadata, hashes, label, split
and status, written in checkpointed chunks so that a re-run resumes where a crash left off."""

import hashlib
import json
import os
from collections import Counter
from typing import Any

import pyarrow as pa
from dagster import AssetExecutionContext, Failure, MaterializeResult, MetadataValue, asset

from ingest_assets.assets.item_workers import item_builder, warm_up_workers
from ingest_assets.assets.metadata import Timer, column_schema, markdown_table
from ingest_assets.assets.raw_items import raw_items
from ingest_assets.assets.runtime import INGEST_RETRY, record_run_process
from ingest_assets.items.rows import (
    ITEMS_CODE_VERSION,
    ITEMS_SCHEMA,
    STATUSES,
    error_reason,
    is_tombstone,
)
from ingest_assets.names import DATASET_ITEMS, RAW_ITEMS
from ingest_assets.partitions import batches
from ingest_assets.progress import Progress
from resources.config import SourceConfig
from resources.lake.datapool import parse_batch_key
from resources.lake.resource import LakeResource
from resources.lake.tables import Lake, PartitionWriter
from resources.stores.resource import SourcesResource

PREVIEW_COLUMNS = [
    "key",
    "label",
    "split",
    "width",
    "height",
    "format",
    "status",
    "error",
    "source",
]

#: Source settings that change item rows; a checkpoint written under others is not resumed.
_ROW_SETTINGS = (
    "label_strategy",
    "test_fraction",
    "verify",
    "max_image_pixels",
    "checkpoint_rows",
    "follow_symlinks",
    "max_object_bytes",
    "fetch_deadline_seconds",
    "manifest_file_roots",
)


def items_fingerprint(lake: Lake, batch: str, source: SourceConfig) -> str:
    raw_commit = lake.read_commit(RAW_ITEMS, batch)
    if raw_commit is None:
        raise Failure(
            f"raw_items has no committed table for batch {batch}; materialize raw_items first "
            "(ingest_job runs both)",
            allow_retries=False,
        )
    settings = {name: getattr(source, name) for name in _ROW_SETTINGS}
    text = json.dumps([raw_commit.fingerprint, settings, ITEMS_CODE_VERSION], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


class _Tally:
    def __init__(self) -> None:
        self.status: Counter[str] = Counter()
        self.reasons: Counter[str] = Counter()
        self.labels: Counter[str] = Counter()
        self.splits: Counter[str] = Counter()

    def add(self, rows: list[dict[str, Any]]) -> int:
        bad = 0
        for row in rows:
            self.status[row["status"]] += 1
            self.splits[row["split"]] += 1
            self.labels[row["label"] if row["label"] is not None else "(unlabeled)"] += 1
            if row["status"] != "ok":
                bad += 1
                self.reasons[error_reason(row["error"])] += 1
        return bad


def _fail_on_bad_item(rows: list[dict[str, Any]], start: int, writer: PartitionWriter) -> None:
    for offset, row in enumerate(rows):
        # A superseded item is not bad: its new version is claimed (and checked) later; nor is
        # a tombstone, which records that its object was deleted from the source.
        if row["status"] not in ("ok", "superseded") and not is_tombstone(row):
            raise Failure(
                f"item {start + offset} ({row['key']!r}) is {row['status']}: {row['error']}. "
                f"ignore_errors is false for source {row['source']}, so the batch stops here. "
                f"The last checkpoint holds items [0, {writer.resume_from}); fix or remove the "
                "object (or set ignore_errors: true) and run the partition again to resume there.",
                allow_retries=False,
            )


@asset(
    name=DATASET_ITEMS,
    partitions_def=batches,
    code_version=ITEMS_CODE_VERSION,
    deps=[raw_items],
    group_name="ingest",
    retry_policy=INGEST_RETRY,
    kinds={"parquet"},
    description="One row per item: item_id, key, uri, size as displayed (EXIF applied), format, "
    "mode, bytes, sha256, perceptual hash, label and split from the source's label strategy, "
    "and status/error for objects that are empty, truncated, not images or too large; a "
    "tombstone (status missing) for each object deleted from its source.",
)
def dataset_items(
    context: AssetExecutionContext, lake: LakeResource, sources: SourcesResource
) -> MaterializeResult[None]:
    timer = Timer()
    batch = context.partition_key
    source_name, _ = parse_batch_key(batch)
    source = sources.source(source_name)
    workers = source.num_workers or os.cpu_count() or 1
    if workers > 1 and source.worker_kind == "processes":
        warm_up_workers()  # while the step reads its inputs
    record_run_process(context)
    tables = lake.lake()
    store = sources.store(source_name)
    raw = tables.read_table(RAW_ITEMS, batch)
    total = raw.num_rows
    fingerprint = items_fingerprint(tables, batch, source)
    tally = _Tally()
    log = context.log

    with (
        tables.writer(
            DATASET_ITEMS, batch, fingerprint=fingerprint, run_id=context.run.run_id
        ) as writer,
        item_builder(
            source,
            store,
            batch,
            workers,
            retries_left=context.retry_number < INGEST_RETRY.max_retries,
        ) as build_rows,
    ):
        preview: list[dict[str, Any]] = []
        if writer.resumed_rows:
            for done in writer.iter_chunks(PREVIEW_COLUMNS):
                tally.add(done.to_pylist())
                preview = preview or done.slice(0, 10).to_pylist()
            log.info(
                f"resuming {batch} after its last checkpoint: {writer.resumed_rows} rows "
                "already written"
            )
        progress = Progress(f"{batch} items", total, log.info, done=writer.resume_from)
        step = source.checkpoint_rows
        for start in range(writer.resume_from, total, step):
            chunk = raw.slice(start, step).to_pylist()
            rows: list[dict[str, Any]] = []
            for row in build_rows(chunk):  # progress per item, a checkpoint per chunk
                if not source.ignore_errors:
                    _fail_on_bad_item([row], start + len(rows), writer)
                rows.append(row)
                progress.advance(1, tally.add([row]))
            preview = preview or rows[:10]
            writer.write_chunk(
                pa.Table.from_pylist(rows, schema=ITEMS_SCHEMA), input_end=start + len(chunk)
            )
        commit = writer.commit(ITEMS_SCHEMA, status_counts=dict(tally.status))
    metadata: dict[str, Any] = {
        "dagster/row_count": commit.rows,
        "dagster/column_schema": column_schema(ITEMS_SCHEMA),
        "source": source_name,
        "resumed_rows": writer.resumed_rows,
        "workers": f"{workers} {source.worker_kind if workers > 1 else '(inline)'}",
        "table": MetadataValue.path(tables.table_uri(DATASET_ITEMS, batch)),
        "preview": markdown_table(preview, PREVIEW_COLUMNS),
        "labels": MetadataValue.json(dict(tally.labels)),
        "splits": MetadataValue.json(dict(tally.splits)),
        "errors_by_reason": MetadataValue.json(dict(tally.reasons)),
        **timer.metadata(total - writer.resume_from, "items"),
    }
    for status in STATUSES:
        metadata[status] = tally.status.get(status, 0)
    return MaterializeResult(metadata=metadata)
