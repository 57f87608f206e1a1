"""The datapool at scale, through the real code, each figure beside a baseline of the same run.

1. **Memory of the record.** 1,000,000 known object versions are written as real batch manifests
   (Parquet, ``manifest_bytes``) into a temporary local lake. In a fresh child process each, a
   ``DatapoolRecord`` reads them all (``refresh``), and, as the baseline, the set of
   ``(key, change_token)`` tuples that the record held before it kept the latest version per
   key is built from the same manifests. Reported: the bytes each holds (tracemalloc, plus the
   Arrow pool for the record) and the child's RSS growth.
2. **A claim tick.** ``Claimer.claim`` with a warm record, as a sensor tick: 1,000,000 listed
   against the 1,000,000 known, 1% of them changed (a new change token) and 0.1% deleted, so it
   lists every page, walks each page beside the record, and writes the manifests of the changed
   versions and of the tombstones. The listing is served from memory (no store's listing speed
   is in it); ``--local-files N`` adds the same tick on a real local folder of N files. Compared
   with a bare set difference of tuples and with the sensor's listing budget per tick.
3. **Local folder listing.** A full listing pass of a folder of 10,000 and 40,000 files: one walk
   (``LocalFolderStore.list_objects``) against paging with ``list_page`` and a cursor (what each
   page cost before the store walked once), in one folder and in folders of 1,000.

    .venv/bin/python bench/datapool.py                 # 1,000,000 objects
    .venv/bin/python bench/datapool.py --objects 200000 --changed 0.5 --deleted 0.1
    .venv/bin/python bench/datapool.py --local-files 1000000
"""

from __future__ import annotations

import argparse
import bisect
import gc
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path[:0] = [str(REPO), str(BENCH)]

import pyarrow as pa  # noqa: E402
from _meter import Meter, rss_mib, wait_for_quiet  # noqa: E402

from ingest_assets.claiming.claim import Claimer  # noqa: E402
from resources.config import SourceConfig  # noqa: E402
from resources.lake import datapool  # noqa: E402
from resources.lake.datapool import (  # noqa: E402
    DatapoolRecord,
    batch_key,
    datapool_prefix,
    manifest_bytes,
    manifest_key,
    read_manifest,
)
from resources.stores.base import DEFAULT_PAGE_SIZE, ObjectInfo, ObjectStore  # noqa: E402
from resources.stores.local import LocalFolderStore  # noqa: E402
from sensors.datapool_sensor import TICK_LISTING_BUDGET_S  # noqa: E402

SOURCE = "cams"
FOLDERS = ("front", "rear", "left", "right", "dock", "gate")
OLD_SET_MIB_PER_MILLION = 308  # measured for the set of tuples (bench/README.md)
TARGET_MIB_PER_MILLION = 64


class ListedObjects(ObjectStore):
    """A source whose listing comes from memory, pages as a real store gives them."""

    def __init__(self, objects: list[ObjectInfo]) -> None:
        self.name = "memory listing"
        self._objects = objects  # sorted by key
        self._keys = [o.key for o in objects]

    def list_page(
        self, prefix: str = "", start_after: str = "", page_size: int = DEFAULT_PAGE_SIZE
    ) -> list[ObjectInfo]:
        start = bisect.bisect_right(self._keys, start_after) if start_after else 0
        return [o for o in self._objects[start : start + page_size] if o.key.startswith(prefix)]

    def uri(self, key: str) -> str:
        return f"mem://{key}"

    def head(self, key: str) -> ObjectInfo:
        raise NotImplementedError

    def get(self, key: str, *, if_token: str | None = None) -> bytes:
        raise NotImplementedError

    def get_range(self, key: str, start: int, length: int) -> bytes:
        raise NotImplementedError

    def put(
        self, key: str, data: bytes, *, create_only: bool = False, if_token: str | None = None
    ) -> ObjectInfo:
        raise NotImplementedError

    def delete(self, key: str, *, if_token: str | None = None) -> None:
        raise NotImplementedError


def object_key(index: int) -> str:
    return f"{FOLDERS[index % len(FOLDERS)]}/2025/{index // 10_000:03d}/img_{index:07d}.jpg"


