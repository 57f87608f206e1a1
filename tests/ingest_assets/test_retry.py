"""A transient store failure fails the step; Dagster's RetryPolicy runs it again, and the retry
resumes after the last checkpoint."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from dagster import DagsterEventType, DagsterInstance

from ingest_assets.assets.dataset_items import dataset_items
from ingest_assets.claiming.claim import Claimer
from resources.errors import TransientStoreError
from resources.stores.local import LocalFolderStore
from resources.stores.open import local_path, register_store_scheme, unregister_store_scheme
from resources.stores.options import StorageOptions
from tests.conftest import Project
from tests.images import write_image


class FlakyFolderStore(LocalFolderStore):
    """A local folder whose reads fail once, transiently, at the ``fail_at``-th read: a test
    store plugged in through the public scheme seam (a stand-in for a store that stops
    answering for a while)."""

    fail_at = 8
    reads = 0
    lock = threading.Lock()

    def get(self, key: str, *, if_token: str | None = None) -> bytes:
        with FlakyFolderStore.lock:
            FlakyFolderStore.reads += 1
            failing = FlakyFolderStore.reads == FlakyFolderStore.fail_at
        if failing:
            raise TransientStoreError(f"{self.name}: connection reset while reading {key!r}")
        return super().get(key, if_token=if_token)


@pytest.fixture
def flaky_scheme() -> Iterator[None]:
    FlakyFolderStore.reads = 0

    def factory(uri: str, options: StorageOptions) -> LocalFolderStore:
        return FlakyFolderStore(local_path(uri.replace("flaky://", "file://", 1)))

    register_store_scheme("flaky", factory)
    yield
    unregister_store_scheme("flaky")


def test_transient_failure_is_retried_and_resumes_after_the_checkpoint(
    project: Project, instance: DagsterInstance, flaky_scheme: None, tmp_path: Path
) -> None:
    project.write_config(uri=f"flaky://{project.inbox}", checkpoint_rows=3, num_workers=1)
    for i in range(10):
        write_image(project.inbox / f"{i:02d}.jpg", seed=i)
    source = project.config.source("inbox")
    claim = Claimer(
        source,
        FlakyFolderStore(project.inbox),
        LocalFolderStore(project.root / "lake"),
        claimer="test",
    ).claim(registered=set(), close_all=True)
    instance.add_dynamic_partitions("batches", claim.new_batches)

    result = project.ingest(instance, "inbox_000001")

    assert result.success
    events = [e.event_type for e in result.all_events if e.step_key == "dataset_items"]
    assert DagsterEventType.STEP_UP_FOR_RETRY in events
    assert DagsterEventType.STEP_RESTARTED in events
    failure = next(
        e for e in result.all_events if e.event_type == DagsterEventType.STEP_UP_FOR_RETRY
    )
    assert "connection reset while reading '07.jpg'" in str(failure.event_specific_data)
    (materialization,) = result.asset_materializations_for_node("dataset_items")
    assert materialization.metadata["resumed_rows"].value == 6  # two chunks of three
    rows = project.lake.read_table("dataset_items", "inbox_000001").to_pylist()
    assert [r["key"] for r in rows] == [f"{i:02d}.jpg" for i in range(10)]
    assert all(r["status"] == "ok" for r in rows)


def test_a_table_written_whole_but_not_committed_commits_on_the_next_run(
    project: Project, instance: DagsterInstance
) -> None:
    """A step that died after its one chunk and before its marker resumes that chunk."""
    from ingest_assets.assets.duplicates import duplicates
    from ingest_assets.assets.raw_items import raw_items as raw_items_asset
    from resources.lake.catalog import CATALOG

    for seed in (1, 2):
        write_image(project.inbox / f"{seed}.jpg", seed=seed)
    write_image(project.inbox / "copy" / "1.jpg", seed=1)
    (batch,) = project.claim().new_batches
    instance.add_dynamic_partitions("batches", [batch])
    assert project.ingest(instance, batch, [raw_items_asset, dataset_items, duplicates]).success
    lake_root = project.root / "lake"
    before = {a: project.lake.read_table(a, batch) for a in ("raw_items", "duplicates")}
    for asset in before:  # as if each step had died just before its marker
        (lake_root / asset / batch / "_COMMITTED").unlink()
        (lake_root / asset / CATALOG / f"{batch}.json").unlink()

    assert project.ingest(instance, batch, [raw_items_asset, dataset_items, duplicates]).success
    for asset, table in before.items():
        assert project.lake.read_table(asset, batch).equals(table)
    assert before["duplicates"].num_rows == 1
