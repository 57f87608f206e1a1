"""Healing (DESIGN §7, §10): batches whose runs died or failed run again, by one rule shared by
``bucketlake sync`` and the datapool sensors (the daemon-only path, as on Kubernetes).

A run left STARTED by a process that is gone (SIGKILL, a lost machine: nothing may have seen it
die) is marked failed first, whatever its batch holds, since a STARTED run holds a place in the
run queue; its run retries are turned off, as the healer runs the batch again itself. Then a
batch needs a run when one of the tables that finish it (``dataset_items``, and the
``embeddings`` and ``predictions_<model>`` the config asks for: :func:`batch_tables`) is not
committed and no run is queued, in progress or about to be retried by Dagster's run-retry
daemon. A batch whose runs failed
``MAX_ATTEMPTS`` times is given up on (until asked again).
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from dagster import DagsterInstance, DagsterRun, DagsterRunStatus, RunRecord, RunsFilter

from ingest_assets.assets.runtime import (
    HOST_TAG,
    PID_TAG,
    has_own_process_tags,
    run_process_is_dead,
)
from ingest_assets.names import (
    ATTEMPT_TAG,
    DATASET_ITEMS,
    EMBEDDINGS,
    INGEST_JOB,
    MAX_ATTEMPTS,
    MAX_RETRIES_TAG,
    PARTITION_TAG,
    SOURCE_TAG,
    WILL_RETRY_TAG,
    predictions_asset,
)
from resources.config import BucketlakeConfig
from resources.lake.datapool import parse_batch_key
from resources.lake.lease import read_holder
from resources.lake.tables import LEASE, Lake

#: Dagster marks a failed run's status before it tags whether the run will be retried; a run
#: failed this recently with no tag yet is left to the retry daemon.
RETRY_TAG_GRACE_S = 60.0
IN_FLIGHT = [
    DagsterRunStatus.QUEUED,
    DagsterRunStatus.NOT_STARTED,
    DagsterRunStatus.STARTING,
    DagsterRunStatus.STARTED,
]
RUNNING = [DagsterRunStatus.STARTING, DagsterRunStatus.STARTED]
#: Dequeued or launched: a process should be running it (a queued run waits for the daemon).
RUNNING_OR_STARTING = [DagsterRunStatus.NOT_STARTED, *RUNNING]
#: How long a run in flight with no process of its own known may be silent (no event in its
#: log, no live write lease) before it is taken for dead; its first step records its process
#: within seconds of its start.
SILENT_RUN_GRACE_S = 600.0


def batch_tables(config: BucketlakeConfig) -> tuple[str, ...]:
    """The tables that ``ingest_job`` writes per batch and whose commits say a batch is done."""
    tables = [DATASET_ITEMS]
    if config.embeddings.enabled:
        tables.append(EMBEDDINGS)
    tables += [predictions_asset(model.name) for model in config.models if model.pretag]
    return tuple(tables)


def batch_finished(lake: Lake, batch: str, tables: Sequence[str] = (DATASET_ITEMS,)) -> bool:
    return all(lake.is_committed(table, batch) for table in tables)


@dataclass
class HealPlan:
    """Batches of one source that need a run again, and what was found on the way."""

    run: list[str] = field(default_factory=list)
    marked_failed: list[str] = field(default_factory=list)  # runs whose process is gone
    waiting: list[str] = field(default_factory=list)  # a live, queued or retrying run exists
    gave_up: list[tuple[str, int]] = field(default_factory=list)  # (batch, failed runs)


def failed_batches(
    instance: DagsterInstance, source: str, updated_after: datetime | None = None
) -> set[str]:
    """Batches of ``source`` with an ingest run that failed (since ``updated_after``): what a
    sensor tick needs to look at, beside the batches of runs that died (``plan_healing``)."""
    failed = instance.get_runs(
        RunsFilter(
            job_name=INGEST_JOB,
            tags={SOURCE_TAG: source},
            statuses=[DagsterRunStatus.FAILURE],
            updated_after=updated_after,
        )
    )
    return _batches_of(failed)


def _batches_of(runs: Iterable[DagsterRun]) -> set[str]:
    return {run.tags[PARTITION_TAG] for run in runs if PARTITION_TAG in run.tags}


def next_attempt(instance: DagsterInstance, batch: str) -> int:
    """The attempt number of the batch's next run (and so its run key): one past the runs it
    had and past the highest attempt any of them carried."""
    runs = instance.get_runs(RunsFilter(tags={PARTITION_TAG: batch}))
    attempts = [int(a) for r in runs if (a := r.tags.get(ATTEMPT_TAG, "")).isdigit()]
    return max([len(runs), *attempts]) + 1


def mark_dead_run_failed(instance: DagsterInstance, run_id: str, message: str) -> None:
    """Mark a run whose process is gone failed, with Dagster's run retries off for it."""
    instance.add_run_tags(run_id, {MAX_RETRIES_TAG: "0"})
    run = instance.get_run_by_id(run_id)
    if run is not None and run.status in IN_FLIGHT:
        instance.report_run_failed(run, message=message)


def silent_for(instance: DagsterInstance, run: DagsterRun) -> float:
    """Seconds since the run last wrote to its event log (or since it was created)."""
    last = instance.get_records_for_run(run.run_id, limit=1, ascending=False).records
    if last:
        return time.time() - last[0].timestamp
    record = instance.get_run_record_by_id(run.run_id)
    created = record.create_timestamp.replace(tzinfo=UTC).timestamp() if record else time.time()
    return time.time() - created


