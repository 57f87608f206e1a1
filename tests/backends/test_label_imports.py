"""A label file that a source's ``annotations`` glob finds is read through that source's own
store settings (an S3-compatible endpoint with credentials from named variables, GCS, a local
folder), after the batch holding its items is ingested."""

from __future__ import annotations

import pytest
from dagster import DagsterInstance, SensorResult

from ingest_assets.annotations.current import iter_annotations
from tests.backends.conftest import Backend
from tests.backends.test_ingest import ingest, tick
from tests.conftest import Project
from tests.sensors.test_imports_sensor import SHAPES, import_requested

pytestmark = pytest.mark.skipif(
    not SHAPES.is_dir(), reason=f"the reference data folder {SHAPES} is absent"
)
IMAGES = ("img_1.jpg", "img_2.jpg", "img_3.jpg")


@pytest.mark.parametrize("backend", ["local", "s3_compatible", "gcs"], indirect=True)
def test_a_label_file_in_a_source_is_read_with_the_sources_settings(
    backend: Backend, project: Project, instance: DagsterInstance
) -> None:
    backend.configure(
        project, label_strategy="none", annotations=[{"glob": "labels/*.json", "format": "coco"}]
    )
    for name in IMAGES:
        backend.put(f"shapes/{name}", (SHAPES / name).read_bytes())
    backend.put("labels/gt.json", (SHAPES / "gt_dataset.json").read_bytes())

    claimed = tick(project, instance)
    assert isinstance(claimed, SensorResult)
    (batch,) = [r.partition_key for r in claimed.run_requests]
    assert batch is not None
    ingest(project, instance, batch)

    import_requested(project, instance)

    lake = backend.lake_of(project)
    keys = {r["item_id"]: r["key"] for r in lake.read_current("dataset_items").to_pylist()}
    rows = [r for t in iter_annotations(lake, "imported_annotations") for r in t.to_pylist()]
    assert len(rows) == 9
    assert {keys[r["item_id"]] for r in rows} == {f"shapes/{name}" for name in IMAGES}
