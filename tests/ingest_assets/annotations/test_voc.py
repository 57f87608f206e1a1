"""Pascal VOC XML: COCO's real person boxes, written as VOC files, come back as COCO's boxes;
exports read back the same; broken files are named by object and line; entities are refused."""

from __future__ import annotations

from typing import Any

import pytest

from ingest_assets.annotations.formats.voc import export_voc, parse_voc
from ingest_assets.annotations.records import FileImage, ItemRef, LabelFileError, Record
from tests.ingest_assets.annotations.fixtures import (
    PIXEL_TOLERANCE,
    assert_numbers_close,
    assert_same_records,
    person_detections,
    persons,
    requires_data,
)

FILE = "voc/000000040083.xml"


def voc_object(annotation: dict[str, Any], name: str) -> str:
    x, y, w, h = annotation["bbox"]
    score = f"<score>{annotation['score']!r}</score>" if "score" in annotation else ""
    return f"""
  <object>
    <name>{name}</name>
    <pose>Unspecified</pose>
    <truncated>0</truncated>
    <difficult>{annotation.get("iscrowd", 0)}</difficult>{score}
    <bndbox>
      <xmin>{x!r}</xmin>
      <ymin>{y!r}</ymin>
      <xmax>{x + w!r}</xmax>
      <ymax>{y + h!r}</ymax>
    </bndbox>
  </object>"""


def voc_file(image: dict[str, Any], annotations: list[dict[str, Any]], name: str) -> bytes:
    objects = "".join(voc_object(a, name) for a in annotations)
    return f"""<annotation>
  <folder>val2017</folder>
  <filename>{image["file_name"]}</filename>
  <size>
    <width>{image["width"]}</width>
    <height>{image["height"]}</height>
    <depth>3</depth>
  </size>
  <segmented>0</segmented>{objects}
</annotation>
""".encode()


@requires_data
@pytest.mark.parametrize("coco_set", [persons, person_detections])
def test_person_boxes_come_back_as_the_coco_boxes(coco_set: Any) -> None:
    coco = coco_set()
    for image_id, image in coco.images.items():
        annotations = coco.of_image(image_id)
        parsed = parse_voc(voc_file(image, annotations, "person"), file=FILE)
        records = list(parsed.records)
        assert parsed.images == [
            FileImage(
                image_id=None,
                file_name=image["file_name"],
                width=image["width"],
                height=image["height"],
                extra={"folder": "val2017", "segmented": "0", "depth": 3},
            )
        ]
        assert len(records) == len(annotations) > 0
        for record, annotation in zip(records, annotations, strict=True):
            assert record.item == ItemRef(key=image["file_name"])
            assert (record.label, record.units) == ("person", "pixel")
            assert record.attributes == {"pose": "Unspecified", "truncated": 0, "difficult": 0}
            assert record.score == annotation.get("score")
            assert_numbers_close(record.bbox or [], annotation["bbox"], PIXEL_TOLERANCE)


def test_coordinates_are_kept_as_given_without_the_one_based_shift() -> None:
    data = b"""<annotation><filename>a.jpg</filename>
<size><width>500</width><height>375</height><depth>3</depth></size>
<object><name>dog</name><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>500</xmax><ymax>375</ymax>
</bndbox></object></annotation>"""
    (record,) = parse_voc(data, file=FILE).records
    assert record.bbox == [1, 1, 499, 374]


def test_an_image_named_only_by_path_is_keyed_by_its_file_name() -> None:
    data = b"""<annotation><path>C:\\Users\\ann\\Pictures\\dogs\\a.jpg</path>
<object><name>dog</name><bndbox><xmin>1</xmin><ymin>2</ymin><xmax>3</xmax><ymax>4</ymax>
</bndbox></object></annotation>"""
    parsed = parse_voc(data, file=FILE)
    assert [r.item.key for r in parsed.records] == ["a.jpg"]
    (image,) = parsed.images
    assert (image.file_name, image.width, image.height) == ("a.jpg", None, None)
    assert image.extra == {"path": "C:\\Users\\ann\\Pictures\\dogs\\a.jpg"}


def test_a_size_of_zero_is_an_unknown_size() -> None:
    data = b"""<annotation><filename>a.jpg</filename>
<size><width>0</width><height>0</height><depth>3</depth></size></annotation>"""
    parsed = parse_voc(data, file=FILE)
    assert (parsed.images[0].width, parsed.images[0].height) == (None, None)
    assert list(parsed.records) == []


# -- validation -----------------------------------------------------------------------------

GOOD_OBJECT = (
    "<object><name>dog</name><bndbox><xmin>1</xmin><ymin>2</ymin><xmax>3</xmax>"
    "<ymax>4</ymax></bndbox></object>"
)


def with_second_object(second: str) -> bytes:
    return (
        f"<annotation>\n<filename>a.jpg</filename>\n{GOOD_OBJECT}\n\n{second}\n</annotation>\n"
    ).encode()


