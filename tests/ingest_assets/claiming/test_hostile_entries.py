"""What a source holds that is not a plain object: symbolic links out of it, loops of links,
and names its store cannot address. None of them may leak bytes from outside the source or stop
the rest of it from being claimed."""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

import pytest
from dagster import DagsterInstance

from ingest_assets.partitions import BATCHES
from resources.errors import AccessDenied
from resources.lake.datapool import read_manifest
from resources.stores.local import LocalFolderStore
from tests.conftest import Project
from tests.images import write_image
from tests.servers.gcs import FakeGCS


def claimed_keys(project: Project, batches: list[str]) -> list[str]:
    return sorted(
        k for b in batches for k in read_manifest(project.lake.store, b).column("key").to_pylist()
    )


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A secret file outside the source's folder."""
    secret = tmp_path / "outside" / "secret.jpg"
    write_image(secret, seed=99)
    return secret


def test_links_leading_out_of_the_source_are_never_claimed_or_read(
    project: Project, outside: Path
) -> None:
    write_image(project.inbox / "cats" / "tom.jpg")
    (project.inbox / "cats" / "passwd.jpg").symlink_to("/etc/passwd")
    (project.inbox / "cats" / "secret.jpg").symlink_to(Path("../../../outside/secret.jpg"))
    (project.inbox / "elsewhere").symlink_to(outside.parent, target_is_directory=True)

    for follow in (False, True):
        project.write_config(follow_symlinks=follow)
        result = project.claim()

        assert claimed_keys(project, result.new_batches) == (["cats/tom.jpg"] if not follow else [])
        assert "cats/passwd.jpg" in result.warning and "cats/secret.jpg" in result.warning
        assert "elsewhere" in result.warning
        if follow:
            assert "leads out of the source's folder" in result.warning
    with pytest.raises(AccessDenied, match="symbolic link"):
        LocalFolderStore(project.inbox).get("elsewhere/secret.jpg")
    with pytest.raises(AccessDenied, match="symbolic link"):
        LocalFolderStore(project.inbox, follow_symlinks=True).get("elsewhere/secret.jpg")
    with pytest.raises(AccessDenied, match="symbolic link"):
        LocalFolderStore(project.inbox).get("cats/passwd.jpg")


def test_links_within_the_source_are_taken_only_with_follow_symlinks(
    project: Project, instance: DagsterInstance
) -> None:
    target = write_image(project.inbox / "originals" / "tom.jpg", seed=3)
    (project.inbox / "cats").mkdir()
    (project.inbox / "cats" / "tom.jpg").symlink_to(Path("../originals/tom.jpg"))

    left = project.claim()
    assert claimed_keys(project, left.new_batches) == ["originals/tom.jpg"]
    assert "cats/tom.jpg: a symbolic link (set follow_symlinks: true" in left.warning

    project.write_config(follow_symlinks=True)
    taken = project.claim(registered=set(left.new_batches))
    assert claimed_keys(project, taken.new_batches) == ["cats/tom.jpg"]
    ingest(project, instance, taken.new_batches)
    row = project.lake.read_current("dataset_items", taken.new_batches).to_pylist()[0]
    assert (row["status"], row["label"], row["bytes"]) == ("ok", "cats", target.stat().st_size)


def test_a_loop_of_links_is_left_out_and_the_rest_is_claimed(project: Project) -> None:
    write_image(project.inbox / "cats" / "tom.jpg")
    os.symlink("b.jpg", project.inbox / "cats" / "a.jpg")
    os.symlink("a.jpg", project.inbox / "cats" / "b.jpg")
    os.symlink("self.jpg", project.inbox / "cats" / "self.jpg")
    os.symlink(".", project.inbox / "cats" / "again")  # a folder that holds itself

    for follow in (False, True):
        project.write_config(follow_symlinks=follow)
        result = project.claim()

        assert claimed_keys(project, result.new_batches) == (["cats/tom.jpg"] if not follow else [])
        for key in ("cats/a.jpg", "cats/b.jpg", "cats/self.jpg", "cats/again"):
            assert key in result.warning


def ingest(project: Project, instance: DagsterInstance, batches: list[str]) -> None:
    instance.add_dynamic_partitions(BATCHES, batches)
    for batch in batches:
        assert project.ingest(instance, batch).success


def ingested(project: Project, instance: DagsterInstance) -> dict[str, dict[str, Any]]:
    result = project.claim()
    ingest(project, instance, result.new_batches)
    rows = project.lake.read_current("dataset_items", result.new_batches).to_pylist()
    return {r["key"]: r for r in rows}


def test_a_local_name_with_a_backslash_is_one_unreadable_item_not_a_blocked_source(
    project: Project, instance: DagsterInstance
) -> None:
    write_image(project.inbox / "cats" / "tom.jpg")
    write_image(project.inbox / "cats" / "back\\slash.jpg")

    rows = ingested(project, instance)

    assert rows["cats/tom.jpg"]["status"] == "ok"
    odd = rows["cats/back\\slash.jpg"]
    assert odd["status"] == "unreadable"
    assert "cannot be addressed" in odd["error"] and "backslash" in odd["error"]
    assert odd["uri"].endswith("/cats/back%5Cslash.jpg")


def test_gcs_names_the_store_cannot_address_are_unreadable_items_not_a_blocked_source(
    project: Project,
    instance: DagsterInstance,
    fake_gcs_in_memory: FakeGCS,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake_gcs = fake_gcs_in_memory  # the filesystem backend would store a//b as a/b
    bucket = fake_gcs.create_bucket(f"src-{uuid.uuid4().hex[:16]}")
    handle = fake_gcs.client().bucket(bucket)
    for name, seed in (("in/ok.jpg", 1), ("in/back\\slash.jpg", 2), ("in/dbl//slash.jpg", 3)):
        path = write_image(project.root / "staging" / str(seed), seed=seed)
        handle.blob(name).upload_from_filename(str(path))
    for name, value in fake_gcs.env().items():
        monkeypatch.setenv(name, value)
    project.write_config(uri=f"gs://{bucket}/in", label_strategy="none")

    rows = ingested(project, instance)

    assert {k: r["status"] for k, r in rows.items()} == {
        "ok.jpg": "ok",
        "back\\slash.jpg": "unreadable",
        "dbl//slash.jpg": "unreadable",
    }
    assert rows["dbl//slash.jpg"]["uri"] == f"gs://{bucket}/in/dbl//slash.jpg"
    assert "cannot be addressed" in rows["dbl//slash.jpg"]["error"]
