"""Claim diff: 1,000,000 listed object versions against 1,000,000 already claimed, through the
real code (resources.lake.datapool.DatapoolRecord, and KeyFilter and Claimer of
ingest_assets.claiming),
beside a bare set difference of (key, change_token) tuples measured in the same run.

The known versions are real batch manifests (Parquet, written with ``manifest_bytes``) in a
temporary local lake; the listing is served from memory, so no store's listing speed is in it.
By default every listed key is known and 1% of them have changed (a new change token), the
steady state of a sensor watching a large bucket.

    .venv/bin/python bench/datapool.py                 # 1,000,000 objects
    .venv/bin/python bench/datapool.py --objects 200000 --changed 0.5
"""

from __future__ import annotations

import argparse
import bisect
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path[:0] = [str(REPO), str(BENCH)]

from _meter import Meter, rss_mib, wait_for_quiet  # noqa: E402

from ingest_assets.claiming.claim import Claimer  # noqa: E402
from ingest_assets.claiming.globs import KeyFilter  # noqa: E402
from resources.config import SourceConfig  # noqa: E402
from resources.lake import datapool  # noqa: E402
from resources.lake.datapool import DatapoolRecord, batch_key, manifest_bytes, manifest_key  # noqa: E402
from resources.stores.base import DEFAULT_PAGE_SIZE, ObjectInfo, ObjectStore  # noqa: E402
from resources.stores.local import LocalFolderStore  # noqa: E402

TARGET_US = 5.0  # per listed object
SOURCE = "cams"
FOLDERS = ("front", "rear", "left", "right", "dock", "gate")


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

    def put(self, key: str, data: bytes, *, create_only: bool = False) -> ObjectInfo:
        raise NotImplementedError

    def delete(self, key: str, *, if_token: str | None = None) -> None:
        raise NotImplementedError


def make_objects(
    count: int, changed: float, seed: int
) -> tuple[list[ObjectInfo], list[ObjectInfo]]:
    """(known versions, listed versions): the same keys, ``changed`` of them with a new token."""
    rng = random.Random(seed)
    when = datetime(2025, 1, 1, tzinfo=UTC)
    known, listed = [], []
    for index in range(count):
        key = f"{FOLDERS[index % len(FOLDERS)]}/2025/{index // 10_000:03d}/img_{index:07d}.jpg"
        size = 20_000 + rng.randrange(80_000)
        modified = when + timedelta(seconds=index)
        token = f'"{rng.getrandbits(128):032x}"'  # an S3-like ETag
        known.append(ObjectInfo(key, size, token, modified, "image/jpeg"))
        if rng.random() < changed:
            token = f'"{rng.getrandbits(128):032x}"'
            modified += timedelta(days=1)
        listed.append(ObjectInfo(key, size, token, modified, "image/jpeg"))
    known.sort(key=lambda o: o.key)
    listed.sort(key=lambda o: o.key)
    return known, listed


def write_manifests(lake: ObjectStore, known: list[ObjectInfo], per_manifest: int) -> int:
    seq = 0
    for start in range(0, len(known), per_manifest):
        seq += 1
        objects = known[start : start + per_manifest]
        batch = batch_key(SOURCE, seq)
        body = manifest_bytes(SOURCE, batch, objects, [f"mem://{o.key}" for o in objects], "bench")
        lake.put(manifest_key(batch), body, create_only=True)
    return seq


Pair = tuple[str, str]


def bare_set_difference(listed: list[Pair], known: set[Pair]) -> set[Pair]:
    return set(listed) - known


def bare_loop(listed: list[Pair], known: set[Pair]) -> list[Pair]:
    return [p for p in listed if p not in known]


def claimed_only(listed: list[ObjectInfo], record: DatapoolRecord) -> list[ObjectInfo]:
    return [o for o in listed if not record.is_claimed(o)]


def filter_only(listed: list[ObjectInfo], keep: KeyFilter) -> list[ObjectInfo]:
    return [o for o in listed if keep(o.key)]


def diff_like_claim(
    listed: list[ObjectInfo], keep: KeyFilter, record: DatapoolRecord
) -> list[ObjectInfo]:
    """The per-object test of ``Claimer._claim``: kept by the globs and not yet claimed."""
    return [o for o in listed if keep(o.key) and not record.is_claimed(o)]


_LOAD: list[float] = []  # other processes' busy cores during each measurement


