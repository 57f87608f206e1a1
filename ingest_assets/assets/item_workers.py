"""Where ``build_item`` runs: worker processes by default, threads on request, or inline.

Measured (``bench/ingest.py``, 2,000 real-looking JPEGs, 2 cores, see bench/README.md):
``build_item`` holds the GIL for about 0.7 ms of its 1.6 ms of CPU per image (perceptual hash,
Pillow's open and load), so two threads reach only 1.56x one thread, while two processes reach
2.00x (1.28x the threads) and 0.95x a bare process pool doing the same work. Decoding dominates,
so processes are the default. Threads remain for sources whose objects are slow to fetch and
cheap to decode (``worker_kind: threads``), and one worker runs inline, with no pool at all.

Processes come from a forkserver, not ``fork``: the step process already runs threads (Dagster,
lease heartbeats), and forking a threaded process can deadlock the child. Each worker opens the
source's store once, in its initializer, with the step's environment (the
forkserver keeps the environment it started with), from the source's validated settings.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

from ingest_assets.items.inspect import configure_pillow
from ingest_assets.items.rows import build_item
from resources.config import SourceConfig
from resources.stores.base import ObjectStore
from resources.stores.open import open_source_store

#: Modules the forkserver imports once, so that each worker starts warm.
PRELOAD = ["ingest_assets.assets.item_workers", "imagehash", "scipy.fft", "pyarrow"]

#: Item rows for a chunk of raw rows, yielded in order as they are ready.
BuildRows = Callable[[list[dict[str, Any]]], Iterator[dict[str, Any]]]

_worker: tuple[ObjectStore, SourceConfig, str] | None = None


def _start_worker(source: SourceConfig, batch: str, environment: dict[str, str]) -> None:
    global _worker
    # The forkserver was started with the environment of its first user; a worker must see
    # the step's (credentials the config names, a default chain, an endpoint).
    os.environ.clear()
    os.environ.update(environment)
    configure_pillow(source.max_image_pixels)
    _worker = (open_source_store(source), source, batch)


def _build_in_worker(raw: dict[str, Any]) -> dict[str, Any]:
    assert _worker is not None, "worker started without its initializer"
    store, source, batch = _worker
    return build_item(raw, store, source, batch)


def _chunksize(rows: int, workers: int) -> int:
    return max(1, min(64, rows // (workers * 16)))


@contextmanager
def item_builder(
    source: SourceConfig, store: ObjectStore, batch: str, workers: int
) -> Iterator[BuildRows]:
    """A function that turns a chunk of ``raw_items`` rows into item rows, in order, for as
    long as the context lasts (one pool per batch)."""
    configure_pillow(source.max_image_pixels)
    if workers <= 1:
        yield lambda chunk: (build_item(r, store, source, batch) for r in chunk)
        return
    pool: Executor
    if source.worker_kind == "threads":
        pool = ThreadPoolExecutor(workers, thread_name_prefix="items")
        with pool:
            yield lambda chunk: pool.map(lambda r: build_item(r, store, source, batch), chunk)
        return
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(PRELOAD)
    pool = ProcessPoolExecutor(
        workers,
        mp_context=context,
        initializer=_start_worker,
        initargs=(source, batch, dict(os.environ)),
    )
    with pool:
        yield lambda chunk: pool.map(
            _build_in_worker, chunk, chunksize=_chunksize(len(chunk), workers)
        )
