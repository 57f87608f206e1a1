"""Duplicate items: exact (same sha256) and near (perceptual hashes within a Hamming distance).

Near duplicates are found without comparing every pair: a 64-bit hash is cut into
``max_distance + 1`` bands, and two hashes within ``max_distance`` bits of each other agree
exactly on at least one band (pigeonhole), so only items sharing a band value are compared.

The earlier items (every batch before the new one, possibly millions) are held as arrays and
matched with sorted searches, so the Python work grows with the new batch alone; the earlier
items cost a sort and a hash lookup in compiled code.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

HASH_BITS = 64
PHASH_DIGITS = HASH_BITS // 4
#: A band value shared by more items than this is too common to say anything (blank images):
#: an item is compared with the first ones in its band only.
MAX_BAND_GROUP = 256

_NIBBLE = np.full(256, 255, dtype=np.uint8)
for _value, _digit in enumerate("0123456789abcdef"):
    _NIBBLE[ord(_digit)] = _NIBBLE[ord(_digit.upper())] = _value


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


@dataclass(frozen=True)
class Match:
    """Item ``index`` duplicates item ``original`` (an earlier index) of the same input."""

    index: int
    original: int
    kind: Literal["exact", "near"]
    distance: int


@dataclass(frozen=True)
class Hashes:
    """The hashes of a sequence of items, as arrays: the input of :func:`match_duplicates`."""

    sha256: pa.Array
    phash: np.ndarray  # uint64; 0 where absent
    has_phash: np.ndarray  # bool

    def __len__(self) -> int:
        return len(self.sha256)

    @staticmethod
    def from_columns(
        sha256: pa.Array | pa.ChunkedArray, phash: pa.Array | pa.ChunkedArray
    ) -> Hashes:
        values, present = phash_values(phash)
        sha = sha256.combine_chunks() if isinstance(sha256, pa.ChunkedArray) else sha256
        return Hashes(sha.cast(pa.string()), values, present)

    @staticmethod
    def from_items(items: Sequence[HashedItem]) -> Hashes:
        return Hashes.from_columns(
            pa.array([i.sha256 for i in items], type=pa.string()),
            pa.array([i.phash for i in items], type=pa.string()),
        )

    @staticmethod
    def concat(parts: Sequence[Hashes]) -> Hashes:
        if not parts:
            return Hashes.from_items([])
        return Hashes(
            pa.concat_arrays([p.sha256 for p in parts]),
            np.concatenate([p.phash for p in parts]),
            np.concatenate([p.has_phash for p in parts]),
        )


def phash_values(column: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """Hex perceptual hashes (or nulls) as ``(uint64 values, present)``, parsed in bulk."""
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    array = array.cast(pa.large_string())
    count = len(array)
    values = np.zeros(count, dtype=np.uint64)
    lengths = pc.binary_length(array).fill_null(0).to_numpy(zero_copy_only=False)
    present = lengths == PHASH_DIGITS
    if (lengths[~present] != 0).any():
        raise ValueError(f"perceptual hashes must be {PHASH_DIGITS} hex digits or empty")
    if not present.any():
        return values, present
    _, offsets_buffer, data_buffer = array.buffers()
    offsets = np.frombuffer(offsets_buffer, dtype=np.int64)[array.offset : array.offset + count]
    data = np.frombuffer(data_buffer, dtype=np.uint8)
    nibbles = _NIBBLE[data[offsets[present][:, None] + np.arange(PHASH_DIGITS)]]
    if (nibbles == 255).any():
        raise ValueError("a perceptual hash holds a character that is not a hex digit")
    parsed = np.zeros(int(present.sum()), dtype=np.uint64)
    for digit in range(PHASH_DIGITS):
        parsed = (parsed << np.uint64(4)) | nibbles[:, digit].astype(np.uint64)
    values[present] = parsed
    return values, present


def hamming(a: int, b: int) -> int:
    return (a ^ b).bit_count()


def _bands(max_distance: int) -> list[tuple[int, int]]:
    count = max_distance + 1
    edges = [round(i * HASH_BITS / count) for i in range(count + 1)]
    return [(edges[i], edges[i + 1] - edges[i]) for i in range(count)]


def match_duplicates(hashes: Hashes, *, max_distance: int, new_from: int = 0) -> list[Match]:
    """Duplicates among items ``new_from:``, each matched to the earliest item it duplicates:
    exactly (same sha256), else nearly (the nearest perceptual hash within ``max_distance``
    bits, the earlier item on a tie). Items before ``new_from`` (earlier batches) are matched
    against, never reported. Sorted by index."""
    if not 0 <= max_distance < HASH_BITS // 4:
        raise ValueError(f"max_distance must be between 0 and {HASH_BITS // 4 - 1}")
    total = len(hashes)
    if new_from >= total:
        return []
    first = pc.index_in(hashes.sha256, value_set=hashes.sha256).to_numpy(zero_copy_only=False)
    found: dict[int, Match] = {}
    for index in range(new_from, total):
        if first[index] != index:
            found[index] = Match(index, int(first[index]), "exact", 0)
    near = _nearest(hashes, max_distance, new_from)
    for index, (distance, original) in near.items():
        if index not in found and first[original] != first[index]:
            found[index] = Match(index, original, "near", distance)
    return [found[i] for i in sorted(found)]


def _nearest(hashes: Hashes, max_distance: int, new_from: int) -> dict[int, tuple[int, int]]:
    """For each new item with a perceptual hash: (distance, earliest index) of its nearest
    earlier item within ``max_distance`` among the first items of each band group."""
    phash, has = hashes.phash, hashes.has_phash
    old = np.flatnonzero(has[:new_from])
    new = np.flatnonzero(has[new_from:]) + new_from
    best: dict[int, tuple[int, int]] = {}
    pairs: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    for shift, width in _bands(max_distance):
        mask = np.uint64((1 << width) - 1)
        band = (phash >> np.uint64(shift)) & mask
        # Earlier batches: a stable sort keeps each band group in input order.
        order = old[np.argsort(band[old], kind="stable")]
        sorted_band = band[order]
        low = np.searchsorted(sorted_band, band[new], side="left")
        high = np.searchsorted(sorted_band, band[new], side="right")
        kept = np.minimum(high - low, MAX_BAND_GROUP)
        if kept.sum():
            rows = np.repeat(np.arange(len(new)), kept)
            starts = np.repeat(low, kept)
            within = np.arange(len(rows)) - np.repeat(np.cumsum(kept) - kept, kept)
            originals = order[starts + within]
            items = new[rows]
            distance = np.bitwise_count(phash[items] ^ phash[originals]).astype(np.int64)
            close = distance <= max_distance
            pairs.append((items[close], distance[close], originals[close]))
        # The new batch among itself: after the group's earlier members, in input order.
        members: dict[int, list[int]] = defaultdict(list)
        for position, index in enumerate(new.tolist()):
            value = int(band[index])
            group = members[value]
            room = MAX_BAND_GROUP - int(kept[position])
            for earlier in group[: max(0, room)]:
                distance_ = hamming(int(phash[index]), int(phash[earlier]))
                if distance_ <= max_distance and (distance_, earlier) < best.get(index, (99, 0)):
                    best[index] = (distance_, earlier)
            group.append(index)
    for items, distances, originals in pairs:
        for index, distance_, original in zip(
            items.tolist(), distances.tolist(), originals.tolist(), strict=True
        ):
            if (distance_, original) < best.get(index, (99, 0)):
                best[index] = (distance_, original)
    return best


def find_duplicates(
    items: Sequence[HashedItem], *, max_distance: int, new_from: int = 0
) -> list[Duplicate]:
    """:func:`match_duplicates` over items given one by one."""
    matches = match_duplicates(
        Hashes.from_items(items), max_distance=max_distance, new_from=new_from
    )
    return [Duplicate(items[m.index], items[m.original], m.kind, m.distance) for m in matches]


def duplicate_counts(duplicates: Iterable[Duplicate | Match]) -> dict[str, int]:
    counts = {"exact": 0, "near": 0}
    for duplicate in duplicates:
        counts[duplicate.kind] += 1
    return counts
