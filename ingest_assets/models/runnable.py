"""Registered model versions as the inference runtime runs them: their ``ModelSpec`` and a
reader of their weights file, from a local path, ``s3://``/``gs://``, or the lake itself
(``lake://<key>``, where the models the platform trains are written)."""

from __future__ import annotations

import posixpath
from collections.abc import Callable

from ingest_assets.models.registry import ModelVersion, registered, version_key
from resources.config_inference import DEFAULT_EMBEDDINGS, EmbeddingsConfig
from resources.errors import ConfigError
from resources.inference.imagenet import DEFAULT_MODEL, DEFAULT_VERSION
from resources.inference.specs import BUILTIN_MOBILENET, ModelSpec, Task
from resources.lake.tables import Lake
from resources.stores.base import ObjectStore
from resources.stores.open import open_store

#: The scheme of weights kept in the lake (the models the platform trains): ``lake://<key>``.
LAKE_WEIGHTS = "lake://"


def spec_of(version: ModelVersion) -> ModelSpec:
    if version.weights is None:
        raise ConfigError(
            f"model {version.model} version {version.version} has no weights registered, so it "
            "cannot be run; register a version with weights (bucketlake add-model --weights)"
        )
    return ModelSpec(
        model=version.model,
        version=version.version,
        task=version.task,
        weights=version.weights,
        labels=version.labels,
    )


def builtin_spec(task: Task) -> ModelSpec:
    """The built-in ImageNet MobileNetV2 for ``task`` (embedding or classification)."""
    return ModelSpec(DEFAULT_MODEL, DEFAULT_VERSION, task, BUILTIN_MOBILENET)


def embedding_spec(config: EmbeddingsConfig, lake: Lake) -> ModelSpec:
    """The model the config embeds with: the built-in default or a registered version."""
    if config.model == DEFAULT_EMBEDDINGS:
        return builtin_spec("embedding")
    assert config.version is not None
    found = registered(lake).get(version_key(config.model, config.version))
    if found is None:
        raise ConfigError(
            f"embeddings.model {config.model} version {config.version} is not registered; "
            "register it (bucketlake add-model, or train one on the pool) or set "
            "embeddings.model to 'default'"
        )
    if found.task != "embedding":
        raise ConfigError(
            f"embeddings.model {config.model} version {config.version} has task {found.task}, "
            "not embedding"
        )
    return spec_of(found)


def weights_reader(spec: ModelSpec, lake_store: ObjectStore) -> Callable[[], bytes] | None:
    """A function that reads ``spec``'s weights (None for the built-in model)."""
    if spec.weights.startswith("builtin:"):
        return None
    if spec.weights.startswith(LAKE_WEIGHTS):
        key = spec.weights[len(LAKE_WEIGHTS) :]
        return lambda: lake_store.get(key)
    folder, name = posixpath.split(spec.weights)

    def read() -> bytes:
        with open_store(folder or ".") as store:
            return store.get(name)

    return read
