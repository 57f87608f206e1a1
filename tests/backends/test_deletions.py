"""Deleted objects become tombstones, on every kind of source (see ``conftest.py``): a bucket's
object deleted, a manifest's entry dropped."""

from __future__ import annotations

from typing import Any

from dagster import DagsterInstance, SensorResult, SkipReason

from tests.backends.conftest import Backend
from tests.conftest import Project
from tests.images import encode, noise


def jpeg(width: int, height: int, seed: int) -> bytes:
    return encode(noise(width, height, seed=seed), "JPEG")


def tick(project: Project, instance: DagsterInstance, cursor: str | None = None) -> Any:
    result = project.tick(instance, cursor)
    for request in result.run_requests if isinstance(result, SensorResult) else []:
        assert project.ingest(instance, request.partition_key).success
    return result


def current(backend: Backend, project: Project, batches: int) -> dict[str, dict[str, Any]]:
    names = [f"inbox_{i:06d}" for i in range(1, batches + 1)]
    table = backend.lake_of(project).read_current("dataset_items", names)
    return {r["key"]: r for r in table.to_pylist()}


def test_a_deleted_object_is_missing_in_the_current_view_after_the_next_claim(
    backend: Backend, project: Project, instance: DagsterInstance
) -> None:
    backend.put("cats/tom.jpg", jpeg(40, 30, 1))
    backend.put("cats/kitty.jpg", jpeg(20, 50, 2))
    backend.put("dogs/rex.jpg", jpeg(10, 10, 3))
    first = tick(project, instance)
    before = current(backend, project, 1)
    backend.unlist("cats/kitty.jpg")
    backend.unlist("dogs/rex.jpg")  # the last key: known gone once the listing is done

    second = tick(project, instance, cursor=first.cursor)
    third = tick(project, instance, cursor=second.cursor)

    assert [r.partition_key for r in second.run_requests] == ["inbox_000002"]
    assert isinstance(third, SkipReason)
    now = current(backend, project, 2)
    assert {k: r["status"] for k, r in now.items()} == {
        "cats/tom.jpg": "ok",
        "cats/kitty.jpg": "missing",
        "dogs/rex.jpg": "missing",
    }
    for key in ("cats/kitty.jpg", "dogs/rex.jpg"):
        assert now[key]["batch"] == "inbox_000002"
        assert "deleted from the source" in now[key]["error"]
        assert [now[key][c] for c in ("item_id", "uri", "source")] == [
            before[key][c] for c in ("item_id", "uri", "source")
        ]


def test_an_object_back_after_its_tombstone_is_ingested_again(
    backend: Backend, project: Project, instance: DagsterInstance
) -> None:
    backend.put("a/one.jpg", jpeg(10, 10, 1))
    backend.put("a/two.jpg", jpeg(30, 20, 2))
    first = tick(project, instance)
    backend.unlist("a/two.jpg")
    second = tick(project, instance, cursor=first.cursor)

    backend.put("a/two.jpg", jpeg(30, 20, 2))
    third = tick(project, instance, cursor=second.cursor)

    assert [r.partition_key for r in third.run_requests] == ["inbox_000003"]
    two = current(backend, project, 3)["a/two.jpg"]
    assert (two["status"], two["width"], two["batch"]) == ("ok", 30, "inbox_000003")


def test_an_object_rewritten_back_to_its_first_content_is_claimed_again(
    backend: Backend, project: Project, instance: DagsterInstance
) -> None:
    """On S3 the first and the last versions have the same ETag."""
    backend.put("a/one.jpg", jpeg(10, 10, 1))
    backend.put("a/two.jpg", jpeg(30, 20, 2))
    first = tick(project, instance)
    backend.put("a/two.jpg", jpeg(64, 48, 3))
    second = tick(project, instance, cursor=first.cursor)

    backend.put("a/two.jpg", jpeg(30, 20, 2))
    third = tick(project, instance, cursor=second.cursor)

    assert [r.partition_key for r in third.run_requests] == ["inbox_000003"]
    two = current(backend, project, 3)["a/two.jpg"]
    assert (two["status"], two["width"], two["batch"]) == ("ok", 30, "inbox_000003")
