"""What bench/ingest.py times. Each runs in a fresh process of its own (``ingest.py
--contender NAME``), so each peak RSS belongs to one contender, and returns a JSON-able dict.

- ``baseline``: a bare process pool on all cores doing per file exactly what an item costs us:
  read, sha256, Pillow open, EXIF orientation, full decode, perceptual hash of the upright image.
- ``ours``: the real asset graph: claim the folder as one batch (like ``bucketlake sync``), then
  ``materialize([raw_items, dataset_items])`` on a real Dagster instance, as the tests do.
"""

from __future__ import annotations

import hashlib
import io
import multiprocessing
import os
import resource
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from _meter import Meter, maxrss_mib, rss_mib

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

EXIF_ORIENTATION = 0x0112


def warm_imports() -> None:
    """Import what the first perceptual hash imports lazily (scipy's FFT), so that a one-off
    per-process cost stays out of every contender's timing alike."""
    import imagehash
    from PIL import Image

    imagehash.phash(Image.new("L", (64, 64)))


def chunksize_for(count: int, workers: int) -> int:
    """Big enough to amortise a pickle round trip, small enough to balance the tail."""
    return max(1, min(64, count // (workers * 8)))


# -- baseline ------------------------------------------------------------------------------
def baseline_one(path: str) -> tuple[int, str, int, int, str]:
    """One file, the same work as our ``verify: full`` item, with nothing around it."""
    import imagehash
    from PIL import Image, ImageOps

    with open(path, "rb") as handle:
        data = handle.read()
    digest = hashlib.sha256(data).hexdigest()
    with Image.open(io.BytesIO(data)) as image:
        width, height = image.size
        orientation = int(image.getexif().get(EXIF_ORIENTATION, 1) or 1)
        if orientation in (5, 6, 7, 8):
            width, height = height, width
        image.load()
        shown = ImageOps.exif_transpose(image) if orientation != 1 else image
        phash = str(imagehash.phash(shown))
    return len(data), digest, width, height, phash


def run_baseline(corpus: Path, workers: int) -> dict[str, Any]:
    warm_imports()  # before forking: the workers inherit it
    files = [str(p) for p in sorted(corpus.rglob("*.jpg"))]
    rss_before = rss_mib()
    context = multiprocessing.get_context("fork")
    with Meter() as meter, ProcessPoolExecutor(workers, mp_context=context) as pool:
        out = list(pool.map(baseline_one, files, chunksize=chunksize_for(len(files), workers)))
    return {
        "files": len(out),
        **meter.as_dict(),
        "workers": workers,
        "rss_before_mib": rss_before,
        "maxrss_mib": maxrss_mib(),
        "child_maxrss_mib": maxrss_mib(resource.RUSAGE_CHILDREN),
    }


# -- ours ----------------------------------------------------------------------------------
def _step_seconds(instance: Any, run_id: str, step: str) -> tuple[float, float]:
    """(seconds between STEP_START and STEP_SUCCESS, Dagster's own duration_ms / 1000)."""
    start = success = None
    duration = float("nan")
    for entry in instance.all_logs(run_id):
        event = entry.dagster_event
        if event is None or event.step_key != step:
            continue
        if event.event_type_value == "STEP_START":
            start = entry.timestamp
        elif event.event_type_value == "STEP_SUCCESS":
            success = entry.timestamp
            duration = event.event_specific_data.duration_ms / 1000
    if start is None or success is None:
        raise RuntimeError(f"run {run_id} has no STEP_START/STEP_SUCCESS for {step}")
    return success - start, duration


def run_ours(
    corpus: Path, count: int, profile: Path | None = None, source_uri: str | None = None
) -> dict[str, Any]:
    """The real graph on one batch of the corpus folder (or of ``source_uri``, a bucket
    holding the same files, reached through the environment's credentials)."""
    import yaml
    from dagster import instance_for_test, materialize

    from ingest_assets.assets.dataset_items import dataset_items
    from ingest_assets.assets.raw_items import raw_items
    from ingest_assets.claiming.claim import Claimer
    from resources.config import load_config
    from resources.project import project_resources
    from resources.stores.local import LocalFolderStore

    os.environ.setdefault("DAGSTER_DISABLE_TELEMETRY", "1")
    with tempfile.TemporaryDirectory(prefix="bench-ours-") as tmp:
        root = Path(tmp)
        config_path = root / "bucketlake.yaml"
        body = {
            "lake": str(root / "lake"),
            "dagster_home": str(root / "dagster_home"),
            "sources": [
                {"name": "inbox", "uri": source_uri or str(corpus), "batch_size": max(count, 1)},
            ],
        }
        config_path.write_text(yaml.safe_dump(body), encoding="utf-8")
        config = load_config(config_path)
        source = config.source("inbox")
        started = time.perf_counter()
        from resources.stores.open import open_source_store

        claim = Claimer(
            source, open_source_store(source), LocalFolderStore(root / "lake"), claimer="bench"
        ).claim(registered=set(), close_all=True)
        claim_seconds = time.perf_counter() - started
        if len(claim.new_batches) != 1:
            raise RuntimeError(f"expected one batch, the claim made {claim.new_batches}")
        batch = claim.new_batches[0]
        with instance_for_test() as instance:
            instance.add_dynamic_partitions("batches", [batch])
            warm_imports()
            rss_before = rss_mib()
            profiler = _start_profile(profile)
            with Meter() as meter:
                result = materialize(
                    [raw_items, dataset_items],
                    partition_key=batch,
                    resources=project_resources(config),
                    instance=instance,
                )
            _stop_profile(profiler, profile)
            if not result.success:
                raise RuntimeError(f"materialize failed for {batch}")
            step_seconds, step_duration = _step_seconds(instance, result.run_id, "dataset_items")
            raw_seconds, _ = _step_seconds(instance, result.run_id, "raw_items")
        from resources.lake.tables import Lake

        table = Lake(LocalFolderStore(root / "lake")).read_table("dataset_items", batch)
        ok = sum(1 for s in table.column("status").to_pylist() if s == "ok")
    return {
        "files": table.num_rows,
        "ok": ok,
        "claim_seconds": claim_seconds,
        "run_seconds": meter.seconds,
        "cpu_seconds": meter.cpu_seconds,  # the whole run's
        "others_cores": meter.others_cores,
        "raw_items_seconds": raw_seconds,
        "seconds": step_seconds,
        "step_duration_seconds": step_duration,
        "workers": source.num_workers or os.cpu_count() or 1,
        "rss_before_mib": rss_before,
        "maxrss_mib": maxrss_mib(),
    }


def _start_profile(path: Path | None) -> Any:
    """cProfile in every thread (the items run in pool threads, not the main one)."""
    if path is None:
        return None
    import cProfile
    import threading

    profiles: list[cProfile.Profile] = []

    def enable_here(*_: Any) -> None:  # the first event in each new thread
        sys.setprofile(None)
        profile = cProfile.Profile()
        profiles.append(profile)
        profile.enable()

    main = cProfile.Profile()
    profiles.append(main)
    threading.setprofile(enable_here)
    main.enable()
    return profiles


def _stop_profile(profiles: Any, path: Path | None) -> None:
    if profiles is None or path is None:
        return
    import pstats
    import threading

    threading.setprofile(None)
    for profile in profiles:
        profile.disable()
    stats = pstats.Stats(profiles[0])
    for profile in profiles[1:]:
        stats.add(profile)
    stats.dump_stats(str(path))
