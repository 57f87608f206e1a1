"""The ``duplicates`` asset on real images across two batches."""

from __future__ import annotations

import io
import shutil
import uuid

from dagster import DagsterInstance, DagsterRun, DagsterRunStatus
from PIL import Image

from ingest_assets.assets.dataset_items import dataset_items
from ingest_assets.assets.duplicates import duplicates, wait_for_earlier
from ingest_assets.assets.raw_items import raw_items
from tests.conftest import Project
from tests.images import noise, write_image


def claim_and_ingest(project: Project, instance: DagsterInstance) -> str:
    claim = project.claim(registered=set(instance.get_dynamic_partitions("batches")))
    (batch,) = claim.new_batches
    instance.add_dynamic_partitions("batches", [batch])
    result = project.ingest(instance, batch, [raw_items, dataset_items, duplicates])
    assert result.success
    return batch


def test_duplicates_within_and_across_batches(project: Project, instance: DagsterInstance) -> None:
    from skimage import data

    photo = Image.fromarray(data.astronaut())
    photo.save(project.inbox / "astronaut.png")
    write_image(project.inbox / "noise.jpg", width=64, height=64, seed=7)
    first = claim_and_ingest(project, instance)

    shutil.copy(project.inbox / "astronaut.png", project.inbox / "copy_of_astronaut.png")
    buffer = io.BytesIO()
    photo.resize((256, 256)).save(buffer, "JPEG", quality=80)
    (project.inbox / "small_astronaut.jpg").write_bytes(buffer.getvalue())
    noise(64, 64, seed=99).save(project.inbox / "other_noise.png")
    (project.inbox / "broken.jpg").write_bytes(b"")
    second = claim_and_ingest(project, instance)

    rows = {r["key"]: r for r in project.lake.read_table("duplicates", second).to_pylist()}
    assert set(rows) == {"copy_of_astronaut.png", "small_astronaut.jpg"}
    assert (rows["copy_of_astronaut.png"]["kind"], rows["copy_of_astronaut.png"]["distance"]) == (
        "exact",
        0,
    )
    assert rows["copy_of_astronaut.png"]["duplicate_key"] == "astronaut.png"
    assert rows["copy_of_astronaut.png"]["duplicate_batch"] == first
    assert rows["small_astronaut.jpg"]["kind"] == "near"
    assert rows["small_astronaut.jpg"]["duplicate_key"] == "astronaut.png"
    assert project.lake.read_table("duplicates", first).num_rows == 0


def test_a_new_version_of_an_item_is_not_its_own_duplicate(
    project: Project, instance: DagsterInstance
) -> None:
    target = write_image(project.inbox / "a.jpg", seed=1)
    claim_and_ingest(project, instance)
    target.write_bytes(target.read_bytes())  # same bytes, new version (mtime changes)
    second = claim_and_ingest(project, instance)
    assert project.lake.read_table("duplicates", second).num_rows == 0


def copies_in_two_batches(project: Project, instance: DagsterInstance) -> tuple[str, str]:
    """Two claimed, registered batches; the second holds exact copies of the first's images."""
    for seed in (1, 2, 3):
        write_image(project.inbox / f"first/{seed}.jpg", seed=seed)
    (first,) = project.claim(registered=set()).new_batches
    (project.inbox / "second").mkdir()
    for seed in (1, 2, 3):
        shutil.copy(project.inbox / f"first/{seed}.jpg", project.inbox / f"second/{seed}.jpg")
    (second,) = project.claim(registered={first}).new_batches
    instance.add_dynamic_partitions("batches", [first, second])
    return first, second


def duplicates_of(project: Project, batch: str) -> tuple[list[dict[str, object]], str]:
    lake = project.lake
    commit = lake.read_commit("duplicates", batch)
    assert commit is not None
    return lake.read_table("duplicates", batch).to_pylist(), commit.fingerprint


def started_run(instance: DagsterInstance, batch: str, status: DagsterRunStatus) -> str:
    """A run of ``batch`` under way elsewhere (no process of this host recorded)."""
    run = DagsterRun(
        job_name="ingest_job",
        run_id=str(uuid.uuid4()),
        status=status,
        tags={"dagster/partition": batch},
    )
    instance.add_run(run)
    return run.run_id


def test_a_batch_waits_for_earlier_batches_whose_runs_are_going(instance: DagsterInstance) -> None:
    run_id = started_run(instance, "inbox_000001", DagsterRunStatus.STARTED)
    started_run(instance, "inbox_000002", DagsterRunStatus.NOT_STARTED)  # maybe behind us
    looks: list[set[str]] = []
    said: list[str] = []

    def committed() -> set[str]:
        if looks:  # the second look: the first batch's run has committed and ended
            instance.delete_run(run_id)
            looks.append({"inbox_000001"})
        else:
            looks.append(set())
        return looks[-1]

    found = wait_for_earlier(instance, ["inbox_000001", "inbox_000002"], committed, said.append)

    assert found == {"inbox_000001"}
    assert said == ["waiting for the items of earlier batches still running: inbox_000001"]


def test_a_batch_gives_up_waiting_after_the_bound_and_says_so(instance: DagsterInstance) -> None:
    started_run(instance, "inbox_000001", DagsterRunStatus.STARTED)
    said: list[str] = []

    found = wait_for_earlier(instance, ["inbox_000001"], set, said.append, wait_s=0)

    assert found == set()
    assert "not compared with this batch" in said[-1] and "inbox_000001" in said[-1]


def test_batches_not_compared_are_named_and_change_the_fingerprint(
    project: Project, instance: DagsterInstance
) -> None:
    first, second = copies_in_two_batches(project, instance)
    result = project.ingest(instance, second, [raw_items, dataset_items, duplicates])
    alone, alone_fingerprint = duplicates_of(project, second)
    metadata = result.asset_materializations_for_node("duplicates")[0].metadata

    assert alone == []
    assert metadata["not_compared_batches"].value == [first]
    assert metadata["compared_with_batches"].value == 0

    assert project.ingest(instance, first).success
    assert project.ingest(instance, second, [duplicates]).success
    compared, compared_fingerprint = duplicates_of(project, second)
    assert len(compared) == 3 and compared_fingerprint != alone_fingerprint
