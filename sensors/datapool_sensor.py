"""``datapool_<source>``: one sensor per source that claims new objects into batches, asks for
one ``ingest_job`` run per batch, and asks again for batches whose runs died or failed (the
healing rule that ``bucketlake sync`` uses, so that the daemon alone heals too)."""

import json
import time
from collections.abc import Sequence

from dagster import (
    DefaultSensorStatus,
    RunRequest,
    SensorDefinition,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)

from ingest_assets.claiming.claim import Claimer, ClaimResult
from ingest_assets.healing import WATERMARK, HealPlan, failed_batches, next_attempt, plan_healing
from ingest_assets.names import (
    ATTEMPT_TAG,
    DATASET_ITEMS,
    INGEST_JOB,
    LAUNCHED_BY_TAG,
    MAX_ATTEMPTS,
    SOURCE_TAG,
)
from ingest_assets.partitions import BATCHES, batches
from resources.config import SourceConfig
from resources.errors import LeaseHeld
from resources.lake.resource import LakeResource
from resources.stores.resource import SourcesResource

#: Listing time per tick; the rest of Dagster's 60 s sensor budget is left for writing batches.
TICK_LISTING_BUDGET_S = 30.0


def run_request(batch: str, source: str, attempt: int = 1) -> RunRequest:
    return RunRequest(
        partition_key=batch,
        run_key=f"{batch}:{attempt}",
        tags={SOURCE_TAG: source, ATTEMPT_TAG: str(attempt), LAUNCHED_BY_TAG: "datapool sensor"},
    )


def _skip_reason(source: SourceConfig, result: ClaimResult, heal: HealPlan) -> str:
    reason = (
        f"no new objects in {source.location}: {result.listed} listed"
        + (f", {result.pending} waiting for a fuller batch" if result.pending else "")
        + ("" if result.exhausted else ", listing continues next tick")
    )
    if heal.gave_up:
        reason += f"; {len(heal.gave_up)} batches failed too often to run again"
    return reason


def build_datapool_sensor(
    source: SourceConfig, finished_by: Sequence[str] = (DATASET_ITEMS,)
) -> SensorDefinition:
    """The sensor of ``source``; ``finished_by``: the tables whose commits say a batch is
    done (``healing.batch_tables``)."""
    name = f"datapool_{source.name}"

    @sensor(
        name=name,
        job_name=INGEST_JOB,
        minimum_interval_seconds=source.poll_seconds,
        default_status=DefaultSensorStatus.RUNNING,
        description=f"Claims new or changed objects of source {source.name} ({source.location}) "
        "into batches and requests one ingest run per batch; requests a batch again when its "
        f"run died or failed (at most {MAX_ATTEMPTS} failed runs).",
    )
    def datapool_sensor(
        context: SensorEvaluationContext, lake: LakeResource, sources: SourcesResource
    ) -> SensorResult | SkipReason:
        cursor = json.loads(context.cursor) if context.cursor else {}
        claimer = Claimer(
            sources.source(source.name),
            sources.store(source.name),
            lake.object_store,
            claimer=f"sensor {name}",
        )
        instance = context.instance
        registered = set(instance.get_dynamic_partitions(BATCHES))
        try:
            result = claimer.claim(
                registered=registered,
                start_after=cursor.get("start_after", ""),
                deadline=time.monotonic() + TICK_LISTING_BUDGET_S,
            )
        except LeaseHeld as exc:
            return SkipReason(f"another claim of source {source.name} is in progress: {exc}")
        started = time.time()
        watermark = f"{lake.object_store.name}\0{source.name}"
        heal = plan_healing(
            instance,
            lake.lake(),
            source.name,
            failed_batches(instance, source.name, WATERMARK.since(watermark)) & registered,
            healer=f"sensor {name}",
            finished_by=finished_by,
        )
        WATERMARK.advance(watermark, started)
        for run_id in heal.marked_failed:
            context.log.info(f"run {run_id} was left STARTED by a process that is gone: failed")
        requests = [run_request(b, source.name) for b in result.unregistered]
        requests += [run_request(b, source.name, next_attempt(instance, b)) for b in heal.run]
        new_cursor = json.dumps({"start_after": result.cursor})
        if result.warning:
            context.log.warning(result.warning)
        if not requests:
            reason = _skip_reason(source, result, heal)
            if new_cursor == (context.cursor or new_cursor):
                return SkipReason(reason)
            return SensorResult(skip_reason=reason, cursor=new_cursor)
        if result.unregistered:
            context.log.info(
                f"claimed {result.new_objects} new object versions"
                + (f" ({result.deleted} deleted from the source)" if result.deleted else "")
                + f" into {len(result.new_batches)} batches; registering "
                f"{len(result.unregistered)} partitions"
            )
        if heal.run:
            context.log.info(f"running again: {', '.join(heal.run)} (their last runs failed)")
        return SensorResult(
            run_requests=requests,
            dynamic_partitions_requests=(
                [batches.build_add_request(result.unregistered)] if result.unregistered else []
            ),
            cursor=new_cursor,
        )

    return datapool_sensor
