"""The same ingest behaviour on every kind of source (see ``conftest.py``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from dagster import DagsterInstance, SensorResult, SkipReason

from ingest_assets.assets.dataset_items import dataset_items
from ingest_assets.assets.duplicates import duplicates
from ingest_assets.assets.raw_items import raw_items
from tests.backends.conftest import Backend
from tests.conftest import Project
from tests.images import encode, noise

BIN = Path(sys.executable).parent


def jpeg(width: int, height: int, seed: int) -> bytes:
    return encode(noise(width, height, seed=seed), "JPEG")


def tick(project: Project, instance: DagsterInstance, cursor: str | None = None) -> Any:
    return project.tick(instance, cursor)


def ingest(project: Project, instance: DagsterInstance, batch: str) -> None:
    result = project.ingest(instance, batch, [raw_items, dataset_items, duplicates])
    assert result.success


def test_objects_become_labelled_items(backend: Backend, project: Project, instance) -> None:
    backend.put("cats/tom.jpg", jpeg(40, 30, 1))
    backend.put("cats/kitty.jpg", jpeg(20, 50, 2))
    backend.put("dogs/rex.png", encode(noise(33, 17, seed=3), "PNG"))
    whole = jpeg(64, 64, 4)
    backend.put("dogs/broken.jpg", whole[: len(whole) // 2])
    backend.put("unlabeled/who.jpg", jpeg(8, 8, 5))

    result = tick(project, instance)

    assert isinstance(result, SensorResult)
    assert [r.partition_key for r in result.run_requests] == ["inbox_000001"]
    ingest(project, instance, "inbox_000001")
    rows = {
        r["key"]: r
        for r in backend.lake_of(project).read_table("dataset_items", "inbox_000001").to_pylist()
    }
    assert set(rows) == {
        "cats/tom.jpg",
        "cats/kitty.jpg",
        "dogs/rex.png",
        "dogs/broken.jpg",
        "unlabeled/who.jpg",
    }
    assert (rows["cats/tom.jpg"]["width"], rows["cats/tom.jpg"]["height"]) == (40, 30)
    assert (rows["dogs/rex.png"]["format"], rows["dogs/rex.png"]["width"]) == ("PNG", 33)
    assert [rows[k]["label"] for k in sorted(rows)] == ["cats", "cats", "dogs", "dogs", None]
    assert rows["dogs/broken.jpg"]["status"] == "corrupt"
    assert "truncated" in rows["dogs/broken.jpg"]["error"]
    assert all(rows[k]["status"] == "ok" for k in rows if k != "dogs/broken.jpg")
    assert all(r["uri"].split(":", 1)[0] in ("file", "s3", "gs", "http") for r in rows.values())
    if backend.name == "http_manifest":
        assert json.loads(rows["cats/tom.jpg"]["metadata"]) == {
            "camera": "north-gate",
            "version": 1,
        }
    assert isinstance(tick(project, instance, cursor=result.cursor), SkipReason)


def test_a_rewritten_object_is_claimed_once_more(
    backend: Backend, project: Project, instance
) -> None:
    backend.put("cats/tom.jpg", jpeg(40, 30, 1))
    backend.put("cats/kitty.jpg", jpeg(20, 50, 2))
    first = tick(project, instance)
    ingest(project, instance, "inbox_000001")

    backend.put("cats/tom.jpg", jpeg(64, 48, 9))
    second = tick(project, instance, cursor=first.cursor)
    third = tick(project, instance, cursor=second.cursor)
    ingest(project, instance, "inbox_000002")

    assert [r.partition_key for r in second.run_requests] == ["inbox_000002"]
    assert isinstance(third, SkipReason)
    current = backend.lake_of(project).read_current(
        "dataset_items", ["inbox_000001", "inbox_000002"]
    )
    tom = [r for r in current.to_pylist() if r["key"] == "cats/tom.jpg"]
    assert [(r["width"], r["height"], r["batch"]) for r in tom] == [(64, 48, "inbox_000002")]
    assert current.num_rows == 2


def test_an_object_rewritten_between_claim_and_ingest_is_superseded_then_ingested_anew(
    backend: Backend, project: Project, instance
) -> None:
    backend.put("a/one.jpg", jpeg(10, 10, 1))
    backend.put("a/two.jpg", jpeg(10, 10, 2))
    first = tick(project, instance)
    backend.put("a/two.jpg", jpeg(30, 20, 3))  # rewritten after the claim, before the ingest

    result = project.ingest(instance, "inbox_000001")

    rows = {
        r["key"]: r
        for r in backend.lake_of(project).read_table("dataset_items", "inbox_000001").to_pylist()
    }
    assert rows["a/one.jpg"]["status"] == "ok"
    assert rows["a/two.jpg"]["status"] == "superseded"
    assert rows["a/two.jpg"]["width"] is None and rows["a/two.jpg"]["sha256"] is None
    assert "rewritten since it was claimed" in rows["a/two.jpg"]["error"]
    (materialization,) = result.asset_materializations_for_node("dataset_items")
    assert materialization.metadata["superseded"].value == 1
    second = tick(project, instance, cursor=first.cursor)
    assert [r.partition_key for r in second.run_requests] == ["inbox_000002"]
    ingest(project, instance, "inbox_000002")
    current = backend.lake_of(project).read_current(
        "dataset_items", ["inbox_000001", "inbox_000002"]
    )
    two = [r for r in current.to_pylist() if r["key"] == "a/two.jpg"]
    assert [(r["status"], r["width"], r["batch"]) for r in two] == [("ok", 30, "inbox_000002")]


def test_an_object_deleted_after_its_claim_becomes_missing(
    backend: Backend, project: Project, instance
) -> None:
    backend.put("a/one.jpg", jpeg(10, 10, 1))
    backend.put("a/two.jpg", jpeg(10, 10, 2))
    tick(project, instance)
    backend.delete("a/two.jpg")

    ingest(project, instance, "inbox_000001")

    rows = {
        r["key"]: r
        for r in backend.lake_of(project).read_table("dataset_items", "inbox_000001").to_pylist()
    }
    assert rows["a/one.jpg"]["status"] == "ok"
    assert rows["a/two.jpg"]["status"] == "missing"
    assert "no longer exists" in rows["a/two.jpg"]["error"]


def test_sync_and_verify_source_from_the_command_line(backend: Backend, project: Project) -> None:
    for i in range(3):
        backend.put(f"birds/{i}.jpg", jpeg(16, 12, i))
    env = {**os.environ, "DAGSTER_HOME": ""}
    env.pop("DAGSTER_HOME")

    verify = subprocess.run(
        [str(BIN / "bucketlake"), "verify-source", "inbox"],
        cwd=project.root,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    sync = subprocess.run(
        [str(BIN / "bucketlake"), "sync"],
        cwd=project.root,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )

    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert "OK" in verify.stdout and "sample: birds/0.jpg" in verify.stdout
    assert sync.returncode == 0, sync.stdout + sync.stderr
    assert "inbox_000001: 3 items (3 ok)" in sync.stdout
    assert backend.lake_of(project).read_table("dataset_items", "inbox_000001").num_rows == 3
