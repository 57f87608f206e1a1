"""The latest claimed version of every key of a source, sorted by key and held compactly.

One entry per key: a 64-bit hash of the version's change token, the sequence number of the
batch whose manifest claimed it, and whether that version is a deletion (a tombstone). The keys
live in one Arrow string array and the rest in NumPy arrays, all sorted by key (the order in
which every store lists: strings compared by code point, which is UTF-8 byte order), so the
claim can walk a listing page and the index side by side.

Entries added since the last compaction sit in a small overlay (a dict and a sorted list of its
keys); when the overlay outgrows a share of the sorted part, both are merged into a new sorted
part, as a log-structured merge tree does. Later additions win per key.
"""

from __future__ import annotations

import bisect
import sys
from collections.abc import Iterator, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

#: (key, token hash, batch seq, deleted)
Entry = tuple[str, int, int, bool]
_Value = tuple[int, int, bool]

#: The overlay is merged into the sorted part once it holds this many entries, or 1/32 of the
#: sorted part if that is more (so compaction costs stay proportional to what was added).
OVERLAY_MIN_ENTRIES = 16_384
OVERLAY_SHARE = 32
#: Entries turned into Python objects at a time when a range is walked.
_CHUNK = 4_096


def token_hash(token: str | None) -> int:
    """A 64-bit hash of a change token (0 for none). The index is never stored, only rebuilt
    from the manifests in each process, so Python's own string hash serves: it is the same for
    the same text for the life of the process."""
    return 0 if token is None else hash(token)


def _empty_keys() -> pa.LargeStringArray:
    return pa.array([], type=pa.large_string())


