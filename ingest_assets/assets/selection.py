"""``selection``: one selection run (a partition of ``selection_runs``, ``sel0001``, ...) adds
the items most worth labelling next to what earlier runs selected; the selection is the union
of the runs. Configured in the Launchpad (``SelectionConfig``) or by ``bucketlake select``."""

import hashlib
import json
import math
from typing import Literal

from dagster import (
    AllPartitionMapping,
    AssetDep,
    AssetExecutionContext,
    Config,
    Failure,
    MaterializeResult,
    MetadataValue,
    asset,
)
from pydantic import Field

from ingest_assets.assets.charts import map_chart
from ingest_assets.assets.dataset_items import dataset_items
from ingest_assets.assets.duplicates import duplicates
from ingest_assets.assets.imports import imported_annotations
from ingest_assets.assets.metadata import Timer, column_schema, markdown_table
from ingest_assets.names import EMBEDDINGS, SELECTION
from ingest_assets.partitions import selection_runs
from ingest_assets.selection.embedding_map import embedding_map
from ingest_assets.selection.plan import Plan, Threshold, select
from ingest_assets.selection.reading import Filters, Scoring, SelectionError, read_pool
from ingest_assets.selection.table import SCHEMA, SELECTION_CODE_VERSION, selection_table
from resources.lake.resource import LakeResource

EVERY = AllPartitionMapping()


class ThresholdConfig(Config):
    """Keep only items whose ``field`` is within the bounds (width, height, bytes, uncertainty
    or similarity); an item where it is unknown is left out."""

    field: str
    min: float | None = None
    max: float | None = None


class SelectionConfig(Config):
    """One selection run: how many items, and how they are chosen."""

    n_samples: int | None = Field(None, ge=1, description="items this run adds")
    proportion_samples: float | None = Field(
        None, gt=0, le=1, description="or: this share of the candidates"
    )
    min_distance: float = Field(
        0.0, ge=0, le=2, description="stop once every item is closer than this to a chosen one"
    )
    diversity: float = Field(1.0, ge=0, description="weight of coverage (k-center greedy)")
    uncertainty_model: str | None = Field(None, description="a model whose predictions weigh")
    uncertainty_measure: Literal["least_confidence", "margin", "entropy"] = "least_confidence"
    uncertainty_weight: float = Field(0.0, ge=0, description="weight of the model's doubt")
    similar_to: list[str] = Field(default=[], description="item ids: find more like these")
    similarity_weight: float = Field(0.0, ge=0, description="weight of likeness to similar_to")
    thresholds: list[ThresholdConfig] = Field(default=[])
    balance: dict[str, float] = Field(
        default={}, description="target share per class, or {uniform: 1}"
    )
    balance_by: Literal["label", "prediction"] = "label"
    sources: list[str] = Field(default=[])
    splits: list[str] = Field(default=[])
    labels: list[str] = Field(default=[])
    labelled_are_seeds: bool = Field(
        True, description="items with imported labels count as already selected"
    )

    def plan(self, candidates: int) -> Plan:
        if self.n_samples is None and self.proportion_samples is None:
            raise Failure("give n_samples or proportion_samples", allow_retries=False)
        n = self.n_samples or max(1, math.ceil(candidates * (self.proportion_samples or 0)))
        weight = self.uncertainty_weight if self.uncertainty_model else 0.0
        return Plan(
            n=n,
            min_distance=self.min_distance,
            diversity=self.diversity,
            weights=weight,
            similarity=self.similarity_weight if self.similar_to else 0.0,
            thresholds=tuple(Threshold(t.field, t.min, t.max) for t in self.thresholds),
            balance=self.balance or None,
        )


@asset(
    name=SELECTION,
    partitions_def=selection_runs,
    code_version=SELECTION_CODE_VERSION,
    group_name="selection",
    kinds={"parquet"},
    deps=[
        AssetDep(EMBEDDINGS, partition_mapping=EVERY),
        AssetDep(dataset_items, partition_mapping=EVERY),
        AssetDep(duplicates, partition_mapping=EVERY),
        AssetDep(imported_annotations, partition_mapping=EVERY),
    ],
    description="The items one selection run added, with the strategy, score, rank and the "
    "run's parameters: k-center greedy over the embeddings seeded with everything selected "
    "(or labelled) before, optionally weighted by a model's uncertainty or likeness to chosen "
    "items, within thresholds and class quotas; near-duplicates never both, deleted items never.",
)
def selection(
    context: AssetExecutionContext, config: SelectionConfig, lake: LakeResource
) -> MaterializeResult[None]:
    timer = Timer()
    tables = lake.lake()
    run = context.partition_key
    try:
        read = read_pool(
            tables,
            run,
            Filters(config.sources, config.splits, config.labels),
            Scoring(
                config.uncertainty_model,
                config.uncertainty_measure,
                config.similar_to,
                config.balance_by,
                config.labelled_are_seeds,
            ),
        )
        pool = read.pool
        plan = config.plan(len(pool.item_ids) - len(pool.seeds))
        chosen = select(pool, plan)
    except (SelectionError, ValueError) as exc:
        raise Failure(f"selection {run}: {exc}", allow_retries=False) from exc
    coreset = chosen.coreset
    params = {**config.model_dump(), "n": plan.n, "embedding_model": read.model}
    rows = selection_table(read, plan, chosen, params)
    body = json.dumps({"params": params, "items": pool.item_ids, "seeds": pool.seeds})
    fingerprint = hashlib.sha256(body.encode()).hexdigest()
    summary = {
        "candidates": chosen.candidates,
        "seeds": dict(read.seeds_from),
        "radius_before": _finite(coreset.radius_before),
        "radius_after": coreset.radius_after,
    }
    with tables.writer(SELECTION, run, fingerprint=fingerprint, run_id=context.run.run_id) as w:
        if w.resume_from == 0:  # else an attempt of the same run wrote this very table
            w.write_chunk(rows, input_end=1)
        w.commit(SCHEMA, params=params, summary=summary)
    context.log.info(
        f"{run}: {rows.num_rows} new of {chosen.candidates} candidates ({plan.strategy}), "
        f"radius {summary['radius_before']} -> {coreset.radius_after:.4f}"
    )
    flat, marks = embedding_map(pool.vectors, pool.seeds, coreset.picks)
    return MaterializeResult(
        metadata={
            "dagster/row_count": rows.num_rows,
            "dagster/column_schema": column_schema(SCHEMA),
            "new": rows.num_rows,
            "strategy": plan.strategy,
            "candidates": chosen.candidates,
            "selected_before": read.seeds_from.get("selected before", 0),
            "labelled_seeds": read.seeds_from.get("labelled", 0),
            "radius_before": _finite(coreset.radius_before) or 0.0,
            "radius_after": coreset.radius_after,
            "left_out": MetadataValue.json(dict(read.left_out)),
            "balance_targets": MetadataValue.json(chosen.balance_targets),
            "params": MetadataValue.json(params),
            "embedding_map": MetadataValue.md(
                map_chart(
                    flat,
                    marks,
                    title=f"{run}: embedding map ({read.model})",
                    legend={0: "pool", 1: "chosen before", 2: "chosen now"},
                )
            ),
            "first_picks": markdown_table(
                rows.slice(0, 10).to_pylist(), ["rank", "item_id", "key", "score", "distance"]
            ),
            "table": MetadataValue.path(tables.table_uri(SELECTION, run)),
            **timer.metadata(len(pool.item_ids), "items"),
        }
    )


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None
