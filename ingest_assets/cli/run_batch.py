"""Runs ``ingest_job`` for one batch through the Dagster instance in ``DAGSTER_HOME``; prints one
JSON line with the outcome. ``bucketlake sync`` starts one such process per batch."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Protocol

from dagster import (
    DagsterEvent,
    DagsterEventType,
    DagsterInstance,
    JobDefinition,
    execute_job,
    reconstructable,
)

from ingest_assets.assets.runtime import launcher_tags
from ingest_assets.names import (
    ATTEMPT_TAG,
    INGEST_JOB,
    LAUNCHED_BY_TAG,
    MAX_RETRIES_TAG,
    PARTITION_TAG,
    SOURCE_TAG,
)
from resources.lake.datapool import parse_batch_key

RESULT_PREFIX = "bucketlake-run-result "


class SerializableErrorInfo(Protocol):
    """The shape of the errors in Dagster's step events (``error`` of their event data)."""

    message: str
    cls_name: str | None
    cause: SerializableErrorInfo | None


def ingest_job_def() -> JobDefinition:
    from ingest_assets.definitions import defs

    return defs.resolve_job_def(INGEST_JOB)


def _error_of(event: DagsterEvent) -> SerializableErrorInfo | None:
    error = getattr(event.event_specific_data, "error", None)
    if error is None or not all(hasattr(error, a) for a in ("message", "cls_name", "cause")):
        return None
    return error  # type: ignore[no-any-return]


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
        error = _error_of(event)
        if error is None:
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
                PARTITION_TAG: batch,
                SOURCE_TAG: source,
                LAUNCHED_BY_TAG: "bucketlake sync",
                ATTEMPT_TAG: str(attempt),
                # sync runs a failed batch again itself (the next sync), not the retry daemon
                MAX_RETRIES_TAG: "0",
                **launcher_tags(),
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
