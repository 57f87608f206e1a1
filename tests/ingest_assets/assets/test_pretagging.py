"""``predictions_<model>``: models that users register (TorchScript, ONNX, a state dict)
pre-tag every batch, and the rows read like imported predictions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from dagster import DagsterInstance, materialize
from PIL import Image

from ingest_assets.assets.dataset_items import dataset_items
from ingest_assets.assets.pretagging import build_pretagging
from ingest_assets.assets.raw_items import raw_items
from ingest_assets.models.registry import registered
from ingest_assets.partitions import BATCHES
from resources.config import ModelConfig
from tests.conftest import Project
from tests.models_built import LABELS, onnx_classifier, torchscript_classifier, torchscript_detector


def pretag(project: Project, instance: DagsterInstance, model: ModelConfig) -> list[dict[str, Any]]:
    (batch,) = project.claim().new_batches
    instance.add_dynamic_partitions(BATCHES, [batch])
    asset = build_pretagging(model)
    result = materialize(
        [raw_items, dataset_items, asset],
        partition_key=batch,
        resources=project.resources,
        instance=instance,
    )
    assert result.success
    return project.lake.read_table(f"predictions_{model.name}", batch).to_pylist()


def shades(inbox: Path) -> None:
    for name, level in [
        ("black", 10),
        ("grey_dark", 60),
        ("white", 250),
        ("grey_light", 200),
        ("grey_middle", 128),  # about as dark as bright: under the threshold, no tag
    ]:
        Image.new("RGB", (50, 40), (level,) * 3).save(inbox / f"{name}.png")


@pytest.mark.parametrize("kind", ["torchscript", "onnx"])
def test_a_registered_classifier_tags_every_item(
    project: Project, instance: DagsterInstance, tmp_path: Path, kind: str
) -> None:
    build = torchscript_classifier if kind == "torchscript" else onnx_classifier
    weights = build(tmp_path / ("shade.pt" if kind == "torchscript" else "shade.onnx"))
    shades(project.inbox)
    (project.inbox / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    model = ModelConfig(
        name="shade",
        version="1",
        task="classification",
        weights=str(weights),
        labels=LABELS,
        pretag=True,
        confidence_threshold=0.6,
    )
    rows = pretag(project, instance, model)

    keys = {r["item_id"]: r["key"] for r in project.lake.read_current("dataset_items").to_pylist()}
    tags = {keys[r["item_id"]]: r["label"] for r in rows}
    assert tags == {
        "black.png": "dark",
        "grey_dark.png": "dark",
        "white.png": "bright",
        "grey_light.png": "bright",
    }
    assert {(r["kind"], r["model"], r["version"]) for r in rows} == {("class", "shade", "1")}
    assert all(r["confidence"] >= 0.6 for r in rows)
    assert "shade_1" in registered(project.lake)  # the config's model went into the registry


def test_a_torchscript_detector_gives_boxes_in_image_pixels(
    project: Project, instance: DagsterInstance, tmp_path: Path
) -> None:
    image = Image.new("RGB", (120, 80), (0, 0, 0))
    image.paste((255, 255, 255), (30, 20, 70, 50))  # x 30..70, y 20..50
    image.save(project.inbox / "box.png")
    Image.new("RGB", (64, 64), (0, 0, 0)).save(project.inbox / "empty.png")
    model = ModelConfig(
        name="boxer",
        version="2",
        task="detection",
        weights=str(torchscript_detector(tmp_path / "boxer.pt")),
        labels=["background", "bright"],
        pretag=True,
    )
    rows = pretag(project, instance, model)

    (row,) = rows
    assert row["kind"] == "object" and row["label"] == "bright" and row["scored_as"] == "bbox"
    assert row["bbox"] == [30.0, 20.0, 40.0, 30.0]
    assert row["confidence"] == pytest.approx(0.9)
