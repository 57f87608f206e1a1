"""Both assets on the demo's real data: scikit-learn digits, scikit-image photos, broken files."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from dagster import DagsterInstance
from PIL import Image, ImageOps

from ingest_assets.assets.dataset_items import dataset_items
from tests.conftest import Project

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def demo_batch(project: Project, instance: DagsterInstance) -> list[dict]:
    subprocess.run(
        [sys.executable, str(REPO / "demo" / "seed_inbox.py"), str(project.inbox), "--scale", "2"],
        check=True,
        capture_output=True,
    )
    project.write_config(batch_size=5000, test_fraction=0.2)
    claim = project.claim()
    assert claim.new_batches == ["inbox_000001"]
    instance.add_dynamic_partitions("batches", claim.new_batches)
    result = project.ingest(instance, "inbox_000001")
    assert result.success
    return project.lake.read_table("dataset_items", "inbox_000001").to_pylist()


def test_digits_are_labelled_by_folder_and_unlabeled_folder_stays_unlabeled(
    demo_batch: list[dict],
) -> None:
    digits = [r for r in demo_batch if r["key"].startswith("digits/")]
    unlabeled = [r for r in demo_batch if r["key"].startswith("unlabeled/")]
    assert len(digits) + len(unlabeled) == 1797
    assert len(unlabeled) == 180
    assert all(r["label"] == r["key"].split("/")[1] for r in digits)
    assert set(Counter(r["label"] for r in digits)) == {str(d) for d in range(10)}
    assert all(r["label"] is None and r["status"] == "ok" for r in unlabeled)


def test_dimensions_equal_pillows_as_displayed(demo_batch: list[dict], project: Project) -> None:
    for row in demo_batch:
        if row["status"] != "ok":
            continue
        with Image.open(project.inbox / row["key"]) as image:
            shown = ImageOps.exif_transpose(image)
            assert (row["width"], row["height"]) == shown.size, row["key"]
            assert (row["format"], row["mode"]) == (image.format, image.mode)
    rotated = next(r for r in demo_batch if r["key"] == "photos/chelsea_rotated.jpg")
    assert (rotated["width"], rotated["height"], rotated["orientation"]) == (300, 451, 6)


def test_splits_follow_test_fraction_and_broken_files_are_reported(
    demo_batch: list[dict],
) -> None:
    splits = Counter(r["split"] for r in demo_batch)
    assert set(splits) == {"train", "test"}
    assert 0.17 < splits["test"] / len(demo_batch) < 0.23
    broken = {r["key"]: r for r in demo_batch if r["status"] != "ok"}
    assert set(broken) == {"broken/truncated.jpg", "broken/not_an_image.jpg"}
    assert "truncated" in broken["broken/truncated.jpg"]["error"].lower()
    assert "not an image" in broken["broken/not_an_image.jpg"]["error"]
    photos = [r for r in demo_batch if r["key"].startswith("photos/")]
    assert len(photos) == 6 and all(r["label"] == "photos" and r["phash"] for r in photos)


def test_rerun_replaces_the_partition_with_the_same_items_and_splits(
    demo_batch: list[dict], project: Project, instance: DagsterInstance
) -> None:
    result = project.ingest(instance, "inbox_000001", [dataset_items])
    assert result.success
    again = project.lake.read_table("dataset_items", "inbox_000001").to_pylist()
    assert [(r["item_id"], r["split"], r["sha256"]) for r in again] == [
        (r["item_id"], r["split"], r["sha256"]) for r in demo_batch
    ]
