"""``bucketlake add-model``, and the config's ``models`` registered at every sync: each version
goes into the lake's registry and becomes a partition of ``model_versions``."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from dagster import DagsterInstance

from ingest_assets.models.registry import ModelVersion, from_config, register
from ingest_assets.partitions import MODEL_VERSIONS
from resources.config import BucketlakeConfig
from resources.lake.tables import Lake


def register_versions(
    lake: Lake,
    instance: DagsterInstance,
    versions: Iterable[ModelVersion],
    *,
    by: str,
    say: Callable[[str], None],
) -> None:
    """Register each version (a no-op for one registered already as it is) and add its
    partition; says which were new."""
    partitions = set(instance.get_dynamic_partitions(MODEL_VERSIONS))
    for version in versions:
        if register(lake, version, by=by):
            say(f"model {version.model} version {version.version} registered ({version.key})")
        if version.key not in partitions:
            instance.add_dynamic_partitions(MODEL_VERSIONS, [version.key])


def register_configured(
    config: BucketlakeConfig, lake: Lake, instance: DagsterInstance, say: Callable[[str], None]
) -> None:
    register_versions(
        lake, instance, [from_config(m) for m in config.resolved().models], by="config", say=say
    )
