"""The healing rule on a real instance: a run in flight is judged by evidence that its process
lives (its own process tags, its log, its batch's write lease), not by its status alone."""

from __future__ import annotations

import subprocess
import sys
import uuid

from dagster import DagsterEvent, DagsterEventType, DagsterInstance, DagsterRun, DagsterRunStatus

from ingest_assets.assets.runtime import HOST_TAG, LAUNCHER, PID_RUN_TAG, PID_TAG, launcher_tags
from ingest_assets.healing import plan_healing
from ingest_assets.names import INGEST_JOB, PARTITION_TAG, SOURCE_TAG
from resources.lake.lease import Lease
from tests.conftest import Project

BATCH = "inbox_000001"


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def add_run(
    instance: DagsterInstance,
    status: DagsterRunStatus,
    tags: dict[str, str] | None = None,
    parent: str | None = None,
) -> str:
    run = DagsterRun(
        job_name=INGEST_JOB,
        run_id=str(uuid.uuid4()),
        status=status,
        tags={PARTITION_TAG: BATCH, SOURCE_TAG: "inbox", **(tags or {})},
        parent_run_id=parent,
        root_run_id=parent,
    )
    instance.add_run(run)
    return run.run_id


def log_event(instance: DagsterInstance, run_id: str) -> None:
    """Something the run wrote to its log just now (as a live run's progress does)."""
    run = instance.get_run_by_id(run_id)
    assert run is not None
    instance.report_engine_event("progress: 120 items, 40/s", run)


def heal(project: Project, instance: DagsterInstance, **kw: float) -> tuple[list[str], list[str]]:
    plan = plan_healing(instance, project.lake, "inbox", {BATCH}, healer="test", **kw)
    return plan.run, plan.waiting


def status(instance: DagsterInstance, run_id: str) -> DagsterRunStatus:
    run = instance.get_run_by_id(run_id)
    assert run is not None
    return run.status


def test_a_run_killed_right_after_its_record_was_made_is_dead_at_once(
    project: Project, instance: DagsterInstance
) -> None:
    # What sync's run process leaves when SIGKILL lands before the run's first step.
    tags = {**launcher_tags(), PID_TAG: str(dead_pid())}
    for left in (DagsterRunStatus.NOT_STARTED, DagsterRunStatus.STARTED):
        run_id = add_run(instance, left, tags)

        assert heal(project, instance) == ([BATCH], [])
        assert status(instance, run_id) == DagsterRunStatus.FAILURE


def test_a_run_with_no_process_known_is_dead_once_silent_and_writing_nothing(
    project: Project, instance: DagsterInstance
) -> None:
    run_id = add_run(instance, DagsterRunStatus.STARTED)  # launched elsewhere, no step yet

    assert heal(project, instance) == ([], [BATCH])  # within the grace: may be starting
    log_event(instance, run_id)
    with Lease(project.lake.store, f"dataset_items/{BATCH}/_LEASE", owner=f"run {run_id}"):
        assert heal(project, instance, silent_after=0) == ([], [BATCH])  # its writer lives
    assert status(instance, run_id) == DagsterRunStatus.STARTED

    assert heal(project, instance, silent_after=0) == ([BATCH], [])
    assert status(instance, run_id) == DagsterRunStatus.FAILURE
    failure = instance.get_records_for_run(run_id, of_type=DagsterEventType.RUN_FAILURE).records[0]
    assert "silent" in (failure.event_log_entry.dagster_event or DagsterEvent).message


def test_a_retry_is_not_judged_by_the_process_its_parent_launched(
    project: Project, instance: DagsterInstance
) -> None:
    parent = add_run(instance, DagsterRunStatus.FAILURE)
    copied = {HOST_TAG: launcher_tags()[HOST_TAG], PID_TAG: str(dead_pid()), PID_RUN_TAG: LAUNCHER}
    retry = add_run(instance, DagsterRunStatus.STARTED, copied, parent=parent)
    log_event(instance, retry)

    assert heal(project, instance)[1] == [BATCH]
    assert status(instance, retry) == DagsterRunStatus.STARTED
