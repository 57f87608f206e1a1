"""``label_annotations``: the class each batch's label strategy gives its items, as annotation
rows (DESIGN §4)."""

import hashlib
from collections import Counter

import pyarrow.compute as pc
from dagster import AssetExecutionContext, MaterializeResult, MetadataValue, asset

from ingest_assets.annotations.label_rows import label_rows
from ingest_assets.annotations.table import ANNOTATIONS_SCHEMA
from ingest_assets.assets.charts import bar_chart
from ingest_assets.assets.dataset_items import dataset_items
from ingest_assets.assets.metadata import Timer, column_schema
from ingest_assets.assets.runtime import INGEST_RETRY, record_run_process
from ingest_assets.names import DATASET_ITEMS, LABEL_ANNOTATIONS
from ingest_assets.partitions import batches
from resources.lake.resource import LakeResource

LABEL_ANNOTATIONS_CODE_VERSION = "labels-1"


@asset(
    name=LABEL_ANNOTATIONS,
    partitions_def=batches,
    code_version=LABEL_ANNOTATIONS_CODE_VERSION,
    deps=[dataset_items],
    group_name="ingest",
    kinds={"parquet"},
    retry_policy=INGEST_RETRY,
    description="The class the source's label strategy gives each item of the batch, as an "
    "annotation (origin label_strategy).",
)
def label_annotations(
    context: AssetExecutionContext, lake: LakeResource
) -> MaterializeResult[None]:
    record_run_process(context)
    timer = Timer()
    batch = context.partition_key
    tables = lake.lake()
    items = tables.read_table(DATASET_ITEMS, batch, ["item_id", "key", "label", "status"])
    commit = tables.read_commit(DATASET_ITEMS, batch)
    assert commit is not None  # read_table raised otherwise
    fingerprint = hashlib.sha256(
        f"{commit.fingerprint}\x00{commit.run_id}\x00{LABEL_ANNOTATIONS_CODE_VERSION}".encode()
    ).hexdigest()
    table = label_rows(items.to_pylist(), batch)
    with tables.writer(
        LABEL_ANNOTATIONS, batch, fingerprint=fingerprint, run_id=context.run.run_id
    ) as writer:
        if table.num_rows > writer.resume_from:
            writer.write_chunk(table.slice(writer.resume_from), input_end=table.num_rows)
        writer.commit(ANNOTATIONS_SCHEMA)
    labels = Counter(label for label in table.column("label").to_pylist() if label is not None)
    metadata = {
        "dagster/row_count": table.num_rows,
        "dagster/column_schema": column_schema(ANNOTATIONS_SCHEMA),
        "labelled": int(pc.sum(pc.is_valid(table.column("label")).cast("int64")).as_py() or 0),
        "labels": MetadataValue.json(dict(labels.most_common())),
        "table": MetadataValue.path(tables.table_uri(LABEL_ANNOTATIONS, batch)),
        **timer.metadata(table.num_rows),
    }
    if labels:
        metadata["class_histogram"] = bar_chart(labels, title=f"{batch}: items per class")
    return MaterializeResult(metadata=metadata)
