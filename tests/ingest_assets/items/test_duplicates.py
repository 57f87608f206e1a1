"""Exact and near duplicates, checked against a brute-force comparison of every pair."""

from __future__ import annotations

import random

import pytest

from ingest_assets.items.duplicates import HashedItem, find_duplicates, hamming


def item(i: int, phash: int | None, sha: str | None = None) -> HashedItem:
    return HashedItem(
        f"id{i}", f"k{i}", sha or f"sha{i}", None if phash is None else f"{phash:016x}"
    )


def brute_force(
    items: list[HashedItem], max_distance: int, new_from: int
) -> dict[str, tuple[str, str]]:
    out: dict[str, tuple[str, str]] = {}
    for i in range(new_from, len(items)):
        exact = next((j for j in range(i) if items[j].sha256 == items[i].sha256), None)
        if exact is not None:
            out[items[i].item_id] = ("exact", items[exact].item_id)
            continue
        if items[i].phash is None:
            continue
        candidates = [
            (hamming(int(items[i].phash, 16), int(items[j].phash, 16)), j)
            for j in range(len(items))
            if j != i and (j < i or j < new_from) and items[j].phash
        ]
        candidates = [(d, j) for d, j in candidates if d <= max_distance and j < i]
        if candidates:
            out[items[i].item_id] = ("near", items[min(candidates)[1]].item_id)
    return out


@pytest.mark.parametrize("max_distance", [0, 2, 4, 8])
def test_matches_brute_force_on_random_hashes_with_planted_duplicates(max_distance: int) -> None:
    rng = random.Random(max_distance)
    items = [item(i, rng.getrandbits(64)) for i in range(400)]
    for n in range(400, 520):
        base = int(items[rng.randrange(len(items))].phash or "0", 16)
        for _ in range(rng.randrange(0, 7)):
            base ^= 1 << rng.randrange(64)
        items.append(item(n, base))
    items.append(item(999, None, sha=items[3].sha256))  # an exact copy not decoded

    found = find_duplicates(items, max_distance=max_distance, new_from=100)

    assert {d.item.item_id: (d.kind, d.original.item_id) for d in found} == brute_force(
        items, max_distance, 100
    )
    assert all(d.distance <= max_distance for d in found)


def test_exact_duplicates_point_at_the_first_copy() -> None:
    items = [item(0, 1, "same"), item(1, 1, "same"), item(2, 1, "same")]
    found = find_duplicates(items, max_distance=4)
    assert [(d.item.item_id, d.original.item_id, d.kind) for d in found] == [
        ("id1", "id0", "exact"),
        ("id2", "id0", "exact"),
    ]


def test_earlier_items_are_matched_against_but_not_reported() -> None:
    items = [item(0, 0b1111), item(1, 0b1111 ^ 0b1)]
    assert find_duplicates(items, max_distance=2, new_from=2) == []
    (near,) = find_duplicates(items, max_distance=2, new_from=1)
    assert (near.item.item_id, near.original.item_id, near.kind, near.distance) == (
        "id1",
        "id0",
        "near",
        1,
    )


def test_many_identical_hashes_stay_fast_and_complete() -> None:
    items = [item(i, 0) for i in range(3000)]  # e.g. blank images: one hash, many files
    found = find_duplicates(items, max_distance=4)
    assert len(found) == 2999 and {d.original.item_id for d in found} == {"id0"}


def test_distance_out_of_range_is_refused() -> None:
    with pytest.raises(ValueError, match="max_distance must be between 0 and 15"):
        find_duplicates([], max_distance=16)
