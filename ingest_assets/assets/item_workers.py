"""Where ``build_item`` runs: worker processes by default, threads on request, or inline.

Measured (``bench/ingest.py``, 2,000 real-looking JPEGs, 2 cores, see bench/README.md):
``build_item`` holds the GIL for about 0.7 ms of its 1.6 ms of CPU per image (perceptual hash,
Pillow's open and load), so two threads reach only 1.56x one thread, while two processes reach
2.00x (1.28x the threads) and 0.95x a bare process pool doing the same work. Decoding dominates,
so processes are the default. Threads remain for sources whose objects are slow to fetch and
cheap to decode (``worker_kind: threads``), and one worker runs inline, with no pool at all.

Processes come from a forkserver, not ``fork``: the step process already runs threads (Dagster,
lease heartbeats), and forking a threaded process can deadlock the child. The work is cut in
two: the step's process fetches each object (threads: fetching waits on the store, and the
store, its clients and credentials stay in the step), and the workers only describe bytes
(sha256, decode, perceptual hash: ``items/inspect.py``), so that a worker imports Pillow and
ImageHash and nothing else, no Dagster, no cloud clients: it starts in a fraction of a second.
Groups of items travel to the workers together, and a bounded window of groups is in flight,
so memory holds a few groups' bytes, never a chunk's.

Objects that cannot be fetched become items with a status (``items/fetch.py``), but a store
that is down must not turn a whole batch into ``unreadable`` rows. The rule: when every object
of a chunk failed for a store-level reason (unavailable after the store's retries, or bad
credentials) and nothing of this run has been fetched, the batch fails; nothing of that chunk
is written, and the run is retried. A store with one endpoint (a bucket) is judged down sooner,
after :data:`OUTAGE_PROBE` such objects in a row; a manifest's entries may live on many hosts,
so there only a whole chunk counts. Once the store has answered for one object, such failures
are that object's status, so the good items of a batch always commit. Transient failures also
fail the step while Dagster still has retries for it (``FetchRules.raise_transient``): only its
last attempt records them as items.
"""

from __future__ import annotations

import multiprocessing
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

from ingest_assets.items.fetch import (
    STORE_FAILURES,
    UNAVAILABLE,
    Fetched,
    FetchRules,
    fetch_and_describe_local,
    fetch_object,
)
from ingest_assets.items.inspect import configure_pillow, describe_many
from ingest_assets.items.rows import build_item, error_reason, is_tombstone, item_row_start
from resources.config import SourceConfig
from resources.errors import BadCredentials, StoreError, TransientStoreError
from resources.stores.base import ObjectStore
from resources.stores.local import LocalFolderStore
from resources.stores.manifest import ManifestStore

#: Modules the forkserver imports once, so that each worker starts warm (and nothing more).
PRELOAD = ["ingest_assets.items.inspect", "ingest_assets.items.fetch"]
#: Fetch threads per worker process: enough to keep a worker busy on a store that answers in
#: tens of milliseconds.
FETCHES_PER_WORKER = 4

#: Objects fetched into the step per group for a remote store: with the window of groups in
#: flight, about workers x 24 objects' bytes at most are held at once.
REMOTE_GROUP = 4

#: Objects of a one-endpoint store in a row that, failing at the store level before any object
#: of the run was fetched, fail the batch as a store outage.
OUTAGE_PROBE = 20

#: Item rows for a chunk of raw rows, yielded in order as they are ready.
BuildRows = Callable[[list[dict[str, Any]]], Iterator[dict[str, Any]]]


def _forkserver() -> Any:
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(PRELOAD)
    return context


def warm_up_workers() -> None:
    """Start the forkserver (and its imports) in the background now, so that the item
    workers of this run start at once when ``dataset_items`` asks for them."""
    from multiprocessing import forkserver

    _forkserver()
    threading.Thread(target=forkserver.ensure_running, name="forkserver", daemon=True).start()