def make_objects(
    count: int, changed: float, deleted: float, seed: int
) -> tuple[list[ObjectInfo], list[ObjectInfo], int, int]:
    """(known versions, listed versions, changed, deleted): the listing holds the known keys
    less ``deleted`` of them, ``changed`` of the rest with a new token."""
    rng = random.Random(seed)
    when = datetime(2025, 1, 1, tzinfo=UTC)
    known, listed = [], []
    n_changed = n_deleted = 0
    for index in range(count):
        key = object_key(index)
        size = 20_000 + rng.randrange(80_000)
        modified = when + timedelta(seconds=index)
        token = f'"{rng.getrandbits(128):032x}"'  # an S3-like ETag
        known.append(ObjectInfo(key, size, token, modified, "image/jpeg"))
        if rng.random() < deleted:
            n_deleted += 1
            continue
        if rng.random() < changed:
            n_changed += 1
            token = f'"{rng.getrandbits(128):032x}"'
            modified += timedelta(days=1)
        listed.append(ObjectInfo(key, size, token, modified, "image/jpeg"))
    known.sort(key=lambda o: o.key)
    listed.sort(key=lambda o: o.key)
    return known, listed, n_changed, n_deleted


def write_manifests(lake: ObjectStore, known: list[ObjectInfo], per_manifest: int) -> int:
    seq = 0
    for start in range(0, len(known), per_manifest):
        seq += 1
        objects = known[start : start + per_manifest]
        batch = batch_key(SOURCE, seq)
        body = manifest_bytes(SOURCE, batch, objects, [f"mem://{o.key}" for o in objects], "bench")
        lake.put(manifest_key(batch), body, create_only=True)
    return seq


def manifests_of(lake: ObjectStore) -> list[str]:
    return sorted(
        Path(o.key).stem
        for page in lake.list_objects(datapool_prefix(SOURCE))
        for o in page
        if o.key.endswith(".parquet")
    )


# -- 1. memory, each in a child process of its own ------------------------------------------------
def _hold_record(lake: ObjectStore) -> tuple[Any, int]:
    record = DatapoolRecord(lake, SOURCE)
    record.refresh()
    return record, len(record)


def _hold_old_set(lake: ObjectStore) -> tuple[Any, int]:
    """What the record held before: every (key, change_token) ever claimed, in one set."""
    known: set[tuple[str, str]] = set()
    for batch in manifests_of(lake):
        table = read_manifest(lake, batch, ["key", "change_token"])
        known.update(zip(table["key"].to_pylist(), table["change_token"].to_pylist(), strict=True))
    return known, len(known)


def child_memory(kind: str, lake_root: str, trace: bool) -> dict[str, float]:
    """Held bytes (tracemalloc, plus the Arrow pool) with ``trace``, else the RSS growth
    (tracemalloc itself costs memory per block it traces)."""
    lake = LocalFolderStore(lake_root)
    hold = _hold_record if kind == "record" else _hold_old_set
    with tempfile.TemporaryDirectory(prefix="bench-warm-") as warm:
        # One manifest of one object first, so that what is imported on first use (Parquet
        # reading, the index's modules) is not counted as held.
        tiny = LocalFolderStore(warm)
        write_manifests(tiny, [ObjectInfo("a.jpg", 1, "t", datetime.now(UTC))], 1)
        hold(tiny)
    gc.collect()
    rss = rss_mib()
    arrow = pa.total_allocated_bytes()
    if trace:
        tracemalloc.start()
    held, entries = hold(lake)
    gc.collect()
    out: dict[str, float] = {"entries": entries}
    if trace:
        traced = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        out["held_mib"] = (traced + pa.total_allocated_bytes() - arrow) / 2**20
    else:
        out["rss_mib"] = rss_mib() - rss
    if kind == "record":
        out["nbytes_mib"] = held.nbytes / 2**20
    return out


def measure_memory(lake_root: str, kind: str) -> dict[str, float]:
    result: dict[str, float] = {}
    for trace in (True, False):
        done = subprocess.run(
            [sys.executable, __file__, "--child-memory", kind, "--lake", lake_root]
            + (["--trace"] if trace else []),
            capture_output=True,
            text=True,
            check=True,
        )
        result.update(json.loads(done.stdout.strip().splitlines()[-1]))
    return result


# -- 2. a claim tick ------------------------------------------------------------------------------
_LOAD: list[float] = []  # other processes' busy cores during each measurement


def _timed(work: Callable[[], Any]) -> tuple[float, Any]:
    with Meter() as meter:
        out = work()
    _LOAD.append(meter.others_cores)
    return meter.seconds, out


def bare_set_difference(listed: list[tuple[str, str]], known: set[tuple[str, str]]) -> int:
    return len(set(listed) - known)


def warm_claimer(source: SourceConfig, store: ObjectStore, lake: ObjectStore, name: str) -> Claimer:
    datapool._RECORDS.clear()
    claimer = Claimer(source, store, lake, claimer=name)
    claimer.record.refresh()  # the sensor process's record, already loaded (not timed)
    return claimer


