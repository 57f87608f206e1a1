"""Classification labels as CSV: the real shapes' image labels come back as class records;
exports read back the same; every broken row is named by its line."""

from __future__ import annotations

import pytest

from ingest_assets.annotations.formats.csv_labels import export_csv_labels, parse_csv_labels
from ingest_assets.annotations.records import ItemRef, LabelFileError, Record
from tests.ingest_assets.annotations.fixtures import (
    assert_same_records,
    requires_data,
    shape_detections,
    shapes,
)

FILE = "gs://labels/shapes.csv"


@requires_data
def test_each_row_is_a_class_label_of_its_image() -> None:
    coco = shapes()
    rows = [
        (coco.images[a["image_id"]]["file_name"], coco.names[a["category_id"]])
        for a in coco.annotations
    ]
    data = "key,label\n" + "".join(f"{key},{label}\n" for key, label in rows)
    records = list(parse_csv_labels(data.encode(), file=FILE).records)
    assert [(r.item.key, r.label) for r in records] == rows
    assert {r.kind for r in records} == {"class"}
    assert [r.where for r in records] == [f"line {n}" for n in range(2, len(rows) + 2)]
    assert all(r.score is None and r.attributes == {} for r in records)


@requires_data
def test_scored_rows_are_predictions_with_their_scores() -> None:
    coco = shape_detections()
    data = "reference_id,label,score\n" + "".join(
        f"{a['image_id']},{coco.names[a['category_id']]},{a['score']!r}\n" for a in coco.annotations
    )
    records = list(parse_csv_labels(data.encode(), file=FILE).records)
    assert [(r.item, r.score) for r in records] == [
        (ItemRef(reference_id=str(a["image_id"])), a["score"]) for a in coco.annotations
    ]


def test_headers_are_read_without_regard_to_case_spaces_or_a_byte_order_mark() -> None:
    data = "\ufeff Key , LABEL ,Score,Annotator\r\ncars/1.jpg, car ,,ann\r\n\r\n".encode()
    (record,) = parse_csv_labels(data, file=FILE).records
    assert (record.item, record.label, record.score) == (ItemRef(key="cars/1.jpg"), "car", None)
    assert record.attributes == {"annotator": "ann"}


def test_key_and_reference_id_may_name_the_item_together() -> None:
    data = b"key,reference_id,label\na.jpg,ref-1,car\n,ref-2,bus\n"
    records = list(parse_csv_labels(data, file=FILE).records)
    assert [r.item for r in records] == [
        ItemRef(key="a.jpg", reference_id="ref-1"),
        ItemRef(reference_id="ref-2"),
    ]


def test_a_quoted_label_may_hold_commas_and_line_breaks() -> None:
    data = b'key,label\n"a, b.jpg","big\ncar"\nc.jpg,bus\n'
    first, second = parse_csv_labels(data, file=FILE).records
    assert (first.item.key, first.label, second.where) == ("a, b.jpg", "big\ncar", "line 4")


# -- validation -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "where", "says"),
    [
        (b"", "", "is empty; the first line must be a header: key,label[,score]"),
        (b"\n\n", "", "is empty"),
        (b"a.jpg,car\n", "line 1", "lacks a key or label column"),
        (b"key,class\na.jpg,car\n", "line 1", "lacks a key or label column"),
        (b"\nkey,label,key\n", "line 2", "names column 'key' twice"),
        (b"key,label,\n", "line 1", "header column 3 has no name"),
        (b"key,label\n\xff\n", "", "is not UTF-8 text"),
    ],
)
def test_a_broken_header_is_named_before_any_row(data: bytes, where: str, says: str) -> None:
    with pytest.raises(LabelFileError) as caught:
        parse_csv_labels(data, file=FILE)
    assert (caught.value.file, caught.value.where) == (FILE, where)
    assert says in caught.value.problem


@pytest.mark.parametrize(
    ("row", "says"),
    [
        ("c.jpg,,", "label is empty"),
        (",car,", "key is empty"),
        ("c.jpg,car,high", "score 'high' is not a number"),
        ("c.jpg,car,1.5", "score 1.5 is outside [0, 1]"),
        ("c.jpg,car,-0.1", "score -0.1 is outside [0, 1]"),
        ("c.jpg,car,nan", "score nan is outside [0, 1]"),
        ("c.jpg,car", "has 2 fields but the header has 3 (key,label,score)"),
        ("c.jpg,car,0.5,extra", "has 4 fields"),
        ('c.jpg,"car', "is not valid CSV"),
    ],
)
def test_a_broken_row_is_named_by_its_line(row: str, says: str) -> None:
    data = f"key,label,score\na.jpg,car,0.9\n\n{row}\n".encode()
    parsed = parse_csv_labels(data, file=FILE)
    with pytest.raises(LabelFileError) as caught:
        list(parsed.records)
    assert caught.value.file == FILE
    assert caught.value.where in ("line 4", "line 5")  # an open quote runs to the end
    assert says in caught.value.problem


# -- export ---------------------------------------------------------------------------------


@requires_data
def test_exported_labels_read_back_the_same() -> None:
    coco = shape_detections()
    records = [
        Record(
            item=ItemRef(key=coco.images[a["image_id"]]["file_name"]),
            where=f"[{n}]",
            kind="class",
            label=coco.names[a["category_id"]],
            score=a["score"],
            attributes={"model": "m1"} if n % 2 else {},
        )
        for n, a in enumerate(coco.annotations)
    ]
    data = export_csv_labels(records)
    assert data.startswith(b"key,label,score,model\n")
    again = list(parse_csv_labels(data, file=FILE).records)
    assert_same_records(again, records, tolerance=0)
    assert export_csv_labels(again) == data


def test_export_names_items_the_way_the_records_do() -> None:
    records = [
        Record(item=ItemRef(reference_id="r1"), where="a", kind="class", label="car"),
        Record(item=ItemRef(key="b, c.jpg"), where="b", kind="class", label="bus"),
    ]
    assert export_csv_labels(records) == b'key,reference_id,label\n,r1,car\n"b, c.jpg",,bus\n'
    assert export_csv_labels([]) == b"key,label\n"


@pytest.mark.parametrize(
    ("record", "says"),
    [
        (Record(item=ItemRef(key="a.jpg"), where="r1", label="car", bbox=[0, 0, 1, 1]), "CSV"),
        (Record(item=ItemRef(key="a.jpg"), where="r1", kind="class"), "no label"),
        (Record(item=ItemRef(image_id=3), where="r1", kind="class", label="car"), "neither key"),
    ],
)
def test_records_a_labels_csv_cannot_hold_are_refused_by_name(record: Record, says: str) -> None:
    with pytest.raises(ValueError, match="r1") as caught:
        export_csv_labels([record])
    assert says in str(caught.value)
