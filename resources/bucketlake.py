"""The Dagster resource that gives assets and sensors the project config, the lake and the
sources' object stores."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from dagster import ConfigurableResource, InitResourceContext
from pydantic import Field, PrivateAttr

from resources.lake.tables import Lake
from resources.stores.base import ObjectStore
from resources.stores.open import open_lake_store, open_source_store

if TYPE_CHECKING:
    from ingest_assets.config import BucketlakeConfig


class BucketlakeResource(ConfigurableResource):  # type: ignore[type-arg]
    """The project config (``bucketlake.yaml`` or the embedded default) and what it names."""

    config_file: str | None = Field(
        default=None,
        description="Path of bucketlake.yaml; None for the embedded default.",
    )
    base_dir: str = Field(
        default=".",
        description="Folder that relative paths of the embedded default resolve against.",
    )

    _config: BucketlakeConfig | None = PrivateAttr(default=None)
    _stores: dict[str, ObjectStore] = PrivateAttr(default_factory=dict)

    def config(self) -> BucketlakeConfig:
        from ingest_assets.config import embedded_config, load_config

        if self._config is None:
            if self.config_file:
                self._config = load_config(Path(self.config_file))
            else:
                self._config = embedded_config(Path(self.base_dir).absolute())
        return self._config

    def lake_store(self) -> ObjectStore:
        """The lake's store, opened once per execution and closed at its end."""
        if "" not in self._stores:
            self._stores[""] = open_lake_store(self.config())
        return self._stores[""]

    def lake(self) -> Lake:
        return Lake(self.lake_store())

    def source_store(self, name: str) -> ObjectStore:
        """A source's store, opened once per execution and closed at its end."""
        key = f"source:{name}"
        if key not in self._stores:
            config = self.config()
            self._stores[key] = open_source_store(config, config.source(name))
        return self._stores[key]

    def teardown_after_execution(self, context: InitResourceContext) -> None:
        for store in self._stores.values():
            store.close()
        self._stores.clear()
