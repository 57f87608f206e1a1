"""Threads or processes for ``build_item``: our per-item function over the same files in a
thread pool and in process pools, at 1 and all cores, beside the bare baseline's pool.

Fairness on a shared machine: every pool is started before timing and kept (as the asset keeps
its pool across checkpoint chunks); the corpus is cut into slices, and each slice runs through
every pool in turn, the order rotating, so that load from other processes lands on all of them
alike. Pool start-up is measured apart, since a run pays it once per batch.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import statistics
from collections.abc import Callable
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from _contenders import baseline_one, warm_imports
from _meter import Meter

#: What a forkserver imports once, so that each pool's workers start without importing.
FORKSERVER_PRELOAD = [
    "_contenders", "_workers", "ingest_assets.items.rows", "resources.stores.local",
    "scipy.fftpack",
]  # fmt: skip
SLICES = 8  # per pass over the corpus
BARE = "bare baseline"

_STATE: dict[str, Any] = {}


def _init_items(corpus: str) -> None:
    from ingest_assets.items.inspect import configure_pillow
    from resources.config import SourceConfig
    from resources.stores.local import LocalFolderStore

    source = SourceConfig(name="inbox", uri=corpus)
    configure_pillow(source.max_image_pixels)
    _STATE.update(store=LocalFolderStore(corpus), source=source, batch="inbox_000001")
    warm_imports()


def _build(raw: dict[str, Any]) -> dict[str, Any]:
    from ingest_assets.items.rows import build_item

    return build_item(raw, _STATE["store"], _STATE["source"], _STATE["batch"])


def _raw_rows(corpus: Path) -> list[dict[str, Any]]:
    """``raw_items`` rows for the corpus, as the manifest would give them."""
    from resources.lake.datapool import object_kind
    from resources.stores.local import LocalFolderStore

    store = LocalFolderStore(corpus)
    return [
        {
            "key": o.key,
            "uri": store.uri(o.key),
            "change_token": o.change_token,
            "kind": object_kind(o.key),
            "size": o.size,
            "metadata": None,
        }
        for page in store.list_objects()
        for o in page
        if o.key.endswith(".jpg")
    ]


def _start_pool(kind: str, workers: int, corpus: str) -> Executor:
    if kind == "threads":
        return ThreadPoolExecutor(workers)
    if kind == BARE:
        return ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork"))
    return ProcessPoolExecutor(
        workers,
        mp_context=multiprocessing.get_context(kind.split(":", 1)[1]),
        initializer=_init_items,
        initargs=(corpus,),
    )


def _pids(pool: Executor) -> Callable[[], list[int]]:
    """The pool's worker processes (none for threads), for the meter's CPU count."""
    return lambda: list(getattr(pool, "_processes", None) or {})


class _Rival:
    def __init__(self, kind: str, workers: int, corpus: Path, rows: list[dict[str, Any]]):
        self.kind, self.workers, self.corpus = kind, workers, str(corpus)
        self.name = f"{kind} x{workers}"
        self.pool: Executor | None = None
        if kind == BARE:
            paths = [str(corpus / r["key"]) for r in rows]
            self.fn: Callable[[Any], Any] = baseline_one
            self.items: list[Any] = paths
        else:
            self.fn, self.items = _build, rows

    def start(self) -> float:
        """Start the pool and make every worker do one item; returns the seconds it took."""
        if self.pool is not None:
            self.pool.shutdown()
        with Meter() as meter:
            self.pool = _start_pool(self.kind, self.workers, self.corpus)
            list(self.pool.map(self.fn, self.items[: 4 * self.workers]))
        return meter.seconds

    def run(self, items: list[Any]) -> Meter:
        assert self.pool is not None
        threads = self.kind == "threads"
        chunk = 1 if threads else max(1, len(items) // (self.workers * 16))
        with Meter(_pids(self.pool)) as meter:
            out = list(self.pool.map(self.fn, items, chunksize=chunk))
        if self.kind != BARE:
            bad = [r["key"] for r in out if r["status"] != "ok"]
            if bad:
                raise RuntimeError(f"{self.name}: {len(bad)} items not ok, e.g. {bad[:3]}")
        return meter


def run_workers(corpus: Path, repeats: int) -> dict[str, Any]:
    """Per pool: start-up seconds (median of ``repeats`` starts), and per pass over the corpus
    its seconds, CPU seconds and the other processes' load."""
    _init_items(str(corpus))  # threads use this process's state; forked workers inherit it
    multiprocessing.get_context("forkserver").set_forkserver_preload(FORKSERVER_PRELOAD)
    rows = _raw_rows(corpus)
    cores = os.cpu_count() or 1
    rivals = [
        _Rival(kind, workers, corpus, rows)
        for kind, workers in [
            ("threads", 1),
            ("processes:fork", 1),
            ("threads", cores),
            ("processes:fork", cores),
            ("processes:forkserver", cores),
            (BARE, cores),
        ]
    ]
    starts: dict[str, list[float]] = {r.name: [] for r in rivals}
    for _ in range(repeats):
        for rival in rivals:
            starts[rival.name].append(rival.start())
    size = math.ceil(len(rows) / SLICES)
    bounds = [(i, min(i + size, len(rows))) for i in range(0, len(rows), size)]
    runs: dict[str, list[dict[str, float]]] = {r.name: [] for r in rivals}
    try:
        for pass_ in range(repeats):
            totals = {r.name: {"seconds": 0.0, "cpu_seconds": 0.0, "others": 0.0} for r in rivals}
            for index, (lo, hi) in enumerate(bounds):
                turn = (index + pass_) % len(rivals)
                for rival in rivals[turn:] + rivals[:turn]:
                    meter = rival.run(rival.items[lo:hi])
                    total = totals[rival.name]
                    total["seconds"] += meter.seconds
                    total["cpu_seconds"] += meter.cpu_seconds
                    total["others"] += meter.others_cores * meter.seconds
            for name, total in totals.items():
                runs[name].append(
                    {
                        "seconds": total["seconds"],
                        "cpu_seconds": total["cpu_seconds"],
                        "others_cores": total["others"] / total["seconds"],
                    }
                )
    finally:
        for rival in rivals:
            if rival.pool is not None:
                rival.pool.shutdown()
    return {
        "files": len(rows),
        "cores": cores,
        "slice": size,
        "startup": {name: statistics.median(ts) for name, ts in starts.items()},
        "first_startup": {name: ts[0] for name, ts in starts.items()},
        "runs": runs,
    }
