"""YOLO label files: COCO's real boxes and polygons, written as YOLO lines, come back as COCO's
pixels; exports read back as the same records; every broken line is named."""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any

import pytest

from ingest_assets.annotations.formats.yolo import (
    export_yolo,
    image_key_stem,
    label_key_stem,
    parse_yolo,
    read_classes,
)
from ingest_assets.annotations.records import Category, ItemRef, LabelFileError, Record
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
    shapes,
)

FILE = "s3://labels/data.yaml"


def box_line(cls: int, bbox: list[float], width: int, height: int, *extra: float) -> str:
    x, y, w, h = bbox
    numbers = [(x + w / 2) / width, (y + h / 2) / height, w / width, h / height, *extra]
    return " ".join([str(cls), *map(repr, numbers)])


def polygon_line(cls: int, polygon: list[float], width: int, height: int) -> str:
    numbers = [v / (width if i % 2 == 0 else height) for i, v in enumerate(polygon)]
    return " ".join([str(cls), *map(repr, numbers)])


def label_path(file_name: str) -> str:
    return f"labels/val/{PurePosixPath(file_name).stem}.txt"


def yolo_files(coco: CocoSet, line_of: dict[int, list[str]]) -> dict[str, bytes]:
    return {
        label_path(coco.images[image_id]["file_name"]): "\n".join(lines).encode()
        for image_id, lines in line_of.items()
    }


def class_names(coco: CocoSet) -> list[str]:
    return [coco.names[i] for i in sorted(coco.names)]


def class_index(coco: CocoSet, category_id: int) -> int:
    return sorted(coco.names).index(category_id)


def parse_coco_as_yolo(coco: CocoSet, polygons: bool = False) -> list[Record]:
    """The COCO set written as YOLO files, one per image, and read back (in file order)."""
    lines: dict[int, list[str]] = {image_id: [] for image_id in sorted(coco.images)}
    for a in coco.annotations:
        width, height = coco.size(a)
        cls = class_index(coco, a["category_id"])
        if polygons:
            lines[a["image_id"]].append(polygon_line(cls, a["segmentation"][0], width, height))
        else:
            extra = [a["score"]] if "score" in a else []
            lines[a["image_id"]].append(box_line(cls, a["bbox"], width, height, *extra))
    parsed = parse_yolo(yolo_files(coco, lines), file=FILE, classes=class_names(coco))
    return list(parsed.records)


def annotations_in_file_order(coco: CocoSet) -> list[dict[str, Any]]:
    """The annotations in the order YOLO reads them: by label file path, then line."""
    by_path = sorted(coco.images, key=lambda i: label_path(coco.images[i]["file_name"]))
    return [a for image_id in by_path for a in coco.of_image(image_id)]


# -- real boxes and polygons ----------------------------------------------------------------


@requires_data
def test_person_boxes_come_back_as_the_coco_pixel_boxes() -> None:
    coco = persons()
    records = parse_coco_as_yolo(coco)
    expected = annotations_in_file_order(coco)
    assert len(records) == len(expected) == 14
    for record, annotation in zip(records, expected, strict=True):
        image = coco.images[annotation["image_id"]]
        assert record.units == "fraction"
        assert record.label == "person" and record.category_id == 0
        assert record.item == ItemRef(key=f"images/val/{PurePosixPath(image['file_name']).stem}")
        assert record.attributes["key_stem"] == image_key_stem(f"images/val/{image['file_name']}")
        assert_numbers_close(
            bbox_in_pixels(record, image["width"], image["height"]),
            annotation["bbox"],
            PIXEL_TOLERANCE,
        )


@requires_data
def test_shape_polygons_come_back_with_their_extent_as_the_box() -> None:
    coco = shapes()
    records = parse_coco_as_yolo(coco, polygons=True)
    expected = annotations_in_file_order(coco)
    assert len(records) == len(expected) == 9
    for record, annotation in zip(records, expected, strict=True):
        width, height = coco.size(annotation)
        polygon = annotation["segmentation"][0]
        assert record.label == coco.names[annotation["category_id"]]
        assert_numbers_close(polygon_in_pixels(record, width, height), polygon, PIXEL_TOLERANCE)
        assert_numbers_close(
            bbox_in_pixels(record, width, height), polygon_extent(polygon), PIXEL_TOLERANCE
        )


@requires_data
def test_scored_boxes_are_predictions_with_the_detectors_scores() -> None:
    coco = person_detections()
    records = parse_coco_as_yolo(coco)
    expected = annotations_in_file_order(coco)
    assert len(records) == 118
    for record, detection in zip(records, expected, strict=True):
        width, height = coco.size(detection)
        assert record.score == detection["score"]
        assert_numbers_close(
            bbox_in_pixels(record, width, height), detection["bbox"], PIXEL_TOLERANCE
        )
    # Two real detections reach past the right edge of 000000197388.jpg (640 wide); their
    # numbers are in range, so they are read, and the import's box policy decides.
    assert sum(r.bbox is not None and r.bbox[0] + r.bbox[2] > 1 for r in records) == 2


