"""``evaluation``: scores a model version again whenever its predictions or the ground truth
change, once both are in (DESIGN §4: evaluation runs only after both sides are in). One run
per state of its inputs: the run key is a digest of the commits of the model version's
prediction imports and of every ground-truth table, read from the lake's catalogs (a listing
each), so an unchanged lake requests nothing and a new import requests exactly the model
versions it touches (every one, for new ground truth)."""

import hashlib

from dagster import (
    DefaultSensorStatus,
    RunRequest,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)

from ingest_assets.annotations.importing import known_spec
from ingest_assets.jobs import evaluation_job
from ingest_assets.models.registry import registered, version_key
from ingest_assets.names import (
    EVALUATION_JOB,
    IMPORTED_ANNOTATIONS,
    IMPORTED_PREDICTIONS,
    LABEL_ANNOTATIONS,
    LAUNCHED_BY_TAG,
)
from ingest_assets.partitions import MODEL_VERSIONS
from resources.lake.resource import LakeResource
from resources.lake.tables import Lake

EVALUATION_SENSOR = "evaluation_sensor"


def _digest(tokens: dict[str, str]) -> str:
    text = "\n".join(f"{p}\t{t}" for p, t in sorted(tokens.items()))
    return hashlib.sha256(text.encode()).hexdigest()


def evaluations_due(lake: Lake) -> dict[str, str]:
    """By model version key, the digest of its inputs now: for every registered version
    with committed predictions, when some ground truth is committed."""
    truth = {
        f"{asset}/{p}": t
        for asset in (IMPORTED_ANNOTATIONS, LABEL_ANNOTATIONS)
        for p, t in lake.catalog(asset).entry_tokens().items()
    }
    if not truth:
        return {}
    by_version: dict[str, dict[str, str]] = {}
    for partition, token in lake.catalog(IMPORTED_PREDICTIONS).entry_tokens().items():
        spec = known_spec(lake.store, partition)
        if spec is None or spec.model is None or spec.version is None:
            continue
        by_version.setdefault(version_key(spec.model, spec.version), {})[partition] = token
    known = registered(lake)
    truth_digest = _digest(truth)
    return {
        key: _digest({**predictions, "ground truth": truth_digest})
        for key, predictions in by_version.items()
        if key in known
    }


@sensor(
    name=EVALUATION_SENSOR,
    jobs=[evaluation_job],
    minimum_interval_seconds=30,
    default_status=DefaultSensorStatus.RUNNING,
    description="Re-evaluates a model version when its predictions or the ground truth "
    "change, after both are in.",
)
def evaluation_sensor(
    context: SensorEvaluationContext, lake: LakeResource
) -> SensorResult | SkipReason:
    due = evaluations_due(lake.lake())
    if not due:
        return SkipReason("no registered model version has both predictions and ground truth")
    partitions = set(context.instance.get_dynamic_partitions(MODEL_VERSIONS))
    return SensorResult(
        run_requests=[
            RunRequest(
                job_name=EVALUATION_JOB,
                partition_key=key,
                run_key=f"{key}:{digest[:16]}",
                tags={LAUNCHED_BY_TAG: EVALUATION_SENSOR},
            )
            for key, digest in sorted(due.items())
            if key in partitions
        ]
    )
