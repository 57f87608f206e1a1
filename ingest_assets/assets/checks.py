"""Data-quality checks that judge all batches at once (DESIGN §4). They sit on ``dataset_items``
until ``dataset_quality`` exists."""

from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetCheckSeverity,
    MetadataValue,
    RunsFilter,
    asset_check,
)

from ingest_assets.assets.dataset_items import dataset_items
from ingest_assets.assets.metadata import markdown_table
from ingest_assets.healing import IN_FLIGHT
from ingest_assets.names import DATASET_ITEMS, PARTITION_TAG
from ingest_assets.partitions import BATCHES
from resources.lake.resource import LakeResource

#: Batches listed by name in the check's metadata; the count covers them all.
LISTED = 20


@asset_check(
    asset=dataset_items,
    description="Every registered batch has committed dataset_items, or a run on its way. A "
    "batch with neither was claimed and never ingested: its objects are missing from the "
    "dataset until it runs again (the datapool sensor and `bucketlake sync` heal such batches).",
)
def every_batch_has_items(
    context: AssetCheckExecutionContext, lake: LakeResource
) -> AssetCheckResult:
    tables = lake.lake()
    registered = context.instance.get_dynamic_partitions(BATCHES)
    committed = set(tables.committed_partitions(DATASET_ITEMS))
    uncommitted = [b for b in registered if b not in committed]
    in_flight: list[str] = []
    missing: list[dict[str, str]] = []
    for batch in uncommitted:
        runs = context.instance.get_runs(RunsFilter(tags={PARTITION_TAG: batch}))
        if any(run.status in IN_FLIGHT for run in runs):
            in_flight.append(batch)
            continue
        last = runs[0].status.value if runs else "never run"
        missing.append({"batch": batch, "last run": last, "runs": str(len(runs))})
    return AssetCheckResult(
        passed=not missing,
        severity=AssetCheckSeverity.WARN,
        description=(
            f"{len(missing)} of {len(registered)} batches have no committed items and no run "
            "on its way"
            if missing
            else f"all {len(registered)} batches have items or a run on its way"
        ),
        metadata={
            "batches": len(registered),
            "committed": len(registered) - len(uncommitted),
            "in_flight": len(in_flight),
            "without_items": len(missing),
            "without_items_list": markdown_table(missing[:LISTED], ["batch", "last run", "runs"]),
            "listed": MetadataValue.text(
                f"first {LISTED} shown" if len(missing) > LISTED else "all shown"
            ),
        },
    )
