"""``bucketlake sync`` and the ``dagster`` CLI on the project's instance, as a user runs them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from dagster import DagsterEventType, DagsterInstance, DagsterRunStatus, RunsFilter

from ingest_assets.cli.instance import ensure_dagster_home
from resources.lake.tables import Lake
from resources.stores.local import LocalFolderStore
from tests.conftest import Project
from tests.images import write_image

BIN = Path(sys.executable).parent


def run(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if k not in ("DAGSTER_HOME",)}
    environment.update(env)
    return subprocess.run(
        args, cwd=cwd, env=environment, capture_output=True, text=True, timeout=300, check=False
    )


def sync(project: Project, *extra: str, **env: str) -> subprocess.CompletedProcess[str]:
    return run([str(BIN / "bucketlake"), "sync", *extra], project.root, **env)


def seed(project: Project, n: int = 4) -> None:
    for i in range(n):
        write_image(project.inbox / ("cats" if i % 2 else "dogs") / f"{i}.jpg", seed=i)


def runs(project: Project) -> list:
    with DagsterInstance.from_config(str(project.config.dagster_home_path)) as instance:
        return list(instance.get_runs(RunsFilter(job_name="ingest_job")))


def test_sync_claims_runs_and_reports(project: Project) -> None:
    seed(project, 5)
    (project.inbox / "cats" / "broken.jpg").write_bytes(b"not a jpeg")

    first = sync(project)
    second = sync(project)

    assert first.returncode == 0, first.stdout + first.stderr
    assert "inbox: 6 objects listed, 6 new object versions in 1 new batches" in first.stdout
    assert "inbox_000001: 6 items (5 ok, 1 corrupt)" in first.stdout
    assert "sync: 6 new object versions in 1 batches; 1 runs, 0 failed" in first.stdout
    assert str(project.root / "lake" / "dataset_items") in first.stdout
    assert second.returncode == 0
    assert "0 new object versions in 0 new batches" in second.stdout
    assert project.lake.read_table("dataset_items", "inbox_000001").num_rows == 6
    (ingest,) = runs(project)  # the run shows in the instance the UI reads
    assert ingest.status == DagsterRunStatus.SUCCESS
    assert ingest.tags["dagster/partition"] == "inbox_000001"
    assert ingest.tags["bucketlake/source"] == "inbox"


def test_sync_after_a_deletion_shows_the_object_missing_in_the_current_view(
    project: Project,
) -> None:
    seed(project, 3)
    first = sync(project)
    (project.inbox / "cats" / "1.jpg").unlink()

    second = sync(project)

    assert first.returncode == 0, first.stdout + first.stderr
    assert second.returncode == 0, second.stdout + second.stderr
    assert (
        "inbox: 2 objects listed, 1 new object versions in 1 new batches "
        "(1 of them deleted from the source)" in second.stdout
    )
    assert "inbox_000002: 1 items (0 ok, 1 missing)" in second.stdout
    current = project.lake.read_current("dataset_items", ["inbox_000001", "inbox_000002"])
    status = {r["key"]: r["status"] for r in current.to_pylist()}
    assert status == {"cats/1.jpg": "missing", "dogs/0.jpg": "ok", "dogs/2.jpg": "ok"}


def test_sync_closes_small_batches_and_splits_big_ones(project: Project) -> None:
    project.write_config(batch_size=3, min_batch_size=3, max_batch_wait_seconds=3600)
    seed(project, 7)

    result = sync(project, "--jobs", "2")

    assert result.returncode == 0, result.stderr
    assert "7 new object versions in 3 new batches" in result.stdout
    counts = [
        project.lake.read_table("dataset_items", f"inbox_00000{i}").num_rows for i in (1, 2, 3)
    ]
    assert counts == [3, 3, 1]
    assert len(runs(project)) == 3


def test_sync_exits_non_zero_when_a_run_fails(project: Project) -> None:
    project.write_config(ignore_errors=False)
    seed(project, 2)
    (project.inbox / "dogs" / "empty.jpg").write_bytes(b"")

    result = sync(project)

    assert result.returncode == 1
    assert "inbox_000001: FAILED" in result.stdout
    assert "'dogs/empty.jpg'" in result.stdout and "empty file" in result.stdout
    assert "1 runs, 1 failed" in result.stdout
    (failed,) = runs(project)
    assert failed.status == DagsterRunStatus.FAILURE


def test_sync_runs_batches_that_were_claimed_but_never_ingested(project: Project) -> None:
    seed(project, 3)
    home = ensure_dagster_home(project.config)
    project.claim()
    with DagsterInstance.from_config(str(home)) as instance:
        instance.add_dynamic_partitions("batches", ["inbox_000001"])

    result = sync(project)

    assert result.returncode == 0, result.stderr
    assert "1 unfinished batches to run again" in result.stdout
    assert project.lake.is_committed("dataset_items", "inbox_000001")


def test_with_the_multiprocess_executor_the_run_is_tagged_with_its_run_worker(
    project: Project,
) -> None:
    """Steps run in processes of their own that end with the step: the process a healer checks
    must be the run worker's, or a live run would look dead between steps."""
    text = project.config_path.read_text() + "executor: {kind: multiprocess}\n"
    project.config_path.write_text(text)
    seed(project, 3)

    result = sync(project)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "inbox_000001: 3 items (3 ok)" in result.stdout
    home = str(project.config.dagster_home_path)
    with DagsterInstance.from_config(home) as instance:
        (ingest,) = instance.get_runs(RunsFilter(job_name="ingest_job"))
        pids = {
            e.dagster_event.event_type: e.dagster_event.pid
            for e in instance.all_logs(ingest.run_id)
            if e.dagster_event is not None and e.dagster_event.pid is not None
        }
    run_worker, last_step = pids[DagsterEventType.RUN_START], pids[DagsterEventType.STEP_START]
    assert run_worker != last_step  # the steps ran in processes of their own
    assert ingest.tags["bucketlake/pid"] == str(run_worker)


