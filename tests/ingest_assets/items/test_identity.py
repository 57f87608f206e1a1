"""Item identity (DESIGN §1): derived from (source, key[, frame]) only, stable across runs."""

from __future__ import annotations

import re
import subprocess
import sys

from ingest_assets.items.identity import item_id

HEX32 = re.compile(r"[0-9a-f]{32}")


def test_an_item_id_is_32_lowercase_hex_digits() -> None:
    assert HEX32.fullmatch(item_id("inbox", "cars/cars.01741.jpg"))
    assert HEX32.fullmatch(item_id("inbox", "cars/cars.01741.jpg", frame=7))


def test_the_same_object_always_gets_the_same_id() -> None:
    assert item_id("inbox", "cars/cars.01741.jpg") == item_id("inbox", "cars/cars.01741.jpg")


def test_the_id_does_not_change_between_releases() -> None:
    # Rows of later batches find their history by item_id: a changed formula would orphan
    # every item already in a lake. These values were computed once and must never change.
    assert item_id("inbox", "cars/cars.01741.jpg") == "75e9259f9b339a814eca7a5168f3bddf"
    assert item_id("inbox", "cars/cars.01741.jpg", 0) == "66926a44d6eec5bb297c6d1c6bedb022"


def test_the_id_is_the_same_in_another_process() -> None:
    # Python's str hash is salted per process; the item id must not depend on it.
    code = "from ingest_assets.items.identity import item_id; print(item_id('inbox', 'a/b.jpg'))"
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    ).stdout.strip()
    assert out == item_id("inbox", "a/b.jpg")


def test_different_keys_get_different_ids() -> None:
    keys = [f"cars/cars.{n:05d}.jpg" for n in range(2000)]
    assert len({item_id("inbox", k) for k in keys}) == len(keys)


def test_the_same_key_in_two_sources_is_two_items() -> None:
    assert item_id("inbox", "a.jpg") != item_id("archive", "a.jpg")


def test_source_and_key_cannot_be_confused_by_moving_the_boundary() -> None:
    # "ab" + "c" and "a" + "bc" must not collide: the parts are separated.
    assert item_id("ab", "c.jpg") != item_id("a", "bc.jpg")
    assert item_id("s", "a/b.jpg") != item_id("s_a", "b.jpg")


def test_each_frame_of_a_video_is_its_own_item() -> None:
    whole = item_id("inbox", "clips/walk.mp4")
    frames = [item_id("inbox", "clips/walk.mp4", frame=n) for n in range(5)]
    assert len(set(frames)) == 5
    assert whole not in frames


def test_frame_zero_is_not_the_whole_object() -> None:
    # ``frame=0`` is a real frame number, not "no frame".
    assert item_id("inbox", "clips/walk.mp4", 0) != item_id("inbox", "clips/walk.mp4")


def test_keys_with_spaces_and_unicode_have_ids() -> None:
    a = item_id("inbox", "café photos/naïve 1.jpg")
    assert HEX32.fullmatch(a)
    # Keys are compared as given: the decomposed spelling of "é" is another key.
    assert a != item_id("inbox", "cafe\u0301 photos/nai\u0308ve 1.jpg")
    assert a != item_id("inbox", "café photos/naïve 1.JPG")
