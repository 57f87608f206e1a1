"""``duplicates``: for each item of a batch, the earlier item it duplicates, exactly (same
sha256) or nearly (perceptual hashes within the source's ``near_duplicate_distance``), across
this batch and every batch registered before it."""

from typing import Any

import pyarrow as pa
from dagster import AssetExecutionContext, MaterializeResult, MetadataValue, asset

from ingest_assets.assets.dataset_items import dataset_items
from ingest_assets.assets.metadata import Timer, column_schema, markdown_table
from ingest_assets.assets.runtime import INGEST_RETRY, record_run_process
from ingest_assets.items.duplicates import HashedItem, duplicate_counts, find_duplicates
from ingest_assets.names import DATASET_ITEMS, DUPLICATES
from ingest_assets.partitions import BATCHES, batches
from resources.lake.datapool import parse_batch_key
from resources.lake.resource import LakeResource
from resources.stores.resource import SourcesResource

#: Bump when duplicates rows would come out differently for the same items.
DUPLICATES_CODE_VERSION = "duplicates-1"
COLUMNS = ["item_id", "key", "batch", "sha256", "phash", "status"]
SCHEMA = pa.schema(
    [
        ("item_id", pa.string()),
        ("key", pa.string()),
        ("kind", pa.string()),
        ("distance", pa.int16()),
        ("duplicate_of", pa.string()),
        ("duplicate_key", pa.string()),
        ("duplicate_batch", pa.string()),
    ]
)


def _hashed(rows: list[dict[str, Any]]) -> list[HashedItem]:
    return [
        HashedItem(r["item_id"], r["key"], r["sha256"], r["phash"])
        for r in rows
        if r["status"] == "ok"
    ]


@asset(
    name=DUPLICATES,
    partitions_def=batches,
    code_version=DUPLICATES_CODE_VERSION,
    deps=[dataset_items],
    group_name="ingest",
    kinds={"parquet"},
    retry_policy=INGEST_RETRY,
    description="Exact (sha256) and near (perceptual hash) duplicates of this batch's items "
    "among themselves and among the items of earlier batches.",
)
def duplicates(
    context: AssetExecutionContext, lake: LakeResource, sources: SourcesResource
) -> MaterializeResult[None]:
    record_run_process(context)
    timer = Timer()
    batch = context.partition_key
    source = sources.source(parse_batch_key(batch)[0])
    tables = lake.lake()
    registered = context.instance.get_dynamic_partitions(BATCHES)
    earlier = registered[: registered.index(batch)] if batch in registered else []
    new_rows = tables.read_table(DATASET_ITEMS, batch, COLUMNS).to_pylist()
    new_ids = {r["item_id"] for r in new_rows}
    old_rows: list[dict[str, Any]] = []
    committed = [b for b in earlier if tables.is_committed(DATASET_ITEMS, b)]
    if committed:
        current = tables.read_current(DATASET_ITEMS, committed, COLUMNS).to_pylist()
        old_rows = [r for r in current if r["item_id"] not in new_ids]  # not its own old version
    old, new = _hashed(old_rows), _hashed(new_rows)
    batch_of = {r["item_id"]: r["batch"] for r in old_rows + new_rows}
    found = find_duplicates(
        old + new, max_distance=source.near_duplicate_distance, new_from=len(old)
    )
    rows = [
        {
            "item_id": d.item.item_id,
            "key": d.item.key,
            "kind": d.kind,
            "distance": d.distance,
            "duplicate_of": d.original.item_id,
            "duplicate_key": d.original.key,
            "duplicate_batch": batch_of[d.original.item_id],
        }
        for d in found
    ]
    table = pa.Table.from_pylist(rows, schema=SCHEMA)
    fingerprint = f"{len(old)}:{len(new)}:{source.near_duplicate_distance}"
    with tables.writer(
        DUPLICATES, batch, fingerprint=fingerprint, run_id=context.run.run_id
    ) as writer:
        if table.num_rows:
            writer.write_chunk(table, input_end=table.num_rows)
        writer.commit(SCHEMA)
    counts = duplicate_counts(found)
    return MaterializeResult(
        metadata={
            "dagster/row_count": table.num_rows,
            "dagster/column_schema": column_schema(SCHEMA),
            "exact_duplicates": counts["exact"],
            "near_duplicates": counts["near"],
            "duplicate_rate": round(len(found) / len(new), 4) if new else 0.0,
            "compared_with_earlier_items": len(old),
            "near_duplicate_distance": source.near_duplicate_distance,
            "table": MetadataValue.path(tables.table_uri(DUPLICATES, batch)),
            "preview": markdown_table(
                rows[:10], ["key", "kind", "distance", "duplicate_key", "duplicate_batch"]
            ),
            **timer.metadata(len(new), "items"),
        }
    )
