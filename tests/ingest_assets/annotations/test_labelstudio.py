"""Label Studio JSON exports: COCO's real boxes and polygons, written as Label Studio results in
percent, come back as COCO's pixels; exports read back the same; broken results are named."""

from __future__ import annotations

import json
from typing import Any

import pytest

from ingest_assets.annotations.formats.labelstudio import (
    export_labelstudio,
    image_key,
    parse_labelstudio,
)
from ingest_assets.annotations.records import (
    Category,
    FileImage,
    ItemRef,
    LabelFileError,
    Record,
)
from tests.ingest_assets.annotations.fixtures import (
    PIXEL_TOLERANCE,
    CocoSet,
    assert_numbers_close,
    assert_same_records,
    bbox_in_pixels,
    person_detections,
    persons,
    polygon_extent,
    polygon_in_pixels,
    requires_data,
    shape_detections,
    shapes,
)

FILE = "exports/project-3.json"


def rectangle(annotation: dict[str, Any], label: str, size: tuple[int, int]) -> dict[str, Any]:
    width, height = size
    x, y, w, h = annotation["bbox"]
    value = {
        "x": 100 * x / width,
        "y": 100 * y / height,
        "width": 100 * w / width,
        "height": 100 * h / height,
        "rotation": 0,
        "rectanglelabels": [label],
    }
    return result("rectanglelabels", value, size, annotation)


def polygon(annotation: dict[str, Any], label: str, size: tuple[int, int]) -> dict[str, Any]:
    width, height = size
    flat = annotation["segmentation"][0]
    points = [[100 * flat[i] / width, 100 * flat[i + 1] / height] for i in range(0, len(flat), 2)]
    value = {"points": points, "closed": True, "polygonlabels": [label]}
    return result("polygonlabels", value, size, annotation)


def result(
    kind: str, value: dict[str, Any], size: tuple[int, int], annotation: dict[str, Any]
) -> dict[str, Any]:
    entry = {
        "id": f"r{annotation.get('id', 0)}",
        "type": kind,
        "from_name": "label",
        "to_name": "image",
        "original_width": size[0],
        "original_height": size[1],
        "image_rotation": 0,
        "value": value,
    }
    if "score" in annotation:
        entry["score"] = annotation["score"]
    return entry


def export_of(coco: CocoSet, region: Any, *, url: str = "s3://photos/val2017/{}") -> bytes:
    """The set as Label Studio would export it: a task per image, its regions as one
    annotation (or, for scored detections, one prediction)."""
    tasks = []
    for image_id, image in coco.images.items():
        size = (image["width"], image["height"])
        results = [region(a, coco.names[a["category_id"]], size) for a in coco.of_image(image_id)]
        scored = any("score" in a for a in coco.annotations)
        group = (
            {"model_version": "det-v1", "result": results}
            if scored
            else {"id": 1, "result": results}
        )
        tasks.append(
            {
                "id": image_id,
                "data": {"image": url.format(image["file_name"])},
                "annotations": [] if scored else [group],
                "predictions": [group] if scored else [],
            }
        )
    return json.dumps(tasks).encode()


def parsed_in_image_order(coco: CocoSet, data: bytes) -> list[tuple[Record, dict[str, Any]]]:
    records = list(parse_labelstudio(data, file=FILE).records)
    annotations = [a for image_id in coco.images for a in coco.of_image(image_id)]
    assert len(records) == len(annotations) > 0
    return list(zip(records, annotations, strict=True))


# -- real boxes and polygons ----------------------------------------------------------------


@requires_data
@pytest.mark.parametrize("coco_set", [persons, person_detections])
def test_person_rectangles_come_back_as_the_coco_pixel_boxes(coco_set: Any) -> None:
    coco = coco_set()
    for record, annotation in parsed_in_image_order(coco, export_of(coco, rectangle)):
        image = coco.images[annotation["image_id"]]
        assert record.item == ItemRef(key=f"val2017/{image['file_name']}", image_id=image["id"])
        assert (record.kind, record.label, record.units) == ("object", "person", "fraction")
        assert record.score == annotation.get("score")
        assert_numbers_close(
            bbox_in_pixels(record, image["width"], image["height"]),
            annotation["bbox"],
            PIXEL_TOLERANCE,
        )


