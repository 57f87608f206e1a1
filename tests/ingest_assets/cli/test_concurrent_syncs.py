"""Real ``bucketlake sync`` processes started at once: on a fresh folder they make one sound
instance between them, and on an existing one every batch is run once, by one of them."""

from __future__ import annotations

import os
import sqlite3
import subprocess
from collections import Counter
from pathlib import Path

from dagster import DagsterInstance, DagsterRunStatus, RunsFilter

from tests.conftest import Project
from tests.images import write_image
from tests.ingest_assets.cli.test_sync import BIN


def start_syncs(root: Path, n: int = 2) -> list[subprocess.CompletedProcess[str]]:
    env = {k: v for k, v in os.environ.items() if k not in ("DAGSTER_HOME", "BUCKETLAKE_CONFIG")}
    procs = [
        subprocess.Popen(
            [str(BIN / "bucketlake"), "sync"],
            cwd=root,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(n)
    ]
    done = []
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        done.append(subprocess.CompletedProcess(proc.args, proc.returncode, out, err))
    return done


def migration_heads(home: Path) -> list[str]:
    with sqlite3.connect(home / "history" / "runs.db") as db:
        return [row[0] for row in db.execute("SELECT version_num FROM alembic_version")]


def test_syncs_started_at_once_on_a_fresh_folder_make_one_sound_instance(
    project: Project,
) -> None:
    for round_ in range(3):
        root = project.root / f"fresh_{round_}"
        write_image(root / "inbox" / "cats" / "tom.jpg", seed=round_)
        (root / "bucketlake.yaml").write_text(
            "lake: lake\ndagster_home: home\nsources:\n  - name: inbox\n    uri: inbox\n"
        )

        both = start_syncs(root)

        for done in both:
            assert done.returncode == 0, done.stdout + done.stderr
            assert "Traceback" not in done.stderr and "OperationalError" not in done.stderr
        assert len(migration_heads(root / "home")) == 1
        after = start_syncs(root, 1)[0]
        assert after.returncode == 0, after.stdout + after.stderr


def test_syncs_started_at_once_on_an_instance_run_each_batch_once(project: Project) -> None:
    project.write_config(batch_size=2)
    first = start_syncs(project.root, 1)[0]  # makes the instance; nothing to claim yet
    assert first.returncode == 0, first.stdout + first.stderr
    for i in range(8):
        write_image(project.inbox / "cats" / f"{i}.jpg", seed=i)

    both = start_syncs(project.root)

    for done in both:
        assert done.returncode == 0, done.stdout + done.stderr
    assert "left to another sync" in both[0].stdout + both[1].stdout
    with DagsterInstance.from_config(str(project.config.dagster_home_path)) as instance:
        runs = instance.get_runs(RunsFilter(job_name="ingest_job"))
    assert Counter(r.tags["dagster/partition"] for r in runs) == {
        f"inbox_{i:06d}": 1 for i in range(1, 5)
    }
    assert {r.status for r in runs} == {DagsterRunStatus.SUCCESS}
    assert len(project.lake.read_current("dataset_items").to_pylist()) == 8
