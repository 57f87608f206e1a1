"""The datapool's index: the latest version per key, sorted, with an overlay merged in."""

from __future__ import annotations

import random

import numpy as np
import pyarrow as pa
import pytest

from resources.lake import latest_versions
from resources.lake.latest_versions import LatestVersions, token_hash


def add(index: LatestVersions, seq: int, versions: dict[str, str | None]) -> None:
    """Versions claimed by batch ``seq``: key -> change token (None: a tombstone)."""
    index.add(
        list(versions),
        [token_hash(t) for t in versions.values()],
        seq,
        [t is None for t in versions.values()],
    )


def latest(index: LatestVersions) -> dict[str, tuple[int, int, bool]]:
    return {key: (token, seq, deleted) for key, token, seq, deleted in index.entries()}


@pytest.fixture
def small_overlay(monkeypatch: pytest.MonkeyPatch) -> None:
    """An overlay merged every few entries, so that tests cross compactions."""
    monkeypatch.setattr(latest_versions, "OVERLAY_MIN_ENTRIES", 4)


def test_a_later_version_wins_and_a_tombstone_is_a_version(small_overlay: None) -> None:
    index = LatestVersions()
    add(index, 1, {"a.jpg": "v1", "b.jpg": "v1", "c.jpg": "v1"})
    add(index, 2, {"a.jpg": "v2"})
    add(index, 3, {"b.jpg": None})
    add(index, 4, {"a.jpg": "v1"})  # rewritten back to its first content

    assert index.get("a.jpg") == (token_hash("v1"), 4, False)
    assert index.get("b.jpg") == (0, 3, True)
    assert index.get("c.jpg") == (token_hash("v1"), 1, False)
    assert index.get("d.jpg") is None
    assert len(index) == 3


def test_entries_come_in_key_order_between_the_bounds(small_overlay: None) -> None:
    index = LatestVersions()
    keys = [f"{folder}/{i:03d}.jpg" for folder in ("x", "a", "m") for i in range(7)]
    random.Random(3).shuffle(keys)
    for seq, start in enumerate(range(0, len(keys), 5), 1):
        add(index, seq, dict.fromkeys(keys[start : start + 5], "t"))

    assert [e[0] for e in index.entries()] == sorted(keys)
    assert [e[0] for e in index.entries("a/005.jpg", "m/001.jpg")] == [
        "a/006.jpg",
        "m/000.jpg",
        "m/001.jpg",
    ]
    assert [e[0] for e in index.entries("x/005.jpg")] == ["x/006.jpg"]
    assert list(index.entries("z")) == []


def test_order_is_the_order_stores_list_in() -> None:
    """Code point order, which is UTF-8 byte order (S3, GCS), whatever the script."""
    keys = ["a-b.jpg", "a/b.jpg", "a.b.jpg", "Zebra.jpg", "zebra.jpg", "é.jpg", "日本.jpg", "e.jpg"]
    index = LatestVersions()
    add(index, 1, dict.fromkeys(keys, "t"))
    index.compact()

    assert [e[0] for e in index.entries()] == sorted(keys)
    assert sorted(keys) == sorted(keys, key=lambda k: k.encode("utf-8"))


def test_overlay_and_sorted_part_read_as_one(small_overlay: None) -> None:
    """Whatever was merged and whatever still sits in the overlay, readers see the latest."""
    rng = random.Random(11)
    index = LatestVersions()
    expected: dict[str, tuple[int, int, bool]] = {}
    for seq in range(1, 60):
        versions: dict[str, str | None] = {}
        for _ in range(rng.randrange(1, 4)):
            key = f"k{rng.randrange(40):02d}.jpg"
            versions[key] = None if rng.random() < 0.2 else f"t{rng.randrange(3)}"
        add(index, seq, versions)
        for key, token in versions.items():
            expected[key] = (token_hash(token), seq, token is None)
        assert latest(index) == dict(sorted(expected.items()))
        assert all(index.get(k) == v for k, v in expected.items())


def test_a_big_manifest_is_merged_straight_in(small_overlay: None) -> None:
    index = LatestVersions()
    add(index, 1, {"b.jpg": "old", "c.jpg": "old"})
    keys = [f"{i:05d}.jpg" for i in range(100)] + ["b.jpg"]
    index.merge(
        pa.array(keys),
        np.array([token_hash("new")] * len(keys), dtype=np.int64),
        np.full(len(keys), 2, dtype=np.int32),
        np.zeros(len(keys), dtype=np.bool_),
    )

    assert index.get("b.jpg") == (token_hash("new"), 2, False)
    assert index.get("c.jpg") == (token_hash("old"), 1, False)
    assert len(index) == 102


def test_what_is_added_while_entries_are_walked_does_not_show(small_overlay: None) -> None:
    index = LatestVersions()
    add(index, 1, {"a.jpg": "t", "b.jpg": "t", "c.jpg": "t"})
    walk = index.entries()
    first = next(walk)
    for seq in range(2, 12):  # enough to merge the overlay mid-walk
        add(index, seq, {f"n{seq:02d}.jpg": "t", "c.jpg": None})

    assert [first[0], *(e[0] for e in walk)] == ["a.jpg", "b.jpg", "c.jpg"]
    assert index.get("c.jpg") == (0, 11, True)


def test_the_index_holds_little_more_than_its_keys() -> None:
    index = LatestVersions()
    keys = [f"cams/front/2025/{i // 1000:03d}/img_{i:07d}.jpg" for i in range(20_000)]
    add(index, 1, dict.fromkeys(keys, '"0123456789abcdef0123456789abcdef"'))
    index.compact()

    key_bytes = sum(len(k) for k in keys)
    assert index.nbytes <= key_bytes + 32 * len(keys)
