"""The one place that builds ``defs``: assets, jobs, one datapool sensor per configured source,
and the resource that carries the config. Loading reads the config file and nothing else."""

from __future__ import annotations

from dagster import Definitions

from ingest_assets.assets.dataset_items import dataset_items
from ingest_assets.assets.duplicates import duplicates
from ingest_assets.assets.raw_items import raw_items
from ingest_assets.config import BucketlakeConfig, load_config
from ingest_assets.jobs import ingest_job
from resources.bucketlake import BucketlakeResource
from sensors.datapool_sensor import build_datapool_sensor


def build_definitions(config: BucketlakeConfig) -> Definitions:
    return Definitions(
        assets=[raw_items, dataset_items, duplicates],
        jobs=[ingest_job],
        sensors=[build_datapool_sensor(source, ingest_job) for source in config.sources],
        resources={
            "bucketlake": BucketlakeResource(
                config_file=str(config.path) if config.path else None,
                base_dir=str(config.base_dir),
            )
        },
    )


defs = build_definitions(load_config())
