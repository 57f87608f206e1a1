"""``bucketlake import`` on a real project: the coco-shapes images ingested by sync, then their
ground truth and a model's predictions imported through the instance, unmatched records named,
a bad file refused whole, a changed file replacing its import's rows."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from dagster import DagsterInstance, DagsterRunStatus, RunsFilter

from ingest_assets.annotations.current import iter_annotations
from tests.conftest import Project
from tests.ingest_assets.cli.test_sync import BIN, run, sync

SHAPES = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "coco-shapes"
pytestmark = pytest.mark.skipif(
    not SHAPES.is_dir(), reason=f"the reference data folder {SHAPES} is absent"
)


def bucketlake(project: Project, *args: str) -> tuple[int, str]:
    done = run([str(BIN / "bucketlake"), *args], project.root)
    return done.returncode, done.stdout + done.stderr


@pytest.fixture
def shapes(project: Project) -> Project:
    """The three coco-shapes images ingested (keys shapes/img_N.jpg), unlabeled."""
    project.write_config(label_strategy="none")
    for name in ("img_1.jpg", "img_2.jpg", "img_3.jpg"):
        (project.inbox / "shapes").mkdir(exist_ok=True)
        shutil.copy(SHAPES / name, project.inbox / "shapes" / name)
    assert sync(project).returncode == 0
    return project


def annotations(project: Project, asset: str = "imported_annotations") -> list[dict[str, Any]]:
    return [r for t in iter_annotations(project.lake, asset) for r in t.to_pylist()]


def test_a_coco_file_imports_its_annotations_onto_the_ingested_items(shapes: Project) -> None:
    code, out = bucketlake(shapes, "import", str(SHAPES / "gt_dataset.json"), "--format", "coco")

    assert code == 0, out
    assert "9 records, 9 imported, 0 matching no item" in out
    rows = annotations(shapes)
    items = {r["item_id"]: r["key"] for r in shapes.lake.read_current("dataset_items").to_pylist()}
    truth = json.loads((SHAPES / "gt_dataset.json").read_text())
    file_of = {i["id"]: i["file_name"] for i in truth["images"]}
    assert sorted((items[r["item_id"]], r["bbox"], r["area"]) for r in rows) == sorted(
        (f"shapes/{file_of[a['image_id']]}", a["bbox"], a["area"]) for a in truth["annotations"]
    )
    with DagsterInstance.from_config(str(shapes.config.dagster_home_path)) as instance:
        (imported,) = instance.get_runs(RunsFilter(job_name="import_annotations_job"))
        assert imported.status == DagsterRunStatus.SUCCESS


def test_predictions_need_a_registered_model_and_carry_it(shapes: Project) -> None:
    truth = ["import", str(SHAPES / "gt_dataset.json"), "--format", "coco"]
    assert bucketlake(shapes, *truth)[0] == 0  # results name its image and category ids
    results = ["import", str(SHAPES / "dt_dataset.json"), "--format", "coco-results"]
    predictions = [*results, "--model", "shapes_net", "--version", "1"]
    refused, said = bucketlake(shapes, *predictions)
    assert refused == 2 and "bucketlake add-model shapes_net --version 1" in said

    assert bucketlake(shapes, "add-model", "shapes_net", "--version", "1")[0] == 0
    code, out = bucketlake(shapes, *predictions)

    assert code == 0, out
    rows = annotations(shapes, "imported_predictions")
    assert len(rows) == 9 and {(r["model"], r["version"]) for r in rows} == {("shapes_net", "1")}
    assert all(0 <= r["confidence"] <= 1 for r in rows)


def test_records_of_missing_items_are_named_and_a_bad_file_leaves_nothing(
    shapes: Project, tmp_path: Path
) -> None:
    truth = json.loads((SHAPES / "gt_dataset.json").read_text())
    truth["images"][0]["file_name"] = "img_9.jpg"  # an image nobody ingested
    labels = tmp_path / "labels.json"
    labels.write_text(json.dumps(truth))

    code, out = bucketlake(shapes, "import", str(labels), "--format", "coco")
    assert code == 0, out
    unmatched = sum(a["image_id"] == truth["images"][0]["id"] for a in truth["annotations"])
    assert f"{9 - unmatched} imported, {unmatched} matching no item" in out
    before = annotations(shapes)

    truth["annotations"][4]["bbox"] = [10, 10, -3, 4]
    labels.write_text(json.dumps(truth))
    code, out = bucketlake(shapes, "import", str(labels), "--format", "coco")
    assert code == 2
    assert "annotations[4]" in out and "bbox" in out and "nothing of" in out
    assert annotations(shapes) == before

    truth["annotations"][4]["bbox"] = [10, 10, 3, 4]
    dropped = truth["annotations"].pop(0)
    labels.write_text(json.dumps(truth))
    code, out = bucketlake(shapes, "import", str(labels), "--format", "coco")
    assert code == 0, out
    matched = dropped["image_id"] != truth["images"][0]["id"]
    assert len(annotations(shapes)) == len(before) - matched  # the new version replaced the old


def test_a_file_may_change_its_settings_but_not_its_model_version(shapes: Project) -> None:
    truth = ["import", str(SHAPES / "gt_dataset.json"), "--format", "coco"]
    assert bucketlake(shapes, *truth)[0] == 0
    code, out = bucketlake(shapes, *truth, "--boxes", "reject")
    assert code == 0 and "9 imported" in out, out
    assert len(annotations(shapes)) == 9  # replaced, not added

    results = ["import", str(SHAPES / "dt_dataset.json"), "--format", "coco-results"]
    for version in ("1", "2"):
        assert bucketlake(shapes, "add-model", "shapes_net", "--version", version)[0] == 0
    assert bucketlake(shapes, *results, "--model", "shapes_net", "--version", "1")[0] == 0
    code, out = bucketlake(shapes, *results, "--model", "shapes_net", "--version", "2")
    assert code == 2
    assert "imported before with version '1' (now '2')" in out and "import a copy" in out
    assert {r["version"] for r in annotations(shapes, "imported_predictions")} == {"1"}