class LatestVersions:
    """Key -> latest (token hash, batch seq, deleted), sorted by key."""

    def __init__(self) -> None:
        self._keys: pa.LargeStringArray = _empty_keys()
        self._tokens = np.empty(0, dtype=np.int64)
        self._seqs = np.empty(0, dtype=np.int32)
        self._deleted = np.empty(0, dtype=np.bool_)
        self._overlay: dict[str, _Value] = {}
        self._overlay_keys: list[str] = []  # sorted

    # -- reading -----------------------------------------------------------------------------
    def __len__(self) -> int:
        """How many keys have a version (a tombstone included)."""
        return len(self._keys) + sum(1 for key in self._overlay if self._base_index(key) is None)

    @property
    def size_hint(self) -> int:
        """At least the number of keys, at most that plus the overlay's (cheap to tell)."""
        return len(self._keys) + len(self._overlay)

    def get(self, key: str) -> _Value | None:
        """(token hash, batch seq, deleted) of the key's latest version, or None."""
        found = self._overlay.get(key)
        if found is not None:
            return found
        index = self._base_index(key)
        if index is None:
            return None
        return int(self._tokens[index]), int(self._seqs[index]), bool(self._deleted[index])

    def entries(self, after: str = "", upto: str | None = None) -> Iterator[Entry]:
        """The entries whose key sorts after ``after`` and not after ``upto`` (None: to the
        end), in key order. What is added while the iterator is used does not show in it."""
        start = self._bisect_right(after)
        stop = len(self._keys) if upto is None else self._bisect_right(upto)
        low = bisect.bisect_right(self._overlay_keys, after)
        high = (
            len(self._overlay_keys)
            if upto is None
            else bisect.bisect_right(self._overlay_keys, upto)
        )
        base = _walk(self._keys, self._tokens, self._seqs, self._deleted, start, stop)
        if low >= high:
            return base
        overlay = [(k, *self._overlay[k]) for k in self._overlay_keys[low:high]]
        return _merged(base, iter(overlay))

    @property
    def nbytes(self) -> int:
        """Bytes held: the sorted arrays' buffers and the overlay's Python objects."""
        held = (
            int(self._keys.nbytes) + self._tokens.nbytes + self._seqs.nbytes + self._deleted.nbytes
        )
        if self._overlay:
            held += sys.getsizeof(self._overlay) + sys.getsizeof(self._overlay_keys)
            for key, value in self._overlay.items():
                held += sys.getsizeof(key) + sys.getsizeof(value)
                held += sum(sys.getsizeof(v) for v in value[:2])
        return held

    # -- writing -----------------------------------------------------------------------------
    def add(
        self, keys: Sequence[str], tokens: Sequence[int], seq: int, deleted: Sequence[bool]
    ) -> None:
        """Record versions claimed by batch ``seq`` (later calls win per key)."""
        if len(keys) > self.overlay_room:
            self.merge(
                pa.array(keys, type=pa.large_string()),
                np.asarray(tokens, dtype=np.int64),
                np.full(len(keys), seq, dtype=np.int32),
                np.asarray(deleted, dtype=np.bool_),
            )
            return
        for key, token, gone in zip(keys, tokens, deleted, strict=True):
            if key not in self._overlay:
                bisect.insort(self._overlay_keys, key)
            self._overlay[key] = (token, seq, gone)
        if len(self._overlay) >= self._overlay_limit():
            self.compact()

    def merge(
        self, keys: pa.Array, tokens: np.ndarray, seqs: np.ndarray, deleted: np.ndarray
    ) -> None:
        """Merge many versions at once (rows in claim order: later rows win per key)."""
        if self._overlay:
            held = self._take_overlay()
            keys = pa.concat_arrays([held[0], keys.cast(pa.large_string())])
            tokens = np.concatenate([held[1], tokens])
            seqs = np.concatenate([held[2], seqs])
            deleted = np.concatenate([held[3], deleted])
        self._merge_sorted(keys, tokens, seqs, deleted)

    def compact(self) -> None:
        """Merge the overlay into the sorted part."""
        if self._overlay:
            self._merge_sorted(*self._take_overlay())

    def _take_overlay(self) -> tuple[pa.Array, np.ndarray, np.ndarray, np.ndarray]:
        keys = self._overlay_keys
        values = [self._overlay[k] for k in keys]
        self._overlay, self._overlay_keys = {}, []
        count = len(values)
        return (
            pa.array(keys, type=pa.large_string()),
            np.fromiter((v[0] for v in values), dtype=np.int64, count=count),
            np.fromiter((v[1] for v in values), dtype=np.int32, count=count),
            np.fromiter((v[2] for v in values), dtype=np.bool_, count=count),
        )

    def _merge_sorted(
        self, keys: pa.Array, tokens: np.ndarray, seqs: np.ndarray, deleted: np.ndarray
    ) -> None:
        if not len(keys):
            return
        all_keys = pa.concat_arrays([self._keys, keys.cast(pa.large_string())])
        del keys  # each copy of the keys is let go as soon as the next is made
        # A stable sort keeps the sorted part before the new rows, and new rows in their
        # order, so the last row of each run of equal keys is the latest version.
        order = pc.sort_indices(all_keys).to_numpy()
        sorted_keys = all_keys.take(order)
        del all_keys
        last = np.ones(len(order), dtype=np.bool_)
        if len(order) > 1:
            last[:-1] = pc.not_equal(sorted_keys[:-1], sorted_keys[1:]).to_numpy(
                zero_copy_only=False
            )
        self._keys = sorted_keys if last.all() else sorted_keys.filter(pa.array(last))
        del sorted_keys
        picked = order[last]
        self._tokens = np.concatenate([self._tokens, tokens])[picked]
        self._seqs = np.concatenate([self._seqs, seqs])[picked]
        self._deleted = np.concatenate([self._deleted, deleted])[picked]

    def _overlay_limit(self) -> int:
        return max(OVERLAY_MIN_ENTRIES, len(self._keys) // OVERLAY_SHARE)

    @property
    def overlay_room(self) -> int:
        """How many more entries the overlay takes before it is merged."""
        return self._overlay_limit() - len(self._overlay)

    # -- the sorted part ---------------------------------------------------------------------
    def _bisect_right(self, key: str) -> int:
        """The index of the first key of the sorted part that sorts after ``key``."""
        low, high = 0, len(self._keys)
        keys = self._keys
        while low < high:
            middle = (low + high) // 2
            if key < keys[middle].as_py():
                high = middle
            else:
                low = middle + 1
        return low

    def _base_index(self, key: str) -> int | None:
        index = self._bisect_right(key) - 1
        if index >= 0 and self._keys[index].as_py() == key:
            return index
        return None


def _walk(
    keys: pa.LargeStringArray,
    tokens: np.ndarray,
    seqs: np.ndarray,
    deleted: np.ndarray,
    start: int,
    stop: int,
) -> Iterator[Entry]:
    for low in range(start, stop, _CHUNK):
        high = min(low + _CHUNK, stop)
        yield from zip(
            keys.slice(low, high - low).to_pylist(),
            tokens[low:high].tolist(),
            seqs[low:high].tolist(),
            deleted[low:high].tolist(),
            strict=True,
        )


def _merged(base: Iterator[Entry], overlay: Iterator[Entry]) -> Iterator[Entry]:
    """Two key-sorted streams as one; on equal keys the overlay's entry wins."""
    pending = next(overlay, None)
    for entry in base:
        while pending is not None and pending[0] < entry[0]:
            yield pending
            pending = next(overlay, None)
        if pending is not None and pending[0] == entry[0]:
            yield pending
            pending = next(overlay, None)
        else:
            yield entry
    while pending is not None:
        yield pending
        pending = next(overlay, None)
