"""``bucketlake evaluate`` and the evaluation sensor on real projects: the COCO conformance
set imported through the real path (its images linked from the COCO file, both fake results
files imported as one model version) scores exactly the published table; coco-shapes, its
images ingested by sync, and coco-persons score as pycocotools on their files; a new
prediction import makes the sensor evaluate that model version again, unasked."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from dagster import (
    AssetKey,
    DagsterInstance,
    RunsFilter,
    SensorResult,
    build_sensor_context,
    materialize,
)
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from ingest_assets.assets.evaluation import evaluation
from ingest_assets.definitions import build_definitions
from tests.conftest import Project
from tests.ingest_assets.cli.test_import import SHAPES, bucketlake
from tests.ingest_assets.cli.test_import_linked import BBOX_STATS, CONFORMANCE, SEGM_STATS
from tests.ingest_assets.cli.test_sync import BIN, run, seed, sync

PERSONS = SHAPES.parent / "coco-persons"
pytestmark = pytest.mark.skipif(
    not CONFORMANCE.is_dir(), reason=f"the reference data folder {CONFORMANCE} is absent"
)


def oracle(truth: Path, results: Path, iou_type: str) -> list[float]:
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(truth))
        scored = COCOeval(gt, gt.loadRes(str(results)), iou_type)
        scored.evaluate()
        scored.accumulate()
        scored.summarize()
    return [float(s) for s in scored.stats]


def evaluate_json(project: Project, *args: str) -> dict[str, Any]:
    done = run([str(BIN / "bucketlake"), "evaluate", *args, "--json"], project.root)
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout)  # stdout holds the one object; the run's logs go to stderr


def predictions(project: Project, path: Path, model: str = "fake", version: str = "1") -> None:
    code, out = bucketlake(
        project, "import", str(path), "--format", "coco-results", "--model", model,
        "--version", version,
    )  # fmt: skip
    assert code == 0, out


@pytest.fixture
def conformance(project: Project) -> Project:
    """No source: the conformance set linked from its COCO file, both fake results files
    imported as model fake, version 1."""
    project.config_path.write_text("lake: lake\ndagster_home: dagster_home\n", encoding="utf-8")
    truth = CONFORMANCE / "instances_val2014_100.json"
    assert bucketlake(project, "import", str(truth), "--format", "coco")[0] == 0
    assert bucketlake(project, "add-model", "fake", "--version", "1")[0] == 0
    for kind in ("bbox", "segm"):
        predictions(project, CONFORMANCE / f"instances_val2014_fake{kind}100_results.json")
    return project


def test_the_conformance_set_scores_the_published_table(conformance: Project) -> None:
    report = evaluate_json(conformance, "--model", "fake")

    truth = CONFORMANCE / "instances_val2014_100.json"
    for iou_type, published in (("bbox", BBOX_STATS), ("segm", SEGM_STATS)):
        results = CONFORMANCE / f"instances_val2014_fake{iou_type}100_results.json"
        assert report[iou_type]["stats"] == pytest.approx(published, abs=5e-7)
        assert report[iou_type]["stats"] == pytest.approx(
            oracle(truth, results, iou_type), abs=1e-9
        )
    assert len(report["bbox"]["per_class"]) == 80 and report["left_out"] == {}
    person = next(c for c in report["bbox"]["per_class"] if c["name"] == "person")
    assert person["tp"] + person["fn"] == person["ground_truth"] > 0
    table = conformance.lake.read_table("evaluation", "fake_1").to_pylist()
    assert [r["errors"] for r in table] == sorted((r["errors"] for r in table), reverse=True)
    assert {r["iou_type"] for r in table} == {"bbox", "segm"}
    with DagsterInstance.from_config(str(conformance.config.dagster_home_path)) as instance:
        (done,) = instance.get_runs(RunsFilter(job_name="evaluation_job"))
        assert done.tags["dagster/partition"] == "fake_1"
        shown = instance.get_latest_materialization_event(AssetKey("evaluation"))
        assert shown is not None and shown.asset_materialization is not None
        metadata = {k: v.value for k, v in shown.asset_materialization.metadata.items()}
    for picture in ("bbox_pr_curves", "segm_pr_curves"):  # pictures in the UI, not numbers
        assert str(metadata[picture]).startswith("![fake_1 ") and "data:image/png;base64," in str(
            metadata[picture]
        )
    assert "| AP | 0.5046 |" in str(metadata["bbox_stats"])


def tick(project: Project, instance: DagsterInstance) -> SensorResult:
    defs = build_definitions(project.config)
    sensor = next(s for s in defs.sensors if s.name == "evaluation_sensor")
    with build_sensor_context(instance=instance, resources=project.resources) as context:
        result = sensor(context)
    assert isinstance(result, SensorResult), result
    return result


def test_a_new_prediction_import_is_evaluated_unasked(conformance: Project, tmp_path: Path) -> None:
    with DagsterInstance.from_config(str(conformance.config.dagster_home_path)) as instance:
        (first,) = tick(conformance, instance).run_requests
        assert first.partition_key == "fake_1"
        assert materialize(
            [evaluation], partition_key="fake_1", resources=conformance.resources,
            instance=instance,
        ).success  # fmt: skip
        before = evaluate_report(conformance)
        (same,) = tick(conformance, instance).run_requests
        assert same.run_key == first.run_key  # nothing changed: Dagster runs it once

        results = json.loads(
            (CONFORMANCE / "instances_val2014_fakebbox100_results.json").read_text()
        )
        fewer = tmp_path / "fewer_results.json"
        fewer.write_text(json.dumps(results[::2]))
        assert bucketlake(conformance, "add-model", "fake", "--version", "2")[0] == 0
        predictions(conformance, fewer, version="2")
        due = {r.partition_key: r.run_key for r in tick(conformance, instance).run_requests}
        assert due["fake_1"] == first.run_key and due["fake_2"] != first.run_key
        assert materialize(
            [evaluation], partition_key="fake_2", resources=conformance.resources,
            instance=instance,
        ).success  # fmt: skip
    second = json.loads(
        json.dumps(conformance.lake.read_commit("evaluation", "fake_2").extra["report"])  # type: ignore[union-attr]
    )
    assert second["bbox"]["stats"] == pytest.approx(
        oracle(CONFORMANCE / "instances_val2014_100.json", fewer, "bbox"), abs=1e-9
    )
    assert second["bbox"]["stats"][0] < before["bbox"]["stats"][0]


def evaluate_report(project: Project) -> dict[str, Any]:
    commit = project.lake.read_commit("evaluation", "fake_1")
    assert commit is not None
    return commit.extra["report"]


@pytest.mark.parametrize(
    ("folder", "truth", "results", "iou_types"),
    [
        (SHAPES, "gt_dataset.json", "dt_dataset.json", ("bbox", "segm")),
        (PERSONS, "test_coco.json", "test_coco_det_AP_H_56.json", ("bbox",)),
    ],
)
def test_ingested_photos_score_as_pycocotools_on_their_files(
    project: Project, folder: Path, truth: str, results: str, iou_types: tuple[str, ...]
) -> None:
    project.write_config(label_strategy="none")
    for image in json.loads((folder / truth).read_text())["images"]:
        shutil.copy(folder / image["file_name"], project.inbox / image["file_name"])
    assert sync(project).returncode == 0
    assert bucketlake(project, "import", str(folder / truth), "--format", "coco")[0] == 0
    assert bucketlake(project, "add-model", "net", "--version", "1")[0] == 0
    predictions(project, folder / results, model="net")

    report = evaluate_json(project, "--model", "net", "--version", "1")

    for iou_type in iou_types:
        expected = oracle(folder / truth, folder / results, iou_type)
        assert report[iou_type]["stats"] == pytest.approx(expected, abs=1e-9), iou_type


def test_folder_labels_and_a_classifiers_scores_give_classification_metrics(
    project: Project, tmp_path: Path
) -> None:
    project.write_config(label_strategy="folder")
    seed(project, 6)  # 0, 2, 4 in dogs/; 1, 3, 5 in cats/
    assert sync(project).returncode == 0
    scores = tmp_path / "scores.csv"
    rows = ["key,label,score"]
    for i in range(6):
        truth, other = ("cats", "dogs") if i % 2 else ("dogs", "cats")
        first, second = (other, truth) if i == 5 else (truth, other)  # 5 is wrong at top 1
        rows += [f"{truth}/{i}.jpg,{first},0.8", f"{truth}/{i}.jpg,{second},0.2"]
    scores.write_text("\n".join(rows) + "\n")
    assert (
        bucketlake(project, "add-model", "clf", "--version", "1", "--task", "classification")[0]
        == 0
    )
    code, out = bucketlake(
        project, "import", str(scores), "--format", "csv", "--model", "clf", "--version", "1"
    )
    assert code == 0, out

    report = evaluate_json(project, "--model", "clf")

    c = report["classification"]
    assert (c["items"], c["accuracy"]) == (6, pytest.approx(5 / 6))
    assert c["labels"] == ["cats", "dogs"] and c["confusion"] == [[2, 1], [0, 3]]
    assert c["top_k"] == {"top1": pytest.approx(5 / 6)}
    assert "bbox" not in report
