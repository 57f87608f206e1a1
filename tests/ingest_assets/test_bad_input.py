"""The bad-input corpus (DESIGN §8) run through the real assets: bad objects become rows with a
status and an error, never a failed batch; ``ignore_errors: false`` fails with the index, the
key and the last checkpoint."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from dagster import DagsterInstance, ExecuteInProcessResult
from PIL import Image

from ingest_assets.items.identity import item_id
from resources.stores.local import LocalFolderStore
from tests.conftest import Project
from tests.images import encode, noise, write_image
from tests.ingest_assets.items.test_inspect import blank_png

#: A pixel limit low enough that a few kilobytes of PNG exceed it.
MAX_PIXELS = 1_000_000


def put(project: Project, key: str, data: bytes) -> None:
    path = project.inbox / key
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def claim_one_batch(project: Project, instance: DagsterInstance) -> str:
    claimed = project.claim()
    assert len(claimed.new_batches) == 1, claimed
    instance.add_dynamic_partitions("batches", claimed.new_batches)
    return claimed.new_batches[0]


def ingest(
    project: Project, instance: DagsterInstance, batch: str, *, raise_on_error: bool = True
) -> ExecuteInProcessResult:
    return project.ingest(instance, batch, raise_on_error=raise_on_error)


def item_metadata(result: ExecuteInProcessResult) -> dict[str, Any]:
    [event] = result.asset_materializations_for_node("dataset_items")
    return {name: value.value for name, value in event.metadata.items()}


def rows_by_key(project: Project, batch: str) -> dict[str, dict[str, Any]]:
    rows = project.lake.read_table("dataset_items", batch).to_pylist()
    by_key = {row["key"]: row for row in rows}
    assert len(by_key) == len(rows), "a key became more than one row"
    return by_key


def files_under(folder: Path) -> dict[Path, str]:
    return {
        path: hashlib.sha256(path.read_bytes()).hexdigest()
        for path in folder.rglob("*")
        if path.is_file()
    }


def truncated_jpeg() -> bytes:
    data = encode(noise(256, 256), "JPEG")
    return data[: len(data) // 2]


def animated_gif() -> bytes:
    frames = [noise(24, 16, seed=seed).convert("P") for seed in range(3)]
    return encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100)


def deep_png() -> bytes:
    depth = (np.arange(48 * 64, dtype=np.uint16).reshape(48, 64) * 21).astype(np.uint16)
    return encode(Image.fromarray(depth), "PNG")


#: key -> the words its error must contain.
CORRUPT = {
    "empty.jpg": ["empty file", "0 bytes"],
    "truncated.jpg": ["cannot decode JPEG", "truncated"],
    "text.jpg": ["not an image"],
    # Over the source's max_image_pixels (our own check).
    "bomb over the source limit.png": ["decompression bomb", "2000x1000", "max_image_pixels"],
    # Over Pillow's own limit (Pillow warns), and over twice it (Pillow refuses).
    "bomb over pillows limit.png": ["decompression bomb", "max_image_pixels"],
    "bomb over twice pillows limit.png": ["decompression bomb", "max_image_pixels"],
}

#: key -> (width, height, mode, format, frames, label).
OK = {
    "good.jpg": (32, 24, "RGB", "JPEG", 1, None),
    "good.png": (40, 30, "RGB", "PNG", 1, None),
    "cmyk.jpg": (30, 20, "CMYK", "JPEG", 1, None),
    "deep.png": (64, 48, "I;16", "PNG", 1, None),
    "animated.gif": (24, 16, "P", "GIF", 3, None),
    "café photos/naïve 1.jpg": (32, 24, "RGB", "JPEG", 1, "café photos"),
    "a..b.jpg": (32, 24, "RGB", "JPEG", 1, None),
    "x..y/inside.png": (40, 30, "RGB", "PNG", 1, "x..y"),
}


def write_corpus(project: Project) -> None:
    put(project, "empty.jpg", b"")
    put(project, "truncated.jpg", truncated_jpeg())
    put(project, "text.jpg", b"This is a text file that someone named .jpg\n" * 20)
    put(project, "bomb over the source limit.png", blank_png(2000, 1000))
    put(project, "bomb over pillows limit.png", blank_png(10000, 10000))
    put(project, "bomb over twice pillows limit.png", blank_png(20000, 20000))
    put(project, "good.jpg", encode(noise(32, 24, seed=1), "JPEG"))
    put(project, "good.png", encode(noise(40, 30, seed=2), "PNG"))
    put(project, "cmyk.jpg", encode(noise(30, 20, seed=3).convert("CMYK"), "JPEG"))
    put(project, "deep.png", deep_png())
    put(project, "animated.gif", animated_gif())
    put(project, "café photos/naïve 1.jpg", encode(noise(32, 24, seed=4), "JPEG"))
    put(project, "a..b.jpg", encode(noise(32, 24, seed=5), "JPEG"))
    put(project, "x..y/inside.png", encode(noise(40, 30, seed=6), "PNG"))


def test_the_bad_input_corpus_becomes_one_row_per_object(
    project: Project, instance: DagsterInstance, tmp_path: Path, recwarn: pytest.WarningsRecorder
) -> None:
    project.write_config(max_image_pixels=MAX_PIXELS)
    write_corpus(project)
    before = files_under(tmp_path)

    batch = claim_one_batch(project, instance)
    result = ingest(project, instance, batch)

    assert result.success
    rows = rows_by_key(project, batch)
    assert set(rows) == set(CORRUPT) | set(OK)

    for key, words in CORRUPT.items():
        row = rows[key]
        assert row["status"] == "corrupt", (key, row)
        for word in words:
            assert word in row["error"], (key, row["error"])
        assert row["phash"] is None

    for key, (width, height, mode, fmt, frames, label) in OK.items():
        row = rows[key]
        assert row["status"] == "ok", (key, row["error"])
        assert row["error"] is None
        assert (row["width"], row["height"], row["mode"], row["format"]) == (
            width,
            height,
            mode,
            fmt,
        ), key
        assert row["frames"] == frames, key
        assert row["label"] == label, key
        assert row["phash"] is not None, key

    raw = project.lake.read_table("raw_items", batch).to_pylist()
    assert {r["key"]: r["item_id"] for r in raw} == {k: r["item_id"] for k, r in rows.items()}
    for key, row in rows.items():
        data = (project.inbox / key).read_bytes()
        assert row["item_id"] == item_id("inbox", key)
        assert row["bytes"] == len(data)
        assert row["sha256"] == hashlib.sha256(data).hexdigest()
        assert row["split"] in ("train", "test")
        assert row["uri"] == LocalFolderStore(project.inbox).uri(key)

    # Pillow only warns between once and twice its own limit: the asset reports that image
    # in its row and does not print the warning into the run's log as well. (``recwarn``
    # records warnings instead of pytest's "error" filter raising them, as outside pytest.)
    assert not [w for w in recwarn if issubclass(w.category, Image.DecompressionBombWarning)]

    metadata = item_metadata(result)
    assert metadata["dagster/row_count"] == len(CORRUPT) + len(OK)
    assert (metadata["ok"], metadata["corrupt"]) == (len(OK), len(CORRUPT))
    assert (metadata["missing"], metadata["unreadable"]) == (0, 0)
    assert metadata["errors_by_reason"] == {
        "empty file (0 bytes)": 1,
        "cannot decode JPEG": 1,
        "not an image": 1,
        "decompression bomb": 3,
    }

    # Items link to their objects: nothing is copied, nothing is written outside the lake,
    # and the inbox is left exactly as it was.
    after = files_under(tmp_path)
    assert {path: after[path] for path in before} == before
    lake = project.root / "lake"
    outside = [path for path in set(after) - set(before) if not path.is_relative_to(lake)]
    assert outside == []
    written = [path.relative_to(lake).as_posix() for path in set(after) - set(before)]
    assert not [path for path in written if path.endswith((".jpg", ".png", ".gif"))]
    assert not [path for path in written if "naïve" in path or ".." in path]


def test_an_object_deleted_after_claiming_becomes_a_missing_item(
    project: Project, instance: DagsterInstance
) -> None:
    for n in range(4):
        write_image(project.inbox / "cars" / f"cars.{n:05d}.jpg", seed=n)
    batch = claim_one_batch(project, instance)
    gone = project.inbox / "cars" / "cars.00002.jpg"
    size = gone.stat().st_size
    gone.unlink()

    result = ingest(project, instance, batch)

    assert result.success
    rows = rows_by_key(project, batch)
    assert len(rows) == 4
    row = rows["cars/cars.00002.jpg"]
    assert row["status"] == "missing"
    assert "no longer exists" in row["error"]
    assert "cars.00002.jpg" in row["error"]
    # The item keeps what the claim knew about it.
    assert (row["label"], row["bytes"]) == ("cars", size)
    assert row["width"] is None and row["sha256"] is None
    assert {k: r["status"] for k, r in rows.items() if k != "cars/cars.00002.jpg"} == {
        f"cars/cars.{n:05d}.jpg": "ok" for n in (0, 1, 3)
    }
    metadata = item_metadata(result)
    assert (metadata["ok"], metadata["missing"], metadata["corrupt"]) == (3, 1, 0)
    assert metadata["errors_by_reason"] == {"object no longer exists": 1}


def test_with_ignore_errors_false_a_bad_item_fails_the_run_naming_index_key_and_checkpoint(
    project: Project, instance: DagsterInstance
) -> None:
    project.write_config(ignore_errors=False, checkpoint_rows=2)
    write_image(project.inbox / "a.jpg", seed=1)
    write_image(project.inbox / "b.jpg", seed=2)
    put(project, "c.jpg", b"not an image, just text")
    write_image(project.inbox / "d.jpg", seed=3)
    batch = claim_one_batch(project, instance)

    result = ingest(project, instance, batch, raise_on_error=False)

    assert not result.success
    [failure] = result.get_step_failure_events()
    assert failure.step_key == "dataset_items"
    message = failure.step_failure_data.error.message if failure.step_failure_data.error else ""
    assert "item 2" in message
    assert "'c.jpg'" in message
    assert "not an image" in message
    assert "[0, 2)" in message  # the last checkpoint: the first chunk of two items
    assert "ignore_errors" in message
    assert not project.lake.is_committed("dataset_items", batch)

    # Fixing the object and running again resumes after the checkpoint; the fixed object is a
    # new version, superseding the claimed one, and the next claim ingests it.
    write_image(project.inbox / "c.jpg", seed=4)
    again = ingest(project, instance, batch)
    assert again.success
    assert item_metadata(again)["resumed_rows"] == 2
    rows = rows_by_key(project, batch)
    assert sorted(rows) == ["a.jpg", "b.jpg", "c.jpg", "d.jpg"]
    assert {k: row["status"] for k, row in rows.items() if row["status"] != "ok"} == {
        "c.jpg": "superseded"
    }
    fixed = claim_one_batch(project, instance)
    assert ingest(project, instance, fixed).success
    assert {k: row["status"] for k, row in rows_by_key(project, fixed).items()} == {"c.jpg": "ok"}


def test_with_ignore_errors_false_a_missing_object_fails_the_run_too(
    project: Project, instance: DagsterInstance
) -> None:
    project.write_config(ignore_errors=False)
    write_image(project.inbox / "a.jpg", seed=1)
    write_image(project.inbox / "b.jpg", seed=2)
    batch = claim_one_batch(project, instance)
    (project.inbox / "a.jpg").unlink()

    result = ingest(project, instance, batch, raise_on_error=False)

    assert not result.success
    [failure] = result.get_step_failure_events()
    message = failure.step_failure_data.error.message if failure.step_failure_data.error else ""
    assert "item 0 ('a.jpg') is missing" in message
    assert "[0, 0)" in message


def test_a_truncated_jpeg_passes_when_the_source_verifies_headers_only(
    project: Project, instance: DagsterInstance
) -> None:
    project.write_config(verify="header")
    put(project, "truncated.jpg", truncated_jpeg())
    put(project, "empty.jpg", b"")
    batch = claim_one_batch(project, instance)

    result = ingest(project, instance, batch)

    rows = rows_by_key(project, batch)
    assert (rows["truncated.jpg"]["status"], rows["truncated.jpg"]["width"]) == ("ok", 256)
    assert rows["empty.jpg"]["status"] == "corrupt"
    assert (item_metadata(result)["ok"], item_metadata(result)["corrupt"]) == (1, 1)


def test_raising_max_image_pixels_lets_a_large_image_through(
    project: Project, instance: DagsterInstance, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The asset raises Pillow's process-wide limit to the source's: put it back afterwards.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", Image.MAX_IMAGE_PIXELS)
    project.write_config(max_image_pixels=500_000_000, verify="header")
    put(project, "huge.png", blank_png(20000, 20000))
    batch = claim_one_batch(project, instance)

    ingest(project, instance, batch)

    row = rows_by_key(project, batch)["huge.png"]
    assert (row["status"], row["width"], row["height"]) == ("ok", 20000, 20000), row["error"]
