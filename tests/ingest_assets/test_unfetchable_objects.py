"""Objects that cannot be fetched, through the real assets (DESIGN §8): an unresolvable host, an
object over ``max_object_bytes``, a server slower than ``fetch_deadline_seconds``, a local file
a manifest names outside its ``manifest_file_roots``. Each becomes that item's status and error,
and the good items of the batch commit."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dagster import DagsterInstance

from tests.conftest import Project
from tests.images import write_image
from tests.ingest_assets.test_bad_input import (
    claim_one_batch,
    ingest,
    item_metadata,
    rows_by_key,
)
from tests.resources.stores.misbehaving_http import HUGE, MisbehavingServer, serve_misbehaving


@pytest.fixture
def misbehaving() -> Iterator[MisbehavingServer]:
    with serve_misbehaving() as server:
        yield server


def manifest_source(project: Project, *entries: dict[str, Any], **settings: Any) -> None:
    """The project's source becomes ``m.jsonl`` in the project folder, listing ``entries``."""
    lines = "".join(json.dumps(entry) + "\n" for entry in entries)
    (project.root / "m.jsonl").write_text(lines, encoding="utf-8")
    project.write_config(uri=None, manifest="m.jsonl", label_strategy="none", **settings)


def good_entries(project: Project) -> list[dict[str, Any]]:
    """Two images in the manifest's folder, as relative paths."""
    for seed, name in enumerate(("cat.jpg", "dog.jpg")):
        write_image(project.root / "pics" / name, seed=seed)
    return [
        {"image_location": "pics/cat.jpg", "reference_id": "cat"},
        {"image_location": "pics/dog.jpg", "reference_id": "dog"},
    ]


def ingested_rows(project: Project, instance: DagsterInstance) -> dict[str, dict[str, Any]]:
    batch = claim_one_batch(project, instance)
    result = ingest(project, instance, batch)
    assert result.success
    return rows_by_key(project, batch)


def assert_good_items_committed(rows: dict[str, dict[str, Any]]) -> None:
    assert (rows["cat"]["status"], rows["dog"]["status"]) == ("ok", "ok")


def test_an_unresolvable_host_is_one_unreadable_item_and_the_good_items_commit(
    project: Project, instance: DagsterInstance
) -> None:
    lost = "http://no-such-host.invalid/x.jpg"
    manifest_source(project, *good_entries(project), {"image_location": lost, "reference_id": "x"})
    batch = claim_one_batch(project, instance)

    result = ingest(project, instance, batch)

    assert result.success
    rows = rows_by_key(project, batch)
    assert_good_items_committed(rows)
    assert rows["x"]["status"] == "unreadable"
    assert rows["x"]["error"].startswith(f"fetch failed: {lost}: ")
    assert "cannot resolve host 'no-such-host.invalid'" in rows["x"]["error"]
    metadata = item_metadata(result)
    assert (metadata["ok"], metadata["unreadable"]) == (2, 1)
    assert metadata["errors_by_reason"] == {"fetch failed": 1}


def test_objects_over_max_object_bytes_are_unreadable_and_never_read_whole(
    project: Project, instance: DagsterInstance, misbehaving: MisbehavingServer
) -> None:
    """By Content-Length (a server announcing 2 GiB), by the bytes a body without a length
    streams, and by the size a manifest lists: none is retried, nor read past the cap."""
    run = uuid.uuid4().hex
    huge, unsized, listed = f"announce-huge/{run}", f"unsized/300000/{run}", f"file/{run}"
    misbehaving.put(run, b"\0" * 200_000)
    manifest_source(
        project,
        *good_entries(project),
        {"image_location": misbehaving.url(huge), "reference_id": "huge"},
        {"image_location": misbehaving.url(unsized), "reference_id": "unsized"},
        {"image_location": misbehaving.url(listed), "reference_id": "listed", "size": 200_000},
        max_object_bytes=100_000,
        allow_private_addresses=True,
        num_workers=1,
    )

    rows = ingested_rows(project, instance)

    assert_good_items_committed(rows)
    found = {
        "huge": f"its Content-Length is {HUGE} bytes",
        "unsized": "it sent more than 100000 bytes",
        "listed": "its listed size is 200000 bytes",
    }
    for key, words in found.items():
        row = rows[key]
        assert row["status"] == "unreadable", (key, row)
        assert row["error"].startswith("too large: "), row["error"]
        assert words in row["error"]
        assert "max_object_bytes (100000 bytes)" in row["error"]
        assert row["sha256"] is None
    assert (misbehaving.count(huge), misbehaving.count(unsized)) == (1, 1)
    assert misbehaving.count(listed) == 0  # refused by its listed size, never requested


def test_a_local_file_over_max_object_bytes_is_unreadable(
    project: Project, instance: DagsterInstance
) -> None:
    write_image(project.inbox / "small.jpg", seed=1)
    write_image(project.inbox / "large.jpg", width=400, height=300, seed=2)
    cap = (project.inbox / "small.jpg").stat().st_size
    project.write_config(max_object_bytes=cap, label_strategy="none")

    rows = ingested_rows(project, instance)

    assert rows["small.jpg"]["status"] == "ok"
    assert rows["large.jpg"]["status"] == "unreadable"
    assert "too large" in rows["large.jpg"]["error"]
    assert f"max_object_bytes ({cap} bytes)" in rows["large.jpg"]["error"]


def test_a_server_that_trickles_bytes_is_cut_off_at_the_fetch_deadline(
    project: Project, instance: DagsterInstance, misbehaving: MisbehavingServer
) -> None:
    """One byte every 0.25 s keeps every read alive; the deadline counts the whole fetch."""
    slow = f"trickle/40/0.25/{uuid.uuid4().hex}"
    manifest_source(
        project,
        *good_entries(project),
        {"image_location": misbehaving.url(slow), "reference_id": "slow"},
        fetch_deadline_seconds=1,
        allow_private_addresses=True,
        num_workers=1,
    )

    rows = ingested_rows(project, instance)

    assert_good_items_committed(rows)
    assert rows["slow"]["status"] == "unreadable"
    assert rows["slow"]["error"].startswith(f"fetch deadline passed: {misbehaving.url(slow)}")
    assert "fetch_deadline_seconds (1 s)" in rows["slow"]["error"]
    assert misbehaving.count(slow) == 1


def test_local_files_a_manifest_names_outside_its_folder_are_refused_and_never_read(
    project: Project, instance: DagsterInstance, tmp_path: Path
) -> None:
    secret = write_image(tmp_path / "private" / "secret.jpg", seed=7)
    (project.root / "pics").mkdir()
    (project.root / "pics" / "link.jpg").symlink_to(secret)
    climb = "../" * len(project.root.parts)
    manifest_source(
        project,
        *good_entries(project),
        {"image_location": "file:///etc/passwd", "reference_id": "passwd"},
        {"image_location": f"{climb}etc/passwd", "reference_id": "climb"},
        {"image_location": str(secret), "reference_id": "secret"},
        {"image_location": "pics/link.jpg", "reference_id": "link"},
    )

    rows = ingested_rows(project, instance)

    assert_good_items_committed(rows)
    for key in ("passwd", "climb", "secret", "link"):
        row = rows[key]
        assert row["status"] == "unreadable", (key, row)
        assert "manifest_file_roots" in row["error"], row["error"]
        assert f"the manifest's own folder, {project.root}" in row["error"]
        assert (row["sha256"], row["width"]) == (None, None)
    assert "(it resolves to" in rows["link"]["error"]