def _group_size(rows: int, workers: int) -> int:
    return max(1, min(64, rows // (workers * 16)))


@contextmanager
def item_builder(
    source: SourceConfig,
    store: ObjectStore,
    batch: str,
    workers: int,
    *,
    retries_left: bool = False,
) -> Iterator[BuildRows]:
    """A function that turns a chunk of ``raw_items`` rows into item rows, in order, for as
    long as the context lasts (one pool per batch). A store outage raises (the module's rule);
    while the step has ``retries_left``, so does any transient failure to fetch an object."""
    configure_pillow(source.max_image_pixels)
    rules = FetchRules.of(source, raise_transient=retries_left)
    probe = None if isinstance(store, ManifestStore) else OUTAGE_PROBE
    guard = OutageGuard(source.name, batch, probe)
    if workers <= 1:
        yield lambda chunk: guard.watch(build_item(r, store, source, batch, rules) for r in chunk)
        return
    if source.worker_kind == "threads":
        with ThreadPoolExecutor(workers, thread_name_prefix="items") as threads:
            yield lambda chunk: guard.watch(
                threads.map(lambda r: build_item(r, store, source, batch, rules), chunk)
            )
        return
    with (
        ProcessPoolExecutor(
            workers,
            mp_context=_forkserver(),
            initializer=configure_pillow,
            initargs=(source.max_image_pixels,),
        ) as pool,
        ThreadPoolExecutor(workers * FETCHES_PER_WORKER, thread_name_prefix="fetch") as fetch,
    ):
        pipeline = _Pipeline(source, store, batch, pool, fetch, workers, rules)
        yield lambda chunk: guard.watch(pipeline.rows(chunk))


class OutageGuard:
    """Watches a batch's item rows for a store that is down (the module's rule)."""

    def __init__(self, source: str, batch: str, probe: int | None = OUTAGE_PROBE) -> None:
        """``probe``: failures in a row that are enough to judge the store down before a chunk
        ends (None: only a whole chunk is)."""
        self.source, self.batch, self.probe = source, batch, probe
        self.answered = False  # the store gave (or refused) one object of this run
        self.failed_in_a_row = 0
        self.last_error = ""

    def watch(self, rows: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        """``rows`` (one chunk), passed on; raises before the chunk ends if the store is down."""
        for row in rows:
            self._note(row)
            probed = self.probe is not None and self.failed_in_a_row >= self.probe
            if probed and not self.answered:
                raise self._outage()
            yield row
        if not self.answered and self.failed_in_a_row:
            raise self._outage()

    def _note(self, row: dict[str, Any]) -> None:
        if is_tombstone(row):
            return  # not fetched
        if row["status"] == "unreadable" and error_reason(row["error"]) in STORE_FAILURES:
            self.failed_in_a_row += 1
            self.last_error = row["error"]
            return
        self.answered = True
        self.failed_in_a_row = 0

    def _outage(self) -> StoreError:
        down = error_reason(self.last_error) == UNAVAILABLE
        kind: type[StoreError] = TransientStoreError if down else BadCredentials
        return kind(
            f"source {self.source}, batch {self.batch}: none of the {self.failed_in_a_row} "
            "objects this run tried could be fetched, so the store looks "
            f"{'unreachable' if down else 'to refuse its credentials'}; the batch fails "
            "rather than record them all as unreadable. Check the store (its endpoint and "
            "credentials) and run the batch again; the last error: "
            f"{self.last_error}",
            store=self.source,
        )


class _Pipeline:
    """Fetch groups of objects in threads, describe each group in a worker process, and hand
    the rows back in input order, with at most ``window`` groups in flight."""

    def __init__(
        self,
        source: SourceConfig,
        store: ObjectStore,
        batch: str,
        pool: ProcessPoolExecutor,
        fetch: ThreadPoolExecutor,
        workers: int,
        rules: FetchRules,
    ) -> None:
        self.source, self.store, self.batch = source, store, batch
        self.pool, self.fetch, self.workers = pool, fetch, workers
        self.rules = rules
        self.window = workers * (FETCHES_PER_WORKER + 2)

    def _fetch_and_send(self, group: list[dict[str, Any]]) -> Future[list[dict[str, object]]]:
        verify, max_pixels = self.source.verify, self.source.max_image_pixels
        if isinstance(self.store, LocalFolderStore):  # a worker reads a file as fast as we do
            fields = ("key", "uri", "change_token", "deleted", "size")
            raws = [{k: raw.get(k) for k in fields} for raw in group]
            return self.pool.submit(
                fetch_and_describe_local,
                str(self.store.root),
                raws,
                self.batch,
                verify,
                max_pixels,
                self.rules,
                self.store.follow_symlinks,
            )
        fetched = [fetch_object(raw, self.store, self.batch, self.rules) for raw in group]
        described = self.pool.submit(describe_many, [f.data for f in fetched], verify, max_pixels)
        return _with_outcomes(fetched, described)

    def rows(self, chunk: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        size = _group_size(len(chunk), self.workers)
        if not isinstance(self.store, LocalFolderStore):
            # The step holds the bytes of every group in flight: keep groups small.
            size = min(size, REMOTE_GROUP)
        in_flight: deque[tuple[list[dict[str, Any]], Future[Any]]] = deque()
        for start in range(0, len(chunk), size):
            group = chunk[start : start + size]
            in_flight.append((group, self.fetch.submit(self._fetch_and_send, group)))
            if len(in_flight) >= self.window:
                yield from self._finish(*in_flight.popleft())
        while in_flight:
            yield from self._finish(*in_flight.popleft())

    def _finish(self, group: list[dict[str, Any]], sent: Future[Any]) -> Iterator[dict[str, Any]]:
        described = sent.result().result()
        for raw, fields in zip(group, described, strict=True):
            yield {**item_row_start(raw, self.source, self.batch), **fields}


def _with_outcomes(
    fetched: list[Fetched], described: Future[list[dict[str, object] | None]]
) -> Future[list[dict[str, object]]]:
    """The fields of each item: described by a worker, or the outcome of a failed fetch."""
    done: Future[list[dict[str, object]]] = Future()

    def merge(future: Future[list[dict[str, object] | None]]) -> None:
        try:
            facts = future.result()
        except BaseException as exc:  # handed to whoever waits for the group
            done.set_exception(exc)
            return
        done.set_result(
            [f.outcome if d is None else d for f, d in zip(fetched, facts, strict=True)]
        )

    described.add_done_callback(merge)
    return done
