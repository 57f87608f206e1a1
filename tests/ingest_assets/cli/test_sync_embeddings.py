"""``bucketlake sync`` with embeddings on (the product's default): every ok item of every
batch gets its vector and the UI gets the batch's k-NN accuracy; a run killed after its first
embeddings checkpoint is resumed there by the next sync."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
from dagster import AssetKey, DagsterInstance, materialize

from ingest_assets.assets.embeddings import build_embeddings
from ingest_assets.cli.instance import ensure_dagster_home
from ingest_assets.embeddings.table import vectors_of
from tests.conftest import Project
from tests.images import write_digits
from tests.ingest_assets.cli.test_sync import sync

BATCH = "inbox_000001"


def embedded(project: Project) -> dict[str, np.ndarray]:
    table = project.lake.read_table("embeddings", BATCH)
    return dict(zip(table.column("item_id").to_pylist(), vectors_of(table), strict=True))


def test_sync_embeds_every_ok_item_and_reports_the_knn_accuracy(project: Project) -> None:
    project.write_config(embeddings=None)  # the product's default: ImageNet MobileNetV2
    write_digits(project.inbox / "digits", 40)
    (project.inbox / "digits" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n")

    done = sync(project)

    assert done.returncode == 0, done.stdout + done.stderr
    items = project.lake.read_table("dataset_items", BATCH).to_pylist()
    ok = {r["item_id"] for r in items if r["status"] == "ok"}
    assert len(ok) == 40 and set(embedded(project)) == ok
    with DagsterInstance.from_config(str(project.config.dagster_home_path)) as instance:
        event = instance.get_latest_materialization_event(AssetKey("embeddings"))
        assert event is not None and event.asset_materialization is not None
        metadata = event.asset_materialization.metadata
    assert metadata["model"].value == "mobilenet_v2"
    assert metadata["knn_labelled_items"].value == 40
    assert 0.3 < metadata["knn5_accuracy"].value <= 1.0  # 4 a class; chance is 0.1


def test_a_run_killed_while_embedding_resumes_after_its_last_chunk(project: Project) -> None:
    project.write_config(embeddings=None, checkpoint_rows=16, batch_size=1000)
    write_digits(project.inbox / "digits", 160)
    home = ensure_dagster_home(project.config)
    project.claim()
    with DagsterInstance.from_config(str(home)) as instance:
        instance.add_dynamic_partitions("batches", [BATCH])
    env = {**os.environ, "DAGSTER_HOME": str(home), "BUCKETLAKE_CONFIG": str(project.config_path)}
    child = subprocess.Popen(
        [sys.executable, "-m", "ingest_assets.cli.run_batch", BATCH],
        cwd=project.root,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    chunks = project.root / "lake" / "embeddings" / BATCH
    deadline = time.monotonic() + 240
    while not any(chunks.glob("*/part-00000.parquet")):
        assert child.poll() is None, "the run ended before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.02)
    os.killpg(child.pid, signal.SIGKILL)
    child.wait()
    assert not project.lake.is_committed("embeddings", BATCH)

    healed = sync(project)

    assert healed.returncode == 0, healed.stdout + healed.stderr
    commit = project.lake.read_commit("embeddings", BATCH)
    assert commit is not None and 16 <= commit.extra["resumed_rows"] < 160
    resumed = embedded(project)
    assert len(resumed) == 160
    with DagsterInstance.from_config(str(home)) as instance:
        again = materialize(
            [build_embeddings(project.config.embeddings)],
            partition_key=BATCH,
            resources=project.resources,
            instance=instance,
        )
        assert again.success
    assert project.lake.read_commit("embeddings", BATCH).extra["resumed_rows"] == 0
    whole = embedded(project)
    assert set(whole) == set(resumed)
    for item, vector in whole.items():
        np.testing.assert_allclose(resumed[item], vector, rtol=0, atol=1e-4)
