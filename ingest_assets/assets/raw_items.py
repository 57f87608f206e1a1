"""``raw_items``: the object versions a batch claimed, read from its manifest (never by listing
the bucket again)."""

import hashlib
from collections import Counter

import pyarrow as pa
import pyarrow.parquet as pq
from dagster import AssetExecutionContext, Failure, MaterializeResult, MetadataValue, asset

from ingest_assets.assets.metadata import markdown_table
from ingest_assets.assets.runtime import INGEST_RETRY, record_run_process
from ingest_assets.items.identity import item_id
from ingest_assets.partitions import batches
from resources.bucketlake import BucketlakeResource
from resources.errors import ObjectNotFound
from sensors.datapool import manifest_key, parse_batch_key

ASSET = "raw_items"


@asset(
    partitions_def=batches,
    group_name="ingest",
    retry_policy=INGEST_RETRY,
    kinds={"parquet"},
    description="The object versions claimed into this batch: source, key, uri, size, change "
    "token, last_modified, kind, and the item_id each becomes.",
)
def raw_items(
    context: AssetExecutionContext, bucketlake: BucketlakeResource
) -> MaterializeResult[None]:
    record_run_process(context)
    batch = context.partition_key
    source, _ = parse_batch_key(batch)
    lake = bucketlake.lake()
    try:
        data = lake.store.get(manifest_key(batch))
    except ObjectNotFound:
        raise Failure(
            f"batch {batch} has no manifest at {lake.store.uri(manifest_key(batch))}; batches "
            "are created by the datapool sensor or `bucketlake sync`, not by hand",
            allow_retries=False,
        ) from None
    table = pq.read_table(pa.BufferReader(data)).replace_schema_metadata(None)
    ids = [item_id(source, k) for k in table.column("key").to_pylist()]
    table = table.add_column(0, "item_id", pa.array(ids, type=pa.string()))
    fingerprint = hashlib.sha256(data).hexdigest()
    with lake.writer(ASSET, batch, fingerprint=fingerprint, run_id=context.run.run_id) as writer:
        if table.num_rows:
            writer.write_chunk(table, input_end=table.num_rows)
        writer.commit(table.schema)
    kinds = Counter(table.column("kind").to_pylist())
    preview = table.slice(0, 10).select(["key", "size", "kind", "change_token"]).to_pylist()
    return MaterializeResult(
        metadata={
            "dagster/row_count": table.num_rows,
            "source": source,
            "bytes": int(sum(table.column("size").to_pylist())),
            "kinds": MetadataValue.json(dict(kinds)),
            "table": MetadataValue.path(lake.table_uri(ASSET, batch)),
            "preview": markdown_table(preview, ["key", "size", "kind", "change_token"]),
        }
    )