@requires_data
@pytest.mark.parametrize("coco_set", [shapes, shape_detections])
def test_shape_polygons_come_back_with_their_extent_as_the_box(coco_set: Any) -> None:
    coco = coco_set()
    for record, annotation in parsed_in_image_order(coco, export_of(coco, polygon)):
        width, height = coco.size(annotation)
        flat = annotation["segmentation"][0]
        assert record.label == coco.names[annotation["category_id"]]
        assert_numbers_close(polygon_in_pixels(record, width, height), flat, PIXEL_TOLERANCE)
        assert_numbers_close(
            bbox_in_pixels(record, width, height), polygon_extent(flat), PIXEL_TOLERANCE
        )


@requires_data
def test_each_task_is_an_image_with_the_size_its_results_give() -> None:
    coco = persons()
    parsed = parse_labelstudio(export_of(coco, rectangle), file=FILE)
    assert [(i.image_id, i.file_name, i.width, i.height) for i in parsed.images] == [
        (i["id"], f"val2017/{i['file_name']}", i["width"], i["height"])
        for i in coco.images.values()
    ]
    assert parsed.extra == {"ignored_results": {}}


def one_task(*results: dict[str, Any], source: str = "annotations", **group: Any) -> bytes:
    task = {
        "id": 7,
        "data": {"image": "a.jpg"},
        source: [{"id": 3, **group, "result": list(results)}],
    }
    return json.dumps([task]).encode()


def box(**value: Any) -> dict[str, Any]:
    base = {"x": 10, "y": 20, "width": 30, "height": 40, "rotation": 0, "rectanglelabels": ["car"]}
    return {"type": "rectanglelabels", "value": {**base, **value}}


def test_choices_are_class_labels_of_the_whole_image() -> None:
    data = one_task({"type": "choices", "value": {"choices": ["indoor", "night"]}})
    records = list(parse_labelstudio(data, file=FILE).records)
    assert [(r.kind, r.label, r.bbox, r.attributes) for r in records] == [
        ("class", "indoor", None, {"annotation_id": 3}),
        ("class", "night", None, {"annotation_id": 3}),
    ]


def test_a_prediction_without_result_scores_takes_the_predictions_score() -> None:
    data = one_task(box(), source="predictions", score=0.8, model_version="m2")
    (record,) = parse_labelstudio(data, file=FILE).records
    assert (record.score, record.attributes) == (0.8, {"model_version": "m2"})
    assert record.bbox == [0.1, 0.2, 0.3, 0.4]


def test_results_that_are_no_labels_are_counted_and_cancelled_annotations_skipped() -> None:
    task = {
        "data": {"image": "a.jpg"},
        "annotations": [
            {"result": [box(), {"type": "textarea", "value": {"text": ["blurry"]}}]},
            {"was_cancelled": True, "result": [box()]},
        ],
    }
    parsed = parse_labelstudio(json.dumps([task]).encode(), file=FILE)
    assert len(list(parsed.records)) == 1
    assert parsed.extra == {"ignored_results": {"textarea": 1}}
    assert parsed.images == [
        FileImage(image_id=None, file_name="a.jpg", extra={"data": task["data"]})
    ]


def test_the_image_field_is_the_one_the_labeling_config_names() -> None:
    data = json.dumps([{"data": {"img": "s3://b/x/a.png"}, "annotations": []}]).encode()
    assert parse_labelstudio(data, file=FILE, image_field="img").images[0].file_name == "x/a.png"


