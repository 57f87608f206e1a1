"""The ``duplicates`` asset on real images across two batches."""

from __future__ import annotations

import io
import shutil

from dagster import DagsterInstance
from PIL import Image

from ingest_assets.assets.dataset_items import dataset_items
from ingest_assets.assets.duplicates import duplicates
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
