"""The datapool sensor heals as ``bucketlake sync`` does: a batch whose run failed or died is
requested again (new run key, at most three failed runs), on a real instance."""

from __future__ import annotations

from dagster import (
    DagsterInstance,
    DagsterRunStatus,
    ExecuteInProcessResult,
    RunRequest,
    RunsFilter,
    SensorResult,
    SkipReason,
)

from ingest_assets.definitions import build_definitions
from tests.conftest import Project
from tests.images import write_image
from tests.ingest_assets.cli.test_heal import run_and_kill_after_first_checkpoint, seed_slow_batch


def execute(
    project: Project, instance: DagsterInstance, request: RunRequest
) -> ExecuteInProcessResult:
    """Run ``ingest_job`` for a sensor's run request, as the daemon would."""
    job = build_definitions(project.config).resolve_job_def("ingest_job")
    return job.execute_in_process(
        instance=instance,
        partition_key=request.partition_key,
        tags={**request.tags, "dagster/run_key": request.run_key or ""},
        raise_on_error=False,
    )


def seed_failing_batch(project: Project) -> None:
    project.write_config(ignore_errors=False)
    write_image(project.inbox / "ok.jpg")
    (project.inbox / "zz_empty.jpg").write_bytes(b"")


def test_a_batch_whose_run_failed_is_requested_again_with_a_new_run_key(
    project: Project, instance: DagsterInstance
) -> None:
    seed_failing_batch(project)
    first = project.tick(instance)
    assert isinstance(first, SensorResult)
    assert not execute(project, instance, first.run_requests[0]).success

    second = project.tick(instance, first.cursor)

    assert isinstance(second, SensorResult)
    (again,) = second.run_requests
    assert (again.partition_key, again.run_key) == ("inbox_000001", "inbox_000001:2")
    assert again.tags["bucketlake/attempt"] == "2"
    assert not second.dynamic_partitions_requests  # the batch is registered already
    project.write_config(ignore_errors=True)  # the user fixes the cause
    assert execute(project, instance, again).success
    assert project.lake.read_table("dataset_items", "inbox_000001").num_rows == 2
    assert isinstance(project.tick(instance, second.cursor), SkipReason)


def test_a_batch_that_failed_three_times_is_not_requested_again(
    project: Project, instance: DagsterInstance
) -> None:
    seed_failing_batch(project)
    result = project.tick(instance)
    for attempt in (1, 2, 3):
        assert isinstance(result, SensorResult)
        (request,) = result.run_requests
        assert request.run_key == f"inbox_000001:{attempt}"
        assert not execute(project, instance, request).success
        result = project.tick(instance, result.cursor)

    assert isinstance(result, SkipReason)
    assert "1 batches failed too often to run again" in (result.skip_message or "")


def test_a_run_killed_mid_batch_is_marked_failed_and_requested_again(
    project: Project, instance: DagsterInstance
) -> None:
    project.write_config(checkpoint_rows=5, num_workers=1, max_image_pixels=30_000_000)
    seed_slow_batch(project)
    first = project.tick(instance)
    assert isinstance(first, SensorResult)
    run_and_kill_after_first_checkpoint(project, instance.root_directory)
    (killed,) = instance.get_runs(RunsFilter(job_name="ingest_job"))
    assert killed.status == DagsterRunStatus.STARTED

    healed = project.tick(instance, first.cursor)

    assert isinstance(healed, SensorResult)
    (again,) = healed.run_requests
    assert again.run_key == "inbox_000001:2"
    marked = instance.get_run_by_id(killed.run_id)
    assert marked is not None and marked.status == DagsterRunStatus.FAILURE
    result = execute(project, instance, again)
    assert result.success
    commit = project.lake.read_commit("dataset_items", "inbox_000001")
    assert commit is not None and commit.rows == 13 and commit.extra["resumed_rows"] == 5
