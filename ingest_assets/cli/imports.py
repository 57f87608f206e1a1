"""``bucketlake import PATH --format F``: one label or prediction file becomes a partition of
``imports`` and is materialized through the project's Dagster instance (the run shows in the
UI), as the import sensor does for files a source's globs find."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dagster import AssetKey, DagsterInstance, JobDefinition, execute_job, reconstructable

from ingest_assets.annotations.importing import ImportSpec, import_key, known_spec, save_spec
from ingest_assets.cli.run_batch import failure_message
from ingest_assets.models.registry import is_registered
from ingest_assets.names import (
    IMPORT_ANNOTATIONS_JOB,
    IMPORT_PREDICTIONS_JOB,
    IMPORTED_ANNOTATIONS,
    IMPORTED_PREDICTIONS,
    PARTITION_TAG,
)
from ingest_assets.partitions import IMPORTS
from resources.config import BucketlakeConfig
from resources.errors import BucketlakeError, ConfigError
from resources.lake.tables import Lake


def import_annotations_job_def() -> JobDefinition:
    from ingest_assets.definitions import defs

    return defs.resolve_job_def(IMPORT_ANNOTATIONS_JOB)


def import_predictions_job_def() -> JobDefinition:
    from ingest_assets.definitions import defs

    return defs.resolve_job_def(IMPORT_PREDICTIONS_JOB)


@dataclass(frozen=True)
class ImportOutcome:
    spec: ImportSpec
    run_id: str
    metadata: dict[str, Any]


def file_uri(path: str) -> str:
    """A local path made absolute (URIs stay as they are)."""
    return path if "://" in path else str(Path(path).absolute())


def start_import(
    config: BucketlakeConfig,
    lake: Lake,
    instance: DagsterInstance,
    spec: ImportSpec,
) -> ImportOutcome:
    """Register the import and run it; raises BucketlakeError naming what failed."""
    if spec.model and spec.version and not is_registered(lake, spec.model, spec.version):
        raise ConfigError(
            f"model {spec.model} version {spec.version} is not registered; register it first "
            f"(bucketlake add-model {spec.model} --version {spec.version})"
        )
    save_spec(lake.store, spec)
    instance.add_dynamic_partitions(IMPORTS, [spec.key])
    job = import_predictions_job_def if spec.predictions else import_annotations_job_def
    result = execute_job(
        reconstructable(job),
        instance=instance,
        tags={PARTITION_TAG: spec.key, "bucketlake/launched_by": "bucketlake import"},
    )
    if not result.success:
        raise BucketlakeError(
            f"import of {spec.uri} failed: {failure_message(result.all_events) or 'see the run'}"
            f" (run {result.run_id[:8]})"
        )
    asset = IMPORTED_PREDICTIONS if spec.predictions else IMPORTED_ANNOTATIONS
    materialized = [
        e.event_specific_data.materialization  # type: ignore[union-attr]
        for e in result.all_events
        if e.is_step_materialization and e.asset_key == AssetKey(asset)
    ]
    metadata = {k: v.value for k, v in materialized[0].metadata.items()} if materialized else {}
    return ImportOutcome(spec, result.run_id, metadata)


def spec_of(
    config: BucketlakeConfig,
    lake: Lake,
    path: str,
    fmt: str,
    model: str | None = None,
    version: str | None = None,
    boxes: str = "keep",
    *,
    source: str | None = None,
    link: bool | None = None,
    images: str | None = None,
) -> ImportSpec:
    """What ``bucketlake import`` is asked to do. ``link`` left open: a COCO instances file
    links its images as items when no source is configured (the file alone is the dataset),
    or as it did when it was imported before."""
    uri = file_uri(path)
    key = import_key(uri)
    if source is not None:
        config.source(source)  # a source that is not configured is named now, not in the run
    if link is None:
        known = known_spec(lake.store, key)
        if known is not None and known.format == fmt:
            link, images = known.link, images or known.images
        else:
            link = fmt == "coco" and (images is not None or not config.sources)
    if images is not None:
        images = file_uri(images)
    return ImportSpec(
        key,
        uri,
        fmt,
        model,
        version,
        boxes,  # type: ignore[arg-type]
        source=source,
        link=link,
        images=images,
    )
