"""A partition writer in a process of its own, for the pause-and-takeover tests: it writes one
chunk and stops at a named point (``write``: before committing; ``commit``: inside the commit,
after its lease was checked), says so on stdout and waits for a line on stdin; then it commits
and reports what happened.

Run: ``python -m tests.resources.lake.paused_writer URI POINT FINGERPRINT``."""

from __future__ import annotations

import sys
from typing import Any

import pyarrow as pa

from resources.errors import LakeError
from resources.lake.catalog import PENDING
from resources.lake.tables import Lake
from resources.stores.base import ObjectInfo, ObjectStore
from resources.stores.open import open_store

ASSET = "dataset_items"
PARTITION = "src_000001"
SCHEMA = pa.schema([("item_id", pa.string()), ("made_by", pa.string())])
#: Short enough that a successor may take over a paused writer within a second.
HEARTBEAT_S = 0.1


def table(made_by: str, n: int) -> pa.Table:
    ids = [f"item-{i:03d}" for i in range(n)]
    return pa.table({"item_id": ids, "made_by": [made_by] * n}, schema=SCHEMA)


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def wait_for_go() -> None:
    sys.stdin.readline()


class StopsAtCommit:
    """The lake's store, stopping before the first write of the commit (its catalog entry)."""

    def __init__(self, store: ObjectStore) -> None:
        self.store = store

    def put(self, key: str, data: bytes, **kwargs: Any) -> ObjectInfo:
        if key.endswith(PENDING):
            say("paused")
            wait_for_go()
        return self.store.put(key, data, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)


def main(uri: str, point: str, fingerprint: str) -> None:
    store = open_store(uri)
    lake = Lake(StopsAtCommit(store) if point == "commit" else store)  # type: ignore[arg-type]
    writer = lake.writer(ASSET, PARTITION, fingerprint=fingerprint, run_id="first")
    writer.lease.heartbeat_every = HEARTBEAT_S
    with writer:
        writer.write_chunk(table("first", 5), input_end=5)
        if point == "write":
            say("paused")
            wait_for_go()
        try:
            if point == "write":  # it goes on writing where it stopped
                writer.write_chunk(table("first, late", 5), input_end=10)
            writer.commit(SCHEMA)
            say("committed")
        except LakeError as exc:
            say(f"refused: {exc}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3])
