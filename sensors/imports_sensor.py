"""``imports_<source>``: one sensor per source with ``annotations``/``predictions`` globs. It
finds their files and requests one import run per version of each file, once every batch
claimed from the source has its items committed (DESIGN §4: imports wait for their items)."""

from dagster import (
    DefaultSensorStatus,
    RunRequest,
    SensorDefinition,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)

from ingest_assets.annotations.discovery import batches_waited_for, find_label_files
from ingest_assets.annotations.importing import save_spec
from ingest_assets.jobs import import_annotations_job, import_predictions_job
from ingest_assets.models.registry import is_registered
from ingest_assets.names import (
    DATASET_ITEMS,
    IMPORT_ANNOTATIONS_JOB,
    IMPORT_PREDICTIONS_JOB,
    LAUNCHED_BY_TAG,
)
from ingest_assets.partitions import BATCHES, IMPORTS, imports
from resources.config import SourceConfig
from resources.errors import ConfigError
from resources.lake.resource import LakeResource
from resources.stores.resource import SourcesResource


def build_imports_sensor(source: SourceConfig) -> SensorDefinition:
    @sensor(
        name=f"imports_{source.name}",
        jobs=[import_annotations_job, import_predictions_job],
        minimum_interval_seconds=source.poll_seconds,
        default_status=DefaultSensorStatus.RUNNING,
        description=f"Imports the label and prediction files of source {source.name} that its "
        "annotations/predictions globs find, after the batches holding their items are "
        "ingested; a changed file is imported again.",
    )
    def imports_sensor(
        context: SensorEvaluationContext, lake: LakeResource, sources: SourcesResource
    ) -> SensorResult | SkipReason:
        found = find_label_files(source, sources.store(source.name))
        if not found:
            return SkipReason(f"no label files match the globs of source {source.name}")
        tables = lake.lake()
        committed = set(tables.committed_partitions(DATASET_ITEMS))
        claimed = context.instance.get_dynamic_partitions(BATCHES)
        waiting = batches_waited_for(claimed, committed, source.name)
        if waiting:
            return SkipReason(
                f"{len(found)} label files wait until batches {', '.join(waiting[:5])} of "
                f"source {source.name} are ingested"
            )
        requests, keys = [], []
        for file in found:
            spec = file.spec
            if spec.model and spec.version and not is_registered(tables, spec.model, spec.version):
                context.log.warning(
                    f"{spec.uri}: model {spec.model} version {spec.version} is not registered; "
                    "register it (bucketlake add-model, or the config's models) to import it"
                )
                continue
            try:
                save_spec(tables.store, file.spec)
            except ConfigError as exc:
                context.log.warning(str(exc))
                continue
            job = IMPORT_PREDICTIONS_JOB if file.spec.predictions else IMPORT_ANNOTATIONS_JOB
            keys.append(file.spec.key)
            requests.append(
                RunRequest(
                    job_name=job,
                    partition_key=file.spec.key,
                    run_key=file.run_key,
                    tags={LAUNCHED_BY_TAG: f"imports_{source.name} sensor"},
                )
            )
        known = set(context.instance.get_dynamic_partitions(IMPORTS))
        new = [k for k in keys if k not in known]
        return SensorResult(
            run_requests=requests,
            dynamic_partitions_requests=[imports.build_add_request(new)] if new else [],
        )

    return imports_sensor
