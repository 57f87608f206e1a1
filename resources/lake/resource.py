"""``LakeResource``: the lake's tables (DESIGN §5) over the object store that holds them."""

from __future__ import annotations

from dagster import ConfigurableResource
from pydantic import Field

from resources.lake.tables import Lake
from resources.stores.base import ObjectStore
from resources.stores.resource import ObjectStoreResource


class LakeResource(ConfigurableResource):  # type: ignore[type-arg]
    """Reads and writes the lake's tables: commit markers, checkpoints, leases, current view."""

    store: ObjectStoreResource = Field(description="the object store the lake lives in")

    @property
    def object_store(self) -> ObjectStore:
        return self.store.store

    def lake(self) -> Lake:
        return Lake(self.store.store)
