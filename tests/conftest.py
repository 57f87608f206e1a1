"""Shared fixtures: a project folder with its own config, inbox, lake and Dagster instance."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from dagster import (
    AssetsDefinition,
    DagsterInstance,
    ExecuteInProcessResult,
    SensorResult,
    SkipReason,
    build_sensor_context,
    instance_for_test,
    materialize,
)

from ingest_assets.assets.dataset_items import dataset_items
from ingest_assets.assets.raw_items import raw_items
from ingest_assets.claiming.claim import Claimer, ClaimResult
from ingest_assets.definitions import build_definitions
from ingest_assets.partitions import BATCHES
from resources.config import BucketlakeConfig, load_config
from resources.lake.tables import Lake
from resources.project import project_resources
from resources.stores.local import LocalFolderStore
from resources.stores.open import open_source_store

#: Tests of ingestion run without a model: the tests of the inference assets turn it on.
NO_EMBEDDINGS = {"model": "none"}

pytest_plugins = ["tests.servers.gcs", "tests.servers.http", "tests.servers.seaweed"]


@dataclass
class Project:
    """A Bucketlake project in a temporary folder: ``bucketlake.yaml``, ``inbox/``, ``lake/``."""

    root: Path
    inbox: Path
    config_path: Path

    @property
    def config(self) -> BucketlakeConfig:
        return load_config(self.config_path)

    @property
    def resources(self) -> dict[str, Any]:
        """The resources the definitions build from the config file as it is now."""
        return project_resources(self.config)

    @property
    def lake(self) -> Lake:
        return Lake(LocalFolderStore(self.root / "lake"))

    def claim(self, *, registered: set[str] | None = None) -> ClaimResult:
        """Claim everything in the inbox now, as ``bucketlake sync`` does (the local lake)."""
        source = self.config.source("inbox")
        return Claimer(
            source,
            open_source_store(source),
            LocalFolderStore(self.root / "lake"),
            claimer="test",
        ).claim(registered=registered or set(), close_all=True)

    def ingest(
        self,
        instance: DagsterInstance,
        batch: str,
        assets: list[AssetsDefinition] | None = None,
        *,
        raise_on_error: bool = True,
    ) -> ExecuteInProcessResult:
        """Materialize one batch (``raw_items`` and ``dataset_items`` unless ``assets`` says
        otherwise) with the resources of the config as it is now."""
        return materialize(
            assets or [raw_items, dataset_items],
            partition_key=batch,
            resources=self.resources,
            instance=instance,
            raise_on_error=raise_on_error,
        )

    def tick(
        self, instance: DagsterInstance, cursor: str | None = None, source: str = "inbox"
    ) -> SensorResult | SkipReason:
        """One evaluation of ``datapool_<source>`` from freshly loaded definitions; the
        partitions it asks for are added as the daemon would add them."""
        defs = build_definitions(self.config)
        sensor = next(s for s in defs.sensors if s.name == f"datapool_{source}")
        with build_sensor_context(
            instance=instance, cursor=cursor, resources=self.resources
        ) as context:
            result = sensor(context)
        assert isinstance(result, SensorResult | SkipReason), result
        if isinstance(result, SensorResult):
            for request in result.dynamic_partitions_requests or []:
                instance.add_dynamic_partitions(BATCHES, list(request.partition_keys))
        return result

    def write_config(
        self,
        *,
        lake: Any = "lake",
        dagster_home: str | None = "dagster_home",
        embeddings: Any = NO_EMBEDDINGS,
        inference: dict[str, Any] | None = None,
        **source: Any,
    ) -> None:
        """Write ``bucketlake.yaml`` with one source ``inbox`` (the local folder unless
        ``uri``/``manifest`` say otherwise; a field given as None is left out). Batches are
        not embedded unless ``embeddings`` says how (None: the product's default model)."""
        fields = {"name": "inbox", "uri": "inbox", **source}
        body = {
            "lake": lake,
            "sources": [{k: v for k, v in fields.items() if v is not None}],
        }
        if embeddings is not None:
            body["embeddings"] = embeddings
        if inference is not None:
            body["inference"] = inference
        if dagster_home is not None:
            body["dagster_home"] = dagster_home
        self.config_path.write_text(yaml.safe_dump(body), encoding="utf-8")


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Project:
    """A project whose single source ``inbox`` is a local folder; cwd is the project root."""
    root = tmp_path / "project"
    (root / "inbox").mkdir(parents=True)
    monkeypatch.chdir(root)
    monkeypatch.delenv("BUCKETLAKE_CONFIG", raising=False)
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    made = Project(root=root, inbox=root / "inbox", config_path=root / "bucketlake.yaml")
    made.write_config()
    return made


@pytest.fixture
def instance() -> Iterator[DagsterInstance]:
    """A real Dagster instance (SQLite storage in a temporary folder)."""
    with instance_for_test() as made:
        yield made


@pytest.fixture(autouse=True)
def _fresh_datapool_records() -> Iterator[None]:
    """Each test starts with no datapool record cached in this process."""
    from resources.lake import datapool

    datapool._RECORDS.clear()
    yield
    datapool._RECORDS.clear()


def pytest_configure(config: pytest.Config) -> None:
    os.environ.setdefault("DAGSTER_DISABLE_TELEMETRY", "1")
