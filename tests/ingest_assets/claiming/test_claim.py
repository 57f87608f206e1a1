"""Claiming: the pure batch cutting, key filters, and exactly-once under racing claimers."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from dagster import DagsterInstance, SensorResult, build_sensor_context

from ingest_assets.claiming.claim import Claimer, cut_batches
from ingest_assets.claiming.globs import KeyFilter
from ingest_assets.cli.instance import ensure_dagster_home
from ingest_assets.cli.sync import claim_waiting
from ingest_assets.definitions import build_definitions
from resources.errors import LeaseHeld
from resources.lake.datapool import DatapoolRecord, read_manifest
from resources.stores.base import ObjectInfo
from resources.stores.local import LocalFolderStore
from tests.conftest import Project
from tests.images import write_image

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def objects(n: int, age_s: float = 0) -> list[ObjectInfo]:
    when = NOW - timedelta(seconds=age_s)
    return [ObjectInfo(f"{i:04d}.jpg", 10, f"t{i}", when) for i in range(n)]


def cut(new: list[ObjectInfo], **kw: object) -> tuple[list[int], int]:
    params: dict[str, object] = {
        "batch_size": 4,
        "min_batch_size": 3,
        "max_wait_seconds": 60.0,
        "now": NOW,
        "close_all": False,
    }
    params.update(kw)
    batches, pending = cut_batches(new, **params)  # type: ignore[arg-type]
    return [len(b) for b in batches], len(pending)


def test_cut_batches_full_batches_and_a_remainder_that_is_big_enough() -> None:
    assert cut(objects(11)) == ([4, 4, 3], 0)


def test_cut_batches_holds_back_a_small_fresh_remainder() -> None:
    assert cut(objects(10)) == ([4, 4], 2)
    assert cut(objects(2)) == ([], 2)


def test_cut_batches_releases_a_remainder_that_waited_long_enough() -> None:
    assert cut(objects(2, age_s=61)) == ([1 + 1], 0)


def test_cut_batches_close_all_closes_any_remainder() -> None:
    assert cut(objects(9), close_all=True) == ([4, 4, 1], 0)
    assert cut([], close_all=True) == ([], 0)


def test_key_filter_globs() -> None:
    keep = KeyFilter(["**/*.jpg", "**/*.PNG"], ["**/.*", "**/.*/**", "raw/**"])
    assert keep("a.jpg") and keep("x/y/z.JPG") and keep("p/q.png")
    assert not keep("a.txt")
    assert not keep(".hidden.jpg") and not keep("x/.cache/t.jpg")
    assert not keep("raw/a.jpg")
    assert KeyFilter(["*.jpg"], [])("a.jpg") and not KeyFilter(["*.jpg"], [])("d/a.jpg")


def write_atomically(path: Path, seed: int) -> None:
    """Write a whole new file at once, as an object store put would (a local writer is not
    atomic: a half-written file is a version of its own, which is what settle_seconds is for)."""
    staging = path.parent.parent / ".staging" / path.name
    write_image(staging, width=8, height=8, seed=seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    os.replace(staging, path)


def all_claimed(project: Project) -> Counter[tuple[str, str]]:
    lake = LocalFolderStore(project.root / "lake")
    claimed: Counter[tuple[str, str]] = Counter()
    for path in sorted((project.root / "lake/_datapool/inbox").glob("inbox_*.parquet")):
        table = read_manifest(lake, path.stem, ["key", "change_token"])
        claimed.update(
            zip(table["key"].to_pylist(), table["change_token"].to_pylist(), strict=True)
        )
    return claimed


def current_versions(project: Project) -> set[tuple[str, str]]:
    store = LocalFolderStore(project.inbox)
    return {(o.key, o.change_token) for page in store.list_objects() for o in page}


def test_racing_claimers_without_the_lease_never_claim_a_version_twice(project: Project) -> None:
    """Create-only manifests alone keep claims exactly-once: each claimer here has its own
    datapool record (as separate processes would) and skips the claim lease."""
    project.write_config(batch_size=3)
    source = project.config.source("inbox")
    lake = LocalFolderStore(project.root / "lake")
    stop = threading.Event()
    errors: list[BaseException] = []

    def claim_repeatedly(name: str) -> None:
        claimer = Claimer(source, LocalFolderStore(project.inbox), lake, claimer=name)
        claimer.record = DatapoolRecord(lake, "inbox")
        try:
            while not stop.is_set():
                claimer.claim(registered=set(), close_all=True, hold_lease=False)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=claim_repeatedly, args=(f"c{i}",)) for i in range(3)]
    for thread in threads:
        thread.start()
    for i in range(60):
        write_atomically(project.inbox / f"{i:03d}.jpg", seed=i)
    stop.set()
    for thread in threads:
        thread.join()
    final = Claimer(source, LocalFolderStore(project.inbox), lake, claimer="final")
    final.record = DatapoolRecord(lake, "inbox")
    final.claim(registered=set(), close_all=True, hold_lease=False)

    assert not errors
    claimed = all_claimed(project)
    assert max(claimed.values()) == 1
    assert set(claimed) == current_versions(project)


def test_sensor_and_sync_racing_claim_every_version_exactly_once(project: Project) -> None:
    project.write_config(batch_size=5)
    sensor = next(
        s for s in build_definitions(project.config).sensors if s.name == "datapool_inbox"
    )
    home = ensure_dagster_home(project.config)
    env = {**os.environ, "BUCKETLAKE_CONFIG": str(project.config_path), "DAGSTER_HOME": str(home)}
    for i in range(10):
        write_atomically(project.inbox / "a" / f"{i:03d}.jpg", seed=i)
    sync = subprocess.Popen(
        [sys.executable, "-m", "ingest_assets.cli.main", "sync", "--jobs", "2"],
        cwd=project.root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    written = 10
    with DagsterInstance.from_config(str(home)) as instance:
        cursor = None
        while sync.poll() is None and written < 25:
            write_atomically(project.inbox / "b" / f"{written:03d}.jpg", seed=written)
            written += 1
            with build_sensor_context(
                instance=instance, cursor=cursor, resources=project.resources
            ) as context:
                result = sensor(context)
            if isinstance(result, SensorResult):
                instance.add_dynamic_partitions(
                    "batches", [r.partition_key for r in result.run_requests]
                )
                cursor = result.cursor or cursor
            time.sleep(0.05)
        output = sync.communicate(timeout=240)[0]
        assert sync.returncode == 0, output
        with build_sensor_context(instance=instance, resources=project.resources) as context:
            sensor(context)

    claimed = all_claimed(project)
    assert max(claimed.values()) == 1
    assert set(claimed) == current_versions(project)
    assert len(claimed) == written


def test_a_claim_while_another_holds_the_lease_is_refused(project: Project) -> None:
    write_image(project.inbox / "a.jpg")
    source = project.config.source("inbox")
    lake = LocalFolderStore(project.root / "lake")
    with Claimer(source, LocalFolderStore(project.inbox), lake, claimer="sensor").lease():
        other = Claimer(source, LocalFolderStore(project.inbox), lake, claimer="sync")
        with pytest.raises(LeaseHeld, match="held by sensor"):
            other.claim(registered=set(), close_all=True)
    assert not list((project.root / "lake/_datapool/inbox").glob("inbox_*.parquet"))


def test_sync_claim_waits_for_the_sensor_claim_lease(project: Project) -> None:
    write_image(project.inbox / "a.jpg")
    source = project.config.source("inbox")
    lake = LocalFolderStore(project.root / "lake")
    held = Claimer(source, LocalFolderStore(project.inbox), lake, claimer="sensor").lease()
    held.acquire()
    released = threading.Event()

    def release_later() -> None:
        time.sleep(1.0)
        released.set()
        held.release()

    releaser = threading.Thread(target=release_later)
    releaser.start()
    result = claim_waiting(
        Claimer(source, LocalFolderStore(project.inbox), lake, claimer="sync"), set()
    )
    releaser.join()

    assert released.is_set()  # the claim returned only after the sensor let go
    assert result.new_batches == ["inbox_000001"] and result.new_objects == 1
