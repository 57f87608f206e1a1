"""The engine against pycocotools, the oracle: random ground truth and detections (crowd
regions, empty images, images with more than 100 detections, categories only one side has,
detections on images without ground truth) give the same statistics and precision to 1e-9,
and the per-class and per-image counts agree with the engine's own matches."""

from __future__ import annotations

import contextlib
import copy
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from ingest_assets.evaluation.detection import summarize
from ingest_assets.evaluation.engine import Counts, engine_name, evaluate, evaluate_objects
from ingest_assets.evaluation.objects import Objects

DATA = Path(__file__).resolve().parents[3].parent / "shared" / "data"


def oracle(dataset: dict[str, Any], results: list[dict[str, Any]], iou_type: str) -> COCOeval:
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = copy.deepcopy(dataset)
        gt.createIndex()
        run = COCOeval(gt, gt.loadRes(copy.deepcopy(results)), iou_type)
        run.evaluate()
        run.accumulate()
        run.summarize()
    return run


def box(draw: st.DrawFn, size: int) -> list[float]:
    x = draw(st.floats(0, size - 2))
    y = draw(st.floats(0, size - 2))
    w = draw(st.floats(1, size - x))
    h = draw(st.floats(1, size - y))
    return [x, y, w, h]


@st.composite
def scenes(draw: st.DrawFn) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    size = 200
    n_images = draw(st.integers(1, 6))
    categories = [{"id": c, "name": f"c{c}"} for c in (1, 2, 3)]
    images = [
        {"id": i, "width": size, "height": size, "file_name": f"{i}.jpg"}
        for i in range(1, n_images + 1)
    ]
    annotations: list[dict[str, Any]] = []
    for image in images:
        for _ in range(draw(st.integers(0, 6))):  # 0: an empty image
            b = box(draw, size)
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image["id"],
                    "category_id": draw(st.sampled_from([1, 2])),  # category 3: none in truth
                    "bbox": b,
                    "area": b[2] * b[3] * draw(st.floats(0.3, 1.0)),
                    "iscrowd": int(draw(st.floats(0, 1)) < 0.15),
                }
            )
    results: list[dict[str, Any]] = []
    crowded = draw(st.booleans())
    for image in images:
        count = (
            draw(st.integers(101, 130)) if crowded and image["id"] == 1 else draw(st.integers(0, 8))
        )
        near = [a for a in annotations if a["image_id"] == image["id"]]
        for _ in range(count):
            if near and draw(st.booleans()):
                a = draw(st.sampled_from(near))
                b = [v + draw(st.floats(-4, 4)) for v in a["bbox"][:2]] + a["bbox"][2:]
                category = a["category_id"]
            else:
                b, category = box(draw, size), draw(st.sampled_from([1, 2, 3]))
            results.append(
                {
                    "image_id": image["id"],
                    "category_id": category,
                    "bbox": b,
                    "score": draw(st.sampled_from([0.1, 0.5, 0.5, 0.9]) | st.floats(0, 1)),
                }
            )
    if not results:
        results.append({"image_id": 1, "category_id": 1, "bbox": [0, 0, 5, 5], "score": 0.5})
    return {"images": images, "categories": categories, "annotations": annotations}, results


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenes())
def test_random_scenes_score_as_pycocotools(
    scene: tuple[dict[str, Any], list[dict[str, Any]]],
) -> None:
    dataset, results = scene
    expected = oracle(dataset, results, "bbox")

    got = evaluate(dataset, results, "bbox")

    assert got.engine == engine_name()
    np.testing.assert_allclose(got.stats, expected.stats, rtol=0, atol=1e-9)
    np.testing.assert_allclose(got.precision, expected.eval["precision"], rtol=0, atol=1e-9)
    np.testing.assert_allclose(got.recall, expected.eval["recall"], rtol=0, atol=1e-9)
    # The counts at IoU 0.5 agree with pycocotools' own matches, per image and per class.
    matches = evaluate(dataset, results, "bbox", engine="pycocotools")
    nothing = Counts()
    assert {i: c for i, c in got.per_image.items() if c != nothing} == {
        i: c for i, c in matches.per_image.items() if c != nothing
    }
    assert {c: got.per_class.get(c, nothing) for c in got.cat_ids} == {
        c: matches.per_class.get(c, nothing) for c in got.cat_ids
    }
    summary = summarize(got, {c["id"]: c["name"] for c in dataset["categories"]})
    truth = [a for a in dataset["annotations"] if not a["iscrowd"]]
    assert sum(c["ground_truth"] for c in summary.per_class) == len(truth)


