"""The current view at dataset scale, through the real code, beside a bare pyarrow read.

A local lake gets ``--batches`` committed ``dataset_items`` partitions of ``--rows`` rows each,
with the columns and value shapes of real item rows (32-hex item ids, keys, 64-hex sha256, 16-hex
perceptual hashes, sizes, labels, statuses), in files of ``checkpoint_rows`` (1,000) rows as the
asset writes them; ``--rewritten`` of the rows of each later batch are new versions of earlier
items, so the current view holds fewer rows than the files. Then, each in a fresh process of its
own (so that each peak RSS is its own), in rounds whose order rotates:

- *bare pyarrow*: ``pq.read_table`` of every file the markers list, concatenated (no current
  view: the rows of every version). What any reader of the same files pays at least.
- *bare pyarrow, file by file*: the same files read one at a time and dropped.
- *read_current*: ``Lake.read_current`` (the whole current view as one table).
- *iter_current*: ``Lake.iter_current``, chunks of 65,536 rows, each dropped once counted.
- *iter_current, 3 columns*: the same with ``columns=["item_id", "sha256", "phash"]``, as the
  duplicates asset reads.

Reported: median wall time, the ratio to the bare read, peak RSS of the child and the growth of
RSS over the child's imports.

    .venv/bin/python bench/lake.py                       # 100 batches x 10,000 rows
    .venv/bin/python bench/lake.py --batches 20 --rounds 1
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path[:0] = [str(REPO), str(BENCH)]

CHILD = r"""
import json, sys, time
sys.path[:0] = [sys.argv[1], sys.argv[1] + "/bench"]
from _meter import maxrss_mib, rss_mib
import pyarrow as pa, pyarrow.parquet as pq
from resources.lake.tables import Lake
from resources.stores.local import LocalFolderStore
lake = Lake(LocalFolderStore(sys.argv[2]))
how = sys.argv[3]
commits = lake.read_commits("dataset_items")
files = [f"{sys.argv[2]}/dataset_items/{p}/{f['path']}" for p, c in commits for f in c.files]
base = rss_mib()
started = time.perf_counter()
if how == "bare":
    rows = pa.concat_tables([pq.read_table(f) for f in files]).num_rows
elif how == "bare_each":
    rows = sum(pq.read_table(f).num_rows for f in files)
elif how == "read_current":
    rows = lake.read_current("dataset_items").num_rows
elif how == "iter_current":
    rows = sum(c.num_rows for c in lake.iter_current("dataset_items"))
else:
    cols = ["item_id", "sha256", "phash"]
    rows = sum(c.num_rows for c in lake.iter_current("dataset_items", columns=cols))
seconds = time.perf_counter() - started
peak = maxrss_mib()
print(json.dumps({"rows": rows, "seconds": seconds, "peak_mib": peak, "growth_mib": peak - base}))
"""

CONTENDERS = ["bare", "bare_each", "read_current", "iter_current", "iter_current_3"]
LABELS = {
    "bare": "bare pyarrow (all files, concatenated)",
    "bare_each": "bare pyarrow, file by file",
    "read_current": "Lake.read_current",
    "iter_current": "Lake.iter_current (all columns)",
    "iter_current_3": "Lake.iter_current (3 columns)",
}


def build_lake(root: Path, batches: int, rows: int, rewritten: float, seed: int) -> int:
    """Write the lake; return the rows of the current view."""
    import pyarrow as pa

    from ingest_assets.items.rows import ITEMS_SCHEMA
    from resources.lake.tables import Lake
    from resources.stores.local import LocalFolderStore

    rng = random.Random(seed)
    lake = Lake(LocalFolderStore(root))
    seen: list[int] = []
    current: set[int] = set()
    next_item = 0
    for b in range(1, batches + 1):
        batch = f"bench_{b:06d}"
        ids: list[int] = []
        for _ in range(rows):
            if seen and rng.random() < rewritten:
                ids.append(rng.choice(seen))
            else:
                ids.append(next_item)
                next_item += 1
        seen.extend(i for i in ids if i >= len(seen))
        current.update(ids)
        with lake.writer("dataset_items", batch, fingerprint="bench", run_id=batch) as writer:
            for start in range(0, rows, 1000):
                part = ids[start : start + 1000]
                writer.write_chunk(
                    pa.Table.from_pylist([item_row(i, batch, rng) for i in part], ITEMS_SCHEMA),
                    input_end=start + len(part),
                )
            writer.commit(ITEMS_SCHEMA)
        print(f"\r  wrote {b}/{batches} batches", end="", flush=True)
    print()
    return len(current)


def item_row(i: int, batch: str, rng: random.Random) -> dict[str, Any]:
    from ingest_assets.items.rows import ITEMS_SCHEMA

    digest = hashlib.sha256(f"{i}:{batch}".encode()).hexdigest()
    row: dict[str, Any] = {name: None for name in ITEMS_SCHEMA.names}
    width, height = rng.randrange(96, 1024), rng.randrange(96, 1024)
    row.update(
        {
            "item_id": hashlib.sha256(str(i).encode()).hexdigest()[:32],
            "source": "bench",
            "key": f"cameras/{i % 97:02d}/2026-11-{i % 28 + 1:02d}/frame_{i:09d}.jpg",
            "uri": f"s3://bucket/cameras/{i % 97:02d}/frame_{i:09d}.jpg",
            "batch": batch,
            "sha256": digest,
            "phash": digest[:16],
            "status": "ok",
        }
    )
    for name, value in (
        ("width", width),
        ("height", height),
        ("size", rng.randrange(5_000, 500_000)),
        ("bytes", rng.randrange(5_000, 500_000)),
        ("format", "JPEG"),
        ("mode", "RGB"),
        ("label", f"class_{i % 10}"),
        ("split", "train"),
        ("change_token", digest[:32]),
        ("kind", "image"),
    ):
        if name in row:
            row[name] = value
    return row


def run_child(root: Path, how: str) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(REPO), str(root), how],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    result: dict[str, Any] = json.loads(out)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, default=100)
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--rewritten", type=float, default=0.1)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-lake-") as tmp:
        root = Path(tmp)
        print(f"lake: {args.batches} batches x {args.rows:,} rows, {args.rewritten:.0%} rewritten")
        current_rows = build_lake(root, args.batches, args.rows, args.rewritten, seed=7)
        results: dict[str, list[dict[str, Any]]] = {c: [] for c in CONTENDERS}
        for r in range(args.rounds):
            order = CONTENDERS[r % len(CONTENDERS) :] + CONTENDERS[: r % len(CONTENDERS)]
            for how in order:
                results[how].append(run_child(root, how))
        bare = statistics.median(x["seconds"] for x in results["bare"])
        print(
            f"\n{args.batches * args.rows:,} rows in files, {current_rows:,} in the current view; "
            f"medians of {args.rounds} rounds\n"
        )
        print(f"| {'contender':40} | rows | median s | x bare time | peak RSS MiB | growth MiB |")
        print(f"| {'-' * 40} | ---: | ---: | ---: | ---: | ---: |")
        for how in CONTENDERS:
            runs = results[how]
            seconds = statistics.median(x["seconds"] for x in runs)
            peak = statistics.median(x["peak_mib"] for x in runs)
            growth = statistics.median(x["growth_mib"] for x in runs)
            print(
                f"| {LABELS[how]:40} | {runs[0]['rows']:,} | {seconds:.2f} | "
                f"{seconds / bare:.2f} | {peak:.0f} | {growth:.0f} |"
            )


if __name__ == "__main__":
    main()
