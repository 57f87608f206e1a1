"""The streaming current view: the same rows as a whole-table group-by on crafted histories
(rewrites, tombstones, empty partitions, partitions still being written), in any chunk size,
and a peak memory that stays flat as partitions grow."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from resources.errors import LakeError
from resources.lake.tables import Lake
from resources.stores.local import LocalFolderStore

ASSET = "dataset_items"
SCHEMA = pa.schema([("item_id", pa.string()), ("status", pa.string()), ("note", pa.string())])
REPO_ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def lake(tmp_path: Path) -> Lake:
    return Lake(LocalFolderStore(tmp_path))


def commit(lake: Lake, partition: str, rows: list[tuple[str, str]], chunk: int = 2) -> None:
    """Commit ``(item_id, status)`` rows in files of ``chunk`` rows."""
    with lake.writer(ASSET, partition, fingerprint="fp", run_id=partition) as writer:
        for start in range(0, len(rows), chunk):
            part = rows[start : start + chunk]
            table = pa.table(
                {
                    "item_id": [i for i, _ in part],
                    "status": [s for _, s in part],
                    "note": [f"{i}@{partition}" for i, _ in part],
                },
                schema=SCHEMA,
            )
            writer.write_chunk(table, input_end=start + len(part))
        writer.commit(SCHEMA)


def naive_current(history: list[tuple[str, list[tuple[str, str]]]]) -> list[dict[str, Any]]:
    """What the current view must be: the last row per item, in the order of those rows."""
    last: dict[str, tuple[int, dict[str, Any]]] = {}
    order = 0
    for partition, rows in history:
        for item, status in rows:
            last[item] = (order, {"item_id": item, "status": status, "note": f"{item}@{partition}"})
            order += 1
    return [row for _, row in sorted(last.values(), key=lambda pair: pair[0])]


HISTORY = [
    ("src_000001", [("a", "ok"), ("b", "ok"), ("c", "corrupt"), ("d", "ok"), ("e", "ok")]),
    ("src_000002", [("b", "ok"), ("f", "ok"), ("b", "ok")]),  # b rewritten twice in one batch
    ("src_000003", []),  # a batch with no rows
    ("src_000004", [("a", "missing"), ("c", "ok"), ("g", "ok")]),  # a tombstone, a repaired file
    ("src_000005", [("a", "ok"), ("d", "missing")]),  # a comes back, d is deleted
]


@pytest.mark.parametrize("chunk_rows", [1, 3, 1000])
def test_iter_current_equals_the_last_row_per_item_on_a_crafted_history(
    lake: Lake, chunk_rows: int
) -> None:
    for partition, rows in HISTORY:
        commit(lake, partition, rows)
    with lake.writer(ASSET, "src_000006", fingerprint="fp", run_id="crashed") as writer:
        writer.write_chunk(
            pa.table({"item_id": ["a"], "status": ["ok"], "note": ["x"]}), input_end=1
        )

    chunks = list(lake.iter_current(ASSET, chunk_rows=chunk_rows))

    assert all(c.num_rows <= chunk_rows for c in chunks)
    assert pa.concat_tables(chunks).to_pylist() == naive_current(HISTORY)
    assert lake.read_current(ASSET).to_pylist() == naive_current(HISTORY)


def test_a_filter_keeps_winning_rows_and_never_brings_back_an_older_one(lake: Lake) -> None:
    for partition, rows in HISTORY:
        commit(lake, partition, rows)

    ok = pc.field("status") == "ok"
    current = lake.read_current(ASSET, columns=["item_id", "status"], filter=ok)

    expected = [r for r in naive_current(HISTORY) if r["status"] == "ok"]
    assert current.column("item_id").to_pylist() == [r["item_id"] for r in expected]
    assert "d" not in current.column("item_id").to_pylist()  # deleted last: no older row wins


def test_columns_are_read_alone_and_a_filter_on_an_unread_column_is_refused(lake: Lake) -> None:
    for partition, rows in HISTORY:
        commit(lake, partition, rows)

    notes = lake.read_current(ASSET, columns=["note"])

    assert notes.column_names == ["note"]
    assert notes.column("note").to_pylist() == [r["note"] for r in naive_current(HISTORY)]
    with pytest.raises(LakeError, match="status"):
        lake.read_current(ASSET, columns=["note"], filter=pc.field("status") == "ok")


def test_partitions_given_in_order_decide_which_row_wins(lake: Lake) -> None:
    commit(lake, "b1", [("a", "ok")])
    commit(lake, "b2", [("a", "corrupt")])

    assert lake.read_current(ASSET, ["b2", "b1"]).column("note").to_pylist() == ["a@b1"]
    assert lake.read_current(ASSET, ["b1", "b2", "b9"]).column("note").to_pylist() == ["a@b2"]
    assert list(lake.iter_current(ASSET, ["b9"])) == []


PEAK_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import pyarrow as pa
    pool = pa.default_memory_pool()  # its peak covers this process alone: a fresh one
    from resources.lake.tables import Lake
    from resources.stores.local import LocalFolderStore
    lake = Lake(LocalFolderStore(sys.argv[1]))
    rows = 0
    if sys.argv[2] == "stream":
        for chunk in lake.iter_current("dataset_items", chunk_rows=500):
            rows += chunk.num_rows
    else:
        rows = lake.read_current("dataset_items").num_rows
    print(json.dumps({"rows": rows, "peak": pool.max_memory()}))
    """
)


