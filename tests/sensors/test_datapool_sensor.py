"""The datapool sensor through Dagster's public testing API, on a real instance."""

from __future__ import annotations

import os
from typing import Any

import yaml
from dagster import (
    DagsterInstance,
    SensorDefinition,
    SensorResult,
    SkipReason,
)

from ingest_assets.claiming.claim import Claimer
from ingest_assets.definitions import build_definitions
from resources.lake.datapool import read_manifest
from resources.stores.local import LocalFolderStore
from tests.conftest import Project
from tests.images import write_image


def datapool_sensor(project: Project) -> SensorDefinition:
    return next(s for s in build_definitions(project.config).sensors if s.name == "datapool_inbox")


def tick(project: Project, instance: DagsterInstance, cursor: str | None = None) -> Any:
    return project.tick(instance, cursor)


def manifests(project: Project) -> dict[str, list[tuple[str, str]]]:
    lake = LocalFolderStore(project.root / "lake")
    names = sorted(p.stem for p in (project.root / "lake/_datapool/inbox").glob("inbox_*.parquet"))
    out = {}
    for batch in names:
        table = read_manifest(lake, batch, ["key", "change_token"])
        out[batch] = list(
            zip(table["key"].to_pylist(), table["change_token"].to_pylist(), strict=True)
        )
    return out


def ingest(project: Project, instance: DagsterInstance, batch: str) -> None:
    assert project.ingest(instance, batch).success


def test_new_files_make_one_partition_and_one_run_request(project: Project, instance) -> None:
    for i in range(5):
        write_image(project.inbox / "cats" / f"{i}.jpg", seed=i)

    result = tick(project, instance)

    assert isinstance(result, SensorResult)
    assert [r.partition_key for r in result.run_requests] == ["inbox_000001"]
    assert result.run_requests[0].run_key == "inbox_000001:1"
    assert result.run_requests[0].tags["bucketlake/source"] == "inbox"
    (request,) = result.dynamic_partitions_requests
    assert list(request.partition_keys) == ["inbox_000001"]
    assert instance.get_dynamic_partitions("batches") == ["inbox_000001"]
    assert len(manifests(project)["inbox_000001"]) == 5


def test_second_tick_with_nothing_new_skips(project: Project, instance) -> None:
    write_image(project.inbox / "a.jpg")
    first = tick(project, instance)
    assert isinstance(first, SensorResult)

    second = tick(project, instance, cursor=first.cursor)

    assert isinstance(second, SkipReason)
    assert "no new objects" in (second.skip_message or "")
    assert list(manifests(project)) == ["inbox_000001"]


def test_three_added_files_make_a_batch_of_exactly_three(project: Project, instance) -> None:
    for i in range(4):
        write_image(project.inbox / f"old{i}.jpg", seed=i)
    first = tick(project, instance)
    for i in range(3):
        write_image(project.inbox / "new" / f"{i}.png", fmt="PNG", seed=10 + i)

    second = tick(project, instance, cursor=first.cursor)

    assert [r.partition_key for r in second.run_requests] == ["inbox_000002"]
    assert sorted(k for k, _ in manifests(project)["inbox_000002"]) == [
        "new/0.png",
        "new/1.png",
        "new/2.png",
    ]


def test_batches_are_cut_at_batch_size(project: Project, instance) -> None:
    project.write_config(batch_size=4)
    for i in range(10):
        write_image(project.inbox / f"{i:02d}.jpg", seed=i)

    result = tick(project, instance)

    assert [r.partition_key for r in result.run_requests] == [
        "inbox_000001",
        "inbox_000002",
        "inbox_000003",
    ]
    assert [len(v) for v in manifests(project).values()] == [4, 4, 2]


def test_a_trickle_waits_for_min_batch_size_then_goes(project: Project, instance) -> None:
    project.write_config(batch_size=10, min_batch_size=3, max_batch_wait_seconds=3600)
    write_image(project.inbox / "1.jpg")
    write_image(project.inbox / "2.jpg", seed=2)

    waiting = tick(project, instance)
    assert isinstance(waiting, SkipReason)
    assert "2 waiting for a fuller batch" in (waiting.skip_message or "")

    write_image(project.inbox / "3.jpg", seed=3)
    result = tick(project, instance)
    assert [r.partition_key for r in result.run_requests] == ["inbox_000001"]
    assert len(manifests(project)["inbox_000001"]) == 3


