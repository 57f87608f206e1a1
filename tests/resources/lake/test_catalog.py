"""The catalog of committed partitions, on every lake store: it lists what was committed and
nothing half-written, whatever instant a commit died at, in listing requests alone."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pyarrow as pa
import pytest

from resources.lake.catalog import CATALOG, ENTRY, INDEXED, PENDING
from resources.lake.tables import MARKER, Lake
from resources.stores.base import ObjectStore
from resources.stores.local import LocalFolderStore
from tests.resources.stores.test_contract import store  # noqa: F401 (the store fixture)

SCHEMA = pa.schema([("item_id", pa.string()), ("n", pa.int64())])


def commit(lake: Lake, partition: str, n: int = 2, asset: str = "dataset_items") -> None:
    with lake.writer(asset, partition, fingerprint="fp", run_id=f"run-{partition}") as writer:
        table = pa.table({"item_id": [f"{partition}-{i}" for i in range(n)], "n": range(n)})
        writer.write_chunk(table.cast(SCHEMA), input_end=n)
        writer.commit(SCHEMA)


class Counting:
    """A store that counts the requests made through it, by kind."""

    def __init__(self, inner: ObjectStore) -> None:
        self.inner = inner
        self.calls: Counter[str] = Counter()

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self.inner, name)
        if name in ("list_page", "head", "get", "exists", "put", "delete"):

            def counted(*args: Any, **kwargs: Any) -> Any:
                self.calls[name] += 1
                return attribute(*args, **kwargs)

            return counted
        return attribute

    def list_objects(self, *args: Any, **kwargs: Any) -> Any:
        return ObjectStore.list_objects(self, *args, **kwargs)  # type: ignore[arg-type]


def test_the_catalog_lists_committed_partitions_and_nothing_half_written(
    store: ObjectStore,  # noqa: F811
) -> None:
    lake = Lake(store)
    for partition in ["src_000003", "src_000001", "other_000001"]:
        commit(lake, partition)
    commit(lake, "src_000002", asset="duplicates")  # another table
    with lake.writer("dataset_items", "src_000004", fingerprint="fp", run_id="crashed") as w:
        w.write_chunk(pa.table({"item_id": ["x"], "n": [1]}).cast(SCHEMA), input_end=1)
    # A commit that died after saying it was under way, before its marker:
    store.put(f"dataset_items/{CATALOG}/src_000005{PENDING}", b"{}")

    assert lake.committed_partitions("dataset_items") == [
        "other_000001",
        "src_000001",
        "src_000003",
    ]
    assert lake.committed_partitions("duplicates") == ["src_000002"]
    assert lake.committed_partitions("never_written") == []


def test_a_commit_that_died_after_its_marker_is_listed(store: ObjectStore) -> None:  # noqa: F811
    lake = Lake(store)
    commit(lake, "src_000001")
    commit(lake, "src_000002")
    # The marker landed, the catalog entry did not: the pending entry sends readers to it.
    store.delete(f"dataset_items/{CATALOG}/src_000002{ENTRY}")
    store.put(f"dataset_items/{CATALOG}/src_000002{PENDING}", b"{}")

    assert lake.committed_partitions("dataset_items") == ["src_000001", "src_000002"]


def test_the_catalog_takes_requests_per_page_not_per_partition(tmp_path: Any) -> None:
    lake = Lake(LocalFolderStore(tmp_path))
    for seq in range(1, 1201):
        commit(lake, f"src_{seq:06d}", n=1)
    counting = Counting(lake.store)

    listed = Lake(counting).committed_partitions("dataset_items")  # type: ignore[arg-type]

    assert listed == [f"src_{seq:06d}" for seq in range(1, 1201)]
    assert counting.calls == Counter(list_page=2)  # 1,201 keys, 1,000 a page; no HEAD, no GET


def test_partitions_committed_before_the_catalog_existed_are_found_once(tmp_path: Any) -> None:
    lake_store = LocalFolderStore(tmp_path)
    lake = Lake(lake_store)
    for seq in (1, 2, 3):
        commit(lake, f"src_{seq:06d}")
    for info in [i for page in lake_store.list_objects(f"dataset_items/{CATALOG}/") for i in page]:
        lake_store.delete(info.key)  # a lake written before the catalog

    assert lake.committed_partitions("dataset_items") == ["src_000001", "src_000002", "src_000003"]
    assert lake_store.exists(f"dataset_items/{CATALOG}/{INDEXED}")
    counting = Counting(lake_store)
    assert Lake(counting).committed_partitions("dataset_items") == [  # type: ignore[arg-type]
        "src_000001",
        "src_000002",
        "src_000003",
    ]
    assert counting.calls == Counter(list_page=1)


def test_a_partition_cannot_be_named_like_the_catalog(tmp_path: Any) -> None:
    lake = Lake(LocalFolderStore(tmp_path))
    with pytest.raises(Exception, match="reserved"):
        lake.writer("dataset_items", CATALOG, fingerprint="fp", run_id="r")
    assert not LocalFolderStore(tmp_path).exists(f"dataset_items/{CATALOG}/{MARKER}")


def test_partitions_come_in_natural_order_past_six_digit_batch_numbers(tmp_path: Any) -> None:
    lake = Lake(LocalFolderStore(tmp_path))
    for partition in ["src_1000000", "src_999999", "src_000010", "src_000002"]:
        commit(lake, partition, n=1)

    assert lake.committed_partitions("dataset_items") == [
        "src_000002",
        "src_000010",
        "src_999999",
        "src_1000000",
    ]