def peak_memory(root: Path, how: str) -> tuple[int, int]:
    """(rows read, peak bytes of Arrow memory) for one whole read of the current view, measured
    in a fresh process."""
    out = subprocess.run(
        [sys.executable, "-c", PEAK_SCRIPT, str(root), how],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    answer = json.loads(out)
    return answer["rows"], answer["peak"]


def wide_lake(root: Path, partitions: int) -> None:
    lake = Lake(LocalFolderStore(root))
    schema = pa.schema([("item_id", pa.string()), ("payload", pa.binary())])
    for p in range(partitions):
        with lake.writer(ASSET, f"src_{p:06d}", fingerprint="fp", run_id=str(p)) as writer:
            for start in range(0, 1000, 250):
                ids = [f"{p}-{i}" for i in range(start, start + 250)]
                payloads = [bytes([i % 251]) * 4096 for i in range(start, start + 250)]
                table = pa.table({"item_id": ids, "payload": payloads}, schema=schema)
                writer.write_chunk(table, input_end=start + 250)
            writer.commit(schema)


def test_peak_memory_of_the_stream_stays_flat_as_partitions_grow(tmp_path: Path) -> None:
    wide_lake(tmp_path / "small", 10)
    wide_lake(tmp_path / "large", 40)

    small_rows, small_peak = peak_memory(tmp_path / "small", "stream")
    large_rows, large_peak = peak_memory(tmp_path / "large", "stream")
    _, whole_peak = peak_memory(tmp_path / "large", "whole")

    assert (small_rows, large_rows) == (10_000, 40_000)
    assert large_peak < 1.5 * small_peak  # 4x the data, about the same memory
    assert whole_peak > 3 * small_peak  # a whole-table read grows with the data


@pytest.mark.parametrize(
    "files",
    [
        [["aa", "bb"], ["bb", "cc"], ["aa"]],  # one width: compared as fixed-width bytes
        [["a", "bb"], ["bb", "ccc"], ["a"]],  # widths differ between files
        [["a", "bb"], [], ["bb", "a"]],  # an empty file, widths differ inside one
    ],
)
def test_the_winning_row_of_each_item_is_its_last(files: list[list[str]]) -> None:
    from resources.lake.current import compact_ids, winning_rows

    winners = winning_rows([compact_ids(pa.array(f, pa.string())) for f in files])

    last: dict[str, tuple[int, int]] = {}
    for f, ids in enumerate(files):
        for row, item in enumerate(ids):
            last[item] = (f, row)
    expected = [sorted(r for (g, r) in last.values() if g == f) for f in range(len(files))]
    assert [w.tolist() for w in winners] == expected
