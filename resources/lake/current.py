"""The current view of a table, streamed: the latest committed row per ``item_id`` (DESIGN §1).

Two passes over the partitions' files, each fetched in parallel:

1. the ``item_id`` column alone, to find the winning row of every item (later partitions win,
   and within a partition the later row), which needs only that small column in memory;
2. the asked-for columns, file by file, keeping the winning rows, handed out in chunks of about
   ``chunk_rows``: memory holds a few files and one chunk, never the table.

Row order is the order of the winning rows: partitions in the order given, then rows in file
order, so the chunks put together equal what a whole-table read and group-by would give.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from resources.errors import LakeError

if TYPE_CHECKING:
    from resources.lake.tables import Commit, Lake

CHUNK_ROWS = 65_536
#: Files fetched at once (object stores answer many requests in parallel; a disk does not mind).
FETCHES = 8

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class TableFile:
    """One data file of a committed partition."""

    partition: str
    path: str  # relative to the partition's folder, as the marker lists it
    commit: Commit


def each_in_parallel(items: Sequence[T], work: Callable[[T], R], workers: int) -> list[R]:
    """``[work(i) for i in items]`` with ``workers`` at a time, results in order."""
    if len(items) <= 1 or workers <= 1:
        return [work(i) for i in items]
    with ThreadPoolExecutor(min(workers, len(items))) as pool:
        return list(pool.map(work, items))


def compact_ids(ids: pa.Array | pa.ChunkedArray) -> np.ndarray | pa.Array:
    """A file's ids as fixed-width bytes in numpy where they all have one width (the 32 hex
    digits of item ids): a third of Arrow's memory and no hash table to resolve them."""
    array = ids.combine_chunks() if isinstance(ids, pa.ChunkedArray) else ids
    array = array.cast(pa.large_string())
    if not len(array) or array.null_count:
        return array
    low, high = (v.as_py() for v in pc.min_max(pc.binary_length(array)).values())
    if low != high or not low:
        return array
    _, offsets, data = array.buffers()
    start = int(np.frombuffer(offsets, dtype=np.int64)[array.offset])
    return np.frombuffer(data, dtype=f"S{low}", count=len(array), offset=start).copy()


def winning_rows(id_columns: Sequence[np.ndarray | pa.Array]) -> list[np.ndarray]:
    """For each file's ids (from :func:`compact_ids`, in precedence order), the sorted indices
    of the rows that are the latest of their item across all files."""
    lengths = [len(ids) for ids in id_columns]
    offsets = np.concatenate([[0], np.cumsum(lengths, dtype=np.int64)])
    count = int(offsets[-1])
    if count == 0:
        return [np.empty(0, dtype=np.int64) for _ in id_columns]
    widths = {c.dtype.itemsize for c in id_columns if isinstance(c, np.ndarray) and len(c)}
    if len(widths) == 1 and all(isinstance(c, np.ndarray) or not len(c) for c in id_columns):
        fixed = np.concatenate([c for c in id_columns if len(c)])
        _, first_from_end = np.unique(fixed[::-1], return_index=True)
        last = count - 1 - first_from_end
    else:
        ids = pa.concat_arrays(
            [
                pa.array(c.tolist(), type=pa.large_binary()).cast(pa.large_string())
                if isinstance(c, np.ndarray)
                else c.cast(pa.large_string())
                for c in id_columns
            ]
        )
        order = pa.array(np.arange(count, dtype=np.int64))
        last = (
            pa.table({"item_id": ids, "__order": order})
            .group_by("item_id", use_threads=False)
            .aggregate([("__order", "max")])
            .column("__order_max")
            .to_numpy()
        )
    winners = np.sort(np.asarray(last, dtype=np.int64))
    bounds = np.searchsorted(winners, offsets)
    return [winners[bounds[i] : bounds[i + 1]] - offsets[i] for i in range(len(id_columns))]


def iter_current(
    lake: Lake,
    asset: str,
    commits: Sequence[tuple[str, Commit]],
    *,
    columns: Sequence[str] | None = None,
    filter: pc.Expression | None = None,
    chunk_rows: int = CHUNK_ROWS,
    fetches: int = FETCHES,
) -> Iterator[pa.Table]:
    """The current view of ``asset`` over ``commits`` (later ones win), in chunks. ``filter``
    is applied to the winning rows (so an item whose latest row fails it is left out, never
    replaced by an older row) and may name only columns that are read."""
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be at least 1, not {chunk_rows}")
    files = [TableFile(p, f["path"], c) for p, c in commits for f in c.files]
    ids = each_in_parallel(
        files, lambda f: compact_ids(lake.read_file(asset, f, ["item_id"]).column(0)), fetches
    )
    wanted = [(f, rows) for f, rows in zip(files, winning_rows(ids), strict=True) if len(rows)]
    del ids

    def load(item: tuple[TableFile, np.ndarray]) -> pa.Table:
        file, rows = item
        table = lake.read_file(asset, file, columns).take(pa.array(rows))
        if filter is None:
            return table
        try:
            return table.filter(filter)
        except (pa.ArrowInvalid, KeyError) as exc:
            raise LakeError(
                f"{asset}: the current view's filter {filter} names a column that is not read "
                f"({exc}); add that column to columns="
            ) from exc

    buffered: list[pa.Table] = []
    count = 0
    for table in _in_order(wanted, load, fetches):
        if not table.num_rows:
            continue
        buffered.append(table)
        count += table.num_rows
        while count >= chunk_rows:
            whole = pa.concat_tables(buffered)
            yield whole.slice(0, chunk_rows).combine_chunks()
            rest = whole.slice(chunk_rows)
            buffered, count = ([rest] if rest.num_rows else []), rest.num_rows
    if count:
        yield pa.concat_tables(buffered).combine_chunks()


def _in_order(items: Sequence[T], work: Callable[[T], R], ahead: int) -> Iterator[R]:
    """``work`` over ``items`` with up to ``ahead`` running at once, results in order."""
    if not items:
        return
    with ThreadPoolExecutor(max(1, min(ahead, len(items)))) as pool:
        queue: deque[Future[R]] = deque()
        upcoming = iter(items)
        for item in upcoming:
            queue.append(pool.submit(work, item))
            if len(queue) >= ahead:
                break
        while queue:
            result = queue.popleft().result()
            for item in upcoming:
                queue.append(pool.submit(work, item))
                break
            yield result