def test_a_trickle_goes_after_max_batch_wait(project: Project, instance) -> None:
    project.write_config(batch_size=10, min_batch_size=5, max_batch_wait_seconds=60)
    old = write_image(project.inbox / "old.jpg")
    os.utime(old, (old.stat().st_atime - 120, old.stat().st_mtime - 120))

    result = tick(project, instance)

    assert [r.partition_key for r in result.run_requests] == ["inbox_000001"]


def test_objects_younger_than_settle_seconds_wait(project: Project, instance) -> None:
    project.write_config(settle_seconds=600)
    fresh = write_image(project.inbox / "fresh.jpg")
    settled = write_image(project.inbox / "settled.jpg", seed=1)
    os.utime(settled, (settled.stat().st_atime - 900, settled.stat().st_mtime - 900))

    first = tick(project, instance)
    os.utime(fresh, (fresh.stat().st_atime - 900, fresh.stat().st_mtime - 900))  # it settles
    second = tick(project, instance, cursor=first.cursor)

    assert [k for k, _ in manifests(project)["inbox_000001"]] == ["settled.jpg"]
    assert [k for k, _ in manifests(project)["inbox_000002"]] == ["fresh.jpg"]
    assert [r.partition_key for r in second.run_requests] == ["inbox_000002"]


def test_rewritten_file_is_claimed_once_more_and_the_current_view_has_its_new_content(
    project: Project, instance
) -> None:
    target = write_image(project.inbox / "cats" / "tom.jpg", width=40, height=30, seed=1)
    write_image(project.inbox / "cats" / "kitty.jpg", seed=2)
    first = tick(project, instance)
    ingest(project, instance, "inbox_000001")

    write_image(target, width=64, height=48, seed=3)  # a new version of the same object
    second = tick(project, instance, cursor=first.cursor)
    third = tick(project, instance, cursor=second.cursor)
    ingest(project, instance, "inbox_000002")

    assert [r.partition_key for r in second.run_requests] == ["inbox_000002"]
    assert isinstance(third, SkipReason)
    assert [k for k, _ in manifests(project)["inbox_000002"]] == ["cats/tom.jpg"]
    current = project.lake.read_current("dataset_items", ["inbox_000001", "inbox_000002"])
    rows = [r for r in current.to_pylist() if r["key"] == "cats/tom.jpg"]
    assert len(rows) == 1
    assert (rows[0]["width"], rows[0]["height"], rows[0]["batch"]) == (64, 48, "inbox_000002")
    assert current.num_rows == 2
    history = project.lake.read_table("dataset_items", "inbox_000001").to_pylist()
    assert [(r["width"], r["height"]) for r in history if r["key"] == "cats/tom.jpg"] == [(40, 30)]


def test_claim_killed_before_registration_is_finished_next_tick(project: Project, instance) -> None:
    for i in range(3):
        write_image(project.inbox / f"{i}.jpg", seed=i)
    # A claimer that wrote its manifest and died before registering the partition.
    Claimer(
        project.config.source("inbox"),
        LocalFolderStore(project.inbox),
        LocalFolderStore(project.root / "lake"),
        claimer="killed claimer",
    ).claim(registered=set(), close_all=True)
    assert instance.get_dynamic_partitions("batches") == []

    result = tick(project, instance)

    assert [r.partition_key for r in result.run_requests] == ["inbox_000001"]
    assert instance.get_dynamic_partitions("batches") == ["inbox_000001"]
    assert list(manifests(project)) == ["inbox_000001"]  # no second manifest, no duplicate
    assert isinstance(tick(project, instance, cursor=result.cursor), SkipReason)


def test_process_all_reoffers_everything_once(project: Project, instance) -> None:
    for i in range(3):
        write_image(project.inbox / f"{i}.jpg", seed=i)
    tick(project, instance)
    project.write_config(process_all=True)

    again = tick(project, instance)
    after = tick(project, instance)

    assert [r.partition_key for r in again.run_requests] == ["inbox_000002"]
    assert len(manifests(project)["inbox_000002"]) == 3
    assert isinstance(after, SkipReason)


def test_hidden_files_and_non_images_are_not_claimed(project: Project, instance) -> None:
    write_image(project.inbox / "ok.jpg")
    (project.inbox / ".DS_Store").write_bytes(b"\0\0")
    (project.inbox / "notes.txt").write_text("not a picture")
    (project.inbox / ".cache").mkdir()
    write_image(project.inbox / ".cache" / "thumb.jpg")

    tick(project, instance)

    assert [k for k, _ in manifests(project)["inbox_000001"]] == ["ok.jpg"]


