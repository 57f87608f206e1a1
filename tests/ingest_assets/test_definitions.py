"""``defs`` loads, every job resolves, one datapool sensor per source, and the resources carry
the config's validated settings, fixed when the definitions load."""

from __future__ import annotations

from pathlib import Path

import yaml
from dagster import AssetKey, DagsterInstance, Definitions, QueuedRunCoordinator

from ingest_assets.cli.instance import ensure_dagster_home
from ingest_assets.definitions import build_definitions
from resources.config import load_config
from resources.lake.resource import LakeResource
from resources.stores.resource import ObjectStoreResource, SourcesResource


def test_module_defs_is_definitions_and_every_job_resolves() -> None:
    from ingest_assets.definitions import defs

    assert isinstance(defs, Definitions)
    Definitions.validate_loadable(defs)
    jobs = {job.name for job in defs.resolve_all_job_defs()}
    assert {
        "ingest_job",
        "dataset_checks_job",
        "import_annotations_job",
        "import_predictions_job",
    } <= jobs
    ingest = defs.resolve_job_def("ingest_job")
    assert set(ingest.asset_layer.executable_asset_keys) == {
        AssetKey("raw_items"),
        AssetKey("dataset_items"),
        AssetKey("duplicates"),
        AssetKey("label_annotations"),
        AssetKey("embeddings"),
    }
    assert ingest.partitions_def is not None
    assert ingest.executor_def.name == "in_process"


def write(path: Path, body: dict) -> Path:
    path.write_text(yaml.safe_dump(body), encoding="utf-8")
    return path


def test_one_running_sensor_per_source(tmp_path: Path) -> None:
    path = write(
        tmp_path / "bucketlake.yaml",
        {
            "lake": "lake",
            "sources": [{"name": "cams", "uri": "a"}, {"name": "phones_2", "uri": "b"}],
        },
    )
    defs = build_definitions(load_config(path))
    Definitions.validate_loadable(defs)
    sensors = {s.name: s for s in defs.sensors}
    assert set(sensors) == {"datapool_cams", "datapool_phones_2", "evaluation_sensor"}
    assert all(s.default_status.value == "RUNNING" for s in sensors.values())
    assert sensors["datapool_cams"].job_name == "ingest_job"


def test_resources_carry_the_validated_settings_until_the_definitions_load_again(
    tmp_path: Path,
) -> None:
    path = write(
        tmp_path / "bucketlake.yaml",
        {
            "lake": {"uri": "s3://lake-bucket/bl", "endpoint_url": "http://127.0.0.1:9"},
            "sources": [
                {"name": "cams", "uri": "frames", "batch_size": 250, "verify": "header"},
                {
                    "name": "raw",
                    "uri": "s3://photos/raw",
                    "access_key_id_env": "PHOTOS_KEY",
                    "secret_access_key_env": "PHOTOS_SECRET",
                },
            ],
        },
    )
    defs = build_definitions(load_config(path))

    lake, store, sources = (
        defs.resources["lake"],
        defs.resources["lake_store"],
        defs.resources["sources"],
    )
    assert isinstance(lake, LakeResource) and isinstance(store, ObjectStoreResource)
    assert lake.store is store  # the lake nests the lake_store resource: the UI links the two
    assert store.uri == "s3://lake-bucket/bl"
    assert store.storage.endpoint_url == "http://127.0.0.1:9"
    assert isinstance(sources, SourcesResource)
    cams, raw = sources.sources
    assert cams.uri == str(tmp_path / "frames")  # resolved against the config's folder
    assert (cams.batch_size, cams.verify, cams.label_strategy) == (250, "header", "folder")
    assert (raw.access_key_id_env, raw.secret_access_key_env) == ("PHOTOS_KEY", "PHOTOS_SECRET")

    write(path, {"lake": "elsewhere", "sources": [{"name": "cams", "uri": "x", "batch_size": 7}]})

    assert sources.source("cams").batch_size == 250  # the loaded definitions keep their settings
    assert [s.name for s in defs.sensors] == ["datapool_cams", "datapool_raw", "evaluation_sensor"]
    reloaded = build_definitions(load_config(path))
    assert reloaded.resources["sources"].source("cams").batch_size == 7
    assert [s.name for s in reloaded.sensors] == ["datapool_cams", "evaluation_sensor"]


def test_the_executor_is_the_one_the_config_chooses(tmp_path: Path) -> None:
    path = write(
        tmp_path / "bucketlake.yaml",
        {"lake": "lake", "executor": {"kind": "multiprocess", "max_concurrent": 2}},
    )
    job = build_definitions(load_config(path)).resolve_job_def("ingest_job")
    assert job.executor_def.name == "multiprocess"


def test_instance_folder_has_run_queue_limits_monitoring_and_retries(tmp_path: Path) -> None:
    path = write(tmp_path / "bucketlake.yaml", {"lake": "lake", "dagster_home": "home"})
    home = ensure_dagster_home(load_config(path))
    settings = yaml.safe_load((home / "dagster.yaml").read_text())
    assert settings["run_queue"]["max_concurrent_runs"] >= 1
    assert settings["run_queue"]["tag_concurrency_limits"][0]["key"] == "bucketlake/source"
    with DagsterInstance.from_config(str(home)) as instance:
        assert isinstance(instance.run_coordinator, QueuedRunCoordinator)
        assert instance.run_monitoring_enabled
        assert instance.run_retries_enabled and instance.run_retries_max_retries == 2


def test_an_instance_made_before_monitoring_gets_it_and_keeps_its_limits(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    old = (
        "# The Dagster instance of this Bucketlake project (SQLite storage in this folder).\n"
        "run_queue:\n  max_concurrent_runs: 7\ntelemetry:\n  enabled: false\n"
    )
    (home / "dagster.yaml").write_text(old)
    path = write(tmp_path / "bucketlake.yaml", {"lake": "lake", "dagster_home": "home"})

    ensure_dagster_home(load_config(path))

    with DagsterInstance.from_config(str(home)) as instance:
        assert instance.run_monitoring_enabled and instance.run_retries_enabled
    assert yaml.safe_load((home / "dagster.yaml").read_text())["run_queue"] == {
        "max_concurrent_runs": 7
    }


def test_the_config_chooses_the_inference_assets_of_ingest_job(tmp_path: Path) -> None:
    path = write(
        tmp_path / "bucketlake.yaml",
        {
            "lake": "lake",
            "embeddings": {"model": "none"},
            "models": [
                {
                    "name": "tagger-v",
                    "version": "1",
                    "task": "classification",
                    "weights": "classifier.pt",
                    "pretag": True,
                },
                {"name": "scorer", "version": "1", "weights": "x.pt"},
            ],
        },
    )
    defs = build_definitions(load_config(path))
    ingest = defs.resolve_job_def("ingest_job")
    keys = set(ingest.asset_layer.executable_asset_keys)
    assert AssetKey("predictions_tagger_v") in keys  # pretag: true; the other model is not
    assert AssetKey("embeddings") not in keys and AssetKey("predictions_scorer") not in keys
    assert defs.resources["inference"].device == "auto"


def test_the_code_location_loads_without_importing_torch() -> None:
    import subprocess
    import sys

    code = "import sys, ingest_assets.definitions; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
