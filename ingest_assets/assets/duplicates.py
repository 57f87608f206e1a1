"""``duplicates``: for each item of a batch, the earlier item it duplicates, exactly (same
sha256) or nearly (perceptual hashes within the source's ``near_duplicate_distance``), across
this batch and every batch registered before it.

The batches compared against are fixed: every batch registered before this one whose items are
committed, once those whose runs are still going have finished (waited for, up to a bound). They
are named in the table's fingerprint and the metadata, so a re-run against the same history
gives the same table, whatever else runs beside it. The earlier items are read from the current
view's hash columns only, and matched as arrays (items/duplicates.py).
"""

import hashlib
import json
import time
from collections.abc import Callable, Sequence

import pyarrow as pa
import pyarrow.compute as pc
from dagster import (
    AssetExecutionContext,
    DagsterInstance,
    DagsterRunStatus,
    MaterializeResult,
    MetadataValue,
    RunsFilter,
    asset,
)

from ingest_assets.assets.dataset_items import dataset_items
from ingest_assets.assets.metadata import Timer, column_schema, markdown_table
from ingest_assets.assets.runtime import INGEST_RETRY, record_run_process, run_process_is_dead
from ingest_assets.items.duplicates import Hashes, duplicate_counts, match_duplicates
from ingest_assets.names import DATASET_ITEMS, DUPLICATES, PARTITION_TAG
from ingest_assets.partitions import BATCHES, batches
from resources.lake.datapool import parse_batch_key
from resources.lake.resource import LakeResource
from resources.stores.resource import SourcesResource

#: Bump when duplicates rows would come out differently for the same items.
DUPLICATES_CODE_VERSION = "duplicates-2"
COLUMNS = ["item_id", "key", "batch", "sha256", "phash", "status"]
SCHEMA = pa.schema(
    [
        ("item_id", pa.string()),
        ("key", pa.string()),
        ("kind", pa.string()),
        ("distance", pa.int16()),
        ("duplicate_of", pa.string()),
        ("duplicate_key", pa.string()),
        ("duplicate_batch", pa.string()),
    ]
)
#: How long a batch waits for the runs of earlier batches that are still writing their items.
WAIT_FOR_EARLIER_S = 900.0
POLL_S = 2.0
_RUNNING = [DagsterRunStatus.STARTING, DagsterRunStatus.STARTED]


def wait_for_earlier(
    instance: DagsterInstance,
    batches_: Sequence[str],
    committed: Callable[[], set[str]],
    log: Callable[[str], None],
    wait_s: float = WAIT_FOR_EARLIER_S,
) -> set[str]:
    """The committed partitions once none of ``batches_`` that is not committed has a live run
    (or after ``wait_s``). A run that is queued is not waited for: it may be queued behind
    this one."""
    deadline = time.monotonic() + wait_s
    while True:
        done = committed()
        running = [
            b
            for b in batches_
            if b not in done
            and any(
                not run_process_is_dead(run)
                for run in instance.get_runs(RunsFilter(tags={PARTITION_TAG: b}, statuses=_RUNNING))
            )
        ]
        if not running or time.monotonic() > deadline:
            if running:
                log(
                    f"gave up waiting after {wait_s:.0f}s for the items of earlier batches "
                    f"{', '.join(running[:5])}; they are not compared with this batch"
                )
            return done
        log(f"waiting for the items of earlier batches still running: {', '.join(running[:5])}")
        time.sleep(POLL_S)


def _ok_hashes(table: pa.Table) -> pa.Table:
    return table.filter(pc.equal(table.column("status"), "ok"))


