"""Shared fixtures: a project folder with its own config, inbox, lake and Dagster instance."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from dagster import DagsterInstance, instance_for_test

from ingest_assets.config import BucketlakeConfig, load_config
from resources.bucketlake import BucketlakeResource
from resources.lake.tables import Lake
from resources.stores.local import LocalFolderStore
from sensors.claiming import Claimer, ClaimResult

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
    def resource(self) -> BucketlakeResource:
        return BucketlakeResource(config_file=str(self.config_path))

    @property
    def lake(self) -> Lake:
        return Lake(LocalFolderStore(self.root / "lake"))

    def claim(self, *, registered: set[str] | None = None) -> ClaimResult:
        """Claim everything in the inbox now, as ``bucketlake sync`` does (the local lake)."""
        return Claimer(
            self.config.source("inbox"),
            LocalFolderStore(self.inbox),
            LocalFolderStore(self.root / "lake"),
            claimer="test",
        ).claim(registered=registered or set(), close_all=True)

    def write_config(self, *, lake: Any = "lake", **source: Any) -> None:
        """Write ``bucketlake.yaml`` with one source ``inbox`` (the local folder unless
        ``uri``/``manifest`` say otherwise; a field given as None is left out)."""
        fields = {"name": "inbox", "uri": "inbox", **source}
        body = {
            "lake": lake,
            "dagster_home": "dagster_home",
            "sources": [{k: v for k, v in fields.items() if v is not None}],
        }
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
    from sensors import datapool

    datapool._RECORDS.clear()
    yield
    datapool._RECORDS.clear()


def pytest_configure(config: pytest.Config) -> None:
    os.environ.setdefault("DAGSTER_DISABLE_TELEMETRY", "1")
