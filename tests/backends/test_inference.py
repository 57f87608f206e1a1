"""Embeddings on every kind of source (see ``conftest.py``): the runtime's loader workers open
the source's store in their own processes, with its endpoint and credentials."""

from __future__ import annotations

import numpy as np
import pytest
from dagster import DagsterInstance, SensorResult, materialize

from ingest_assets.assets.dataset_items import dataset_items
from ingest_assets.assets.embeddings import build_embeddings
from ingest_assets.assets.raw_items import raw_items
from ingest_assets.embeddings.table import vectors_of
from ingest_assets.partitions import BATCHES
from resources.config_inference import EmbeddingsConfig
from tests.backends.conftest import Backend
from tests.conftest import Project
from tests.images import write_photo


def test_every_ok_item_is_embedded_by_loader_workers(
    backend: Backend, project: Project, instance: DagsterInstance
) -> None:
    backend.configure(project, inference={"batch_size": 2, "num_workers": 2})
    shots = project.root / "shots"
    for name, photo, brighten in [
        ("coffee.jpg", "coffee", 1.0),
        ("coffee_again.jpg", "coffee", 1.1),
        ("cat.jpg", "chelsea", 1.0),
        ("astronaut.jpg", "astronaut", 1.0),
        ("rocket.jpg", "rocket", 1.0),
    ]:
        backend.put(
            f"photos/{name}", write_photo(shots / name, photo, brighten=brighten).read_bytes()
        )
    backend.put("photos/broken.jpg", (shots / "cat.jpg").read_bytes()[:3000])
    claimed = project.tick(instance)  # the sensor claims into the backend's lake
    assert isinstance(claimed, SensorResult)
    (batch,) = [r.partition_key for r in claimed.run_requests]

    result = materialize(
        [raw_items, dataset_items, build_embeddings(EmbeddingsConfig())],
        partition_key=batch,
        resources=project.resources,
        instance=instance,
    )

    assert result.success
    lake = backend.lake_of(project)
    keys = {
        r["item_id"]: r["key"]
        for r in lake.read_table("dataset_items", batch).to_pylist()
        if r["status"] == "ok"
    }
    table = lake.read_table("embeddings", batch)
    assert sorted(table.column("item_id").to_pylist()) == sorted(keys)
    vectors = {
        keys[i]: v / np.linalg.norm(v)
        for i, v in zip(table.column("item_id").to_pylist(), vectors_of(table), strict=True)
    }
    coffee = vectors.pop("photos/coffee.jpg")
    nearest = max(vectors, key=lambda key: float(coffee @ vectors[key]))
    assert nearest == "photos/coffee_again.jpg"


def test_a_store_that_refuses_every_read_fails_the_step_and_commits_nothing(
    request: pytest.FixtureRequest,
    project: Project,
    instance: DagsterInstance,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seaweed = request.getfixturevalue("seaweed")
    bucket = seaweed.create_bucket("refusing-embeddings")
    shots = project.root / "shots"
    for index, photo in enumerate(["coffee", "chelsea", "rocket"]):
        data = write_photo(shots / f"{photo}.jpg", photo).read_bytes()
        seaweed.client().put_object(Bucket=bucket, Key=f"images/{index}.jpg", Body=data)
    monkeypatch.setenv("CAMS_KEY", seaweed.access_key)
    monkeypatch.setenv("CAMS_SECRET", seaweed.secret_key)
    project.write_config(
        uri=f"s3://{bucket}/images",
        endpoint_url=seaweed.endpoint,
        region="us-east-1",
        access_key_id_env="CAMS_KEY",
        secret_access_key_env="CAMS_SECRET",
    )
    (batch,) = project.claim().new_batches
    instance.add_dynamic_partitions(BATCHES, [batch])
    assert project.ingest(instance, batch).success
    monkeypatch.setenv("CAMS_SECRET", "not-the-secret")  # rotated under the running pipeline

    result = materialize(
        [build_embeddings(EmbeddingsConfig())],
        partition_key=batch,
        resources=project.resources,
        instance=instance,
        raise_on_error=False,
    )

    assert not result.success
    (failure,) = [e for e in result.all_events if e.is_step_failure]
    message = failure.step_failure_data.error.message
    assert "refused 3 reads in a row" in message and "bad credentials" in message
    assert "not-the-secret" not in message
    assert not project.lake.is_committed("embeddings", batch)
