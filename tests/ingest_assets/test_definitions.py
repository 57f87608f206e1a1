"""``defs`` loads, every job resolves, and there is one datapool sensor per source."""

from __future__ import annotations

from pathlib import Path

import yaml
from dagster import AssetKey, DagsterInstance, Definitions

from ingest_assets.cli.instance import ensure_dagster_home
from ingest_assets.config import load_config
from ingest_assets.definitions import build_definitions


def test_module_defs_is_definitions_and_every_job_resolves() -> None:
    from ingest_assets.definitions import defs

    assert isinstance(defs, Definitions)
    Definitions.validate_loadable(defs)
    jobs = {job.name for job in defs.resolve_all_job_defs()}
    assert "ingest_job" in jobs
    ingest = defs.resolve_job_def("ingest_job")
    assert set(ingest.asset_layer.executable_asset_keys) == {
        AssetKey("raw_items"),
        AssetKey("dataset_items"),
        AssetKey("duplicates"),
    }
    assert ingest.partitions_def is not None


def test_one_running_sensor_per_source(tmp_path: Path) -> None:
    path = tmp_path / "bucketlake.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "lake": "lake",
                "sources": [{"name": "cams", "uri": "a"}, {"name": "phones_2", "uri": "b"}],
            }
        )
    )
    defs = build_definitions(load_config(path))
    Definitions.validate_loadable(defs)
    sensors = {s.name: s for s in defs.sensors}
    assert set(sensors) == {"datapool_cams", "datapool_phones_2"}
    assert all(s.default_status.value == "RUNNING" for s in sensors.values())
    assert sensors["datapool_cams"].job_name == "ingest_job"


def test_instance_folder_has_run_queue_limits(tmp_path: Path) -> None:
    path = tmp_path / "bucketlake.yaml"
    path.write_text(yaml.safe_dump({"lake": "lake", "dagster_home": "home"}))
    home = ensure_dagster_home(load_config(path))
    settings = yaml.safe_load((home / "dagster.yaml").read_text())
    assert settings["run_queue"]["max_concurrent_runs"] >= 1
    assert settings["run_queue"]["tag_concurrency_limits"][0]["key"] == "bucketlake/source"
    with DagsterInstance.from_config(str(home)) as instance:
        assert instance.run_coordinator is not None
