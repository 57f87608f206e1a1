"""The one place that builds ``defs``: assets, checks, jobs, schedules, one datapool sensor per
configured source, and the resources carrying the config's settings.

The config is read and validated once, here, when the code location loads; a change to the
file takes effect when the code location reloads. Loading does no other I/O."""

from __future__ import annotations

from dagster import Definitions

from ingest_assets.assets.checks import every_batch_has_items
from ingest_assets.assets.dataset_items import dataset_items
from ingest_assets.assets.duplicates import duplicates
from ingest_assets.assets.embeddings import build_embeddings
from ingest_assets.assets.evaluation import evaluation
from ingest_assets.assets.imports import imported_annotations, imported_predictions
from ingest_assets.assets.label_annotations import label_annotations
from ingest_assets.assets.pretagging import build_pretagging
from ingest_assets.assets.raw_items import raw_items
from ingest_assets.assets.selection import selection
from ingest_assets.assets.training import pool_embedding_model, trained_model
from ingest_assets.executors import executor_for
from ingest_assets.healing import batch_tables
from ingest_assets.jobs import (
    dataset_checks_job,
    evaluation_job,
    import_annotations_job,
    import_predictions_job,
    ingest_job,
    selection_job,
)
from ingest_assets.schedules import dataset_checks_schedule
from resources.config import BucketlakeConfig, load_config
from resources.project import project_resources
from sensors.datapool_sensor import build_datapool_sensor
from sensors.evaluation_sensor import evaluation_sensor
from sensors.imports_sensor import build_imports_sensor


def build_definitions(config: BucketlakeConfig) -> Definitions:
    return Definitions(
        assets=[
            raw_items,
            dataset_items,
            duplicates,
            label_annotations,
            imported_annotations,
            imported_predictions,
            evaluation,
            selection,
            pool_embedding_model,
            trained_model,
            *([build_embeddings(config.embeddings)] if config.embeddings.enabled else []),
            *[build_pretagging(model) for model in config.resolved().models if model.pretag],
        ],
        asset_checks=[every_batch_has_items],
        jobs=[
            ingest_job,
            dataset_checks_job,
            import_annotations_job,
            import_predictions_job,
            evaluation_job,
            selection_job,
        ],
        schedules=[dataset_checks_schedule],
        sensors=[build_datapool_sensor(s, batch_tables(config)) for s in config.sources]
        + [build_imports_sensor(s) for s in config.sources if s.annotations or s.predictions]
        + [evaluation_sensor],
        resources=project_resources(config),
        executor=executor_for(config.executor),
    )


defs = build_definitions(load_config())
