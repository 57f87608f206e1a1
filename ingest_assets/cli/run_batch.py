"""Runs ``ingest_job`` for one batch through the Dagster instance in ``DAGSTER_HOME``; prints one
JSON line with the outcome. ``bucketlake sync`` starts one such process per batch."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence

from dagster import (
    DagsterEvent,
    DagsterEventType,
    DagsterInstance,
    JobDefinition,
    execute_job,
    reconstructable,
)
from dagster_shared.error import SerializableErrorInfo

from sensors.datapool import parse_batch_key
from sensors.datapool_sensor import SOURCE_TAG

RESULT_PREFIX = "bucketlake-run-result "


def ingest_job_def() -> JobDefinition:
    from ingest_assets.definitions import defs
    from ingest_assets.jobs import INGEST_JOB

    return defs.resolve_job_def(INGEST_JOB)


_RETRY_WRAPPERS = {"RetryRequestedFromPolicy", "RetryRequested"}


def _user_error(error: SerializableErrorInfo) -> str:
    """The error the asset raised, under Dagster's wrappers, without its class name."""
    while error.cause is not None and (
        (error.cls_name or "").startswith("Dagster") or error.cls_name in _RETRY_WRAPPERS
    ):
        error = error.cause
    message = error.message.strip()
    prefix = f"{error.cls_name}: "
    head, sep, rest = message.partition(": ")
    if error.cls_name and (message.startswith(prefix) or head.endswith(f".{error.cls_name}")):
        return rest if sep else message
    return message


def failure_message(events: Sequence[DagsterEvent]) -> str | None:
    """What made the run fail, in the user's words: the error of the failed step, or, when the
    step gave up after its retries, the error of its last attempt."""
    last: str | None = None
    for event in events:
        error = getattr(event.event_specific_data, "error", None)
        if not isinstance(error, SerializableErrorInfo):
            continue
        if event.event_type in (DagsterEventType.STEP_FAILURE, DagsterEventType.STEP_UP_FOR_RETRY):
            message = _user_error(error)
            if not message.startswith("Exceeded max_retries"):
                last = message
            elif last is not None:
                last = f"{last} (after {message[len('Exceeded max_retries of ') :]} retries)"
    return last


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
        return {
            "batch": batch,
            "run_id": result.run_id,
            "success": result.success,
            "error": None if result.success else failure_message(result.all_events),
        }


def main() -> int:
    batch, attempt = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 1
    outcome = run_batch(batch, attempt)
    print(RESULT_PREFIX + json.dumps(outcome), flush=True)
    return 0 if outcome["success"] else 1


if __name__ == "__main__":
    sys.exit(main())
