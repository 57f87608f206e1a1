"""``imports_<source>`` on a real instance: a label file in the source waits until the batches
holding its items are ingested, is then imported once per version, and is never claimed as an
item."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from dagster import DagsterInstance, SensorResult, SkipReason, build_sensor_context, materialize

from ingest_assets.annotations.current import iter_annotations
from ingest_assets.assets.imports import imported_annotations
from ingest_assets.definitions import build_definitions
from ingest_assets.partitions import BATCHES, IMPORTS
from tests.conftest import Project

SHAPES = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "coco-shapes"
pytestmark = pytest.mark.skipif(
    not SHAPES.is_dir(), reason=f"the reference data folder {SHAPES} is absent"
)


def tick(project: Project, instance: DagsterInstance) -> SensorResult | SkipReason:
    defs = build_definitions(project.config)
    sensor = next(s for s in defs.sensors if s.name == "imports_inbox")
    with build_sensor_context(instance=instance, resources=project.resources) as context:
        result = sensor(context)
    assert isinstance(result, SensorResult | SkipReason), result
    if isinstance(result, SensorResult):
        for request in result.dynamic_partitions_requests or []:
            instance.add_dynamic_partitions(IMPORTS, list(request.partition_keys))
    return result


def import_requested(project: Project, instance: DagsterInstance) -> str:
    """Tick the sensor, which must ask for one import, and run that import; its key."""
    ready = tick(project, instance)
    assert isinstance(ready, SensorResult), ready
    (request,) = ready.run_requests
    assert request.partition_key is not None
    result = materialize(
        [imported_annotations],
        partition_key=request.partition_key,
        resources=project.resources,
        instance=instance,
    )
    assert result.success
    return request.partition_key


def test_an_import_waits_for_its_batch_then_runs_once_per_version_of_its_file(
    project: Project, instance: DagsterInstance
) -> None:
    project.write_config(
        label_strategy="none",
        include=["**"],
        annotations=[{"glob": "labels/*.json", "format": "coco"}],
    )
    for name in ("img_1.jpg", "img_2.jpg", "img_3.jpg"):
        (project.inbox / "shapes").mkdir(exist_ok=True)
        shutil.copy(SHAPES / name, project.inbox / "shapes" / name)
    (project.inbox / "labels").mkdir()
    labels = project.inbox / "labels" / "gt.json"
    shutil.copy(SHAPES / "gt_dataset.json", labels)

    batch = project.claim().new_batches
    assert len(batch) == 1
    claimed = project.lake.read_current  # the label file is not an item
    instance.add_dynamic_partitions(BATCHES, batch)
    waiting = tick(project, instance)
    assert isinstance(waiting, SkipReason)
    assert f"wait until batches {batch[0]}" in (waiting.skip_message or "")

    assert project.ingest(instance, batch[0]).success
    keys = {r["key"] for r in claimed("dataset_items").to_pylist()}
    assert keys == {"shapes/img_1.jpg", "shapes/img_2.jpg", "shapes/img_3.jpg"}
    ready = tick(project, instance)
    assert isinstance(ready, SensorResult)
    (request,) = ready.run_requests
    result = materialize(
        [imported_annotations],
        partition_key=request.partition_key,
        resources=project.resources,
        instance=instance,
    )
    assert result.success
    rows = [
        r for t in iter_annotations(project.lake, "imported_annotations") for r in t.to_pylist()
    ]
    assert len(rows) == 9

    again = tick(project, instance)
    assert isinstance(again, SensorResult) and again.run_requests[0].run_key == request.run_key
    truth = json.loads(labels.read_text())
    truth["annotations"].pop()
    labels.write_text(json.dumps(truth))
    changed = tick(project, instance)
    assert isinstance(changed, SensorResult)
    assert changed.run_requests[0].partition_key == request.partition_key
    assert changed.run_requests[0].run_key != request.run_key  # a new version: imported again
