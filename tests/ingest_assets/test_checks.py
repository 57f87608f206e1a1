"""``every_batch_has_items``: a batch that was claimed and never ingested is reported by name."""

from __future__ import annotations

from typing import Any

from dagster import AssetCheckEvaluation, DagsterInstance

from ingest_assets.definitions import build_definitions
from tests.conftest import Project
from tests.images import write_image


def check(project: Project, instance: DagsterInstance) -> tuple[bool, dict[str, Any]]:
    job = build_definitions(project.config).resolve_job_def("dataset_checks_job")
    result = job.execute_in_process(instance=instance)
    (evaluation,) = [
        e.event_specific_data
        for e in result.all_events
        if isinstance(e.event_specific_data, AssetCheckEvaluation)
    ]
    assert evaluation.check_name == "every_batch_has_items"
    return evaluation.passed, {k: v.value for k, v in evaluation.metadata.items()}


def test_a_batch_never_ingested_fails_the_check_until_it_has_items(
    project: Project, instance: DagsterInstance
) -> None:
    project.write_config(batch_size=2)
    for i in range(4):
        write_image(project.inbox / f"{i}.jpg", seed=i)
    claimed = project.claim()
    instance.add_dynamic_partitions("batches", claimed.new_batches)
    assert project.ingest(instance, "inbox_000001").success

    passed, metadata = check(project, instance)

    assert not passed
    assert (metadata["batches"], metadata["committed"], metadata["without_items"]) == (2, 1, 1)
    assert "inbox_000002" in metadata["without_items_list"]
    assert "never run" in metadata["without_items_list"]
    assert project.ingest(instance, "inbox_000002").success
    passed, metadata = check(project, instance)
    assert passed and metadata["without_items"] == 0
