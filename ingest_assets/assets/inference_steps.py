"""What the inference assets (``embeddings``, ``predictions_<model>``) share: the ok items of
a batch, and a model run over them written in checkpointed chunks, so that a killed run
resumes after its last chunk. An item that cannot be read or decoded is skipped and counted."""

from __future__ import annotations

import functools
import hashlib
import json
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc
from dagster import AssetExecutionContext, Failure

from ingest_assets.items.rows import error_reason
from ingest_assets.names import DATASET_ITEMS
from ingest_assets.progress import Progress
from resources.config import SourceConfig
from resources.errors import ACCESS_DENIED, BAD_CREDENTIALS, ConfigError
from resources.inference.decode import ItemRef
from resources.inference.runtime import InferenceRuntime
from resources.inference.specs import ModelSpec
from resources.lake.datapool import parse_batch_key
from resources.lake.tables import Commit, Lake, PartitionWriter
from resources.stores.base import ReadLimits
from resources.stores.open import open_source_store
from resources.stores.resource import SourcesResource

if TYPE_CHECKING:
    from resources.inference.models import LoadedModel, Outputs

#: What the inference and training assets read of an item.
ITEM_COLUMNS = ["item_id", "key", "change_token", "label", "split", "source", "status"]

#: Read failures that say the store refuses us, not that an item is bad; this many in a row (or
#: every read of a smaller batch) fail the step rather than commit a table of skipped items.
STORE_REFUSALS = frozenset({BAD_CREDENTIALS, ACCESS_DENIED})
OUTAGE_READS = 20

#: Makes a chunk's table from the items that gave outputs and those outputs.
RowsOf = Callable[[list[dict[str, Any]], "Outputs"], pa.Table]


def ok_items(lake: Lake, batch: str | None = None) -> pa.Table:
    """The batch's items with status ok, in the table's order; with no batch, the current
    ok items of every batch, by item_id."""
    if batch is None:
        items = lake.read_current(DATASET_ITEMS, columns=ITEM_COLUMNS)
    else:
        items = lake.read_table(DATASET_ITEMS, batch, columns=ITEM_COLUMNS)
    items = items.filter(pc.equal(items.column("status"), "ok"))
    return items.sort_by("item_id") if batch is None else items


def step_fingerprint(
    lake: Lake, batch: str, spec: ModelSpec, runtime: InferenceRuntime, *settings: Any
) -> str:
    """What a checkpoint must match to be resumed: the items, the model and what changes its
    outputs (precision, device), and the asset's own ``settings``."""
    commit = lake.read_commit(DATASET_ITEMS, batch)
    if commit is None:
        raise Failure(
            f"dataset_items has no committed table for batch {batch}; materialize it first "
            "(ingest_job runs it before the inference assets)",
            allow_retries=False,
        )
    numerics = [runtime.precision, runtime.torch_device().type]
    text = json.dumps(
        [commit.fingerprint, spec.key, spec.weights, numerics, *settings], sort_keys=True
    )
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass
class RunCounts:
    done: int = 0
    skipped: int = 0
    reasons: Counter[str] = field(default_factory=Counter)


def write_outputs(
    context: AssetExecutionContext,
    *,
    tables: Lake,
    asset: str,
    fingerprint: str,
    runtime: InferenceRuntime,
    model: LoadedModel,
    items: pa.Table,
    source: SourceConfig,
    rows_of: RowsOf,
    schema: pa.Schema,
    commit_extra: dict[str, Any],
) -> tuple[Commit, RunCounts, int]:
    """``model`` over the batch's ``items`` into ``asset``'s partition, resuming after its
    last matching checkpoint: the commit, this run's counts and the rows it resumed."""
    batch = context.partition_key
    with tables.writer(asset, batch, fingerprint=fingerprint, run_id=context.run.run_id) as writer:
        counts = _run_checkpointed(
            context,
            runtime=runtime,
            model=model,
            items=items,
            source=source,
            writer=writer,
            rows_of=rows_of,
            empty=schema.empty_table(),
            what=f"{batch} {asset}",
        )
        commit = writer.commit(schema, **commit_extra)  # the commit marker's extra fields
    return commit, counts, writer.resumed_rows


def _run_checkpointed(
    context: AssetExecutionContext,
    *,
    runtime: InferenceRuntime,
    model: LoadedModel,
    items: pa.Table,
    source: SourceConfig,
    writer: PartitionWriter,
    rows_of: RowsOf,
    empty: pa.Table,
    what: str,
) -> RunCounts:
    """``model`` over ``items[writer.resume_from:]``, a chunk written every
    ``source.checkpoint_rows`` items."""
    total = items.num_rows
    counts = RunCounts()  # of this run: a resumed run does not recount the chunks it kept
    rows = items.slice(writer.resume_from).to_pylist()
    refs = [ItemRef(r["item_id"], r["key"], r["change_token"]) for r in rows]
    limits = ReadLimits(source.max_object_bytes, source.fetch_deadline_seconds)
    progress = Progress(what, total, context.log.info, done=writer.resume_from)
    first, step = writer.resume_from, source.checkpoint_rows
    written, behind = first, first  # input rows in chunks; rows given outputs or skipped
    pending: list[pa.Table] = []
    refused, attempted = 0, 0  # reads the store refused in a row (in item order); reads
    for batch in runtime.run(model, refs, functools.partial(open_source_store, source), limits):
        errors = dict(batch.errors)
        for index in sorted([*batch.indices, *errors]):
            attempted += 1
            error = errors.get(index)
            if error is None:
                refused = 0
                continue
            counts.skipped += 1
            counts.reasons[error_reason(error)] += 1
            context.log.warning(f"{what}: skipped an item: {error}")
            refused = refused + 1 if error_reason(error) in STORE_REFUSALS else 0
            if refused >= OUTAGE_READS or (refused == attempted == len(rows) > 1):
                raise Failure(
                    f"{what}: source {source.name} refused {refused} reads in a row, the last "
                    f"with {error}. The store, not the items, is at fault: fix its credentials "
                    "or permissions and run the batch again (it resumes after its last "
                    "checkpoint); nothing of this run was committed.",
                    allow_retries=False,
                )
        if batch.outputs is not None and batch.indices:
            pending.append(rows_of([rows[i] for i in batch.indices], batch.outputs))
        seen = [*batch.indices, *(i for i, _ in batch.errors)]
        behind = max(behind, first + max(seen) + 1)
        progress.advance(len(seen), len(batch.errors))
        if behind - written >= step or behind == total:
            table = pa.concat_tables(pending) if pending else empty
            writer.write_chunk(table, input_end=behind)
            counts.done += table.num_rows
            pending, written = [], behind
    return counts


@contextmanager
def refusing_config_errors(what: str) -> Iterator[None]:
    """A config error (a model that cannot be loaded, weights not installed) fails the step
    without retries: running it again would fail the same way."""
    try:
        yield
    except ConfigError as exc:
        raise Failure(f"{what}: {exc}", allow_retries=False) from exc


def source_of(sources: SourcesResource, batch: str) -> SourceConfig:
    name, _ = parse_batch_key(batch)
    try:
        return sources.source(name)
    except Exception as exc:
        raise Failure(
            f"batch {batch}: its source {name!r} is not configured, so its objects cannot be "
            "read for inference",
            allow_retries=False,
        ) from exc
