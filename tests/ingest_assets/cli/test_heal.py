"""Crash and heal: a run killed with SIGKILL after its first checkpoint is marked failed and
resumed by the next ``bucketlake sync``; the table equals an uninterrupted run's."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from dagster import DagsterInstance, DagsterRunStatus, RunsFilter
from PIL import Image

from ingest_assets.cli.instance import ensure_dagster_home
from tests.conftest import Project
from tests.images import write_image
from tests.ingest_assets.cli.test_sync import sync


def seed_slow_batch(project: Project, big: int = 8) -> None:
    """Five small images (the first checkpoint), then big ones that take a while to decode."""
    for i in range(5):
        write_image(project.inbox / "a" / f"small_{i}.jpg", seed=i)
    (project.inbox / "b").mkdir()
    gradient = Image.linear_gradient("L").resize((5000, 5000))
    for i in range(big):
        gradient.rotate(i * 10).save(project.inbox / "b" / f"big_{i:02d}.jpg", quality=80)


def first_checkpoint_written(project: Project) -> bool:
    return any(
        (project.root / "lake" / "dataset_items" / "inbox_000001").glob("*/part-00000.parquet")
    )


def run_and_kill_after_first_checkpoint(project: Project, home: str | Path) -> None:
    """Run ``ingest_job`` for ``inbox_000001`` in a process of its own, as sync does, and
    SIGKILL that process once the first checkpoint is written."""
    env = {**os.environ, "DAGSTER_HOME": str(home), "BUCKETLAKE_CONFIG": str(project.config_path)}
    child = subprocess.Popen(
        [sys.executable, "-m", "ingest_assets.cli.run_batch", "inbox_000001"],
        cwd=project.root,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while not first_checkpoint_written(project) and time.monotonic() < deadline:
        assert child.poll() is None, "the run ended before it could be killed"
        time.sleep(0.02)
    child.send_signal(signal.SIGKILL)
    child.wait()


def test_sync_heals_a_run_killed_after_its_first_checkpoint(project: Project) -> None:
    project.write_config(checkpoint_rows=5, num_workers=1, max_image_pixels=30_000_000)
    seed_slow_batch(project)
    home = ensure_dagster_home(project.config)
    # Claim and register the batch, then start its run as sync would, and kill it.
    project.claim()
    with DagsterInstance.from_config(str(home)) as instance:
        instance.add_dynamic_partitions("batches", ["inbox_000001"])
    run_and_kill_after_first_checkpoint(project, home)
    assert not project.lake.is_committed("dataset_items", "inbox_000001")
    with DagsterInstance.from_config(str(home)) as instance:
        (killed,) = instance.get_runs(RunsFilter(job_name="ingest_job"))
        assert killed.status == DagsterRunStatus.STARTED  # what SIGKILL leaves behind

    healed = sync(project)

    assert healed.returncode == 0, healed.stdout + healed.stderr
    assert f"run {killed.run_id[:8]} was left STARTED by a process that is gone" in healed.stdout
    assert "1 unfinished batches to run again" in healed.stdout
    assert "inbox_000001: 13 items (13 ok), resumed 5 rows" in healed.stdout
    commit = project.lake.read_commit("dataset_items", "inbox_000001")
    assert commit is not None and commit.extra["resumed_rows"] == 5
    with DagsterInstance.from_config(str(home)) as instance:
        statuses = {
            r.run_id: r.status for r in instance.get_runs(RunsFilter(job_name="ingest_job"))
        }
        assert statuses[killed.run_id] == DagsterRunStatus.FAILURE
        assert DagsterRunStatus.STARTED not in statuses.values()
        healed_rows = project.lake.read_table("dataset_items", "inbox_000001").to_pylist()
        again = project.ingest(instance, "inbox_000001")
        assert again.success
    uninterrupted = project.lake.read_table("dataset_items", "inbox_000001").to_pylist()
    assert project.lake.read_commit("dataset_items", "inbox_000001").extra["resumed_rows"] == 0
    assert healed_rows == uninterrupted


def test_sync_gives_up_on_a_batch_that_keeps_failing(project: Project) -> None:
    project.write_config(ignore_errors=False)
    write_image(project.inbox / "ok.jpg")
    (project.inbox / "zz_bad.jpg").write_bytes(b"")
    outputs = [sync(project) for _ in range(4)]

    assert [o.returncode for o in outputs] == [1, 1, 1, 1]
    assert "1 unfinished batches to run again" in outputs[1].stdout
    assert "inbox_000001: failed 3 times; not run again" in outputs[3].stdout
    retried = sync(project, "--retry-failed")
    assert "1 unfinished batches to run again" in retried.stdout


def test_stopping_sync_stops_its_runs_and_the_next_sync_resumes(project: Project) -> None:
    project.write_config(checkpoint_rows=5, num_workers=1, max_image_pixels=30_000_000)
    seed_slow_batch(project, big=30)
    env = {k: v for k, v in os.environ.items() if k != "DAGSTER_HOME"}
    running = subprocess.Popen(
        [sys.executable, "-m", "ingest_assets.cli.main", "sync"],
        cwd=project.root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 120
    while not first_checkpoint_written(project):
        assert running.poll() is None and time.monotonic() < deadline
        time.sleep(0.02)
    children = subprocess.run(["pgrep", "-P", str(running.pid)], capture_output=True, text=True)
    (child,) = [int(pid) for pid in children.stdout.split()]

    running.send_signal(signal.SIGTERM)
    output = running.communicate(timeout=60)[0]

    assert running.returncode == 130, output
    assert "interrupted" in output
    assert subprocess.run(["kill", "-0", str(child)], capture_output=True).returncode != 0
    home = project.config.dagster_home_path
    with DagsterInstance.from_config(str(home)) as instance:
        (stopped,) = instance.get_runs(RunsFilter(job_name="ingest_job"))
        assert stopped.status in (DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED)
    healed = sync(project)
    assert healed.returncode == 0, healed.stdout
    assert "inbox_000001: 35 items (35 ok), resumed" in healed.stdout
