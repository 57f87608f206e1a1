"""Jobs. ``ingest_job`` holds every batch-partitioned asset: one run per batch. Its executor is
the one the config chooses (``Definitions(executor=...)``)."""

from dagster import AssetSelection, define_asset_job

from ingest_assets.assets.checks import every_batch_has_items
from ingest_assets.assets.dataset_items import dataset_items
from ingest_assets.assets.duplicates import duplicates
from ingest_assets.assets.evaluation import evaluation
from ingest_assets.assets.imports import imported_annotations, imported_predictions
from ingest_assets.assets.label_annotations import label_annotations
from ingest_assets.assets.raw_items import raw_items
from ingest_assets.assets.selection import selection
from ingest_assets.names import (
    CHECKS_JOB,
    EVALUATION_JOB,
    IMPORT_ANNOTATIONS_JOB,
    IMPORT_PREDICTIONS_JOB,
    INFERENCE_GROUP,
    INGEST_JOB,
    SELECTION_JOB,
)

ingest_job = define_asset_job(
    INGEST_JOB,
    selection=(
        AssetSelection.assets(raw_items, dataset_items, duplicates, label_annotations)
        | AssetSelection.groups(INFERENCE_GROUP)
    ).without_checks(),
    description="Takes one batch from claimed objects to dataset items, their embeddings and "
    "the predictions of the models that pre-tag.",
)

#: The data-quality checks that judge every batch at once; on a schedule and from the UI.
dataset_checks_job = define_asset_job(
    CHECKS_JOB,
    selection=AssetSelection.checks(every_batch_has_items),
    description="Checks that judge the dataset as a whole (every batch has committed items).",
)

#: One label file (a partition of ``imports``) into ``imported_annotations``.
import_annotations_job = define_asset_job(
    IMPORT_ANNOTATIONS_JOB,
    selection=AssetSelection.assets(imported_annotations),
    description="Imports one label file's ground truth, tied to the items it names.",
)

#: One predictions file into ``imported_predictions``.
import_predictions_job = define_asset_job(
    IMPORT_PREDICTIONS_JOB,
    selection=AssetSelection.assets(imported_predictions),
    description="Imports one model version's predictions from one file.",
)

#: One model version (a partition of ``model_versions``) scored against the ground truth.
evaluation_job = define_asset_job(
    EVALUATION_JOB,
    selection=AssetSelection.assets(evaluation),
    description="Scores one model version's predictions against the ground truth.",
)

#: One selection run (a partition of ``selection_runs``), configured in the Launchpad.
selection_job = define_asset_job(
    SELECTION_JOB,
    selection=AssetSelection.assets(selection),
    description="Adds the items most worth labelling next to the selection (one run).",
)
