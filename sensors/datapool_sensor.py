"""``datapool_<source>``: one sensor per source that claims new objects into batches and asks
for one ``ingest_job`` run per batch."""

import json
import time

from dagster import (
    DefaultSensorStatus,
    RunRequest,
    SensorDefinition,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)
from dagster._core.definitions.unresolved_asset_job_definition import (
    UnresolvedAssetJobDefinition,
)

from ingest_assets.config import SourceConfig
from ingest_assets.partitions import BATCHES, batches
from resources.bucketlake import BucketlakeResource
from resources.errors import LeaseHeld
from sensors.claiming import Claimer

#: Listing time per tick; the rest of Dagster's 60 s sensor budget is left for writing batches.
TICK_LISTING_BUDGET_S = 30.0
SOURCE_TAG = "bucketlake/source"


def run_request(batch: str, source: str, attempt: int = 1) -> RunRequest:
    return RunRequest(partition_key=batch, run_key=f"{batch}:{attempt}", tags={SOURCE_TAG: source})


def build_datapool_sensor(
    source: SourceConfig, job: UnresolvedAssetJobDefinition
) -> SensorDefinition:
    @sensor(
        name=f"datapool_{source.name}",
        job=job,
        minimum_interval_seconds=source.poll_seconds,
        default_status=DefaultSensorStatus.RUNNING,
        description=f"Claims new or changed objects of source {source.name} ({source.location}) "
        "into batches and requests one ingest run per batch.",
    )
    def datapool_sensor(
        context: SensorEvaluationContext, bucketlake: BucketlakeResource
    ) -> SensorResult | SkipReason:
        cursor = json.loads(context.cursor) if context.cursor else {}
        config = bucketlake.config()
        claimer = Claimer(
            config.source(source.name),
            bucketlake.source_store(source.name),
            bucketlake.lake_store(),
            claimer=f"sensor datapool_{source.name}",
        )
        registered = set(context.instance.get_dynamic_partitions(BATCHES))
        try:
            result = claimer.claim(
                registered=registered,
                start_after=cursor.get("start_after", ""),
                deadline=time.monotonic() + TICK_LISTING_BUDGET_S,
            )
        except LeaseHeld as exc:
            return SkipReason(f"another claim of source {source.name} is in progress: {exc}")
        new_cursor = json.dumps({"start_after": result.cursor})
        if not result.unregistered:
            reason = (
                f"no new objects in {source.location}: {result.listed} listed"
                + (f", {result.pending} waiting for a fuller batch" if result.pending else "")
                + ("" if result.exhausted else ", listing continues next tick")
            )
            if new_cursor == (context.cursor or new_cursor):
                return SkipReason(reason)
            return SensorResult(skip_reason=reason, cursor=new_cursor)
        context.log.info(
            f"claimed {result.new_objects} new object versions into {len(result.new_batches)} "
            f"batches; registering {len(result.unregistered)} partitions"
        )
        return SensorResult(
            run_requests=[run_request(b, source.name) for b in result.unregistered],
            dynamic_partitions_requests=[batches.build_add_request(result.unregistered)],
            cursor=new_cursor,
        )

    return datapool_sensor
