"""COCO instances and results files: the real reference sets parse and export back to files
that pycocotools scores exactly as the originals (and as the published table); results carry
what pycocotools computes for them; every broken file is named by file, entry and field; a
big file streams whatever its key order."""

from __future__ import annotations

import contextlib
import io
import itertools
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from ingest_assets.annotations.formats import coco, coco_json
from ingest_assets.annotations.formats.coco import (
    export_coco,
    export_coco_results,
    parse_coco,
    parse_coco_results,
)
from ingest_assets.annotations.records import (
    Category,
    FileImage,
    ItemRef,
    LabelFileError,
    Parsed,
    Record,
)
from tests.ingest_assets.annotations.fixtures import DATA, requires_data

FILE = "labels/instances.json"
RESULTS_FILE = "labels/results.json"

CONFORMANCE = "coco-conformance/instances_val2014_100.json"
SHAPES = "coco-shapes/gt_dataset.json"
PERSONS = "coco-persons/test_coco.json"
FAKE_BBOX = "coco-conformance/instances_val2014_fakebbox100_results.json"
FAKE_SEGM = "coco-conformance/instances_val2014_fakesegm100_results.json"
SHAPE_DETECTIONS = "coco-shapes/dt_dataset.json"
PERSON_DETECTIONS = "coco-persons/test_coco_det_AP_H_56.json"

# The reference stats of /work/shared/data/README.md (pycocotools 2.0.11, COCOeval.stats).
CONFORMANCE_BBOX = [0.504581, 0.696973, 0.572982, 0.585626, 0.5194, 0.501398]
CONFORMANCE_BBOX += [0.386813, 0.59368, 0.595353, 0.639811, 0.566421, 0.564291]
CONFORMANCE_SEGM = [0.319545, 0.562288, 0.298927, 0.387374, 0.310183, 0.326934]
CONFORMANCE_SEGM += [0.26823, 0.415449, 0.416839, 0.46945, 0.376759, 0.381472]
SHAPES_STATS = [0.694719, 0.694719, 0.694719, -1.0, 0.792079, 0.0]
SHAPES_STATS += [0.666667, 0.75, 0.75, -1.0, 0.791667, 0.0]
PERSONS_BBOX = [0.789121, 0.982398, 0.982398, 0.650495, 0.76662, 0.87217]
PERSONS_BBOX += [0.278571, 0.828571, 0.842857, 0.65, 0.82, 0.914286]

EVALUATIONS = [
    pytest.param(CONFORMANCE, FAKE_BBOX, "bbox", CONFORMANCE_BBOX, id="conformance-bbox"),
    pytest.param(CONFORMANCE, FAKE_SEGM, "segm", CONFORMANCE_SEGM, id="conformance-segm"),
    pytest.param(SHAPES, SHAPE_DETECTIONS, "bbox", SHAPES_STATS, id="shapes-bbox"),
    pytest.param(SHAPES, SHAPE_DETECTIONS, "segm", SHAPES_STATS, id="shapes-segm"),
    pytest.param(PERSONS, PERSON_DETECTIONS, "bbox", PERSONS_BBOX, id="persons-bbox"),
]


# -- helpers ----------------------------------------------------------------------------------


def data(relative: str) -> bytes:
    return (DATA / relative).read_bytes()


def ground_truth(body: dict[str, Any]) -> COCO:
    with contextlib.redirect_stdout(io.StringIO()):
        index = COCO()
        index.dataset = body
        index.createIndex()
    return index


def stats(gt: bytes, detections: bytes | list[dict[str, Any]], iou_type: str) -> Any:
    """pycocotools' 12 summary numbers for detections (a results file's bytes) against gt."""
    gt_index = ground_truth(json.loads(gt))
    loaded = json.loads(detections) if isinstance(detections, bytes) else detections
    with contextlib.redirect_stdout(io.StringIO()):
        evaluation = COCOeval(gt_index, gt_index.loadRes(loaded), iou_type)
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    return evaluation.stats


