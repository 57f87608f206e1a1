"""``bucketlake evaluate --model M [--version V] [--json]``: materializes ``evaluation`` for one
model version through the project's Dagster instance (the run shows in the UI) and gives back
its report."""

from __future__ import annotations

from typing import Any

from dagster import DagsterInstance, JobDefinition, execute_job, reconstructable

from ingest_assets.assets.evaluation import read_report, stat_types
from ingest_assets.cli.run_batch import failure_message
from ingest_assets.evaluation.detection import stat_names
from ingest_assets.models.registry import registered, version_key
from ingest_assets.names import EVALUATION_JOB, LAUNCHED_BY_TAG, PARTITION_TAG
from ingest_assets.partitions import MODEL_VERSIONS
from resources.errors import BucketlakeError, ConfigError
from resources.lake.catalog import partition_order
from resources.lake.tables import Lake


def evaluation_job_def() -> JobDefinition:
    from ingest_assets.definitions import defs

    return defs.resolve_job_def(EVALUATION_JOB)


def version_of(lake: Lake, model: str, version: str | None) -> str:
    """The registered version asked for, or the model's latest (in natural order)."""
    versions = [v.version for v in registered(lake).values() if v.model == model]
    if not versions:
        raise ConfigError(
            f"model {model!r} has no registered version; register one with "
            f"bucketlake add-model {model} --version V"
        )
    if version is None:
        return max(versions, key=partition_order)
    if version not in versions:
        raise ConfigError(
            f"model {model} has no version {version!r}; its versions are "
            + ", ".join(sorted(versions, key=partition_order))
        )
    return version


def run_evaluation(
    lake: Lake, instance: DagsterInstance, model: str, version: str | None
) -> dict[str, Any]:
    """Materialize the evaluation of the model version; its report. Raises BucketlakeError
    naming what failed."""
    key = version_key(model, version_of(lake, model, version))
    instance.add_dynamic_partitions(MODEL_VERSIONS, [key])
    result = execute_job(
        reconstructable(evaluation_job_def),
        instance=instance,
        tags={PARTITION_TAG: key, LAUNCHED_BY_TAG: "bucketlake evaluate"},
    )
    if not result.success:
        raise BucketlakeError(
            f"evaluation of {key} failed: {failure_message(result.all_events) or 'see the run'}"
            f" (run {result.run_id[:8]})"
        )
    report = read_report(lake, key)
    assert report is not None, "a successful evaluation commits its report"
    return {**report, "run_id": result.run_id}


def summary(report: dict[str, Any]) -> str:
    """The statistics as a person reads them."""
    lines = [f"evaluation of {report['model']} {report['version']} ({report['images']} images)"]
    for iou_type in stat_types(report):
        body = report[iou_type]
        lines.append(f"  {iou_type} ({body['engine']}):")
        for name, value in zip(stat_names(iou_type), body["stats"], strict=True):
            lines.append(f"    {name:10} {value:.4f}")
    classification = report.get("classification")
    if classification:
        lines.append(
            f"  classification: accuracy {classification['accuracy']:.4f} over "
            f"{classification['items']} items, macro F1 {classification['macro']['f1']:.4f}"
        )
    if report.get("left_out"):
        lines.append(f"  not scored: {report['left_out']}")
    return "\n".join(lines)
