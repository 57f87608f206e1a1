"""Runs ``ingest_job`` for one batch through the Dagster instance in ``DAGSTER_HOME``; prints one
JSON line with the outcome. ``bucketlake sync`` starts one such process per batch."""

from __future__ import annotations

import json
import sys

from dagster import DagsterInstance, JobDefinition, execute_job, reconstructable

from sensors.datapool import parse_batch_key
from sensors.datapool_sensor import SOURCE_TAG

RESULT_PREFIX = "bucketlake-run-result "


def ingest_job_def() -> JobDefinition:
    from ingest_assets.definitions import defs
    from ingest_assets.jobs import INGEST_JOB

    return defs.resolve_job_def(INGEST_JOB)


def run_batch(batch: str, attempt: int) -> dict[str, object]:
    source, _ = parse_batch_key(batch)
    with DagsterInstance.get() as instance:
        result = execute_job(
            reconstructable(ingest_job_def),
            instance=instance,
            tags={
                "dagster/partition": batch,
                SOURCE_TAG: source,
                "bucketlake/launched_by": "bucketlake sync",
                "bucketlake/attempt": str(attempt),
            },
        )
        errors = [
            event.event_specific_data.error.message.strip()  # type: ignore[union-attr]
            for event in result.all_events
            if event.is_step_failure and event.event_specific_data is not None
        ]
        return {
            "batch": batch,
            "run_id": result.run_id,
            "success": result.success,
            "error": errors[0] if errors else None,
        }


def main() -> int:
    batch, attempt = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 1
    outcome = run_batch(batch, attempt)
    print(RESULT_PREFIX + json.dumps(outcome), flush=True)
    return 0 if outcome["success"] else 1


if __name__ == "__main__":
    sys.exit(main())
