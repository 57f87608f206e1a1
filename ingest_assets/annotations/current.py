"""The current annotations (or predictions): every row of every committed import. An import is
one file's whole set of records for its items (its origin), so the current view is per item and
origin: a new version of a file replaces its partition, and other files' rows stand beside it.
(Unlike items, rows are not resolved per ``item_id``: an item has many annotations.)"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import pyarrow as pa

from resources.lake.tables import Lake


def iter_annotations(
    lake: Lake, asset: str, columns: Sequence[str] | None = None
) -> Iterator[pa.Table]:
    """Each committed import's rows, one table per import, in natural partition order."""
    for partition in lake.committed_partitions(asset):
        yield lake.read_table(asset, partition, columns)


def read_annotations(lake: Lake, asset: str, columns: Sequence[str] | None = None) -> pa.Table:
    tables = list(iter_annotations(lake, asset, columns))
    if not tables:
        raise ValueError(f"no import of {asset} is committed yet")
    return pa.concat_tables(tables)
