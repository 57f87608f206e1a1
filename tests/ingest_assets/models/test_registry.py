"""The model registry: versions stored in the lake, immutable once registered, and partitions
of ``model_versions`` from the command line and from the config."""

from __future__ import annotations

from pathlib import Path

import pytest
from dagster import DagsterInstance

from ingest_assets.models.registry import ModelVersion, register, registered
from resources.errors import ConfigError
from tests.conftest import Project
from tests.ingest_assets.cli.test_sync import BIN, run, sync

DETECTOR = ModelVersion("yolo", "8.1", "detection", "s3://models/yolo-8.1.pt", ("cat", "dog"))


def test_a_registered_version_is_kept_and_registering_it_again_does_nothing(
    project: Project,
) -> None:
    assert register(project.lake, DETECTOR, by="test")
    assert not register(project.lake, DETECTOR, by="test")

    assert registered(project.lake) == {"yolo_8.1": DETECTOR}


def test_a_registered_version_never_changes(project: Project) -> None:
    register(project.lake, DETECTOR, by="test")
    changed = ModelVersion("yolo", "8.1", "detection", "s3://models/other.pt", ("cat", "dog"))

    with pytest.raises(ConfigError, match="registered already with other weights"):
        register(project.lake, changed, by="test")
    register(project.lake, ModelVersion("det", "v_1"), by="test")
    with pytest.raises(ConfigError, match="has; choose another name or version"):
        register(project.lake, ModelVersion("det_v", "1"), by="test")  # the same key, det_v_1
    assert registered(project.lake) == {"yolo_8.1": DETECTOR, "det_v_1": ModelVersion("det", "v_1")}


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"model": "my model", "version": "1"}, "model name 'my model'"),
        ({"model": "m", "version": "1/2"}, "version '1/2'"),
        ({"model": "m", "version": "1", "task": "segmentation"}, "task 'segmentation'"),
        ({"model": "m", "version": "1", "weights": "https://u:pw@host/w.pt"}, "credentials"),
    ],
)
def test_bad_model_versions_are_refused_by_name(fields: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        ModelVersion(**fields)  # type: ignore[arg-type]
    assert "pw" not in str(caught.value)


def partitions(home: Path) -> list[str]:
    with DagsterInstance.from_config(str(home)) as instance:
        return list(instance.get_dynamic_partitions("model_versions"))


def test_add_model_registers_a_version_and_its_partition(project: Project) -> None:
    add = [str(BIN / "bucketlake"), "add-model", "resnet", "--version", "2", "--task"]
    first = run([*add, "classification", "--labels", "cat, dog"], project.root)
    again = run([*add, "classification", "--labels", "cat, dog"], project.root)
    changed = run([*add, "embedding"], project.root)

    assert first.returncode == 0, first.stderr
    assert "model resnet version 2 registered (resnet_2)" in first.stdout
    assert "registered already" in again.stdout
    assert changed.returncode == 2
    assert "registered already with other task, labels" in changed.stderr
    assert registered(project.lake)["resnet_2"].labels == ("cat", "dog")
    assert partitions(project.config.dagster_home_path) == ["resnet_2"]


def test_sync_registers_the_models_of_the_config(project: Project) -> None:
    body = project.config_path.read_text() + (
        "models:\n  - {name: yolo, version: '8.1', weights: s3://models/yolo-8.1.pt}\n"
    )
    project.config_path.write_text(body)

    done = sync(project)

    assert done.returncode == 0, done.stdout + done.stderr
    assert "model yolo version 8.1 registered (yolo_8.1)" in done.stdout
    assert registered(project.lake)["yolo_8.1"].weights == "s3://models/yolo-8.1.pt"
    assert partitions(project.config.dagster_home_path) == ["yolo_8.1"]
    assert "registered" not in sync(project).stdout
