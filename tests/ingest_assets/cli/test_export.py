"""``bucketlake export`` on a real project: the coco-shapes images ingested by sync and their
ground truth imported through the instance, then exported. The COCO export scores exactly as
the original file under pycocotools and imports back to the same annotations; YOLO, VOC and
Label Studio exports import back to the same boxes; CSV holds the folder labels; what a format
cannot hold is named; a non-empty folder is refused."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from ingest_assets.annotations.current import iter_annotations
from ingest_assets.annotations.exporting import EXPORT_FORMATS
from ingest_assets.cli import main
from tests.conftest import Project
from tests.ingest_assets.cli.test_import import SHAPES, bucketlake
from tests.ingest_assets.cli.test_sync import sync

pytestmark = pytest.mark.skipif(
    not SHAPES.is_dir(), reason=f"the reference data folder {SHAPES} is absent"
)

# The reference stats of /work/shared/data/README.md (bbox and segm are the same here).
SHAPES_STATS = [0.694719, 0.694719, 0.694719, -1.0, 0.792079, 0.0]
SHAPES_STATS += [0.666667, 0.75, 0.75, -1.0, 0.791667, 0.0]
IMAGES = ("img_1.jpg", "img_2.jpg", "img_3.jpg")


@pytest.fixture
def shapes(project: Project) -> Project:
    """The three coco-shapes images ingested (keys shapes/img_N.jpg) and gt_dataset.json
    imported onto them."""
    project.write_config(label_strategy="none")
    (project.inbox / "shapes").mkdir()
    for name in IMAGES:
        shutil.copy(SHAPES / name, project.inbox / "shapes" / name)
    assert sync(project).returncode == 0
    code, out = bucketlake(project, "import", str(SHAPES / "gt_dataset.json"), "--format", "coco")
    assert code == 0, out
    return project


def export(project: Project, fmt: str, *extra: str) -> tuple[Path, str]:
    out = project.root / f"export-{fmt}"
    code, said = bucketlake(project, "export", "--format", fmt, *extra, str(out))
    assert code == 0, said
    return out, said


def evaluate(gt: dict[str, Any], detections: list[dict[str, Any]], iou_type: str) -> list[float]:
    with contextlib.redirect_stdout(io.StringIO()):
        index = COCO()
        index.dataset = gt
        index.createIndex()
        evaluation = COCOeval(index, index.loadRes(detections), iou_type)
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    return [float(value) for value in evaluation.stats]


def rows_of(project: Project) -> list[dict[str, Any]]:
    return [
        r for t in iter_annotations(project.lake, "imported_annotations") for r in t.to_pylist()
    ]


def boxes_of(project: Project, import_prefix: str) -> list[tuple[str, str, list[float]]]:
    """(item key, label, box) of the rows of the imports whose key starts with the prefix."""
    keys = {r["item_id"]: r["key"] for r in project.lake.read_current("dataset_items").to_pylist()}
    return sorted(
        (keys[r["item_id"]], r["label"], r["bbox"])
        for r in rows_of(project)
        if r["import"].startswith(import_prefix)
    )


def assert_same_boxes(got: list[Any], want: list[Any]) -> None:
    assert [(k, label) for k, label, _ in got] == [(k, label) for k, label, _ in want]
    for (_, _, box), (_, _, expected) in zip(got, want, strict=True):
        assert box == pytest.approx(expected, abs=1e-6)


def test_the_command_line_offers_every_export_format() -> None:
    assert main.EXPORT_FORMATS == EXPORT_FORMATS


def test_a_coco_export_scores_as_the_original_and_imports_back_the_same(
    shapes: Project,
) -> None:
    out, said = export(shapes, "coco")

    assert f"exported 3 items, 9 annotations as coco to {out}" in said
    exported = json.loads((out / "annotations.json").read_text())
    truth = json.loads((SHAPES / "gt_dataset.json").read_text())
    assert sorted(i["file_name"] for i in exported["images"]) == [f"shapes/{n}" for n in IMAGES]
    inbox = (shapes.inbox / "shapes").resolve()
    assert {Path(i["coco_url"].removeprefix("file://")).parent for i in exported["images"]} == {
        inbox
    }
    assert exported["categories"] == truth["categories"]
    # Results name the original file's image ids: place them on the export's images by name.
    detections = json.loads((SHAPES / "dt_dataset.json").read_text())
    name_of = {i["id"]: f"shapes/{i['file_name']}" for i in truth["images"]}
    id_of = {i["file_name"]: i["id"] for i in exported["images"]}
    placed = [{**d, "image_id": id_of[name_of[d["image_id"]]]} for d in detections]
    assert {id_of[name]: image_id for image_id, name in name_of.items()} == {
        i: i for i in id_of.values()
    }  # the file's own image ids are kept, so its results need no mapping at all
    for iou_type in ("bbox", "segm"):
        original = evaluate(truth, detections, iou_type)
        assert original == pytest.approx(SHAPES_STATS, abs=1e-6)
        assert evaluate(exported, placed, iou_type) == original

    code, again = bucketlake(shapes, "import", str(out / "annotations.json"), "--format", "coco")
    assert code == 0 and "9 records, 9 imported, 0 matching no item" in again, again
    fields: tuple[str, ...] = ("item_id", "label", "category_id", "bbox", "segmentation")
    fields += ("area", "iscrowd", "keypoints", "num_keypoints", "source_id")
    by_import: dict[str, list[tuple[Any, ...]]] = {}
    for r in rows_of(shapes):
        by_import.setdefault(r["import"], []).append(tuple(str(r[f]) for f in fields))
    first, second = (sorted(rows) for rows in by_import.values())
    assert len(first) == 9 and first == second


def test_yolo_and_voc_exports_import_back_to_the_same_boxes(shapes: Project) -> None:
    original = boxes_of(shapes, "gt_dataset.json")
    yolo, said_yolo = export(shapes, "yolo")
    voc, said_voc = export(shapes, "voc")  # before either is imported again

    assert "9 annotations as yolo" in said_yolo
    assert "left out: 9 masks (written as their boxes; YOLO holds boxes)" in said_yolo
    assert (yolo / "classes.txt").read_text().split() == ["cloud", "heart", "arrow", "star"]
    assert sorted(p.name for p in (yolo / "shapes").iterdir()) == [
        "img_1.txt",
        "img_2.txt",
        "img_3.txt",
    ]
    code, out = bucketlake(shapes, "import", str(yolo / "classes.txt"), "--format", "yolo")
    assert code == 0 and "9 imported, 0 matching no item" in out, out
    assert_same_boxes(boxes_of(shapes, "classes.txt"), original)

    assert "left out: 9 masks (written as their boxes; VOC holds boxes)" in said_voc
    for name in IMAGES:
        xml = voc / "Annotations" / "shapes" / name.replace(".jpg", ".xml")
        code, out = bucketlake(shapes, "import", str(xml), "--format", "voc")
        assert code == 0 and "0 matching no item" in out, out
    assert_same_boxes(boxes_of(shapes, "img_"), original)


def test_a_labelstudio_export_imports_back_to_the_same_boxes(shapes: Project) -> None:
    original = boxes_of(shapes, "gt_dataset.json")
    out, _ = export(shapes, "labelstudio")

    code, said = bucketlake(shapes, "import", str(out / "tasks.json"), "--format", "labelstudio")

    assert code == 0 and "9 imported, 0 matching no item" in said, said
    assert_same_boxes(boxes_of(shapes, "tasks.json"), original)


def test_a_csv_export_holds_folder_labels_and_names_what_it_leaves_out(
    project: Project,
) -> None:
    project.write_config(label_strategy="folder")
    for folder, name in (("cloudy", "img_1.jpg"), ("cloudy", "img_2.jpg"), ("plain", "img_3.jpg")):
        (project.inbox / folder).mkdir(exist_ok=True)
        shutil.copy(SHAPES / name, project.inbox / folder / name)
    assert sync(project).returncode == 0

    out, said = export(project, "csv")

    assert (out / "labels.csv").read_text().splitlines() == [
        "key,label",
        "cloudy/img_1.jpg,cloudy",
        "cloudy/img_2.jpg,cloudy",
        "plain/img_3.jpg,plain",
    ]
    assert "exported 3 items, 3 annotations as csv" in said


def test_filters_choose_the_items_and_an_object_format_names_what_it_drops(
    shapes: Project,
) -> None:
    out, said = export(shapes, "csv", "--source", "inbox")
    assert "left out: 9 objects (CSV holds whole-image labels)" in said
    assert (out / "labels.csv").read_text() == "key,label\n"

    code, refused = bucketlake(shapes, "export", "--format", "coco", "--split", "nope", "x")
    assert code == 2 and "no current item is in split ['nope']" in refused
    assert "the splits are" in refused and not (shapes.root / "x").exists()


def test_a_non_empty_folder_is_refused_and_kept(shapes: Project) -> None:
    out = shapes.root / "taken"
    out.mkdir()
    (out / "notes.txt").write_text("mine")

    code, said = bucketlake(shapes, "export", "--format", "coco", str(out))

    assert code == 2 and f"{out} is not empty" in said
    assert [p.name for p in out.iterdir()] == ["notes.txt"]


def test_an_item_deleted_from_its_source_is_left_out(shapes: Project) -> None:
    (shapes.inbox / "shapes" / "img_3.jpg").unlink()
    assert sync(shapes).returncode == 0

    out, said = export(shapes, "coco")

    exported = json.loads((out / "annotations.json").read_text())
    assert sorted(i["file_name"] for i in exported["images"]) == [
        "shapes/img_1.jpg",
        "shapes/img_2.jpg",
    ]
    truth = json.loads((SHAPES / "gt_dataset.json").read_text())
    (third,) = [i["id"] for i in truth["images"] if i["file_name"] == "img_3.jpg"]
    kept = sum(a["image_id"] != third for a in truth["annotations"])
    assert len(exported["annotations"]) == kept
    assert f"exported 2 items, {kept} annotations" in said and "1 missing items" in said


PERSONS = SHAPES.parent / "coco-persons"
# The reference bbox stats of /work/shared/data/README.md for coco-persons.
PERSONS_BBOX = [0.789121, 0.982398, 0.982398, 0.650495, 0.76662, 0.87217]
PERSONS_BBOX += [0.278571, 0.828571, 0.842857, 0.65, 0.82, 0.914286]


def test_real_photos_with_keypoints_export_to_a_file_that_scores_the_same(
    project: Project,
) -> None:
    project.write_config(label_strategy="none")
    truth = json.loads((PERSONS / "test_coco.json").read_text())
    for image in truth["images"]:
        shutil.copy(PERSONS / image["file_name"], project.inbox / image["file_name"])
    assert sync(project).returncode == 0
    code, out = bucketlake(project, "import", str(PERSONS / "test_coco.json"), "--format", "coco")
    assert code == 0 and "14 records, 14 imported, 0 matching no item" in out, out

    out_dir, said = export(project, "coco")

    exported = json.loads((out_dir / "annotations.json").read_text())
    assert "exported 4 items, 14 annotations as coco" in said
    detections = json.loads((PERSONS / "test_coco_det_AP_H_56.json").read_text())
    original = evaluate(truth, [dict(d) for d in detections], "bbox")
    assert original == pytest.approx(PERSONS_BBOX, abs=1e-6)
    assert evaluate(exported, [dict(d) for d in detections], "bbox") == original
    # Keypoints: the ground truth's own keypoints as scored results give the same OKS stats.
    as_results = [
        {"image_id": a["image_id"], "category_id": 1, "keypoints": a["keypoints"], "score": 1.0}
        for a in truth["annotations"]
        if a["num_keypoints"] > 0
    ]
    keypoints = evaluate(truth, [dict(r) for r in as_results], "keypoints")
    assert keypoints[0] == pytest.approx(1.0)
    assert evaluate(exported, [dict(r) for r in as_results], "keypoints") == keypoints
    by_id = {a["id"]: a for a in exported["annotations"]}
    for given in truth["annotations"]:
        assert by_id[given["id"]]["keypoints"] == given["keypoints"]
        assert by_id[given["id"]]["num_keypoints"] == given["num_keypoints"]