@pytest.mark.parametrize(
    ("second", "says"),
    [
        (
            "<object><bndbox><xmin>1</xmin><ymin>2</ymin><xmax>3</xmax><ymax>4</ymax></bndbox>"
            "</object>",
            "has no <name>",
        ),
        ("<object><name>dog</name></object>", "has no <bndbox>"),
        (
            "<object><name>dog</name><bndbox><xmin>1</xmin><ymin>2</ymin><xmax>3</xmax>"
            "</bndbox></object>",
            "<bndbox> has no <ymax>",
        ),
        (
            "<object><name>dog</name><bndbox><xmin>1</xmin><ymin>2</ymin><xmax>three</xmax>"
            "<ymax>4</ymax></bndbox></object>",
            "<bndbox><xmax> 'three' is not a number",
        ),
        (
            "<object><name>dog</name><bndbox><xmin>30</xmin><ymin>2</ymin><xmax>3</xmax>"
            "<ymax>4</ymax></bndbox></object>",
            "<bndbox><xmax> 3 is less than <xmin> 30",
        ),
        (
            "<object><name>dog</name><bndbox><xmin>1</xmin><ymin>20</ymin><xmax>3</xmax>"
            "<ymax>4</ymax></bndbox></object>",
            "<bndbox><ymax> 4 is less than <ymin> 20",
        ),
        (
            "<object><name>dog</name><difficult>yes</difficult><bndbox><xmin>1</xmin>"
            "<ymin>2</ymin><xmax>3</xmax><ymax>4</ymax></bndbox></object>",
            "<difficult> must be 0 or 1",
        ),
        (
            "<object><name>dog</name><score>7</score><bndbox><xmin>1</xmin><ymin>2</ymin>"
            "<xmax>3</xmax><ymax>4</ymax></bndbox></object>",
            "<score> 7 is outside [0, 1]",
        ),
    ],
)
def test_a_broken_object_is_named_by_number_and_line(second: str, says: str) -> None:
    with pytest.raises(LabelFileError) as caught:
        parse_voc(with_second_object(second), file=FILE)
    assert (caught.value.file, caught.value.where) == (FILE, "object 2 (line 5)")
    assert says in caught.value.problem


@pytest.mark.parametrize(
    ("data", "where", "says"),
    [
        (
            b"<annotation>\n<filename>a.jpg</filename>\n<object>\n</annotation>",
            "line 4",
            "not well-formed XML: mismatched tag",
        ),
        (b"", "line 1", "not well-formed XML"),
        (b"<annotations>\n</annotations>", "line 1", "root element is <annotations>"),
        (
            b"<annotation><size><width>1</width><height>1</height></size></annotation>",
            "<annotation>",
            "neither <filename> nor <path>",
        ),
        (
            b"<annotation><filename>a</filename><size><width>1</width></size></annotation>",
            "<size>",
            "has no <height>",
        ),
        (
            b"<annotation><filename>a</filename><size><width>1.5</width><height>1</height>"
            b"</size></annotation>",
            "<size>",
            "<width> '1.5' is not a whole number",
        ),
    ],
)
def test_a_broken_file_is_named(data: bytes, where: str, says: str) -> None:
    with pytest.raises(LabelFileError) as caught:
        parse_voc(data, file=FILE)
    assert (caught.value.file, caught.value.where) == (FILE, where)
    assert says in caught.value.problem


@pytest.mark.parametrize(
    "data",
    [
        # An entity expanded a billion times would take the worker's memory.
        b'<?xml version="1.0"?><!DOCTYPE a [<!ENTITY a "aaaaaaaaaa">'
        b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>'
        b"<annotation><filename>&b;</filename></annotation>",
        # An external entity would read a file of the machine into the label.
        b'<?xml version="1.0"?><!DOCTYPE a [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
        b"<annotation><filename>&e;</filename></annotation>",
    ],
)
def test_entities_are_refused_not_expanded(data: bytes) -> None:
    with pytest.raises(LabelFileError, match="entities or external references") as caught:
        parse_voc(data, file=FILE)
    assert caught.value.file == FILE


# -- export ---------------------------------------------------------------------------------


@requires_data
def test_exported_files_read_back_the_same_and_export_the_same() -> None:
    coco = person_detections()
    for image_id, image in coco.images.items():
        parsed = parse_voc(voc_file(image, coco.of_image(image_id), "person"), file=FILE)
        records = list(parsed.records)
        data = export_voc(parsed.images[0], records)
        again = parse_voc(data, file=FILE)
        read_back = list(again.records)
        assert again.images == parsed.images
        assert_same_records(read_back, records, tolerance=1e-12)
        assert export_voc(again.images[0], read_back) == data


def test_export_writes_whole_pixels_as_integers_and_fractions_in_pixels() -> None:
    image = FileImage(image_id=None, file_name="a.jpg", width=200, height=100)
    records = [
        Record(
            item=ItemRef(key="a.jpg"),
            where="r1",
            label="dog",
            bbox=[10.0, 20.0, 30.0, 40.0],
            attributes={"difficult": 1, "pose": "Left"},
        ),
        Record(
            item=ItemRef(key="a.jpg"),
            where="r2",
            label="cat",
            bbox=[0.1, 0.2, 0.3, 0.4],
            units="fraction",
            score=0.5,
        ),
    ]
    data = export_voc(image, records)
    assert b"<xmax>40</xmax>" in data and b"<ymax>60</ymax>" in data
    assert b"<difficult>1</difficult>" in data and b"<pose>Left</pose>" in data
    dog, cat = parse_voc(data, file=FILE).records
    assert dog.bbox == [10, 20, 30, 40] and dog.attributes == {"difficult": 1, "pose": "Left"}
    assert cat.score == 0.5
    assert_numbers_close(cat.bbox or [], [20, 20, 60, 40], 1e-9)


@pytest.mark.parametrize(
    ("record", "says"),
    [
        (Record(item=ItemRef(key="a.jpg"), where="r1", kind="class", label="dog"), "need a box"),
        (Record(item=ItemRef(key="a.jpg"), where="r1", bbox=[0, 0, 1, 1]), "no label"),
        (
            Record(
                item=ItemRef(key="a.jpg"),
                where="r1",
                label="d",
                bbox=[0, 0, 1, 1],
                units="fraction",
            ),
            "no size",
        ),
    ],
)
def test_records_voc_cannot_hold_are_refused_by_name(record: Record, says: str) -> None:
    with pytest.raises(ValueError, match="r1") as caught:
        export_voc(FileImage(image_id=None, file_name="a.jpg"), [record])
    assert says in str(caught.value)
