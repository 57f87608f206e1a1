"""Tying records to items: by key, reference id, a file name only one item has, or (YOLO) a
key less its extension; fractions placed in pixels; boxes outside their image kept, clipped or
rejected; records that match no item named, never dropped."""

from __future__ import annotations

from ingest_assets.annotations.importing import ImportSpec, Tally, import_chunks, import_key
from ingest_assets.annotations.matching import Item, ItemIndex, resolve
from ingest_assets.annotations.records import FileImage, ItemRef, Parsed, Record

ITEMS = ItemIndex(
    [
        Item("a", "cats/tom.jpg", "cam1-0001", 100, 50),
        Item("b", "dogs/rex.jpg", None, 200, 100),
        Item("c", "train/rex.jpg", None, 200, 100),
        Item("d", "dataset/images/val/000785.jpg", None, 640, 425),
        Item("e", "unreadable.jpg", None, None, None),
    ]
)


def found(record: Record, images: dict[int, FileImage] | None = None) -> str | None:
    item, _ = resolve(record, ITEMS, images or {})
    return None if item is None else item.item_id


def test_records_find_their_items_by_key_reference_name_image_and_stem() -> None:
    assert found(Record(ItemRef(key="cats/tom.jpg"), "r")) == "a"
    assert found(Record(ItemRef(reference_id="cam1-0001"), "r")) == "a"
    assert found(Record(ItemRef(key="tom.jpg"), "r")) == "a"  # the only tom.jpg
    image = {7: FileImage(7, "000785.jpg", 640, 425)}
    assert found(Record(ItemRef(image_id=7), "r"), image) == "d"
    assert found(Record(ItemRef(key="x"), "r", attributes={"key_stem": "images/val/000785"})) == "d"


def test_ambiguous_and_unknown_names_say_why() -> None:
    item, why = resolve(Record(ItemRef(key="rex.jpg"), "r"), ITEMS, {})
    assert item is None and "2 items have the file name 'rex.jpg'" in why
    item, why = resolve(Record(ItemRef(image_id=9), "r"), ITEMS, {})
    assert item is None and "image id 9" in why


def spec(boxes: str = "keep") -> ImportSpec:
    return ImportSpec(import_key("/labels/x.json"), "/labels/x.json", "coco", boxes=boxes)  # type: ignore[arg-type]


def imported(records: list[Record], boxes: str = "keep") -> tuple[list[dict[str, object]], Tally]:
    tally = Tally()
    chunks = import_chunks(Parsed(iter(records)), ITEMS, spec(boxes), tally, chunk_rows=2)
    return [r for table, _ in chunks for r in table.to_pylist()], tally


def test_an_import_ties_records_and_names_every_one_it_could_not() -> None:
    records = [
        Record(ItemRef(key="cats/tom.jpg"), "annotations[0]", label="cat", bbox=[1, 2, 3, 4]),
        Record(ItemRef(key="ghost.jpg"), "annotations[1]", label="cat", bbox=[1, 2, 3, 4]),
        Record(
            ItemRef(key="dogs/rex.jpg"),
            "annotations[2]",
            label="dog",
            bbox=[0.5, 0.5, 0.5, 0.5],
            units="fraction",
        ),
        Record(
            ItemRef(key="unreadable.jpg"),
            "annotations[3]",
            bbox=[0.1, 0.1, 0.1, 0.1],
            units="fraction",
        ),
    ]

    rows, tally = imported(records)

    assert [(r["item_id"], r["bbox"]) for r in rows] == [
        ("a", [1, 2, 3, 4]),
        ("b", [100, 50, 100, 50]),
    ]
    assert (tally.records, tally.imported, tally.unmatched, tally.rejected) == (4, 2, 1, 1)
    (ghost,) = tally.examples_unmatched
    assert (ghost.where, ghost.reference) == ("annotations[1]", "key 'ghost.jpg'")
    assert "has no size" in tally.examples_rejected[0].reason
    assert dict(tally.labels) == {"cat": 1, "dog": 1}


def test_boxes_outside_their_image_are_kept_clipped_or_rejected_as_configured() -> None:
    record = Record(ItemRef(key="cats/tom.jpg"), "annotations[0]", bbox=[90, -5, 20, 20])

    kept, kept_tally = imported([record])
    clip, _ = imported([record], "clip")
    rejected, rejected_tally = imported([record], "reject")

    assert kept[0]["bbox"] == [90, -5, 20, 20] and kept_tally.outside == 1
    assert clip[0]["bbox"] == [90, 0, 10, 15] and clip[0]["area"] == 150
    assert rejected == [] and rejected_tally.rejected == 1
    assert "reaches outside the 100x50 image" in rejected_tally.examples_rejected[0].reason


def test_an_import_key_is_stable_per_file_and_tells_files_of_one_name_apart() -> None:
    assert import_key("/a/instances.json") == import_key("/a/instances.json")
    assert import_key("/a/instances.json") != import_key("/b/instances.json")
    assert import_key("s3://bucket/labels/instances val.json").startswith("instances-val.json-")
