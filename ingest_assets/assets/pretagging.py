"""``predictions_<model>``: one asset per configured model with ``pretag: true`` (an asset
factory, DESIGN §4), run on every batch after ``dataset_items``: a classifier's top labels or a
detector's boxes above the model's confidence threshold, in the form of imported predictions."""

from collections import Counter
from typing import TYPE_CHECKING, Any

import pyarrow as pa
from dagster import (
    AssetExecutionContext,
    AssetsDefinition,
    MaterializeResult,
    MetadataValue,
    asset,
)

from ingest_assets.annotations.table import PREDICTIONS_SCHEMA
from ingest_assets.assets.dataset_items import dataset_items
from ingest_assets.assets.inference_steps import (
    ok_items,
    refusing_config_errors,
    source_of,
    step_fingerprint,
    write_outputs,
)
from ingest_assets.assets.metadata import Timer, column_schema, markdown_table
from ingest_assets.assets.runtime import INGEST_RETRY
from ingest_assets.models.pretag_rows import class_rows, object_rows
from ingest_assets.models.registry import from_config, register
from ingest_assets.models.runnable import spec_of, weights_reader
from ingest_assets.names import INFERENCE_GROUP, predictions_asset
from ingest_assets.partitions import batches
from resources.config import ModelConfig
from resources.inference.runtime import InferenceRuntime
from resources.lake.resource import LakeResource
from resources.stores.resource import SourcesResource

if TYPE_CHECKING:  # torch is imported when a step runs a model, not when the code loads
    from resources.inference.models import Outputs

PRETAG_CODE_VERSION = "pretag-1"
PREVIEW = ["item_id", "label", "confidence", "bbox"]


def build_pretagging(config: ModelConfig) -> AssetsDefinition:
    version = from_config(config)
    spec = spec_of(version)  # refuses a model without weights when the definitions load
    name = predictions_asset(config.name)

    @asset(
        name=name,
        partitions_def=batches,
        code_version=PRETAG_CODE_VERSION,
        deps=[dataset_items],
        group_name=INFERENCE_GROUP,
        retry_policy=INGEST_RETRY,
        kinds={"pytorch", "parquet"},
        description=f"{config.task.capitalize()} predictions of model {config.name} version "
        f"{config.version} on every ok item, at least {config.confidence_threshold} confident.",
    )
    def pretagging(
        context: AssetExecutionContext,
        lake: LakeResource,
        sources: SourcesResource,
        inference: InferenceRuntime,
    ) -> MaterializeResult[None]:
        timer = Timer()
        batch = context.partition_key
        tables = lake.lake()
        source = source_of(sources, batch)
        settings = [PRETAG_CODE_VERSION, config.confidence_threshold, config.top_k]
        with refusing_config_errors(f"{batch} {name}"):
            # As every sync does (a no-op for a version registered as it is; a conflict fails).
            if register(tables, version, by="config"):
                context.log.info(f"model {version.model} version {version.version} registered")
            fingerprint = step_fingerprint(
                tables, batch, spec, inference, *settings, source.checkpoint_rows
            )
            items = ok_items(tables, batch)
            model = inference.model(spec, weights_reader(spec, lake.object_store))
        labels = model.labels
        key = (spec.model, spec.version)
        by_label: Counter[str] = Counter()

        def rows_of(rows: list[dict[str, Any]], outputs: "Outputs") -> pa.Table:
            if outputs.detections is not None:
                made = object_rows(
                    rows,
                    outputs.detections,
                    labels,
                    model=key,
                    batch=batch,
                    threshold=config.confidence_threshold,
                )
            else:
                assert outputs.scores is not None
                made = class_rows(
                    rows,
                    outputs.scores,
                    labels,
                    model=key,
                    batch=batch,
                    top_k=config.top_k,
                    threshold=config.confidence_threshold,
                )
            by_label.update(row["label"] for row in made)
            return pa.Table.from_pylist(made, schema=PREDICTIONS_SCHEMA)

        commit, counts, resumed = write_outputs(
            context,
            tables=tables,
            asset=name,
            fingerprint=fingerprint,
            runtime=inference,
            model=model,
            items=items,
            source=source,
            rows_of=rows_of,
            schema=PREDICTIONS_SCHEMA,
            commit_extra={"model": spec.model, "version": spec.version},
        )
        preview = tables.read_table(name, batch, columns=PREVIEW).slice(0, 10).to_pylist()
        return MaterializeResult(
            metadata={
                "dagster/row_count": commit.rows,
                "dagster/column_schema": column_schema(PREDICTIONS_SCHEMA),
                "model": spec.model,
                "model_version": spec.version,
                "items": items.num_rows,
                "labels_this_run": MetadataValue.json(dict(by_label.most_common(20))),
                "skipped": counts.skipped,
                "skipped_by_reason": MetadataValue.json(dict(counts.reasons)),
                "resumed_rows": resumed,
                "preview": markdown_table(preview, PREVIEW),
                **timer.metadata(counts.done, "rows"),
            }
        )

    return pretagging
