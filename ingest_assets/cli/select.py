"""``bucketlake select``: materializes one run of ``selection`` (the next ``selection_runs``
key, ``sel0001``, ...) through the project's Dagster instance, so the run shows in the UI, and
gives back what it added."""

from __future__ import annotations

from typing import Any

from dagster import DagsterInstance, JobDefinition, execute_job, reconstructable

from ingest_assets.cli.run_batch import failure_message
from ingest_assets.names import LAUNCHED_BY_TAG, PARTITION_TAG, SELECTION, SELECTION_JOB
from ingest_assets.partitions import SELECTION_RUNS
from resources.errors import BucketlakeError
from resources.lake.tables import Lake

PREFIX = "sel"


def selection_job_def() -> JobDefinition:
    from ingest_assets.definitions import defs

    return defs.resolve_job_def(SELECTION_JOB)


def next_run(lake: Lake, instance: DagsterInstance) -> str:
    """The key after every run the instance or the lake knows of."""
    known = set(instance.get_dynamic_partitions(SELECTION_RUNS)) | set(
        lake.committed_partitions(SELECTION)
    )
    numbers = [int(k[len(PREFIX) :]) for k in known if k.startswith(PREFIX) and k[3:].isdigit()]
    return f"{PREFIX}{max(numbers, default=0) + 1:04d}"


def run_selection(lake: Lake, instance: DagsterInstance, config: dict[str, Any]) -> dict[str, Any]:
    """Materialize a new selection run with ``config`` (``SelectionConfig``'s fields); its
    key, rows and summary. Raises BucketlakeError naming what failed."""
    key = next_run(lake, instance)
    instance.add_dynamic_partitions(SELECTION_RUNS, [key])
    result = execute_job(
        reconstructable(selection_job_def),
        instance=instance,
        run_config={"ops": {SELECTION: {"config": config}}},
        tags={PARTITION_TAG: key, LAUNCHED_BY_TAG: "bucketlake select"},
    )
    if not result.success:
        instance.delete_dynamic_partition(SELECTION_RUNS, key)
        raise BucketlakeError(
            f"selection {key} failed: {failure_message(result.all_events) or 'see the run'}"
            f" (run {result.run_id[:8]})"
        )
    commit = lake.read_commit(SELECTION, key)
    assert commit is not None, "a successful selection commits its table"
    rows = lake.read_table(SELECTION, key).drop_columns(["params"]).to_pylist()
    return {"run": key, "run_id": result.run_id, "rows": rows, **commit.extra.get("summary", {})}


def summary(found: dict[str, Any]) -> str:
    rows = found["rows"]
    radius = found.get("radius_before")
    before = "none" if radius is None else f"{radius:.4f}"
    lines = [
        f"{found['run']}: {len(rows)} items added of {found['candidates']} candidates "
        f"(coverage radius {before} -> {found['radius_after']:.4f})"
    ]
    for row in rows:
        score = "" if row["score"] is None else f"{row['score']:.4f}"
        lines.append(f"  {row['rank']:>5}  {row['item_id']}  {score:>8}  {row['key']}")
    return "\n".join(lines)
