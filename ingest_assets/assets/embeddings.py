"""``embeddings``: one vector per ok item of a batch, from the model the config names (the
built-in ImageNet MobileNetV2 unless told otherwise), with the k-NN accuracy of the batch's
labelled items in the metadata. Built by ``definitions`` from the config's ``embeddings``."""

from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
from dagster import (
    AssetExecutionContext,
    AssetsDefinition,
    MaterializeResult,
    MetadataValue,
    asset,
)

from ingest_assets.assets.dataset_items import dataset_items
from ingest_assets.assets.inference_steps import (
    ok_items,
    refusing_config_errors,
    source_of,
    step_fingerprint,
    write_outputs,
)
from ingest_assets.assets.metadata import Timer, column_schema
from ingest_assets.assets.runtime import INGEST_RETRY
from ingest_assets.embeddings.knn import knn_accuracy
from ingest_assets.embeddings.table import (
    EMBEDDINGS_CODE_VERSION,
    embeddings_schema,
    embeddings_table,
    vectors_of,
)
from ingest_assets.models.runnable import embedding_spec, weights_reader
from ingest_assets.names import EMBEDDINGS, INFERENCE_GROUP
from ingest_assets.partitions import batches
from resources.config_inference import EmbeddingsConfig
from resources.inference.runtime import InferenceRuntime
from resources.lake.resource import LakeResource
from resources.stores.resource import SourcesResource

if TYPE_CHECKING:  # torch is imported when a step runs a model, not when the code loads
    from resources.inference.models import Outputs


def build_embeddings(config: EmbeddingsConfig) -> AssetsDefinition:
    @asset(
        name=EMBEDDINGS,
        partitions_def=batches,
        code_version=EMBEDDINGS_CODE_VERSION,
        deps=[dataset_items],
        group_name=INFERENCE_GROUP,
        retry_policy=INGEST_RETRY,
        kinds={"pytorch", "parquet"},
        description="One vector per ok item (item_id, model, model_version, vector: a "
        f"fixed-size float32 list) from {config.model!r}"
        + (f" version {config.version}" if config.version else " (ImageNet MobileNetV2)")
        + "; items that cannot be decoded are skipped and counted.",
    )
    def embeddings(
        context: AssetExecutionContext,
        lake: LakeResource,
        sources: SourcesResource,
        inference: InferenceRuntime,
    ) -> MaterializeResult[None]:
        timer = Timer()
        batch = context.partition_key
        tables = lake.lake()
        source = source_of(sources, batch)
        with refusing_config_errors(f"{batch} embeddings"):
            spec = embedding_spec(config, tables)
            fingerprint = step_fingerprint(
                tables, batch, spec, inference, EMBEDDINGS_CODE_VERSION, source.checkpoint_rows
            )
            items = ok_items(tables, batch)
            model = inference.model(spec, weights_reader(spec, lake.object_store))
        context.log.info(
            f"embedding {items.num_rows} items of {batch} with {spec.model} {spec.version} on "
            f"{inference.torch_device()}"
        )
        schema = embeddings_schema(inference.embedding_dim(model))

        def rows_of(rows: list[dict[str, Any]], outputs: "Outputs") -> pa.Table:
            assert outputs.vectors is not None
            ids = [row["item_id"] for row in rows]
            return embeddings_table(ids, spec.model, spec.version, outputs.vectors)

        commit, counts, resumed = write_outputs(
            context,
            tables=tables,
            asset=EMBEDDINGS,
            fingerprint=fingerprint,
            runtime=inference,
            model=model,
            items=items,
            source=source,
            rows_of=rows_of,
            schema=schema,
            commit_extra={"model": spec.model, "model_version": spec.version},
        )
        written = tables.read_table(EMBEDDINGS, batch, columns=["item_id", "vector"])
        accuracy, labelled = _knn(items, written, config.knn_k)
        metadata: dict[str, Any] = {
            "dagster/row_count": commit.rows,
            "dagster/column_schema": column_schema(schema),
            "model": spec.model,
            "model_version": spec.version,
            "dimensions": schema.field("vector").type.list_size,
            "device": str(inference.torch_device()),
            "skipped": items.num_rows - commit.rows,  # this run's and any it resumed
            "skipped_by_reason_this_run": MetadataValue.json(dict(counts.reasons)),
            "resumed_rows": resumed,
            f"knn{config.knn_k}_accuracy": accuracy,
            "knn_labelled_items": labelled,
            "table": MetadataValue.path(tables.table_uri(EMBEDDINGS, batch)),
            **timer.metadata(counts.done, "items"),
        }
        return MaterializeResult(metadata=metadata)

    return embeddings


def _knn(items: pa.Table, written: pa.Table, k: int) -> tuple[float | None, int]:
    """Leave-one-out k-NN accuracy over the labelled items that have a vector."""
    label_of = dict(
        zip(items.column("item_id").to_pylist(), items.column("label").to_pylist(), strict=True)
    )
    ids = written.column("item_id").to_pylist()
    keep = [i for i, item in enumerate(ids) if label_of.get(item) is not None]
    if not keep:
        return None, 0
    vectors = vectors_of(written)[np.asarray(keep)]
    labels = [label_of[ids[i]] for i in keep]
    accuracy = knn_accuracy(vectors, labels, k)
    return (None if accuracy is None else round(accuracy, 4)), len(keep)