def round_trip(raw: bytes) -> tuple[Parsed, list[Record], bytes]:
    parsed = parse_coco(raw, file=FILE)
    records = list(parsed.records)
    return parsed, records, export_coco(parsed.images, parsed.categories, records, parsed.extra)


def results_of(gt: bytes, results: bytes) -> list[Record]:
    parsed = parse_coco(gt, file=FILE)
    images = {image.image_id: image for image in parsed.images if image.image_id is not None}
    categories = {category.id: category for category in parsed.categories}
    found = parse_coco_results(results, file=RESULTS_FILE, images=images, categories=categories)
    return list(found.records)


def body_of(relative: str) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(data(relative))
    return body


def encoded(body: Any) -> bytes:
    return json.dumps(body).encode()


def failure(raw: bytes, file: str = FILE) -> LabelFileError:
    """The error parsing (and reading every record of) an instances file raises."""
    with pytest.raises(LabelFileError) as caught:
        list(parse_coco(raw, file=file).records)
    return caught.value


def result_failure(results: Any, gt: str = SHAPES) -> LabelFileError:
    with pytest.raises(LabelFileError) as caught:
        results_of(data(gt), results if isinstance(results, bytes) else encoded(results))
    return caught.value


def assert_names(error: LabelFileError, file: str, where: str, field: str) -> None:
    assert (error.file, error.where) == (file, where), str(error)
    assert field in error.problem, str(error)
    assert str(error).startswith(f"{file}: {where}: "), str(error)


# -- scoring ----------------------------------------------------------------------------------


def test_public_names() -> None:
    assert sorted(coco.__all__) == [
        "export_coco",
        "export_coco_results",
        "parse_coco",
        "parse_coco_results",
    ]
    assert all(callable(getattr(coco, name)) for name in coco.__all__)


@requires_data
@pytest.mark.parametrize(("gt", "results", "iou_type", "reference"), EVALUATIONS)
def test_exported_ground_truth_scores_as_the_original(
    gt: str, results: str, iou_type: str, reference: list[float]
) -> None:
    original = stats(data(gt), data(results), iou_type)
    _, _, exported = round_trip(data(gt))
    assert np.allclose(original, reference, rtol=0, atol=1e-6)
    assert np.array_equal(stats(exported, data(results), iou_type), original)


@requires_data
@pytest.mark.parametrize(("gt", "results", "iou_type", "reference"), EVALUATIONS)
def test_exported_results_score_as_the_original(
    gt: str, results: str, iou_type: str, reference: list[float]
) -> None:
    exported = export_coco_results(results_of(data(gt), data(results)))
    scored = stats(data(gt), exported, iou_type)
    assert np.allclose(scored, reference, rtol=0, atol=1e-6)
    assert np.array_equal(scored, stats(data(gt), data(results), iou_type))


