"""Jobs. ``ingest_job`` holds every batch-partitioned asset: one run per batch."""

from dagster import AssetSelection, define_asset_job, in_process_executor

from ingest_assets.assets.dataset_items import dataset_items
from ingest_assets.assets.duplicates import duplicates
from ingest_assets.assets.raw_items import raw_items

INGEST_JOB = "ingest_job"

# Steps run in the run's own process: a batch parallelises inside dataset_items, and batches run
# side by side as separate runs, so a process per step would only add start-up time.
ingest_job = define_asset_job(
    INGEST_JOB,
    selection=AssetSelection.assets(raw_items, dataset_items, duplicates),
    executor_def=in_process_executor,
    description="Takes one batch from claimed objects to dataset items.",
)