def undo_batches(lake: ObjectStore, batches: list[str]) -> None:
    """Leave the lake as it was for the next round."""
    for batch in batches:
        lake.delete(manifest_key(batch))
    datapool._RECORDS.clear()


# -- 3. local listing -----------------------------------------------------------------------------
def make_files(root: Path, count: int, per_folder: int) -> None:
    for index in range(count):
        folder = root / f"d{index // per_folder:04d}"
        if index % per_folder == 0:
            folder.mkdir(parents=True)
        os.close(os.open(folder / f"img_{index:07d}.jpg", os.O_CREAT | os.O_WRONLY, 0o644))


def walk_once(store: LocalFolderStore) -> int:
    return sum(len(page) for page in store.list_objects())


def page_by_page(store: LocalFolderStore) -> int:
    return sum(len(page) for page in ObjectStore.list_objects(store))


def local_tick(args: argparse.Namespace, tmp: Path) -> None:
    """``--local-files``: the same warm tick on a real folder (1% touched, 0.1% deleted)."""
    n = args.local_files
    inbox, lake_root = tmp / "inbox", tmp / "local-lake"
    rng = random.Random(args.seed)
    started = time.perf_counter()
    for index in range(n):
        path = inbox / object_key(index)
        if index % 10_000 < len(FOLDERS):
            path.parent.mkdir(parents=True, exist_ok=True)
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o644))
    store, lake = LocalFolderStore(inbox), LocalFolderStore(lake_root)
    source = SourceConfig(name=SOURCE, uri=str(inbox))
    first = warm_claimer(source, store, lake, "bench-first").claim(registered=set(), close_all=True)
    touched = deleted = 0
    for index in range(n):
        path = inbox / object_key(index)
        if rng.random() < args.deleted:
            path.unlink()
            deleted += 1
        elif rng.random() < args.changed:
            os.utime(path, ns=(0, 10**18 + index))
            touched += 1
    print(
        f"local folder: {n:,} files made and claimed into {len(first.new_batches)} batches, then "
        f"{touched:,} touched and {deleted:,} deleted ({time.perf_counter() - started:.0f} s, not "
        "timed)"
    )
    claimer = warm_claimer(source, store, lake, "bench-local")
    seconds, result = _timed(partial(claimer.claim, registered=set(), close_all=True))
    assert (result.new_objects, result.deleted) == (touched + deleted, deleted), result
    print(
        f"local folder tick: {seconds:.2f} s for {result.listed:,} listed, "
        f"{result.new_objects - result.deleted:,} changed, {result.deleted:,} tombstones in "
        f"{len(result.new_batches)} batches = {1e6 * seconds / n:.2f} µs/object; "
        f"{seconds / TICK_LISTING_BUDGET_S:.0%} of the sensor's {TICK_LISTING_BUDGET_S:.0f} s "
        "listing budget"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--objects", type=int, default=1_000_000, help="known objects (1e6)")
    parser.add_argument("--changed", type=float, default=0.01, help="share with a new token")
    parser.add_argument("--deleted", type=float, default=0.001, help="share deleted")
    parser.add_argument("--per-manifest", type=int, default=10_000, help="objects per manifest")
    parser.add_argument("--repeats", type=int, default=3, help="rounds; medians reported (3)")
    parser.add_argument("--files", type=int, nargs="*", default=[10_000, 40_000])
    parser.add_argument("--local-files", type=int, default=0, help="a tick on a real folder")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--child-memory", choices=["record", "set"], help=argparse.SUPPRESS)
    parser.add_argument("--lake", help=argparse.SUPPRESS)
    parser.add_argument("--trace", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_memory:
        print(json.dumps(child_memory(args.child_memory, args.lake, args.trace)))
        return
    n = args.objects
    print(
        f"machine: {os.cpu_count()} cores; {n:,} known, listed with {args.changed:.1%} changed "
        f"and {args.deleted:.1%} deleted"
    )

    started = time.perf_counter()
    known, listed, n_changed, n_deleted = make_objects(n, args.changed, args.deleted, args.seed)
    with tempfile.TemporaryDirectory(prefix="bench-datapool-") as tmp:
        lake = LocalFolderStore(Path(tmp) / "lake")
        manifests = write_manifests(lake, known, args.per_manifest)
        print(
            f"setup: {manifests} manifests of {args.per_manifest:,} written; {n_changed:,} changed "
            f"versions and {n_deleted:,} deletions to find ({time.perf_counter() - started:.0f} "
            "s, not timed)"
        )

        # 1. memory
        wait_for_quiet()
        memory = {kind: measure_memory(str(lake.root), kind) for kind in ("set", "record")}
        for kind in ("set", "record"):
            assert memory[kind]["entries"] == n, (kind, memory[kind])

        # 2. the tick
        source = SourceConfig(name=SOURCE, uri="mem://")
        listed_pairs = [(o.key, o.change_token) for o in listed]
        known_pairs = {(o.key, o.change_token) for o in known}
        timings: dict[str, list[float]] = {}
        for round_ in range(args.repeats):
            wait_for_quiet()
            seconds, found = _timed(partial(bare_set_difference, listed_pairs, known_pairs))
            assert found == n_changed, (found, n_changed)
            timings.setdefault("bare set difference", []).append(seconds)
            claimer = warm_claimer(source, ListedObjects(listed), lake, f"bench-{round_}")
            seconds, result = _timed(partial(claimer.claim, registered=set(), close_all=True))
            timings.setdefault("Claimer.claim (warm record)", []).append(seconds)
            assert (result.new_objects, result.deleted) == (n_changed + n_deleted, n_deleted)
            assert result.listed == len(listed), result
            undo_batches(lake, result.new_batches)
            seconds, fresh = _timed(partial(_hold_record, lake))
            timings.setdefault("refresh (fresh record)", []).append(seconds)
            del fresh
        del known, listed, listed_pairs, known_pairs

        # 3. local listing
        listing: list[tuple[str, int, float, float]] = []
        for count in args.files:
            for per_folder, layout in ((count, "one folder"), (1_000, "folders of 1,000")):
                root = Path(tmp) / f"files-{count}-{per_folder}"
                make_files(root, count, per_folder)
                store = LocalFolderStore(root)
                walk_once(store)  # warm the dentry cache for both
                wait_for_quiet()
                walk_s, walked = _timed(partial(walk_once, store))
                paged_s, paged = _timed(partial(page_by_page, store))
                assert walked == paged == count, (walked, paged, count)
                listing.append((layout, count, walk_s, paged_s))

        if args.local_files:
            local_tick(args, Path(tmp))

    med = {name: statistics.median(ts) for name, ts in timings.items()}
    print(
        f"other processes kept {statistics.median(_LOAD):.2f} cores busy during the "
        f"measurements (median; max {max(_LOAD):.2f})"
    )
    per_million = 1e6 / n
    print("\n== 1. memory held for the known versions (each in a fresh process) ==")
    for kind, label in (("set", "set of (key, token) tuples (before)"), ("record", "record")):
        m = memory[kind]
        print(
            f"{label:38s} {m['held_mib'] * per_million:7.1f} MiB per million held, RSS grew "
            f"{m['rss_mib'] * per_million:7.1f} MiB per million"
        )
    record_mib = memory["record"]["held_mib"] * per_million
    verdict = "met" if record_mib <= TARGET_MIB_PER_MILLION else "NOT met"
    print(
        f"record / set: {memory['record']['held_mib'] / memory['set']['held_mib']:.2f}; its "
        f"index alone: {memory['record']['nbytes_mib'] * per_million:.1f} MiB per million; "
        f"target <= {TARGET_MIB_PER_MILLION} MiB per million: {verdict}"
    )

    base = med["bare set difference"]
    print(f"\n== 2. a claim tick, median of {args.repeats} rounds ==")
    print(f"{'what':30s} {'seconds':>8s} {'µs/object':>10s} {'x bare set diff':>16s}  runs (s)")
    for name, seconds in med.items():
        runs = " ".join(f"{t:.2f}" for t in timings[name])
        print(f"{name:30s} {seconds:8.3f} {1e6 * seconds / n:10.3f} {seconds / base:16.1f}  {runs}")
    claim = med["Claimer.claim (warm record)"]
    print(
        f"the whole warm tick: {claim:.2f} s = {claim / TICK_LISTING_BUDGET_S:.0%} of the "
        f"sensor's {TICK_LISTING_BUDGET_S:.0f} s listing budget per tick"
    )

    print("\n== 3. a full listing pass of a local folder ==")
    print(f"{'layout':18s} {'files':>7s} {'one walk s':>11s} {'page by page s':>15s} {'ratio':>6s}")
    for layout, count, walk_s, paged_s in listing:
        print(f"{layout:18s} {count:7,d} {walk_s:11.3f} {paged_s:15.3f} {paged_s / walk_s:6.1f}")


if __name__ == "__main__":
    main()
