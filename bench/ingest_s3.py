"""Ingest from a bucket: ``dataset_items`` on a source on a real S3 server (SeaweedFS, the one
the tests start) against a bare thread pool doing boto3 GET + sha256 + decode + perceptual hash
at the same concurrency as our fetches.

The corpus is ``bench/ingest.py``'s (N real-looking JPEGs), uploaded once to a fresh bucket.
Each contender runs in a fresh process of its own, rounds in rotating order, medians reported:

- *bare baseline*: ``ThreadPoolExecutor(workers x 4)`` (our fetch threads: ``FETCHES_PER_WORKER``
  per worker process), one boto3 client, per object ``get_object`` then exactly the work of
  ``bench/_contenders.baseline_one``. Threads, as a script that reads a bucket would be written.
- *ours*: the real graph (claim, ``raw_items``, ``dataset_items``) with the source at
  ``s3://<bucket>/corpus`` and credentials from the environment; the ``dataset_items`` step.

    .venv/bin/python bench/ingest_s3.py            # N = 2000
    .venv/bin/python bench/ingest_s3.py 500 --rounds 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path[:0] = [str(REPO), str(BENCH)]

from _corpus import corpus_files, make_corpus  # noqa: E402

CHILD = r"""
import json, sys
sys.path[:0] = [sys.argv[1], sys.argv[1] + "/bench"]
how, corpus, uri, count = sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
if how == "baseline":
    import hashlib, io, os, time
    from concurrent.futures import ThreadPoolExecutor
    import boto3, imagehash
    from PIL import Image, ImageOps
    from _contenders import EXIF_ORIENTATION, warm_imports
    from ingest_assets.assets.item_workers import FETCHES_PER_WORKER
    warm_imports()
    bucket, prefix = uri[5:].split("/", 1)
    client = boto3.client("s3")
    keys = [o["Key"] for page in client.get_paginator("list_objects_v2").paginate(
        Bucket=bucket, Prefix=prefix + "/") for o in page.get("Contents", [])]
    def one(key):
        data = client.get_object(Bucket=bucket, Key=key)["Body"].read()
        digest = hashlib.sha256(data).hexdigest()
        with Image.open(io.BytesIO(data)) as image:
            orientation = int(image.getexif().get(EXIF_ORIENTATION, 1) or 1)
            image.load()
            shown = ImageOps.exif_transpose(image) if orientation != 1 else image
            return digest, str(imagehash.phash(shown))
    threads = (os.cpu_count() or 1) * FETCHES_PER_WORKER
    started = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        out = list(pool.map(one, keys))
    seconds = time.perf_counter() - started
    print(json.dumps({"files": len(out), "seconds": seconds, "threads": threads}))
else:
    from pathlib import Path
    from _contenders import run_ours
    result = run_ours(Path(corpus), count, source_uri=uri)
    keep = ("files", "seconds", "run_seconds")
    print(json.dumps({k: result[k] for k in keep}))
"""


def run(how: str, corpus: Path, uri: str, count: int, env: dict[str, str]) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(REPO), how, str(corpus), uri, str(count)],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
    )
    if out.returncode:
        raise RuntimeError(f"{how} failed:\n{out.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("count", nargs="?", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    from tests.servers.seaweed import SeaweedS3

    corpus = make_corpus(BENCH / ".data" / f"jpegs-{args.count}-7", args.count)
    with tempfile.TemporaryDirectory(prefix="bench-s3-") as tmp:
        server = SeaweedS3(Path(tmp) / "data", Path(tmp) / "weed.log")
        server.start()
        try:
            bucket = server.create_bucket("bench-corpus")
            client = server.client()
            started = time.perf_counter()
            for path in corpus_files(corpus):
                key = f"corpus/{path.relative_to(corpus).as_posix()}"
                client.put_object(Bucket=bucket, Key=key, Body=path.read_bytes())
            print(f"uploaded {args.count} JPEGs in {time.perf_counter() - started:.1f} s")
            uri = f"s3://{bucket}/corpus"
            results: dict[str, list[dict[str, Any]]] = {"baseline": [], "ours": []}
            for r in range(args.rounds):
                for how in ("baseline", "ours") if r % 2 == 0 else ("ours", "baseline"):
                    results[how].append(run(how, corpus, uri, args.count, server.env()))
                    print(f"  round {r + 1} {how:8} {results[how][-1]['seconds']:.2f} s")
        finally:
            server.stop()
    base = statistics.median(x["seconds"] for x in results["baseline"])
    ours = statistics.median(x["seconds"] for x in results["ours"])
    best = min(x["seconds"] for x in results["baseline"]) / min(
        x["seconds"] for x in results["ours"]
    )
    threads = results["baseline"][0]["threads"]
    print(f"\n== ingest from S3 (SeaweedFS): {args.count} JPEGs, {args.rounds} rounds ==")
    print(f"bare thread pool ({threads} threads): median {base:.2f} s")
    print(f"ours (dataset_items step):          median {ours:.2f} s")
    print(f"ours / baseline throughput: {base / ours:.2f} on medians, {best:.2f} on best rounds")


if __name__ == "__main__":
    main()