def test_each_source_has_a_sensor_named_after_it_that_claims_only_its_objects(
    project: Project, instance: DagsterInstance
) -> None:
    (project.root / "phones").mkdir()
    project.config_path.write_text(
        yaml.safe_dump(
            {
                "lake": "lake",
                "sources": [
                    {"name": "inbox", "uri": "inbox"},
                    {"name": "phones_2", "uri": "phones"},
                ],
            }
        )
    )
    write_image(project.inbox / "cam.jpg")
    write_image(project.root / "phones" / "selfie.jpg", seed=1)
    write_image(project.root / "phones" / "beach.jpg", seed=2)

    names = {s.name for s in build_definitions(project.config).sensors}
    cams = project.tick(instance, source="inbox")
    phones = project.tick(instance, source="phones_2")

    assert names == {"datapool_inbox", "datapool_phones_2", "evaluation_sensor"}
    assert [r.partition_key for r in cams.run_requests] == ["inbox_000001"]
    assert [r.partition_key for r in phones.run_requests] == ["phones_2_000001"]
    assert phones.run_requests[0].tags["bucketlake/source"] == "phones_2"
    lake = LocalFolderStore(project.root / "lake")
    assert read_manifest(lake, "phones_2_000001")["key"].to_pylist() == ["beach.jpg", "selfie.jpg"]


def test_a_deleted_file_is_missing_in_the_current_view_after_the_next_tick(
    project: Project, instance: DagsterInstance
) -> None:
    project.write_config(ignore_errors=False)  # a tombstone is no bad item: the batch succeeds
    write_image(project.inbox / "cats" / "tom.jpg", seed=1)
    write_image(project.inbox / "cats" / "kitty.jpg", seed=2)
    first = tick(project, instance)
    ingest(project, instance, "inbox_000001")
    (project.inbox / "cats" / "tom.jpg").unlink()

    second = tick(project, instance, cursor=first.cursor)
    run = project.ingest(instance, "inbox_000002")
    third = tick(project, instance, cursor=second.cursor)

    assert [r.partition_key for r in second.run_requests] == ["inbox_000002"]
    assert run.success and isinstance(third, SkipReason)
    (raw,) = run.asset_materializations_for_node("raw_items")
    (items,) = run.asset_materializations_for_node("dataset_items")
    assert raw.metadata["tombstones"].value == 1
    assert (items.metadata["missing"].value, items.metadata["ok"].value) == (1, 0)
    before = {
        r["key"]: r for r in project.lake.read_table("dataset_items", "inbox_000001").to_pylist()
    }
    current = project.lake.read_current("dataset_items", ["inbox_000001", "inbox_000002"])
    now = {r["key"]: r for r in current.to_pylist()}
    assert set(now) == {"cats/tom.jpg", "cats/kitty.jpg"}
    tom = now["cats/tom.jpg"]
    assert (tom["status"], tom["batch"], tom["width"], tom["sha256"]) == (
        "missing",
        "inbox_000002",
        None,
        None,
    )
    assert tom["error"].startswith("deleted from the source: ")
    old = before["cats/tom.jpg"]
    assert (tom["item_id"], tom["uri"], tom["source"]) == (old["item_id"], old["uri"], "inbox")
    assert now["cats/kitty.jpg"]["status"] == "ok"


def test_a_file_back_after_its_tombstone_is_ingested_again(
    project: Project, instance: DagsterInstance
) -> None:
    path = write_image(project.inbox / "a.jpg", width=20, height=10, seed=1)
    write_image(project.inbox / "b.jpg", width=8, height=8, seed=2)  # the source is not empty
    data = path.read_bytes()
    first = tick(project, instance)
    path.unlink()
    second = tick(project, instance, cursor=first.cursor)
    path.write_bytes(data)

    third = tick(project, instance, cursor=second.cursor)
    for batch in ("inbox_000001", "inbox_000002", "inbox_000003"):
        ingest(project, instance, batch)

    assert [r.partition_key for r in third.run_requests] == ["inbox_000003"]
    current = project.lake.read_current(
        "dataset_items", ["inbox_000001", "inbox_000002", "inbox_000003"]
    ).to_pylist()
    assert [(r["key"], r["status"], r["width"], r["batch"]) for r in current] == [
        ("b.jpg", "ok", 8, "inbox_000001"),
        ("a.jpg", "ok", 20, "inbox_000003"),
    ]