@asset(
    name=DUPLICATES,
    partitions_def=batches,
    code_version=DUPLICATES_CODE_VERSION,
    deps=[dataset_items],
    group_name="ingest",
    kinds={"parquet"},
    retry_policy=INGEST_RETRY,
    description="Exact (sha256) and near (perceptual hash) duplicates of this batch's items "
    "among themselves and among the items of earlier batches.",
)
def duplicates(
    context: AssetExecutionContext, lake: LakeResource, sources: SourcesResource
) -> MaterializeResult[None]:
    record_run_process(context)
    timer = Timer()
    batch = context.partition_key
    source = sources.source(parse_batch_key(batch)[0])
    tables = lake.lake()
    registered = context.instance.get_dynamic_partitions(BATCHES)
    earlier = registered[: registered.index(batch)] if batch in registered else []
    committed = wait_for_earlier(
        context.instance,
        earlier,
        lambda: set(tables.committed_partitions(DATASET_ITEMS)),
        context.log.info,
    )
    compared = [b for b in earlier if b in committed]
    skipped = [b for b in earlier if b not in committed]
    own = tables.read_commit(DATASET_ITEMS, batch)
    new_rows = tables.read_table(DATASET_ITEMS, batch, COLUMNS)
    new_ok = _ok_hashes(new_rows)
    new_ids = new_rows.column("item_id").combine_chunks()
    commits = tables.read_commits(DATASET_ITEMS, compared)
    old_parts: list[pa.Table] = []
    for chunk in tables.iter_current(
        DATASET_ITEMS, commits=commits, columns=COLUMNS, filter=pc.field("status") == "ok"
    ):
        # An item's own older version is not its duplicate.
        old_parts.append(chunk.filter(pc.invert(pc.is_in(chunk.column("item_id"), new_ids))))
    old = pa.concat_tables(old_parts) if old_parts else new_ok.schema.empty_table()
    both = pa.concat_tables([old.select(COLUMNS), new_ok.select(COLUMNS)]).combine_chunks()
    found = match_duplicates(
        Hashes.from_columns(both.column("sha256"), both.column("phash")),
        max_distance=source.near_duplicate_distance,
        new_from=old.num_rows,
    )
    ids, keys, batch_of = (both.column(c) for c in ("item_id", "key", "batch"))
    rows = [
        {
            "item_id": ids[m.index].as_py(),
            "key": keys[m.index].as_py(),
            "kind": m.kind,
            "distance": m.distance,
            "duplicate_of": ids[m.original].as_py(),
            "duplicate_key": keys[m.original].as_py(),
            "duplicate_batch": batch_of[m.original].as_py(),
        }
        for m in found
    ]
    table = pa.Table.from_pylist(rows, schema=SCHEMA)
    history = [[b, c.fingerprint, c.run_id] for b, c in commits]
    own_version = [own.fingerprint, own.run_id] if own else None
    fingerprint = hashlib.sha256(
        json.dumps(
            [DUPLICATES_CODE_VERSION, source.near_duplicate_distance, own_version, history]
        ).encode()
    ).hexdigest()
    with tables.writer(
        DUPLICATES, batch, fingerprint=fingerprint, run_id=context.run.run_id
    ) as writer:
        if table.num_rows > writer.resume_from:  # not when a crash left it written whole
            writer.write_chunk(table.slice(writer.resume_from), input_end=table.num_rows)
        writer.commit(SCHEMA, compared_batches=len(compared), not_compared=skipped)
    counts = duplicate_counts(found)
    return MaterializeResult(
        metadata={
            "dagster/row_count": table.num_rows,
            "dagster/column_schema": column_schema(SCHEMA),
            "exact_duplicates": counts["exact"],
            "near_duplicates": counts["near"],
            "duplicate_rate": round(len(found) / new_ok.num_rows, 4) if new_ok.num_rows else 0.0,
            "compared_with_earlier_items": old.num_rows,
            "compared_with_batches": len(compared),
            "not_compared_batches": MetadataValue.json(skipped),
            "near_duplicate_distance": source.near_duplicate_distance,
            "fingerprint": fingerprint,
            "table": MetadataValue.path(tables.table_uri(DUPLICATES, batch)),
            "preview": markdown_table(
                rows[:10], ["key", "kind", "distance", "duplicate_key", "duplicate_batch"]
            ),
            **timer.metadata(new_ok.num_rows, "items"),
        }
    )
