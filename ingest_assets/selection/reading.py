"""The pool a selection run chooses from, read from the lake: the current ok items that have an
embedding (of the model most items were embedded with), their scores and classes, the items
earlier runs selected (and, when asked, those with imported labels) as seeds, and each item's
near-duplicates. Deleted items (tombstones) are not current ok items, so never in the pool.
Free of Dagster: the asset and the CLI read through it."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ingest_assets.annotations.current import iter_annotations
from ingest_assets.embeddings.table import vectors_of
from ingest_assets.names import (
    DATASET_ITEMS,
    DUPLICATES,
    EMBEDDINGS,
    IMPORTED_ANNOTATIONS,
    IMPORTED_PREDICTIONS,
    SELECTION,
    predictions_asset,
)
from ingest_assets.selection.coreset import unit
from ingest_assets.selection.plan import Pool
from ingest_assets.selection.scores import prediction_uncertainty, query_similarity
from ingest_assets.selection.uncertainty import Measure
from resources.errors import BucketlakeError
from resources.lake.tables import Lake

ITEM_COLUMNS = ["item_id", "key", "source", "split", "label", "status", "width", "height", "bytes"]
NUMERIC = ("width", "height", "bytes")


class SelectionError(BucketlakeError):
    """A selection that cannot run as asked; the message says why and what to do."""


@dataclass(frozen=True)
class Filters:
    sources: Sequence[str] = ()
    splits: Sequence[str] = ()
    labels: Sequence[str] = ()


@dataclass(frozen=True)
class Scoring:
    uncertainty_model: str | None = None
    measure: Measure = "least_confidence"
    similar_to: Sequence[str] = ()
    balance_by: str = "label"  # or "prediction" (the uncertainty model's top class)
    labelled_are_seeds: bool = True


@dataclass
class ReadPool:
    pool: Pool
    keys: list[str]
    sources: list[str]
    model: str
    left_out: Counter[str] = field(default_factory=Counter)
    seeds_from: Counter[str] = field(default_factory=Counter)


def read_pool(lake: Lake, run: str, filters: Filters, scoring: Scoring) -> ReadPool:
    """The pool for selection run ``run`` (its own earlier commit, if any, is not a seed)."""
    if not lake.committed_partitions(EMBEDDINGS):
        raise SelectionError(
            "no embeddings are committed yet; run ingest_job (bucketlake sync) with embeddings "
            "enabled first"
        )
    items = lake.read_current(DATASET_ITEMS, columns=ITEM_COLUMNS)
    items = items.filter(pc.equal(items.column("status"), "ok"))
    embedded = lake.read_current(EMBEDDINGS)
    left_out: Counter[str] = Counter()
    models = Counter(
        zip(
            embedded.column("model").to_pylist(),
            embedded.column("model_version").to_pylist(),
            strict=True,
        )
    )
    (model, version), _ = models.most_common(1)[0]
    for (other, other_version), n in models.items():
        if (other, other_version) != (model, version):
            left_out[f"embedded by {other} {other_version}, not {model} {version}"] += n
    embedded = embedded.filter(
        pc.and_(
            pc.equal(embedded.column("model"), model),
            pc.equal(embedded.column("model_version"), version),
        )
    )
    # Arrow cannot join on a table with fixed-size list columns: align by position instead.
    embedded = embedded.filter(pc.is_in(embedded.column("item_id"), items.column("item_id")))
    rows = pc.index_in(embedded.column("item_id"), items.column("item_id"))
    joined = items.take(rows).append_column("vector", embedded.column("vector"))
    left_out["ok items without an embedding"] += items.num_rows - joined.num_rows
    kept = joined
    for column, wanted in (
        ("source", filters.sources),
        ("split", filters.splits),
        ("label", filters.labels),
    ):
        if wanted:
            kept = kept.filter(pc.is_in(kept.column(column), pa.array(list(wanted))))
    left_out["filtered out"] += joined.num_rows - kept.num_rows
    if kept.num_rows == 0:
        raise SelectionError(
            f"no embedded ok item matches sources {list(filters.sources) or 'any'}, splits "
            f"{list(filters.splits) or 'any'} and labels {list(filters.labels) or 'any'}"
        )
    kept = kept.sort_by("item_id")
    ids = kept.column("item_id").to_pylist()
    at = {item: i for i, item in enumerate(ids)}
    points = unit(vectors_of(kept))
    fields: dict[str, Any] = {
        name: np.asarray(
            pc.fill_null(kept.column(name).cast(pa.float64()), np.nan).to_numpy(), np.float32
        )
        for name in NUMERIC
    }
    classes: list[str | None] = kept.column("label").to_pylist()
    if scoring.uncertainty_model:
        fields["uncertainty"], top = _uncertainty(
            lake, ids, scoring.uncertainty_model, scoring.measure
        )
        if scoring.balance_by == "prediction":
            classes = [top.get(item) for item in ids]
    unknown = [item for item in scoring.similar_to if item not in at]
    if unknown:
        raise SelectionError(
            f"similar_to names items that are not embedded ok items of the pool: {unknown[:5]}"
        )
    query = [at[item] for item in scoring.similar_to]
    if query:
        fields["similarity"] = query_similarity(points, query)
    seeds_from: Counter[str] = Counter()
    seeds: set[int] = set()
    for partition in lake.committed_partitions(SELECTION):
        if partition == run:
            continue
        for item in (
            lake.read_table(SELECTION, partition, ["item_id"]).column("item_id").to_pylist()
        ):
            if item in at and at[item] not in seeds:
                seeds.add(at[item])
                seeds_from["selected before"] += 1
    if scoring.labelled_are_seeds:
        for table in iter_annotations(lake, IMPORTED_ANNOTATIONS, ["item_id"]):
            for item in set(table.column("item_id").to_pylist()):
                if item in at and at[item] not in seeds:
                    seeds.add(at[item])
                    seeds_from["labelled"] += 1
    pool = Pool(
        ids,
        points,
        fields=fields,
        classes=classes,
        seeds=sorted(seeds),
        excluded=set(query),
        twins=_twins(lake, at),
    )
    return ReadPool(
        pool,
        kept.column("key").to_pylist(),
        kept.column("source").to_pylist(),
        f"{model} {version}",
        left_out=+left_out,
        seeds_from=seeds_from,
    )


def _twins(lake: Lake, at: dict[str, int]) -> dict[int, list[int]]:
    twins: dict[int, list[int]] = {}
    if not lake.committed_partitions(DUPLICATES):
        return twins
    pairs = lake.read_current(DUPLICATES, columns=["item_id", "duplicate_of"])
    for item, original in zip(
        pairs.column("item_id").to_pylist(), pairs.column("duplicate_of").to_pylist(), strict=True
    ):
        if item in at and original in at:
            twins.setdefault(at[item], []).append(at[original])
            twins.setdefault(at[original], []).append(at[item])
    return twins


def _uncertainty(
    lake: Lake, ids: list[str], model: str, measure: Measure
) -> tuple[Any, dict[str, str]]:
    """The model's uncertainty per item, and its most confident class per item."""
    columns = ["item_id", "kind", "label", "confidence"]
    asset = predictions_asset(model)
    if lake.committed_partitions(asset):
        tables = list(iter_annotations(lake, asset, columns))
    else:
        tables = [
            t.filter(pc.equal(t.column("model"), model)).select(columns)
            for t in iter_annotations(lake, IMPORTED_PREDICTIONS, [*columns, "model"])
        ]
    rows = pa.concat_tables(tables) if tables else None
    if rows is None or rows.num_rows == 0:
        raise SelectionError(
            f"model {model!r} has no predictions in the lake ({asset} or imported_predictions); "
            "enable pretag for it or import its predictions first"
        )
    found, kinds, labels = (rows.column(c).to_pylist() for c in ("item_id", "kind", "label"))
    confidences = rows.column("confidence").to_pylist()
    scores = prediction_uncertainty(ids, found, kinds, confidences, measure)
    best: dict[str, tuple[float, str]] = {}
    for item, label, confidence in zip(found, labels, confidences, strict=True):
        if (
            label is not None
            and confidence is not None
            and confidence > best.get(item, (-1.0, ""))[0]
        ):
            best[item] = (confidence, label)
    return scores, {item: label for item, (_, label) in best.items()}
