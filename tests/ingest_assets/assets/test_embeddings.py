"""``embeddings``: the real default model (ImageNet MobileNetV2) over real images in a batch."""

from __future__ import annotations

import numpy as np
from dagster import DagsterInstance, materialize

from ingest_assets.assets.dataset_items import dataset_items
from ingest_assets.assets.embeddings import build_embeddings
from ingest_assets.assets.raw_items import raw_items
from ingest_assets.embeddings.table import vectors_of
from ingest_assets.partitions import BATCHES
from resources.config_inference import EmbeddingsConfig
from tests.conftest import Project
from tests.images import write_digits, write_photo

EMBEDDINGS = build_embeddings(EmbeddingsConfig())


def ingest(project: Project, instance: DagsterInstance) -> str:
    (batch,) = project.claim().new_batches
    instance.add_dynamic_partitions(BATCHES, [batch])
    result = materialize(
        [raw_items, dataset_items, EMBEDDINGS],
        partition_key=batch,
        resources=project.resources,
        instance=instance,
    )
    assert result.success
    return batch


def test_every_ok_item_gets_a_vector_and_near_copies_are_nearest(
    project: Project, instance: DagsterInstance
) -> None:
    project.write_config(checkpoint_rows=16)
    write_digits(project.inbox / "digits", 60)
    write_photo(project.inbox / "photos" / "coffee.jpg", "coffee")
    write_photo(project.inbox / "photos" / "coffee_brighter.jpg", "coffee", brighten=1.15)
    write_photo(project.inbox / "photos" / "chelsea.jpg", "chelsea")
    write_photo(project.inbox / "photos" / "astronaut.jpg", "astronaut")
    (project.inbox / "photos" / "truncated.jpg").write_bytes(
        (project.inbox / "photos" / "chelsea.jpg").read_bytes()[:2000]
    )
    batch = ingest(project, instance)

    items = project.lake.read_table("dataset_items", batch).to_pylist()
    ok = {r["item_id"]: r["key"] for r in items if r["status"] == "ok"}
    table = project.lake.read_table("embeddings", batch)
    assert sorted(table.column("item_id").to_pylist()) == sorted(ok)
    assert len(ok) == 64  # the truncated photo is corrupt: no vector, and no crash
    assert str(table.schema.field("vector").type) == "fixed_size_list<item: float>[1280]"
    assert set(table.column("model").to_pylist()) == {"mobilenet_v2"}

    by_key = dict(
        zip([ok[i] for i in table.column("item_id").to_pylist()], vectors_of(table), strict=True)
    )
    unit = {k: v / np.linalg.norm(v) for k, v in by_key.items()}
    copy = float(unit["photos/coffee.jpg"] @ unit["photos/coffee_brighter.jpg"])
    others = [
        float(unit["photos/coffee.jpg"] @ unit[k])
        for k in unit
        if k.startswith("photos/") and "coffee" not in k
    ]
    assert copy > max(others)

    metadata = instance.get_latest_materialization_event(
        EMBEDDINGS.key
    ).asset_materialization.metadata
    assert metadata["knn_labelled_items"].value == 64
    # 6 digits a class and 4 photos: chance is about 0.1; the 1,797 digits score 0.94 (bench)
    assert metadata["knn5_accuracy"].value > 0.5


def test_an_object_gone_since_its_items_were_made_is_skipped_and_counted(
    project: Project, instance: DagsterInstance
) -> None:
    for name in ("coffee", "chelsea", "rocket"):
        write_photo(project.inbox / f"{name}.jpg", name)
    (batch,) = project.claim().new_batches
    instance.add_dynamic_partitions(BATCHES, [batch])
    assert project.ingest(instance, batch).success
    (project.inbox / "rocket.jpg").unlink()  # deleted after dataset_items, before embeddings

    result = materialize(
        [EMBEDDINGS], partition_key=batch, resources=project.resources, instance=instance
    )

    assert result.success
    rows = project.lake.read_table("embeddings", batch)
    assert rows.num_rows == 2
    (event,) = result.get_asset_materialization_events()
    metadata = event.materialization.metadata
    assert metadata["skipped"].value == 1
    assert metadata["skipped_by_reason_this_run"].value == {"missing": 1}
