"""``raw_items``: the object versions a batch claimed, read from its manifest (never by listing
the bucket again)."""

import hashlib
from collections import Counter

import pyarrow as pa
import pyarrow.compute as pc
from dagster import AssetExecutionContext, Failure, MaterializeResult, MetadataValue, asset

from ingest_assets.assets.metadata import Timer, column_schema, markdown_table
from ingest_assets.assets.runtime import INGEST_RETRY, record_run_process
from ingest_assets.items.identity import item_id
from ingest_assets.names import RAW_ITEMS
from ingest_assets.partitions import batches
from resources.errors import ObjectNotFound
from resources.lake.datapool import (
    LINKED_SOURCE,
    manifest_key,
    manifest_table,
    parse_batch_key,
)
from resources.lake.resource import LakeResource

#: Bump when raw_items rows would come out differently for the same manifest.
RAW_ITEMS_CODE_VERSION = "raw-2"


@asset(
    name=RAW_ITEMS,
    partitions_def=batches,
    code_version=RAW_ITEMS_CODE_VERSION,
    group_name="ingest",
    retry_policy=INGEST_RETRY,
    kinds={"parquet"},
    description="The object versions claimed into this batch: source, key, uri, size, change "
    "token, last_modified, kind, and the item_id each becomes; tombstones (deleted) for objects "
    "deleted from the source.",
)
def raw_items(context: AssetExecutionContext, lake: LakeResource) -> MaterializeResult[None]:
    record_run_process(context)
    timer = Timer()
    batch = context.partition_key
    source, _ = parse_batch_key(batch)
    tables = lake.lake()
    try:
        data = tables.store.get(manifest_key(batch))
    except ObjectNotFound:
        if source == LINKED_SOURCE:
            raise Failure(
                f"{batch} holds the items a COCO import linked: it has no objects to claim or "
                "ingest; import the COCO file again to change them",
                allow_retries=False,
            ) from None
        raise Failure(
            f"batch {batch} has no manifest at {tables.store.uri(manifest_key(batch))}; batches "
            "are created by the datapool sensor or `bucketlake sync`, not by hand",
            allow_retries=False,
        ) from None
    table = manifest_table(data)
    ids = [item_id(source, k) for k in table.column("key").to_pylist()]
    table = table.add_column(0, "item_id", pa.array(ids, type=pa.string()))
    fingerprint = hashlib.sha256(data).hexdigest()
    with tables.writer(
        RAW_ITEMS, batch, fingerprint=fingerprint, run_id=context.run.run_id
    ) as writer:
        if table.num_rows > writer.resume_from:  # not when a crash left it written whole
            writer.write_chunk(table.slice(writer.resume_from), input_end=table.num_rows)
        writer.commit(table.schema)
    kinds = Counter(table.column("kind").to_pylist())
    preview = table.slice(0, 10).select(["key", "size", "kind", "change_token"]).to_pylist()
    return MaterializeResult(
        metadata={
            "dagster/row_count": table.num_rows,
            "dagster/column_schema": column_schema(table.schema),
            "source": source,
            "bytes": int(pc.sum(table.column("size")).as_py() or 0),
            "tombstones": int(pc.sum(table.column("deleted").cast(pa.int64())).as_py() or 0),
            "kinds": MetadataValue.json(dict(kinds)),
            "table": MetadataValue.path(tables.table_uri(RAW_ITEMS, batch)),
            "preview": markdown_table(preview, ["key", "size", "kind", "change_token"]),
            **timer.metadata(table.num_rows),
        }
    )