@pytest.mark.parametrize(
    ("url", "key"),
    [
        ("s3://photos/val2017/a b.jpg", "val2017/a b.jpg"),
        ("gs://photos/a.jpg", "a.jpg"),
        ("https://photos.s3.amazonaws.com/val2017/a%20b.jpg?X-Amz-Signature=1", "val2017/a b.jpg"),
        ("/data/local-files/?d=photos/val2017/a.jpg", "photos/val2017/a.jpg"),
        ("http://localhost:8080/data/local-files/?d=photos%2Fa.jpg", "photos/a.jpg"),
        ("/data/upload/3/1a2b3c4d-a.jpg", "a.jpg"),
        ("val2017/a#1.jpg", "val2017/a#1.jpg"),
    ],
)
def test_an_image_url_names_its_item_by_path(url: str, key: str) -> None:
    assert image_key(url) == key


# -- validation -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("result", "says"),
    [
        (box(rotation=15), "value.rotation is 15: a rotated region has no upright box"),
        ({**box(), "image_rotation": 90}, "image_rotation is 90"),
        (box(x="ten"), "value.x 'ten' is not a number"),
        (box(y=None), "value.y is missing"),
        (box(width=-5), "value.width -5 is outside 0..100"),
        (box(x=130), "value.x 130 is outside 0..100"),
        (box(rectanglelabels=[]), "value.rectanglelabels must be a non-empty list"),
        (
            {
                "type": "polygonlabels",
                "value": {"points": [[1, 2], [3, 4]], "polygonlabels": ["a"]},
            },
            "value.points has 2 points; a polygon needs 3 or more",
        ),
        (
            {
                "type": "polygonlabels",
                "value": {"points": [[1, 2], [3], [5, 6]], "polygonlabels": ["a"]},
            },
            "value.points[1] is not an [x, y] pair",
        ),
        ({"type": "brushlabels", "value": {"rle": [1]}}, "type 'brushlabels' is not supported"),
        ({"type": "rectangle", "value": {}}, "type 'rectangle' is not supported"),
        ({"type": "rectanglelabels"}, "has no 'value' object"),
        (
            {**box(), "original_width": 0, "original_height": 10},
            "original_width 0 is not a positive",
        ),
    ],
)
def test_a_broken_result_is_named_by_task_and_result(result: dict[str, Any], says: str) -> None:
    data = one_task(box(), result)
    with pytest.raises(LabelFileError) as caught:
        parse_labelstudio(data, file=FILE)
    assert (caught.value.file, caught.value.where) == (
        FILE,
        "tasks[0] (id 7) annotations[0].result[1]",
    )
    assert says in caught.value.problem


@pytest.mark.parametrize(
    ("data", "where", "says"),
    [
        (b'[{"data": {"image": "a.jpg"}},\n {"data": }]', "line 2", "is not valid JSON"),
        (b'{"data": {"image": "a.jpg"}}', "", "expected a list of tasks"),
        (
            b'[{"id": 4, "data": {"url": "a.jpg"}}]',
            "tasks[0] (id 4)",
            "no 'image' field (its fields: url)",
        ),
        (b'[{"annotations": []}]', "tasks[0]", "has no 'data' object"),
        (
            b'[{"data": {"image": "a.jpg"}, "predictions": {}}]',
            "tasks[0] predictions",
            "must be a list",
        ),
        (
            b'[{"data": {"image": "a.jpg"}, "predictions": [{"result": [{"type": "choices", '
            b'"value": {"choices": ["a"]}}]}]}]',
            "tasks[0] predictions[0].result[0]",
            "a prediction needs a score",
        ),
        (
            b'[{"data": {"image": "a.jpg"}, "predictions": [{"score": 2, "result": [{"type": '
            b'"choices", "value": {"choices": ["a"]}}]}]}]',
            "tasks[0] predictions[0].result[0]",
            "the prediction's score 2 is outside [0, 1]",
        ),
    ],
)
def test_a_broken_export_is_named(data: bytes, where: str, says: str) -> None:
    with pytest.raises(LabelFileError) as caught:
        parse_labelstudio(data, file=FILE)
    assert (caught.value.file, caught.value.where) == (FILE, where)
    assert says in caught.value.problem


