"""``bucketlake import FILE --format coco`` where the file is the dataset: the COCO conformance
set (its 100 images are not on disk) imported into a project with no source links its images
as items with the file's sizes, fetching nothing; its fake results then import as a model's
predictions, and the export scores exactly the published table under pycocotools. A project
with sources links only when asked; a bad file links nothing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from dagster import AssetKey, DagsterInstance, DagsterRunStatus, RunsFilter

from ingest_assets.annotations.current import iter_annotations
from tests.conftest import Project
from tests.ingest_assets.cli.test_export import evaluate, export
from tests.ingest_assets.cli.test_import import SHAPES, bucketlake
from tests.ingest_assets.cli.test_sync import sync

CONFORMANCE = SHAPES.parent / "coco-conformance"
INSTANCES = CONFORMANCE / "instances_val2014_100.json"
pytestmark = pytest.mark.skipif(
    not CONFORMANCE.is_dir(), reason=f"the reference data folder {CONFORMANCE} is absent"
)
# The published table (/work/shared/data/README.md, pycocotools 2.0.11).
BBOX_STATS = [0.504581, 0.696973, 0.572982, 0.585626, 0.5194, 0.501398]
BBOX_STATS += [0.386813, 0.59368, 0.595353, 0.639811, 0.566421, 0.564291]
SEGM_STATS = [0.319545, 0.562288, 0.298927, 0.387374, 0.310183, 0.326934]
SEGM_STATS += [0.26823, 0.415449, 0.416839, 0.46945, 0.376759, 0.381472]


@pytest.fixture
def bare(project: Project) -> Project:
    """A project with a lake and no source at all."""
    project.config_path.write_text("lake: lake\ndagster_home: dagster_home\n", encoding="utf-8")
    return project


def items(project: Project) -> list[dict[str, Any]]:
    return project.lake.read_current("dataset_items").to_pylist()


def rows(project: Project, asset: str = "imported_annotations") -> list[dict[str, Any]]:
    return [r for t in iter_annotations(project.lake, asset) for r in t.to_pylist()]


def test_a_coco_file_alone_is_a_dataset_that_scores_as_published(bare: Project) -> None:
    truth = json.loads(INSTANCES.read_text())
    assert not any((CONFORMANCE / i["file_name"]).exists() for i in truth["images"])

    code, out = bucketlake(bare, "import", str(INSTANCES), "--format", "coco")

    assert code == 0, out
    assert "839 records, 839 imported, 100 images linked as new items, 0 matching no item" in out
    linked = items(bare)
    size_of = {i["file_name"]: (i["width"], i["height"]) for i in truth["images"]}
    assert {r["reference_id"]: (r["width"], r["height"]) for r in linked} == size_of
    folder = f"file://{CONFORMANCE}/"
    assert all(r["uri"] == folder + r["reference_id"] for r in linked)
    assert {(r["source"], r["status"], r["batch"], r["sha256"]) for r in linked} == {
        ("linked", "ok", "linked_000001", None)
    }
    with DagsterInstance.from_config(str(bare.config.dagster_home_path)) as instance:
        assert "linked_000001" in instance.get_dynamic_partitions("batches")
        shown = instance.get_latest_materialization_event(AssetKey("dataset_items"))
        assert shown is not None and shown.asset_materialization is not None
        assert shown.asset_materialization.partition == "linked_000001"
        (run,) = instance.get_runs(RunsFilter(job_name="import_annotations_job"))
        assert shown.run_id == run.run_id and run.status == DagsterRunStatus.SUCCESS

    assert bucketlake(bare, "add-model", "fake", "--version", "1")[0] == 0
    for kind in ("bbox", "segm"):
        results = CONFORMANCE / f"instances_val2014_fake{kind}100_results.json"
        code, out = bucketlake(
            bare, "import", str(results), "--format", "coco-results", "--model", "fake",
            "--version", "1",
        )  # fmt: skip
        assert code == 0 and "734 records, 734 imported, 0 matching no item" in out, out
    predicted = rows(bare, "imported_predictions")
    assert len(predicted) == 2 * 734 and {r["item_id"] for r in predicted} <= {
        r["item_id"] for r in linked
    }

    exported_to, said = export(bare, "coco")
    assert "exported 100 items, 839 annotations as coco" in said
    exported = json.loads((exported_to / "annotations.json").read_text())
    assert {i["coco_url"] for i in exported["images"]} == {r["uri"] for r in linked}
    for kind, iou_type, stats in (("bbox", "bbox", BBOX_STATS), ("segm", "segm", SEGM_STATS)):
        results = CONFORMANCE / f"instances_val2014_fake{kind}100_results.json"
        original = evaluate(truth, json.loads(results.read_text()), iou_type)
        assert original == pytest.approx(stats, abs=1e-6)
        assert evaluate(exported, json.loads(results.read_text()), iou_type) == original

    code, out = bucketlake(
        bare, "import", str(exported_to / "annotations.json"), "--format", "coco"
    )
    assert code == 0 and "839 imported, 0 images linked as new items" in out, out

    again, out = bucketlake(bare, "import", str(INSTANCES), "--format", "coco")
    assert again == 0 and "839 imported, 0 images linked as new items" in out, out
    assert bare.lake.committed_partitions("dataset_items") == ["linked_000001"]
    assert len(rows(bare)) == 2 * 839


def test_a_changed_image_size_is_a_newer_row_of_the_same_item(
    bare: Project, tmp_path: Path
) -> None:
    truth = json.loads(INSTANCES.read_text())
    copy = tmp_path / "coco" / "instances.json"
    copy.parent.mkdir()
    copy.write_text(json.dumps(truth))
    assert bucketlake(bare, "import", str(copy), "--format", "coco")[0] == 0
    before = {r["reference_id"]: r for r in items(bare)}

    first = truth["images"][0]
    first["width"] += 100
    copy.write_text(json.dumps(truth))
    code, out = bucketlake(bare, "import", str(copy), "--format", "coco")

    assert code == 0, out
    assert bare.lake.committed_partitions("dataset_items") == ["linked_000001", "linked_000002"]
    assert bare.lake.read_table("dataset_items", "linked_000002").num_rows == 1
    after = {r["reference_id"]: r for r in items(bare)}
    changed = after[first["file_name"]]
    assert changed["width"] == first["width"]
    assert changed["item_id"] == before[first["file_name"]]["item_id"]
    assert len(after) == 100 and len(rows(bare)) == 839


def test_a_bad_file_links_nothing(bare: Project, tmp_path: Path) -> None:
    truth = json.loads(INSTANCES.read_text())
    truth["annotations"][-1]["bbox"] = [1, 2, -3, 4]
    bad = tmp_path / "instances.json"
    bad.write_text(json.dumps(truth))

    code, out = bucketlake(bare, "import", str(bad), "--format", "coco")

    assert code == 2
    assert f"annotations[{len(truth['annotations']) - 1}]" in out and "nothing of" in out
    assert bare.lake.committed_partitions("dataset_items") == []
    assert bare.lake.committed_partitions("imported_annotations") == []


def test_a_project_with_sources_links_only_when_asked(project: Project) -> None:
    project.write_config(label_strategy="none")
    assert sync(project).returncode == 0  # an empty inbox: the source exists, no item yet

    code, out = bucketlake(project, "import", str(INSTANCES), "--format", "coco")
    assert code == 0 and "839 records, 0 imported, 839 matching no item" in out, out
    assert project.lake.committed_partitions("dataset_items") == []

    code, out = bucketlake(project, "import", str(INSTANCES), "--format", "coco", "--link")
    assert code == 0 and "839 imported, 100 images linked as new items" in out, out
    assert len(items(project)) == 100 and len(rows(project)) == 839