# -- keys -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("label_file", "key_stem"),
    [
        ("labels/foo.txt", "images/foo"),
        ("labels/train/foo.txt", "images/train/foo"),
        ("data/labels/val/a.b.txt", "data/images/val/a.b"),
        # The last labels folder is the one beside images (Ultralytics replaces the last).
        ("labels/x/labels/foo.txt", "labels/x/images/foo"),
        # Outside any labels folder, the label file sits beside its image.
        ("shots/foo.txt", "shots/foo"),
        ("labels.txt", "labels"),
    ],
)
def test_a_label_file_names_its_image_by_path_without_extension(
    label_file: str, key_stem: str
) -> None:
    assert label_key_stem(label_file) == key_stem
    (record,) = parse_yolo({label_file: b"0 0.5 0.5 0.2 0.2\n"}, file=FILE, classes=["a"]).records
    assert record.item.key == key_stem
    assert record.attributes["key_stem"] == key_stem


@pytest.mark.parametrize("extension", [".jpg", ".png", ".JPEG"])
def test_an_image_of_any_extension_has_the_stem_its_label_file_gives(extension: str) -> None:
    assert image_key_stem(f"images/train/foo{extension}") == label_key_stem("labels/train/foo.txt")


def test_classes_txt_among_the_label_files_is_not_read_as_labels() -> None:
    files = {"classes.txt": b"car\nbus\n", "labels/a.txt": b"1 0.5 0.5 0.1 0.1\n\n"}
    parsed = parse_yolo(files, file=FILE, classes=["car", "bus"])
    assert [(r.label, r.where) for r in parsed.records] == [("bus", "labels/a.txt line 1")]
    assert parsed.categories == [Category(0, "car"), Category(1, "bus")]


# -- class lists ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("classes.txt", "cloud\nheart\narrow\nstar\n\n"),
        ("data.yaml", "path: .\nnames: [cloud, heart, arrow, star]\n"),
        ("data.yaml", "nc: 4\nnames:\n  0: cloud\n  1: heart\n  2: arrow\n  3: star\n"),
        ("data.yml", "names:\n  3: star\n  1: heart\n  0: cloud\n  2: arrow\n"),
    ],
)
def test_class_lists_read_in_index_order(name: str, text: str) -> None:
    assert read_classes(text.encode(), name) == ["cloud", "heart", "arrow", "star"]


@pytest.mark.parametrize(
    ("name", "text", "where", "says"),
    [
        ("classes.txt", "car\n\nbus\n", "line 2", "is empty"),
        ("classes.txt", "car\nbus\ncar\n", "", "'car' appears twice"),
        ("data.yaml", "names: {0: car, 2: bus}\n", "names", "index 1 is missing"),
        ("data.yaml", "nc: 3\nnames: [car, bus]\n", "nc", "lists 2 classes"),
        ("data.yaml", "train: images/\n", "", "no 'names:'"),
        ("data.yaml", "names: [car, bus\n", "line 2", "not valid YAML"),
    ],
)
def test_broken_class_lists_are_named(name: str, text: str, where: str, says: str) -> None:
    with pytest.raises(LabelFileError) as caught:
        read_classes(text.encode(), name)
    assert (caught.value.file, caught.value.where) == (name, where)
    assert says in caught.value.problem


# -- validation -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "says"),
    [
        ("4 0.5 0.5 0.1 0.1", "class: index 4 is beyond the class list (4 classes"),
        ("-1 0.5 0.5 0.1 0.1", "class: '-1' is not a class index"),
        ("cat 0.5 0.5 0.1 0.1", "class: 'cat' is not a class index"),
        ("0 0.5 abc 0.1 0.1", "cy: 'abc' is not a number"),
        ("0 0.5 0.5 nan 0.1", "w: 'nan' is not a finite number"),
        ("0 320 240 64 48", "cx: 320 is outside [0, 1]"),
        ("0 0.5 0.5 0.1 -0.1", "h: -0.1 is negative"),
        ("0 0.5 0.5 0.1 0.1 1.5", "conf: 1.5 is outside [0, 1]"),
        ("0 0.1 0.1", "a polygon of at least 3 points"),
        ("0 0.1 0.1 0.2", "has 3 numbers after the class"),
        ("0 0.1 0.1 0.2 0.2 0.3 1.2", "y3: 1.2 is outside [0, 1]"),
        ("0", "has 0 numbers after the class"),
    ],
)
def test_a_broken_line_is_named_by_file_line_and_field(line: str, says: str) -> None:
    files = {"labels/foo.txt": f"0 0.5 0.5 0.2 0.2\n{line}\n".encode()}
    parsed = parse_yolo(files, file=FILE, classes=["cloud", "heart", "arrow", "star"])
    with pytest.raises(LabelFileError) as caught:
        list(parsed.records)
    assert (caught.value.file, caught.value.where) == (FILE, "labels/foo.txt line 2")
    assert says in caught.value.problem
    assert str(caught.value).startswith(f"{FILE}: labels/foo.txt line 2: ")


