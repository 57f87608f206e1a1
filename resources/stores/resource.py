"""Dagster resources for object stores: one store named by a URI (the lake's), and the stores of
the configured sources. Stores are opened in ``setup_for_execution`` and closed in teardown."""

from __future__ import annotations

from dagster import ConfigurableResource, InitResourceContext
from pydantic import Field, PrivateAttr

from resources.config import SourceConfig, find_source
from resources.stores.base import ObjectStore
from resources.stores.open import open_source_store, open_store
from resources.stores.options import StorageOptions, no_options


class ObjectStoreResource(ConfigurableResource):  # type: ignore[type-arg]
    """One object store: a local folder, ``s3://`` (or S3-compatible) or ``gs://`` prefix."""

    uri: str = Field(description="the store's root: an absolute folder, file://, s3:// or gs://")
    storage: StorageOptions = Field(
        default_factory=no_options,
        description="how to reach it: endpoint, region, the names of credential variables",
    )

    _store: ObjectStore | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: InitResourceContext) -> None:
        self._store = open_store(self.uri, self.storage)

    def teardown_after_execution(self, context: InitResourceContext) -> None:
        self.close()

    @property
    def store(self) -> ObjectStore:
        """The open store (opened on first use outside a Dagster execution)."""
        if self._store is None:
            self._store = open_store(self.uri, self.storage)
        return self._store

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None


class SourcesResource(ConfigurableResource):  # type: ignore[type-arg]
    """The configured sources (validated once, when the definitions load) and their stores."""

    sources: list[SourceConfig] = Field(
        default_factory=list, description="every source of the project config, paths resolved"
    )

    _stores: dict[str, ObjectStore] = PrivateAttr(default_factory=dict)

    def setup_for_execution(self, context: InitResourceContext) -> None:
        # Opening a store is cheap (clients connect on first use), so every source's is ready.
        for source in self.sources:
            self._stores[source.name] = open_source_store(source)

    def teardown_after_execution(self, context: InitResourceContext) -> None:
        self.close()

    def source(self, name: str) -> SourceConfig:
        return find_source(self.sources, name)

    def store(self, name: str) -> ObjectStore:
        """The source's open store (opened on first use outside a Dagster execution)."""
        if name not in self._stores:
            self._stores[name] = open_source_store(self.source(name))
        return self._stores[name]

    def close(self) -> None:
        for store in self._stores.values():
            store.close()
        self._stores.clear()