# -- export ---------------------------------------------------------------------------------


def items_of(coco: CocoSet) -> list[tuple[str, int, int]]:
    return [(f"val2017/{i['file_name']}", i["width"], i["height"]) for i in coco.images.values()]


@requires_data
@pytest.mark.parametrize(
    ("coco_set", "region"),
    [
        (persons, rectangle),
        (person_detections, rectangle),
        (shapes, polygon),
        (shape_detections, polygon),
    ],
)
def test_exported_records_read_back_the_same(coco_set: Any, region: Any) -> None:
    coco = coco_set()
    records = list(parse_labelstudio(export_of(coco, region), file=FILE).records)
    data = export_labelstudio(items_of(coco), [], records)
    again = list(parse_labelstudio(data, file=FILE).records)
    # The export numbers its tasks itself, so the records name their items by key and that id.
    ids = {key: n for n, (key, _, _) in enumerate(items_of(coco), start=1)}
    expected = [
        Record(**{**vars(r), "item": ItemRef(key=r.item.key, image_id=ids[r.item.key or ""])})
        for r in records
    ]
    assert_same_records(again, expected, tolerance=1e-12)
    assert export_labelstudio(items_of(coco), [], again) == data


@requires_data
def test_pixel_boxes_and_categories_export_as_percent_rectangles() -> None:
    coco = persons()
    records = [
        Record(
            item=ItemRef(key=f"val2017/{coco.images[a['image_id']]['file_name']}"),
            where=f"annotations[{n}]",
            category_id=a["category_id"],
            bbox=a["bbox"],
        )
        for n, a in enumerate(coco.annotations)
    ]
    data = export_labelstudio(items_of(coco), [Category(1, "person")], records)
    tasks = json.loads(data)
    assert [t["data"]["image"] for t in tasks] == [key for key, _, _ in items_of(coco)]
    first = tasks[0]["annotations"][0]["result"][0]
    assert (first["type"], first["value"]["rectanglelabels"]) == ("rectanglelabels", ["person"])
    for record, annotation in parsed_in_image_order(coco, data):
        width, height = coco.size(annotation)
        assert_numbers_close(
            bbox_in_pixels(record, width, height), annotation["bbox"], PIXEL_TOLERANCE
        )


def test_class_records_export_as_choices_and_scored_ones_as_predictions() -> None:
    records = [
        Record(item=ItemRef(key="a.jpg"), where="r1", kind="class", label="indoor"),
        Record(
            item=ItemRef(key="a.jpg"),
            where="r2",
            kind="class",
            label="night",
            score=0.25,
            attributes={"model_version": "m1"},
        ),
    ]
    (task,) = json.loads(export_labelstudio([("a.jpg", 10, 10)], [], records))
    assert task["annotations"][0]["result"][0]["value"] == {"choices": ["indoor"]}
    (prediction,) = task["predictions"]
    assert prediction["model_version"] == "m1"
    assert prediction["result"][0]["score"] == 0.25


@pytest.mark.parametrize(
    ("record", "says"),
    [
        (Record(item=ItemRef(key="b.jpg"), where="r1", label="a", bbox=[0, 0, 1, 1]), "b.jpg"),
        (
            Record(item=ItemRef(key="a.jpg"), where="r1", category_id=5, bbox=[0, 0, 1, 1]),
            "no label",
        ),
        (Record(item=ItemRef(key="a.jpg"), where="r1", label="a"), "neither a box"),
    ],
)
def test_records_label_studio_cannot_hold_are_refused_by_name(record: Record, says: str) -> None:
    with pytest.raises(ValueError, match="r1") as caught:
        export_labelstudio([("a.jpg", 10, 10)], [Category(1, "a")], [record])
    assert says in str(caught.value)
