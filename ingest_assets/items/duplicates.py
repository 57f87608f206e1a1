"""Duplicate items: exact (same sha256) and near (perceptual hashes within a Hamming distance).

Near duplicates are found without comparing every pair: a 64-bit hash is cut into
``max_distance + 1`` bands, and two hashes within ``max_distance`` bits of each other agree
exactly on at least one band (pigeonhole), so only items sharing a band value are compared.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

HASH_BITS = 64
#: A band value shared by more items than this is too common to say anything (blank images);
#: those items are compared with the first ones in the band only.
MAX_BAND_GROUP = 256


@dataclass(frozen=True)
class HashedItem:
    item_id: str
    key: str
    sha256: str
    phash: str | None  # 16 hex digits, or None when the image was not decoded


@dataclass(frozen=True)
class Duplicate:
    """``item`` duplicates ``original``, an item seen before it (earlier in the input)."""

    item: HashedItem
    original: HashedItem
    kind: Literal["exact", "near"]
    distance: int


def hamming(a: int, b: int) -> int:
    return (a ^ b).bit_count()


def _bands(max_distance: int) -> list[tuple[int, int]]:
    count = max_distance + 1
    edges = [round(i * HASH_BITS / count) for i in range(count + 1)]
    return [(edges[i], edges[i + 1] - edges[i]) for i in range(count)]


def find_duplicates(
    items: Sequence[HashedItem], *, max_distance: int, new_from: int = 0
) -> list[Duplicate]:
    """Duplicates among ``items[new_from:]``, each matched to the earliest item (anywhere in
    ``items``) it duplicates. Items before ``new_from`` are only matched against (earlier
    batches). ``max_distance`` 0 finds exact duplicates and identical perceptual hashes."""
    if not 0 <= max_distance < HASH_BITS // 4:
        raise ValueError(f"max_distance must be between 0 and {HASH_BITS // 4 - 1}")
    found: dict[int, Duplicate] = {}
    first_by_sha: dict[str, int] = {}
    for index, item in enumerate(items):
        earliest = first_by_sha.setdefault(item.sha256, index)
        if earliest != index and index >= new_from:
            found[index] = Duplicate(item, items[earliest], "exact", 0)
    hashes = {i: int(item.phash, 16) for i, item in enumerate(items) if item.phash}
    bands = _bands(max_distance)
    best: dict[int, tuple[int, int]] = {}  # new index -> (distance, original index)
    for shift, width in bands:
        mask = (1 << width) - 1
        groups: dict[int, list[int]] = defaultdict(list)
        for index, value in hashes.items():
            group = groups[(value >> shift) & mask]
            if len(group) < MAX_BAND_GROUP or index >= new_from:
                group.append(index)
        for group in groups.values():
            _compare(group, hashes, max_distance, new_from, best)
    for index, (distance, original) in best.items():
        if index not in found and items[original].sha256 != items[index].sha256:
            found[index] = Duplicate(items[index], items[original], "near", distance)
    return [found[i] for i in sorted(found)]


def _compare(
    group: list[int],
    hashes: dict[int, int],
    max_distance: int,
    new_from: int,
    best: dict[int, tuple[int, int]],
) -> None:
    for position, index in enumerate(group):
        if index < new_from:
            continue
        for earlier in group[: min(position, MAX_BAND_GROUP)]:
            distance = hamming(hashes[index], hashes[earlier])
            if distance <= max_distance and (distance, earlier) < best.get(index, (99, 0)):
                best[index] = (distance, earlier)


def duplicate_counts(duplicates: Iterable[Duplicate]) -> dict[str, int]:
    counts = {"exact": 0, "near": 0}
    for duplicate in duplicates:
        counts[duplicate.kind] += 1
    return counts
