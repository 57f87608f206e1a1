"""The resources of one project, built once from its validated config: what ``definitions``
hands to Dagster and what tests materialize with."""

from __future__ import annotations

from typing import Any

from resources.config import BucketlakeConfig
from resources.inference.runtime import InferenceRuntime
from resources.lake.resource import LakeResource
from resources.stores.resource import ObjectStoreResource, SourcesResource

#: Resource keys, as assets and sensors name their parameters.
LAKE = "lake"
LAKE_STORE = "lake_store"
SOURCES = "sources"
INFERENCE = "inference"


def project_resources(config: BucketlakeConfig) -> dict[str, Any]:
    """The lake, the object store it lives in, the sources and the inference runtime, carrying
    ``config``'s settings.
    The lake's store is a resource of its own too, so that the UI shows its settings."""
    config = config.resolved()
    lake_store = ObjectStoreResource(uri=config.lake_uri, storage=config.lake_options)
    return {
        LAKE_STORE: lake_store,
        LAKE: LakeResource(store=lake_store),
        SOURCES: SourcesResource(sources=list(config.sources)),
        INFERENCE: InferenceRuntime(**config.inference.model_dump()),
    }
