"""The datapool record: the latest claimed version per key, built from the batch manifests."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from resources.lake import datapool, latest_versions
from resources.lake.datapool import (
    DatapoolRecord,
    Tombstone,
    batch_key,
    datapool_prefix,
    manifest_bytes,
    manifest_key,
    read_manifest,
)
from resources.stores.base import ObjectInfo
from resources.stores.local import LocalFolderStore

WHEN = datetime(2026, 1, 1, tzinfo=UTC)


def obj(key: str, token: str) -> ObjectInfo:
    return ObjectInfo(key, 10, token, WHEN, "image/jpeg")


def write(lake: LocalFolderStore, seq: int, versions: list[ObjectInfo | Tombstone]) -> None:
    batch = batch_key("cams", seq)
    uris = [f"s3://bucket/{v.key}" for v in versions]
    lake.put(manifest_key(batch), manifest_bytes("cams", batch, versions, uris, "test"))


@pytest.fixture
def lake(tmp_path: Path) -> LocalFolderStore:
    return LocalFolderStore(tmp_path / "lake")


def fresh(lake: LocalFolderStore, *, process_all: bool = False) -> DatapoolRecord:
    record = DatapoolRecord(lake, "cams")
    record.refresh(process_all=process_all)
    return record


def test_the_latest_manifest_wins_per_key_even_back_to_an_earlier_version(
    lake: LocalFolderStore,
) -> None:
    write(lake, 1, [obj("a.jpg", "v1"), obj("b.jpg", "v1")])
    write(lake, 2, [obj("a.jpg", "v2")])
    write(lake, 3, [obj("a.jpg", "v1")])  # rewritten back to its first content
    write(lake, 4, [obj("b.jpg", "v2")])

    record = fresh(lake)

    assert record.is_claimed(obj("a.jpg", "v1")) and not record.is_claimed(obj("a.jpg", "v2"))
    assert record.is_claimed(obj("b.jpg", "v2")) and not record.is_claimed(obj("b.jpg", "v1"))
    assert (record.seq_of("a.jpg"), record.seq_of("b.jpg"), record.seq_of("c.jpg")) == (3, 4, 0)
    assert len(record) == 2 and record.next_seq() == 5


def test_a_tombstone_row_keeps_key_and_uri_and_makes_the_key_deleted(
    lake: LocalFolderStore,
) -> None:
    write(lake, 1, [obj("a.jpg", "v1"), obj("b.jpg", "v1")])
    write(lake, 2, [Tombstone("a.jpg", WHEN, seq=1)])

    record = fresh(lake)
    row = read_manifest(lake, "cams_000002").to_pylist()[0]

    assert not record.is_claimed(obj("a.jpg", "v1"))  # it comes back: claimed again
    assert record.latest("a.jpg") == (0, 2, True)
    assert (row["key"], row["uri"], row["deleted"]) == ("a.jpg", "s3://bucket/a.jpg", True)
    assert (row["size"], row["change_token"]) == (0, None)
    assert record.uris_claimed([Tombstone("b.jpg", WHEN, seq=1)]) == {"b.jpg": "s3://bucket/b.jpg"}


def test_manifests_written_before_tombstones_read_as_live_versions(
    lake: LocalFolderStore,
) -> None:
    old = pa.table(
        {"source": ["cams"], "key": ["a.jpg"], "uri": ["s3://b/a.jpg"], "change_token": ["v1"]}
    )
    sink = io.BytesIO()
    pq.write_table(old, sink)
    lake.put(manifest_key("cams_000001"), sink.getvalue())

    record = fresh(lake)

    assert record.is_claimed(obj("a.jpg", "v1"))
    assert read_manifest(lake, "cams_000001", ["key", "deleted"]).to_pylist() == [
        {"key": "a.jpg", "deleted": False}
    ]


def test_refresh_reads_only_new_manifests_and_a_big_backlog_in_groups(
    lake: LocalFolderStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(datapool, "_LOAD_ROWS", 3)
    monkeypatch.setattr(latest_versions, "OVERLAY_MIN_ENTRIES", 2)
    incremental = DatapoolRecord(lake, "cams")
    for seq in range(1, 8):
        write(lake, seq, [obj(f"{i}.jpg", f"t{seq}") for i in range(seq % 3, 6, 2)])
        incremental.refresh()
    record = fresh(lake)  # all seven at once, merged three rows or more at a time

    expected = {}
    for seq in range(1, 8):
        expected.update({f"{i}.jpg": seq for i in range(seq % 3, 6, 2)})
    assert {k: s for k, _, s, _ in record.entries()} == expected
    assert {k: s for k, _, s, _ in incremental.entries()} == expected


def test_process_all_counts_only_manifests_from_its_marker_on(lake: LocalFolderStore) -> None:
    write(lake, 1, [obj("a.jpg", "v1")])
    write(lake, 2, [obj("b.jpg", "v1")])

    everything = fresh(lake, process_all=True)
    marker = json.loads(lake.get(datapool_prefix("cams") + datapool.PROCESS_ALL_MARKER))
    write(lake, 3, [obj("a.jpg", "v1")])
    everything.refresh(process_all=True)

    assert marker == {"since_seq": 3}
    assert everything.is_claimed(obj("a.jpg", "v1"))
    assert everything.latest("b.jpg") is None  # before the marker: offered again
    assert fresh(lake).is_claimed(obj("b.jpg", "v1"))  # process_all off: all count again
