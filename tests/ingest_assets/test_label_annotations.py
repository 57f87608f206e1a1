"""``label_annotations``: the folder label of every item as a class annotation, and a later
version of an item (deleted, or moved out of its label) replacing it in the current view."""

from __future__ import annotations

from dagster import DagsterInstance

from ingest_assets.assets.dataset_items import dataset_items
from ingest_assets.assets.label_annotations import label_annotations
from ingest_assets.assets.raw_items import raw_items
from ingest_assets.partitions import BATCHES
from tests.conftest import Project
from tests.images import write_image

ASSETS = [raw_items, dataset_items, label_annotations]


def ingest_all(project: Project, instance: DagsterInstance) -> list[str]:
    batches = project.claim(registered=set(instance.get_dynamic_partitions(BATCHES))).new_batches
    instance.add_dynamic_partitions(BATCHES, batches)
    for batch in batches:
        assert project.ingest(instance, batch, ASSETS).success
    return batches


def current_labels(project: Project) -> dict[str, str | None]:
    rows = project.lake.read_current("label_annotations").to_pylist()
    return {r["record"]: r["label"] for r in rows}


def test_folder_labels_become_class_annotations_and_later_versions_replace_them(
    project: Project, instance: DagsterInstance
) -> None:
    write_image(project.inbox / "cats" / "tom.jpg", seed=1)
    write_image(project.inbox / "dogs" / "rex.jpg", seed=2)
    write_image(project.inbox / "unlabeled" / "x.jpg", seed=3)
    (first,) = ingest_all(project, instance)

    rows = project.lake.read_table("label_annotations", first).to_pylist()
    assert {(r["record"], r["kind"], r["origin"], r["label"]) for r in rows} == {
        ("cats/tom.jpg", "class", "label_strategy", "cats"),
        ("dogs/rex.jpg", "class", "label_strategy", "dogs"),
        ("unlabeled/x.jpg", "class", "label_strategy", None),
    }

    (project.inbox / "dogs" / "rex.jpg").unlink()
    ingest_all(project, instance)

    assert current_labels(project) == {
        "cats/tom.jpg": "cats",
        "dogs/rex.jpg": None,  # deleted from the source: its label is gone too
        "unlabeled/x.jpg": None,
    }