def loaded_results(gt: bytes, results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The detections as pycocotools' loadRes completes them, in file order."""
    gt_index = ground_truth(json.loads(gt))
    with contextlib.redirect_stdout(io.StringIO()):
        loaded = gt_index.loadRes(json.loads(json.dumps(results)))
    return [loaded.anns[n + 1] for n in range(len(results))]


def person_keypoint_results() -> list[dict[str, Any]]:
    """The persons set's own keypoints as scored keypoint results (the shipped detections are
    boxes only)."""
    return [
        {
            "image_id": a["image_id"],
            "category_id": a["category_id"],
            "keypoints": a["keypoints"],
            "score": round(1 - n / 100, 2),
        }
        for n, a in enumerate(body_of(PERSONS)["annotations"])
    ]


@requires_data
@pytest.mark.parametrize(
    ("gt", "results"),
    [
        (CONFORMANCE, FAKE_BBOX),
        (CONFORMANCE, FAKE_SEGM),
        (SHAPES, SHAPE_DETECTIONS),
        (PERSONS, PERSON_DETECTIONS),
        (PERSONS, None),
    ],
    ids=["boxes", "masks", "boxes-with-polygons", "person-boxes", "keypoints"],
)
def test_results_hold_the_area_and_box_pycocotools_evaluates(gt: str, results: str | None) -> None:
    detections = json.loads(data(results)) if results else person_keypoint_results()
    loaded = loaded_results(data(gt), detections)
    records = results_of(data(gt), encoded(detections))
    assert len(records) == len(loaded) == len(detections)
    for record, expected in zip(records, loaded, strict=True):
        assert record.area == expected["area"]
        assert record.bbox == list(expected["bbox"])
        assert (record.score, record.category_id) == (expected["score"], expected["category_id"])
        assert record.item == ItemRef(image_id=expected["image_id"])
        assert record.iscrowd == expected.get("iscrowd", 0)
    derived = {"bbox": {"area"}, "segmentation": {"area", "bbox"}, "keypoints": {"area", "bbox"}}
    first = next(kind for kind in derived if kind in detections[0])
    assert all(record.derived == derived[first] for record in records)


@requires_data
def test_keypoint_results_score_as_the_original() -> None:
    detections = person_keypoint_results()
    exported = export_coco_results(results_of(data(PERSONS), encoded(detections)))
    original = stats(data(PERSONS), detections, "keypoints")
    assert original[0] > 0.5  # the annotations themselves, as results, score high
    assert np.array_equal(stats(data(PERSONS), exported, "keypoints"), original)
    _, _, ground = round_trip(data(PERSONS))
    assert np.array_equal(stats(ground, detections, "keypoints"), original)


# -- what a parse gives -------------------------------------------------------------------------


@requires_data
def test_records_keep_every_field_as_given() -> None:
    body = body_of(PERSONS)
    parsed, records, _ = round_trip(data(PERSONS))
    assert parsed.extra == {"info": body["info"], "licenses": body["licenses"]}
    (person,) = parsed.categories
    assert person == Category(
        1, "person", "person", *(body["categories"][0][k] for k in ("keypoints", "skeleton"))
    )
    first = body["images"][0]
    assert parsed.images[0] == FileImage(
        image_id=first["id"],
        file_name=first["file_name"],
        width=first["width"],
        height=first["height"],
        extra={k: v for k, v in first.items() if k not in ("id", "file_name", "width", "height")},
    )
    for n, (record, a) in enumerate(zip(records, body["annotations"], strict=True)):
        assert record == Record(
            item=ItemRef(image_id=a["image_id"]),
            where=f"annotations[{n}] (id {a['id']})",
            label="person",
            category_id=1,
            bbox=a["bbox"],
            segmentation=a["segmentation"],
            area=a["area"],
            iscrowd=a["iscrowd"],
            keypoints=a["keypoints"],
            num_keypoints=a["num_keypoints"],
            source_id=a["id"],
        )


@requires_data
def test_export_gives_back_the_original_file() -> None:
    """Polygons, uncompressed RLEs (the crowd masks), areas, ids, info and licenses come
    back exactly."""
    body = body_of(CONFORMANCE)
    rle_kinds = {type(a["segmentation"]["counts"]) for a in body["annotations"] if a["iscrowd"]}
    assert rle_kinds == {list}  # the crowd masks are uncompressed RLEs
    _, _, exported = round_trip(data(CONFORMANCE))
    assert json.loads(exported) == body


@requires_data
def test_key_order_does_not_change_the_records() -> None:
    """Annotations before or after the images and categories (the conformance subset puts
    them first, the official files put categories last) give the same records."""
    body = body_of(SHAPES)
    _, expected, _ = round_trip(data(SHAPES))
    for order in itertools.permutations(body):
        _, records, _ = round_trip(encoded({key: body[key] for key in order}))
        assert records == expected, order


@requires_data
def test_a_stream_that_cannot_seek_is_read() -> None:
    class Pipe(io.RawIOBase):
        def __init__(self, raw: bytes) -> None:
            self._inner = io.BytesIO(raw)

        def readable(self) -> bool:
            return True

        def readinto(self, buffer: Any) -> int:
            return self._inner.readinto(buffer)

    _, expected, _ = round_trip(data(CONFORMANCE))
    parsed = parse_coco(io.BufferedReader(Pipe(data(CONFORMANCE))), file=FILE)
    assert list(parsed.records) == expected


@requires_data
def test_boxes_outside_their_image_are_kept_as_given() -> None:
    body = body_of(SHAPES)
    body["annotations"][0]["bbox"] = [250.5, -4, 40, 300]
    _, records, exported = round_trip(encoded(body))
    assert records[0].bbox == [250.5, -4, 40, 300]
    assert json.loads(exported)["annotations"][0]["bbox"] == [250.5, -4, 40, 300]


@requires_data
def test_a_big_file_streams(tmp_path: Path) -> None:
    """200,000 annotations (the conformance set's, again and again with new ids), written
    with the annotations first and the categories last."""
    body = body_of(CONFORMANCE)
    path = tmp_path / "big.json"
    count = 200_000
    with path.open("w") as out:
        out.write('{"annotations": [')
        for n, annotation in zip(range(count), itertools.cycle(body["annotations"])):
            out.write(("," if n else "") + json.dumps({**annotation, "id": n + 1}))
        out.write(f'], "images": {json.dumps(body["images"])}, ')
        out.write(f'"categories": {json.dumps(body["categories"])}}}')
    names = {c["id"]: c["name"] for c in body["categories"]}
    with path.open("rb") as f:
        parsed = parse_coco(f, file=str(path))
        seen = 0
        for n, record in enumerate(parsed.records):
            original = body["annotations"][n % len(body["annotations"])]
            assert record.source_id == n + 1
            assert (record.bbox, record.label) == (original["bbox"], names[original["category_id"]])
            seen += 1
    assert seen == count
    assert record.where == f"annotations[{count - 1}] (id {count})"


# -- exporting --------------------------------------------------------------------------------


def image(image_id: int | None, name: str) -> FileImage:
    return FileImage(image_id, name, width=64, height=48)


def box(where: str, **fields: Any) -> Record:
    return Record(
        item=fields.pop("item", ItemRef(image_id=1)), where=where, bbox=[1, 2, 3, 4], **fields
    )


def test_export_lists_every_image_and_numbers_the_annotations() -> None:
    images = [image(1, "a.jpg"), image(None, "b.jpg"), image(7, "unlabelled.jpg")]
    categories = [Category(3, "cat"), Category(5, "dog", "animal")]
    records = [
        box("r0", category_id=3, source_id=40),
        box("r1", category_id=3, source_id=40),  # taken by r0: a new id
        box("r2", label="dog"),  # no id: a new one; its category by name
        box("r3", item=ItemRef(key="b.jpg"), category_id=5, source_id=2),
    ]
    body = json.loads(export_coco(images, categories, records, {"info": {"year": 2024}}))
    assert body["info"] == {"year": 2024}
    assert [(i["id"], i["file_name"]) for i in body["images"]] == [
        (1, "a.jpg"),
        (8, "b.jpg"),
        (7, "unlabelled.jpg"),
    ]
    assert body["categories"][1] == {"id": 5, "name": "dog", "supercategory": "animal"}
    got = [(a["id"], a["image_id"], a["category_id"]) for a in body["annotations"]]
    assert got == [(40, 1, 3), (41, 1, 3), (42, 1, 5), (2, 8, 5)]
    assert body["annotations"][0] == {
        "id": 40,
        "image_id": 1,
        "category_id": 3,
        "bbox": [1, 2, 3, 4],
        "iscrowd": 0,
    }


@pytest.mark.parametrize(
    ("record", "message"),
    [
        (box("r9", item=ItemRef(image_id=2), category_id=3), "image_id 2"),
        (box("r9", item=ItemRef(key="c.jpg"), category_id=3), "key 'c.jpg'"),
        (box("r9", category_id=4), "category 4"),
        (box("r9", label="bird"), "category 'bird'"),
        (box("r9", category_id=3, units="fraction"), "fractions"),
        (Record(item=ItemRef(image_id=1), where="r9", kind="class", label="cat"), "whole image"),
    ],
)
def test_export_names_the_record_it_cannot_write(record: Record, message: str) -> None:
    with pytest.raises(ValueError, match=r"^r9: ") as caught:
        export_coco([image(1, "a.jpg")], [Category(3, "cat")], [record])
    assert message in str(caught.value)


def test_results_export_needs_a_score() -> None:
    with pytest.raises(ValueError, match=r"r9: .*score"):
        export_coco_results([box("r9", category_id=3)])


# -- broken instances files ---------------------------------------------------------------------


def shapes_with(change: Any) -> bytes:
    body = body_of(SHAPES)
    change(body)
    return encoded(body)


def annotation(n: int, **fields: Any) -> Any:
    def change(body: dict[str, Any]) -> None:
        body["annotations"][n].update(fields)

    return change


@requires_data
@pytest.mark.parametrize(
    ("change", "where", "field"),
    [
        (annotation(2, image_id=99), "annotations[2] (id 3)", "image_id 99"),
        (annotation(2, category_id=12), "annotations[2] (id 3)", "category_id 12"),
        (
            annotation(2, bbox=[1, 2, -3, 4]),
            "annotations[2] (id 3)",
            "bbox [1, 2, -3, 4] has a negative width",
        ),
        (annotation(2, bbox=[1, 2, 3, -4]), "annotations[2] (id 3)", "negative height (-4)"),
        (annotation(2, bbox=[1, 2, 3]), "annotations[2] (id 3)", "bbox is [1, 2, 3]"),
        (annotation(2, bbox=[1, 2, "3", 4]), "annotations[2] (id 3)", "bbox is [1, 2, '3', 4]"),
        (annotation(4, id=2), "annotations[4] (id 2)", "id 2 is used by an earlier annotation"),
        (
            annotation(2, segmentation=[[1, 2, 3, 4, 5, 6], [1, 2, 3, 4]]),
            "annotations[2] (id 3)",
            "segmentation[1] has 2 points",
        ),
        (
            annotation(2, segmentation={"size": [255, 256], "counts": "PPYo1"}),
            "annotations[2] (id 3)",
            "segmentation size [255, 256] differs from image",
        ),
        (
            annotation(2, segmentation={"size": [256, 256], "counts": [10, 20]}),
            "annotations[2] (id 3)",
            "segmentation counts add up to 30",
        ),
        (annotation(2, iscrowd=2), "annotations[2] (id 3)", "iscrowd is 2"),
        (annotation(2, id="3"), "annotations[2]", "id is '3'"),
        (
            lambda body: body["annotations"].__setitem__(1, [1]),
            "annotations[1]",
            "each annotation must be a JSON object",
        ),
        (lambda body: body["images"][1].pop("id"), "images[1]", "id is missing"),
        (
            lambda body: body["images"].append(dict(body["images"][0])),
            "images[3] (id 1)",
            "id 1 is used by an earlier image",
        ),
        (lambda body: body["categories"][0].pop("name"), "categories[0] (id 1)", "name is missing"),
        (lambda body: body.update(categories={"1": "cloud"}), '"categories"', "it must be a list"),
    ],
)
def test_a_broken_entry_is_named(change: Any, where: str, field: str) -> None:
    assert_names(failure(shapes_with(change)), FILE, where, field)


@requires_data
def test_records_before_a_broken_one_are_read_first() -> None:
    """The error comes when the broken annotation is read, not before (the file streams)."""
    records = parse_coco(shapes_with(annotation(5, bbox=[0, 0, -1, 1])), file=FILE).records
    assert [record.source_id for record in itertools.islice(records, 5)] == [1, 2, 3, 4, 5]
    with pytest.raises(LabelFileError, match=r"annotations\[5\] \(id 6\): bbox"):
        next(records)


@pytest.mark.parametrize(
    ("raw", "where", "problem"),
    [
        (
            b'{"images": [\n  {"id": 1,, "file_name": "a.jpg"}]}',
            "line 2 column 12",
            "not valid JSON",
        ),
        (b'{"images": []', "line 1 column 14", "premature EOF"),
        (b'{"images": [], "annotations": [{"id": 1}]} x', "line 1 column 44", "trailing garbage"),
        (b'{"images": [{"id": 1, "file_name": "\xff"}]}', "byte 36 (not UTF-8)", "invalid bytes"),
        (b'{"images": [], "categories": NaN}', "bytes 0-33", "invalid char"),
        (b"", "line 1 column 1", "not valid JSON"),
        (b"[1, 2]", "top level", "is a list"),
        (b'{"images": [], "images": []}', "top level", 'names "images" twice'),
        (b'{"annotations": {}}', '"annotations"', "is an object; it must be a list"),
    ],
)
def test_a_broken_file_is_named_before_any_record(raw: bytes, where: str, problem: str) -> None:
    with pytest.raises(LabelFileError) as caught:
        parse_coco(raw, file=FILE)
    assert_names(caught.value, FILE, where, problem)


def test_a_syntax_error_in_a_big_file_is_placed_by_its_bytes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(coco_json, "EXACT_POSITION_BYTES", 16)
    raw = b'{"images": [' + b'{"id": 1, "file_name": "a.jpg"}, ' * 5000 + b"x]}"
    with pytest.raises(LabelFileError) as caught:
        parse_coco(raw, file=FILE)
    assert_names(caught.value, FILE, "bytes 131072-165015", "near ")


# -- broken results files -----------------------------------------------------------------------


def detection(**fields: Any) -> dict[str, Any]:
    return {"image_id": 1, "category_id": 2, "bbox": [10, 10, 20, 20], "score": 0.5, **fields}


@requires_data
@pytest.mark.parametrize(
    ("results", "where", "field"),
    [
        ([detection(), detection(score=1.5)], "results[1]", "score 1.5 is outside [0, 1]"),
        ([detection(score=-0.01)], "results[0]", "score -0.01 is outside [0, 1]"),
        ([detection(score="high")], "results[0]", "score is 'high'"),
        ([detection(score=True)], "results[0]", "score is True"),
        ([detection(score=None)], "results[0]", "score is missing"),
        ([detection(image_id=42)], "results[0]", "image_id 42 is not one of the images (1, 2, 3)"),
        ([detection(category_id=9)], "results[0]", "category_id 9 is not one of the categories"),
        ([detection(bbox=[1, 2, 3])], "results[0]", "bbox is [1, 2, 3]"),
        (
            [detection(), {"image_id": 1, "category_id": 2, "score": 0.5}],
            "results[1]",
            "has no bbox",
        ),
        (
            [{"image_id": 1, "category_id": 2, "segmentation": [[1, 2, 3, 4, 5, 6]], "score": 0.5}],
            "results[0]",
            "segmentation is not a compressed RLE",
        ),
        (
            [
                {
                    "image_id": 1,
                    "category_id": 2,
                    "segmentation": {"size": [4, 4], "counts": "04"},
                    "score": 0.5,
                }
            ],
            "results[0]",
            "segmentation size [4, 4] differs from image 1",
        ),
        (
            [{"image_id": 1, "category_id": 2, "score": 0.5}],
            "results[0]",
            "has no bbox, segmentation or keypoints",
        ),
        (b'{"annotations": []}', "top level", "is an object"),
        (
            b'[{"image_id": 1, "category_id": 2, "bbox": [1, 2, 3, 4], "score": 0.5},\n oops]',
            "line 2 column 2",
            "not valid JSON",
        ),
    ],
)
def test_a_broken_result_is_named(results: Any, where: str, field: str) -> None:
    assert_names(result_failure(results), RESULTS_FILE, where, field)


def test_results_without_tables_keep_their_ids_unresolved() -> None:
    raw = encoded([detection(image_id=12345, category_id=678)])
    (record,) = parse_coco_results(raw, file=RESULTS_FILE, images=None, categories=None).records
    assert (record.item, record.category_id, record.label) == (ItemRef(image_id=12345), 678, None)
    assert (record.area, record.derived) == (400, frozenset({"area"}))