@pytest.mark.parametrize(
    ("folder", "truth", "results", "iou_type"),
    [
        (
            "coco-conformance",
            "instances_val2014_100.json",
            "instances_val2014_fakebbox100_results.json",
            "bbox",
        ),
        (
            "coco-conformance",
            "instances_val2014_100.json",
            "instances_val2014_fakesegm100_results.json",
            "segm",
        ),
        ("coco-shapes", "gt_dataset.json", "dt_dataset.json", "segm"),
        ("coco-persons", "test_coco.json", "test_coco_det_AP_H_56.json", "bbox"),
    ],
)
def test_the_reference_sets_score_as_pycocotools(
    folder: str, truth: str, results: str, iou_type: str
) -> None:
    if not (DATA / folder).is_dir():
        pytest.skip(f"the reference data folder {DATA / folder} is absent")
    dataset = json.loads((DATA / folder / truth).read_text())
    detections = json.loads((DATA / folder / results).read_text())

    got = evaluate(dataset, detections, iou_type)  # type: ignore[arg-type]

    expected = oracle(dataset, detections, iou_type)
    np.testing.assert_allclose(got.stats, expected.stats, rtol=0, atol=1e-9)
    np.testing.assert_allclose(got.precision, expected.eval["precision"], rtol=0, atol=1e-9)


def test_keypoints_score_as_pycocotools() -> None:
    if not (DATA / "coco-persons").is_dir():
        pytest.skip("the reference data folder coco-persons is absent")
    dataset = json.loads((DATA / "coco-persons" / "test_coco.json").read_text())
    results = [
        {
            "image_id": a["image_id"],
            "category_id": 1,
            "keypoints": [v + (3.0 if n % 3 != 2 else 0.0) for n, v in enumerate(a["keypoints"])],
            "score": 0.5 + 0.03 * n,
        }
        for n, a in enumerate(dataset["annotations"])
        if a["num_keypoints"]
    ]

    got = evaluate(dataset, results, "keypoints")

    expected = oracle(dataset, results, "keypoints")
    assert len(got.stats) == 10
    np.testing.assert_allclose(got.stats, expected.stats, rtol=0, atol=1e-9)


def test_the_fallback_engine_is_pycocotools_itself() -> None:
    if not (DATA / "coco-shapes").is_dir():
        pytest.skip("the reference data folder coco-shapes is absent")
    dataset = json.loads((DATA / "coco-shapes" / "gt_dataset.json").read_text())
    results = json.loads((DATA / "coco-shapes" / "dt_dataset.json").read_text())

    fallback = evaluate(dataset, results, "bbox", engine="pycocotools")

    assert fallback.engine == "pycocotools"
    assert fallback.stats == list(map(float, oracle(dataset, results, "bbox").stats))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenes())
def test_boxes_handed_over_as_columns_score_as_the_dicts(
    scene: tuple[dict[str, Any], list[dict[str, Any]]],
) -> None:
    dataset, results = scene
    truth = Objects(
        image_ids=np.asarray([a["image_id"] for a in dataset["annotations"]], dtype=np.int64),
        category_ids=np.asarray([a["category_id"] for a in dataset["annotations"]], dtype=np.int64),
        boxes=np.asarray([a["bbox"] for a in dataset["annotations"]], dtype=np.float64).reshape(
            -1, 4
        ),
        area=np.asarray([a["area"] for a in dataset["annotations"]], dtype=np.float64),
        iscrowd=np.asarray([a["iscrowd"] for a in dataset["annotations"]], dtype=np.int64),
    )
    detections = Objects(
        image_ids=np.asarray([r["image_id"] for r in results], dtype=np.int64),
        category_ids=np.asarray([r["category_id"] for r in results], dtype=np.int64),
        boxes=np.asarray([r["bbox"] for r in results], dtype=np.float64),
        scores=np.asarray([r["score"] for r in results], dtype=np.float64),
    )

    got = evaluate_objects(dataset["images"], dataset["categories"], truth, detections, "bbox")

    expected = oracle(dataset, results, "bbox")
    np.testing.assert_allclose(got.stats, expected.stats, rtol=0, atol=1e-9)
    np.testing.assert_allclose(got.precision, expected.eval["precision"], rtol=0, atol=1e-9)
    matches = evaluate(dataset, results, "bbox", engine="pycocotools")
    nothing = Counts()
    assert {i: c for i, c in got.per_image.items() if c != nothing} == {
        i: c for i, c in matches.per_image.items() if c != nothing
    }