def why_dead(
    instance: DagsterInstance,
    run: DagsterRun,
    lake: Lake | None,
    silent_after: float,
    tables: Sequence[str] = (DATASET_ITEMS, EMBEDDINGS),
) -> str | None:
    """Why a run in flight is taken for dead, or None while there is evidence it lives (or
    none that it died). Its own process recorded on this host is the evidence, when there is
    one; else (launched elsewhere, or killed before its first step recorded it) a run is dead
    once its event log has been silent ``silent_after`` seconds and no write lease of its
    batch's ``tables`` shows a live writer. A queued run waits for the daemon: that is not death."""
    if run.status not in RUNNING_OR_STARTING:
        return None
    if has_own_process_tags(run) and run.tags.get(HOST_TAG) == socket.gethostname():
        if not run_process_is_dead(run):
            return None
        return f"the process of this run (pid {run.tags[PID_TAG]}) is gone"
    silent = silent_for(instance, run)
    if silent < silent_after or _writer_is_live(lake, run, tables):
        return None
    return f"no process of this run is known and it has been silent for {silent:.0f}s"


def _writer_is_live(lake: Lake | None, run: DagsterRun, tables: Sequence[str]) -> bool:
    batch = run.tags.get(PARTITION_TAG)
    if lake is None or batch is None:
        return False
    for table in tables:
        found = read_holder(lake.store, f"{table}/{batch}/{LEASE}")
        if found is not None and found[0].is_live():
            return True
    return False


def _fail_if_dead(
    instance: DagsterInstance,
    run: DagsterRun,
    healer: str,
    lake: Lake | None = None,
    silent_after: float = SILENT_RUN_GRACE_S,
    tables: Sequence[str] = (DATASET_ITEMS, EMBEDDINGS),
) -> bool:
    why = why_dead(instance, run, lake, silent_after, tables)
    if why is None:
        return False
    mark_dead_run_failed(
        instance, run.run_id, f"{healer}: {why}; marked failed so that the batch can run again"
    )
    return True


def fail_dead_runs(
    instance: DagsterInstance,
    source: str,
    healer: str,
    lake: Lake | None = None,
    silent_after: float = SILENT_RUN_GRACE_S,
    tables: Sequence[str] = (DATASET_ITEMS, EMBEDDINGS),
) -> list[DagsterRun]:
    """Mark failed every ingest run of ``source`` taken for dead (:func:`why_dead`)."""
    runs = instance.get_runs(
        RunsFilter(job_name=INGEST_JOB, tags={SOURCE_TAG: source}, statuses=RUNNING_OR_STARTING)
    )
    return [run for run in runs if _fail_if_dead(instance, run, healer, lake, silent_after, tables)]


def _retry_pending(instance: DagsterInstance, record: RunRecord) -> bool:
    run = record.dagster_run
    if run.is_complete_and_waiting_to_retry:
        return True
    if not instance.run_retries_enabled or WILL_RETRY_TAG in run.tags:
        return False
    if run.tags.get(MAX_RETRIES_TAG) == "0":
        return False
    ended = record.end_time or record.update_timestamp.replace(tzinfo=UTC).timestamp()
    return time.time() - ended < RETRY_TAG_GRACE_S


def plan_healing(
    instance: DagsterInstance,
    lake: Lake,
    source: str,
    candidates: Iterable[str],
    *,
    healer: str,
    retry_failed: bool = False,
    silent_after: float = SILENT_RUN_GRACE_S,
    finished_by: Sequence[str] = (DATASET_ITEMS,),
) -> HealPlan:
    """Which of ``candidates`` (registered batches) of ``source``, and of the batches whose runs
    it finds dead, run again, per the rule above. ``healer`` names who marks dead runs failed,
    in the run's failure message; ``silent_after`` is how long a run with no process known
    may be silent before it is taken for dead; ``finished_by``, the tables whose commits say
    a batch is done (:func:`batch_tables`)."""
    dead_runs = fail_dead_runs(instance, source, healer, lake, silent_after, finished_by)
    plan = HealPlan(marked_failed=[run.run_id for run in dead_runs])
    # One listing per table, not a HEAD per batch.
    committed = set.intersection(*(set(lake.committed_partitions(t)) for t in finished_by))
    for batch in sorted(set(candidates) | _batches_of(dead_runs)):
        if parse_batch_key(batch)[0] != source or batch in committed:
            continue
        runs = instance.get_runs(RunsFilter(tags={PARTITION_TAG: batch}, statuses=IN_FLIGHT))
        dead = [
            run.run_id
            for run in runs
            if _fail_if_dead(instance, run, healer, lake, silent_after, finished_by)
        ]
        plan.marked_failed += dead
        failed = instance.get_run_records(
            RunsFilter(tags={PARTITION_TAG: batch}, statuses=[DagsterRunStatus.FAILURE])
        )
        if len(runs) > len(dead) or any(_retry_pending(instance, r) for r in failed):
            plan.waiting.append(batch)
        elif len(failed) >= MAX_ATTEMPTS and not retry_failed:
            plan.gave_up.append((batch, len(failed)))
        else:
            plan.run.append(batch)
    return plan


class HealingWatermark:
    """When each source's failed runs were last looked at, in this process: a sensor tick then
    reads only the runs that failed since (with a margin), not every failure ever."""

    MARGIN_S = 2 * RETRY_TAG_GRACE_S

    def __init__(self) -> None:
        self._seen: dict[str, float] = {}

    def since(self, key: str) -> datetime | None:
        seen = self._seen.get(key)
        return None if seen is None else datetime.fromtimestamp(seen - self.MARGIN_S, UTC)

    def advance(self, key: str, to: float) -> None:
        self._seen[key] = to


#: The process-wide watermark of the datapool sensors (they run in the code server).
WATERMARK = HealingWatermark()
