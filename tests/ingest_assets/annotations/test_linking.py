"""Images of a COCO file tied to the items they name, or linked as items of their own: where
their URIs point, which item wins when a source has the image too, and the partitions the
linked rows go to."""

from __future__ import annotations

from ingest_assets.annotations.importing import ImportSpec
from ingest_assets.annotations.linking import (
    LINKED_SOURCE,
    Ties,
    linked_uri,
    next_linked_batch,
    tie_images,
)
from ingest_assets.annotations.matching import Item, ItemIndex
from ingest_assets.annotations.records import FileImage
from ingest_assets.items.identity import item_id


def spec(uri: str = "/data/coco/annotations/instances.json", **settings: object) -> ImportSpec:
    return ImportSpec("instances-1", uri, "coco", **settings)  # type: ignore[arg-type]


def image(image_id: int, name: str, width: int = 640, height: int = 480) -> FileImage:
    return FileImage(image_id, name, width, height)


def test_file_names_resolve_against_the_image_root_unless_they_are_uris() -> None:
    root = "file:///data/coco/val2014"
    assert linked_uri("COCO_1.jpg", root) == "file:///data/coco/val2014/COCO_1.jpg"
    assert linked_uri("./sub/a b.jpg", root) == "file:///data/coco/val2014/sub/a%20b.jpg"
    assert linked_uri("../train/x.jpg", root) == "file:///data/coco/train/x.jpg"
    assert linked_uri("/elsewhere/x.jpg", root) == "file:///elsewhere/x.jpg"
    assert linked_uri("s3://bucket/x.jpg", root) == "s3://bucket/x.jpg"
    assert linked_uri("val/x.jpg", "s3://bucket/coco") == "s3://bucket/coco/val/x.jpg"


def test_an_import_that_links_makes_an_item_of_each_image_with_the_files_size() -> None:
    index = ItemIndex([])
    ties = tie_images(
        [image(1, "a.jpg", 100, 50), image(2, "sub/b.jpg", 20, 10)],
        index,
        spec(link=True),
        batch="linked_000001",
    )

    assert (ties.linked, ties.matched, ties.resized) == (2, 0, 0)
    rows = ties.rows.take().to_pylist()
    uris = [row["uri"] for row in rows]
    assert uris == [
        "file:///data/coco/annotations/a.jpg",
        "file:///data/coco/annotations/sub/b.jpg",
    ]
    first = rows[0]
    assert first["item_id"] == item_id(LINKED_SOURCE, first["key"]) == ties.items[1].item_id
    assert (first["width"], first["height"], first["status"]) == (100, 50, "ok")
    assert (first["source"], first["batch"], first["reference_id"]) == (
        LINKED_SOURCE,
        "linked_000001",
        "a.jpg",
    )
    assert first["sha256"] is None and first["format"] is None  # nothing was fetched
    assert [row["key"] for row in rows] == [
        "data/coco/annotations/a.jpg",
        "data/coco/annotations/sub/b.jpg",
    ]
    found, _ = index.find("data/coco/annotations/sub/b.jpg")
    assert found is not None and found.item_id == ties.items[2].item_id


def test_an_image_a_configured_source_holds_is_tied_to_that_item_not_linked() -> None:
    ingested = Item("i-src", "shapes/a.jpg", "shapes/a.jpg", 100, 50, "inbox")
    ties = tie_images(
        [image(1, "a.jpg", 100, 50), image(2, "b.jpg")],
        ItemIndex([ingested]),
        spec(link=True),
        batch="linked_000001",
    )

    assert ties.items[1] is ingested
    assert (ties.matched, ties.linked) == (1, 1)


def test_linking_again_adds_only_what_changed() -> None:
    index = ItemIndex([])
    first = tie_images([image(1, "a.jpg"), image(2, "b.jpg")], index, spec(link=True), batch="b1")
    again = tie_images(
        [image(1, "a.jpg"), image(2, "b.jpg", 1024, 768)], index, spec(link=True), batch="b2"
    )

    assert (again.matched, again.linked, again.resized) == (1, 0, 1)
    assert [(r["key"], r["width"], r["batch"]) for r in again.rows.take().to_pylist()] == [
        ("data/coco/annotations/b.jpg", 1024, "b2")
    ]
    assert again.items[2].item_id == first.items[2].item_id  # the same item, a newer row
    found, _ = index.find("data/coco/annotations/b.jpg")
    assert found is not None and found.width == 1024


def test_the_same_file_name_in_two_folders_is_two_items() -> None:
    index = ItemIndex([])
    one = tie_images([image(1, "img.jpg")], index, spec("/a/gt.json", link=True), batch="b1")
    two = tie_images([image(1, "img.jpg")], index, spec("/b/gt.json", link=True), batch="b2")

    assert one.items[1].item_id != two.items[1].item_id
    assert (one.linked, two.linked) == (1, 1)
    found, why = index.find("img.jpg")  # a bare name now names two items: neither
    assert found is None and "2 items have the reference id 'img.jpg'" in why


def test_a_file_that_names_linked_items_by_their_keys_ties_to_them() -> None:
    index = ItemIndex([])
    first = tie_images([image(1, "a.jpg")], index, spec("/a/gt.json", link=True), batch="b1")
    exported = image(7, "a/a.jpg")  # an export of the lake names the item by its key
    again = tie_images([exported], index, spec("/out/annotations.json", link=True), batch="b2")

    assert again.items[7] is first.items[1] and again.rows.count == 0


def test_an_import_that_does_not_link_counts_the_images_no_item_answers_to() -> None:
    ingested = Item("i-src", "shapes/a.jpg", None, 100, 50, "inbox")
    ties = tie_images(
        [image(1, "a.jpg"), image(2, "b.jpg")], ItemIndex([ingested]), spec(), batch=None
    )

    assert ties.items == {1: ingested} and ties.rows.count == 0
    assert ties.summary()["images_unmatched"] == 1


def test_ties_kept_by_an_earlier_import_reach_only_current_items() -> None:
    index = ItemIndex([Item("i1", "a.jpg", None, 1, 1, "inbox")])
    ties = Ties.of_ids({1: "i1", 2: "gone"}, index)

    assert {k: v.item_id for k, v in ties.items.items()} == {1: "i1"}


def test_linked_partitions_number_on_from_the_committed_ones() -> None:
    assert next_linked_batch([]) == "linked_000001"
    committed = ["inbox_000009", "linked_000002", "linked_x_000007", "linked_000001"]
    assert next_linked_batch(committed) == "linked_000003"
