"""The example configs the README points at stay valid."""

from __future__ import annotations

from pathlib import Path

import pytest

from ingest_assets.definitions import build_definitions
from resources.config import load_config

EXAMPLES = sorted((Path(__file__).resolve().parents[1] / "demo" / "configs").glob("*.yaml"))


def test_there_are_examples() -> None:
    assert {p.stem for p in EXAMPLES} >= {"s3", "s3-compatible", "gcs", "manifest"}


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_example_config_loads_and_builds_definitions(path: Path) -> None:
    config = load_config(path)
    defs = build_definitions(config)
    assert {s.name for s in defs.sensors} == {f"datapool_{s.name}" for s in config.sources} | {
        "evaluation_sensor"
    }
    assert (
        config.dagster_home_path.resolve()
        == (path.parents[2] / ".bucketlake" / "dagster_home").resolve()
    )
