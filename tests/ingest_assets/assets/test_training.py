"""The models the platform trains on the dataset: an embedding model trained on the pool
itself, and a classifier head retrained on the labelled items, each registered as a model
version that the inference assets then run."""

from __future__ import annotations

from typing import Any

from dagster import AssetsDefinition, DagsterInstance, materialize

from ingest_assets.assets.dataset_items import dataset_items
from ingest_assets.assets.embeddings import build_embeddings
from ingest_assets.assets.raw_items import raw_items
from ingest_assets.assets.training import pool_embedding_model, trained_model
from ingest_assets.models.registry import registered
from ingest_assets.partitions import BATCHES
from resources.config_inference import EmbeddingsConfig
from tests.conftest import Project
from tests.images import write_digits

#: Settings small enough for a test on two cores (the bench trains the defaults).
POOL_RUN = {"epochs": 15, "width": 16, "batch_size": 128, "flip": 0.0}


def ingest_digits(project: Project, instance: DagsterInstance, count: int) -> str:
    project.write_config(batch_size=5000)
    write_digits(project.inbox / "digits", count)
    (batch,) = project.claim().new_batches
    instance.add_dynamic_partitions(BATCHES, [batch])
    return batch


def run(
    project: Project,
    instance: DagsterInstance,
    assets: list[AssetsDefinition],
    *,
    batch: str | None = None,
    config: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Materialize ``assets``; the metadata of the last one."""
    result = materialize(
        assets,
        partition_key=batch,
        resources=project.resources,
        instance=instance,
        run_config={"ops": config} if config else None,
    )
    assert result.success
    (event,) = [
        e for e in result.get_asset_materialization_events() if e.asset_key == assets[-1].key
    ]
    return {k: v.value for k, v in event.materialization.metadata.items()}


def test_embeddings_trained_on_the_pool_beat_imagenet_features_on_digits(
    project: Project, instance: DagsterInstance
) -> None:
    batch = ingest_digits(project, instance, 600)
    imagenet = run(
        project,
        instance,
        [raw_items, dataset_items, build_embeddings(EmbeddingsConfig())],
        batch=batch,
    )
    pool = run(
        project,
        instance,
        [pool_embedding_model],
        config={"pool_embedding_model": {"config": POOL_RUN}},
    )

    assert pool["knn_labelled_items"] == imagenet["knn_labelled_items"] == 600
    assert pool["knn5_accuracy"] > imagenet["knn5_accuracy"] + 0.05
    version = pool["model_version"]
    found = registered(project.lake)[f"pool_{version}"]
    assert (found.task, found.weights) == (
        "embedding",
        f"lake://pool_embedding_model/{version}/weights.pt",
    )

    # The config's embeddings can now name it: the batch is embedded again with it.
    with_pool = build_embeddings(EmbeddingsConfig(model="pool", version=version))
    again = run(project, instance, [with_pool], batch=batch)
    assert (again["model"], again["model_version"], again["dimensions"]) == ("pool", version, 128)
    assert again["knn5_accuracy"] == pool["knn5_accuracy"]


def test_the_retrained_classifier_beats_chance_on_the_test_split(
    project: Project, instance: DagsterInstance
) -> None:
    batch = ingest_digits(project, instance, 400)
    run(project, instance, [raw_items, dataset_items], batch=batch)  # no embeddings yet
    meta = run(project, instance, [trained_model])

    assert meta["classes"] == 10 and meta["chance"] == 0.1
    assert meta["train_items"] + meta["test_items"] == 400 and meta["test_items"] > 40
    assert meta["test_accuracy"] > 0.6
    found = registered(project.lake)[f"retrained_{meta['model_version']}"]
    assert found.task == "classification" and found.labels == tuple(str(d) for d in range(10))