def test_a_label_file_that_is_not_text_is_named() -> None:
    parsed = parse_yolo({"labels/foo.txt": b"0 0.5\xff"}, file=FILE, classes=["a"])
    with pytest.raises(LabelFileError, match=r"labels/foo.txt: is not UTF-8 text"):
        list(parsed.records)


def test_numbers_rounded_just_past_an_edge_are_read_as_given() -> None:
    files = {"labels/foo.txt": b"0 0.5000001 1.0000004 1.0000002 0 0.9\n"}
    (record,) = parse_yolo(files, file=FILE, classes=["a"]).records
    assert record.bbox == [0.5000001 - 1.0000002 / 2, 1.0000004, 1.0000002, 0.0]
    assert record.score == 0.9


def test_a_polygon_with_a_trailing_confidence_is_a_scored_polygon() -> None:
    files = {"labels/foo.txt": b"0 0.1 0.2 0.5 0.2 0.3 0.6 0.75\n"}
    (record,) = parse_yolo(files, file=FILE, classes=["a"]).records
    assert record.segmentation == [[0.1, 0.2, 0.5, 0.2, 0.3, 0.6]]
    assert record.score == 0.75
    assert_numbers_close(record.bbox or [], [0.1, 0.2, 0.4, 0.4], 1e-12)


# -- export ---------------------------------------------------------------------------------


@requires_data
@pytest.mark.parametrize("polygons", [False, True])
def test_exported_records_read_back_the_same(polygons: bool) -> None:
    coco = shapes() if polygons else person_detections()
    records = parse_coco_as_yolo(coco, polygons=polygons)
    items = [
        (f"images/val/{i['file_name']}", i["width"], i["height"]) for i in coco.images.values()
    ]
    categories = [Category(index, name) for index, name in enumerate(class_names(coco))]
    files = export_yolo(items, categories, records)
    again = parse_yolo(
        {k: v for k, v in files.items() if k != "classes.txt"},
        file=FILE,
        classes=read_classes(files["classes.txt"], "classes.txt"),
    )
    read_back = list(again.records)
    assert_same_records(read_back, records, tolerance=1e-12)
    assert export_yolo(items, categories, read_back) == files


@requires_data
def test_pixel_boxes_export_as_fractions_of_their_item() -> None:
    coco = persons()
    records = [
        Record(
            item=ItemRef(key=coco.images[a["image_id"]]["file_name"]),
            where=f"annotations[{n}]",
            category_id=a["category_id"],
            bbox=a["bbox"],
        )
        for n, a in enumerate(coco.annotations)
    ]
    items = [(i["file_name"], i["width"], i["height"]) for i in coco.images.values()]
    files = export_yolo(items, [Category(1, "person")], records)
    assert sorted(files) == [
        "000000000785.txt",
        "000000040083.txt",
        "000000196141.txt",
        "000000197388.txt",
        "classes.txt",
    ]
    assert files["classes.txt"] == b"person\n"
    again = list(
        parse_yolo(
            {k: v for k, v in files.items() if k != "classes.txt"}, file=FILE, classes=["person"]
        ).records
    )
    expected = annotations_in_file_order(coco)
    for record, annotation in zip(again, expected, strict=True):
        width, height = coco.size(annotation)
        assert (
            record.item.key == PurePosixPath(coco.images[annotation["image_id"]]["file_name"]).stem
        )
        assert_numbers_close(
            bbox_in_pixels(record, width, height), annotation["bbox"], PIXEL_TOLERANCE
        )


def test_every_item_gets_a_label_file_and_numbers_are_plain_decimals() -> None:
    record = Record(item=ItemRef(key="images/a.jpg"), where="x", label="b", bbox=[10, 20, 30, 40])
    files = export_yolo(
        [("images/a.jpg", 100, 200), ("images/empty.png", 50, 50)],
        [Category(7, "a"), Category(9, "b")],
        [record],
    )
    assert files == {
        "labels/a.txt": b"1 0.25 0.2 0.3 0.2\n",
        "labels/empty.txt": b"",
        "classes.txt": b"a\nb\n",
    }


@pytest.mark.parametrize(
    ("record", "says"),
    [
        (Record(item=ItemRef(key="a.jpg"), where="line 1", kind="class", label="a"), "CSV"),
        (Record(item=ItemRef(key="b.jpg"), where="line 1", label="a", bbox=[0, 0, 1, 1]), "b.jpg"),
        (Record(item=ItemRef(key="a.jpg"), where="line 1", label="z", bbox=[0, 0, 1, 1]), "'z'"),
        (Record(item=ItemRef(key="a.jpg"), where="line 1", label="a"), "neither a box"),
    ],
)
def test_records_yolo_cannot_hold_are_refused_by_name(record: Record, says: str) -> None:
    with pytest.raises(ValueError, match="line 1") as caught:
        export_yolo([("a.jpg", 10, 10)], [Category(0, "a")], [record])
    assert says in str(caught.value)