def _timed(work: Callable[[], Any]) -> tuple[float, Any]:
    with Meter() as meter:
        out = work()
    _LOAD.append(meter.others_cores)
    return meter.seconds, out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--objects", type=int, default=1_000_000, help="listed = known (1e6)")
    parser.add_argument("--changed", type=float, default=0.01, help="share with a new token")
    parser.add_argument("--per-manifest", type=int, default=10_000, help="objects per manifest")
    parser.add_argument("--repeats", type=int, default=3, help="rounds; medians reported (3)")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    n = args.objects
    print(
        f"machine: {os.cpu_count()} cores; {n:,} listed against {n:,} known, "
        f"{args.changed:.0%} changed"
    )

    started = time.perf_counter()
    known, listed = make_objects(n, args.changed, args.seed)
    expected_new = sum(
        1 for a, b in zip(known, listed, strict=True) if a.change_token != b.change_token
    )
    with tempfile.TemporaryDirectory(prefix="bench-datapool-") as tmp:
        lake = LocalFolderStore(tmp)
        manifests = write_manifests(lake, known, args.per_manifest)
        print(
            f"setup: {manifests} manifests of {args.per_manifest:,} written, {expected_new:,} "
            f"changed versions to find ({time.perf_counter() - started:.0f} s, not timed)"
        )
        source = SourceConfig(name=SOURCE, uri="mem://", batch_size=max(expected_new, 1))
        keep = KeyFilter(source.include, source.exclude)
        listed_pairs = [(o.key, o.change_token) for o in listed]

        known_pairs = {(o.key, o.change_token) for o in known}
        timings: dict[str, list[float]] = {}
        held_mib = 0.0

        def record(name: str, seconds: float) -> None:
            timings.setdefault(name, []).append(seconds)

        for round_ in range(args.repeats):
            wait_for_quiet()
            # What a fresh sensor process pays once: read every manifest.
            rss = rss_mib()
            fresh = DatapoolRecord(lake, SOURCE)
            seconds, _ = _timed(fresh.refresh)
            record("refresh", seconds)
            held_mib = held_mib or rss_mib() - rss  # first round: nothing freed to reuse yet
            assert len(fresh) == n, (len(fresh), n)

            contenders: list[tuple[str, Callable[[], Any]]] = [
                ("bare set difference", partial(bare_set_difference, listed_pairs, known_pairs)),
                ("bare loop over tuples", partial(bare_loop, listed_pairs, known_pairs)),
                ("is_claimed only", partial(claimed_only, listed, fresh)),
                ("KeyFilter only", partial(filter_only, listed, keep)),
                ("KeyFilter + is_claimed", partial(diff_like_claim, listed, keep, fresh)),
            ]
            order = contenders if round_ % 2 == 0 else contenders[::-1]
            for name, work in order:
                seconds, out = _timed(work)
                record(name, seconds)
                if name in ("bare set difference", "KeyFilter + is_claimed"):
                    assert len(out) == expected_new, (name, len(out), expected_new)

            # The real claim, as a warm sensor tick: the cached record already holds every
            # manifest; it lists all pages, diffs, and writes the changed versions' manifest.
            datapool._RECORDS.clear()
            claimer = Claimer(source, ListedObjects(listed), lake, claimer=f"bench-{round_}")
            claimer.record.refresh()
            seconds, result = _timed(partial(claimer.claim, registered=set(), close_all=True))
            record("Claimer.claim (warm record)", seconds)
            assert result.new_objects == expected_new and result.listed == n, result
            for batch in result.new_batches:  # leave the lake as it was for the next round
                lake.delete(manifest_key(batch))
            datapool._RECORDS.clear()
            del fresh

    med = {name: statistics.median(ts) for name, ts in timings.items()}
    print(
        f"other processes kept {statistics.median(_LOAD):.2f} cores busy during the "
        f"measurements (median; max {max(_LOAD):.2f})"
    )
    base = med["bare set difference"]
    print(f"\n== per listed object, median of {args.repeats} rounds ==")
    print(f"{'what':32s} {'seconds':>8s} {'µs/object':>10s} {'x bare set diff':>16s}  runs (s)")
    shown = [name for name in med if name != "refresh"] + ["refresh"]
    for name in shown:
        seconds = med[name]
        runs = " ".join(f"{t:.2f}" for t in timings[name])
        print(f"{name:32s} {seconds:8.3f} {1e6 * seconds / n:10.3f} {seconds / base:16.1f}  {runs}")
    ours = med["KeyFilter + is_claimed"]
    claim = med["Claimer.claim (warm record)"]
    verdict = "met" if 1e6 * claim / n <= TARGET_US else "NOT met"
    print(
        f"\ndiff as Claimer._claim does it: {1e6 * ours / n:.2f} µs/object "
        f"({ours / base:.1f}x the bare set difference); the whole warm claim, listing pages and "
        f"writing the manifest of {expected_new:,} changed versions: {1e6 * claim / n:.2f} "
        f"µs/object; target <= {TARGET_US} µs: {verdict}"
    )
    print(
        f"fresh process: refresh() reads {manifests} manifests in {med['refresh']:.2f} s = "
        f"{1e6 * med['refresh'] / n:.2f} µs per known object ({med['refresh'] / base:.1f}x the "
        f"bare set difference); the record holds about {held_mib:.0f} MiB for {n:,} versions"
    )


if __name__ == "__main__":
    main()