def test_sync_with_a_bad_config_prints_one_clear_line(project: Project) -> None:
    project.write_config(label_strategy="by-folder")

    result = sync(project)

    assert result.returncode == 2
    assert result.stderr.startswith("bucketlake: error: ")
    assert "sources[0].label_strategy" in result.stderr and "Traceback" not in result.stderr


def test_sync_records_its_runs_in_the_instance_dagster_home_names(
    project: Project, tmp_path: Path
) -> None:
    project.write_config(dagster_home=None)  # the config names no instance of its own
    seed(project, 2)
    home = tmp_path / "production_home"
    home.mkdir()

    result = sync(project, DAGSTER_HOME=str(home))
    printed = run([str(BIN / "bucketlake"), "home"], project.root, DAGSTER_HOME=str(home))

    assert result.returncode == 0, result.stdout + result.stderr
    assert "warning" not in result.stderr
    with DagsterInstance.from_config(str(home)) as instance:
        (ingest,) = instance.get_runs(RunsFilter(job_name="ingest_job"))
        assert ingest.status == DagsterRunStatus.SUCCESS
        assert instance.get_dynamic_partitions("batches") == ["inbox_000001"]
    assert not (project.root / ".bucketlake" / "dagster_home").exists()
    assert printed.stdout.strip() == str(home) and printed.stderr == ""


def test_dagster_home_wins_over_the_config_with_a_warning_naming_both(
    project: Project, tmp_path: Path
) -> None:
    seed(project, 1)
    elsewhere = tmp_path / "elsewhere"

    result = sync(project, DAGSTER_HOME=str(elsewhere))
    printed = run([str(BIN / "bucketlake"), "home"], project.root, DAGSTER_HOME=str(elsewhere))

    assert result.returncode == 0, result.stdout + result.stderr
    (warning,) = [line for line in result.stderr.splitlines() if "warning" in line]
    assert f"DAGSTER_HOME={elsewhere}" in warning
    assert str(project.root / "dagster_home") in warning and "using DAGSTER_HOME" in warning
    with DagsterInstance.from_config(str(elsewhere)) as instance:
        assert len(instance.get_runs(RunsFilter(job_name="ingest_job"))) == 1
    assert not (project.root / "dagster_home").exists()
    assert printed.stdout.strip() == str(elsewhere) and "using DAGSTER_HOME" in printed.stderr


def test_without_dagster_home_the_configs_instance_is_used(project: Project) -> None:
    printed = run([str(BIN / "bucketlake"), "home"], project.root)
    assert printed.stdout.strip() == str(project.root / "dagster_home")
    assert (project.root / "dagster_home" / "dagster.yaml").is_file()


def test_dagster_cli_materializes_a_batch_on_the_embedded_default(tmp_path: Path) -> None:
    """The README's commands, on the embedded default (no config file)."""
    root = tmp_path / "embedded"
    for i in range(3):
        write_image(root / ".bucketlake" / "inbox" / "birds" / f"{i}.png", fmt="PNG", seed=i)
    env = {"BUCKETLAKE_CONFIG": ""}
    assert run([str(BIN / "bucketlake"), "sync"], root, **env).returncode == 0
    home = run([str(BIN / "bucketlake"), "home"], root, **env).stdout.strip()
    assert home == str(root / ".bucketlake" / "dagster_home")
    lake = Lake(LocalFolderStore(root / ".bucketlake" / "lake"))
    before = lake.read_commit("dataset_items", "inbox_000001")

    result = run(
        [
            str(BIN / "dagster"),
            "asset",
            "materialize",
            "-m",
            "ingest_assets.definitions",
            "--select",
            "raw_items,dataset_items",
            "--partition",
            "inbox_000001",
        ],
        root,
        DAGSTER_HOME=home,
        **env,
    )

    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    after = lake.read_commit("dataset_items", "inbox_000001")
    assert before is not None and after is not None
    assert after.run_id != before.run_id and after.rows == 3
    assert lake.read_table("dataset_items", "inbox_000001")["label"].to_pylist() == ["birds"] * 3
