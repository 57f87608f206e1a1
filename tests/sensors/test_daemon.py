"""The daemon alone, as on Kubernetes (no ``bucketlake sync``): ``dagster dev`` on the project's
instance claims a batch through its sensor, and a run killed mid-batch is run again and its
items committed: by Dagster's run-retry daemon where the instance has run retries on (the
default ``dagster.yaml``), by the datapool sensor where it has not (or the retries ran out).
The UI shows the resources with their settings."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from dagster import DagsterInstance, DagsterRun, DagsterRunStatus, RunsFilter

from ingest_assets.cli.instance import ensure_dagster_home
from tests.conftest import Project
from tests.ingest_assets.cli.test_heal import first_checkpoint_written, seed_slow_batch
from tests.servers import free_port, wait_for_port

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent

RESOURCE_QUERY = """
query Resource($selector: ResourceSelector!) {
  topLevelResourceDetailsOrError(resourceSelector: $selector) {
    __typename
    ... on ResourceDetails {
      name
      configuredValues { key value }
      nestedResources { name type }
    }
  }
}
"""


@dataclass
class Daemon:
    home: Path
    port: int
    run_retries: bool

    def runs(self) -> list[DagsterRun]:
        with DagsterInstance.from_config(str(self.home)) as instance:
            return list(instance.get_runs(RunsFilter(job_name="ingest_job")))

    def resource(self, name: str) -> dict[str, Any]:
        selector = {
            "repositoryLocationName": "bucketlake",
            "repositoryName": "__repository__",
            "resourceName": name,
        }
        response = httpx.post(
            f"http://127.0.0.1:{self.port}/graphql",
            json={"query": RESOURCE_QUERY, "variables": {"selector": selector}},
            timeout=30,
        )
        response.raise_for_status()
        details: dict[str, Any] = response.json()["data"]["topLevelResourceDetailsOrError"]
        assert details["__typename"] == "ResourceDetails", details
        return details


@pytest.fixture(params=["run retries on", "run retries off"])
def daemon(project: Project, request: pytest.FixtureRequest) -> Iterator[Daemon]:
    """``dagster dev`` (webserver and daemon) on the project's instance, as ``make dev``."""
    project.write_config(
        checkpoint_rows=5, num_workers=1, max_image_pixels=30_000_000, poll_seconds=1
    )
    seed_slow_batch(project)
    home = ensure_dagster_home(project.config)
    retries = request.param == "run retries on"
    if not retries:
        settings = home / "dagster.yaml"
        settings.write_text(
            settings.read_text().replace(
                "run_retries:\n  enabled: true", "run_retries:\n  enabled: false"
            )
        )
    with dagster_dev(project, home) as port:
        yield Daemon(home, port, retries)


@contextlib.contextmanager
def dagster_dev(project: Project, home: Path) -> Iterator[int]:
    """``dagster dev`` (webserver and daemon) on the instance in ``home``; its port."""
    port = free_port()
    env = {**os.environ, "DAGSTER_HOME": str(home), "BUCKETLAKE_CONFIG": str(project.config_path)}
    command = ["dev", "-w", str(REPO / "workspace.yaml"), "-h", "127.0.0.1", "-p", str(port)]
    process = subprocess.Popen(
        [str(BIN / "dagster"), *command],
        cwd=project.root,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_for_port(port, timeout=120)
        yield port
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def wait_for(what: str, condition: Any, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_the_daemon_alone_runs_a_killed_batch_again_and_the_ui_shows_the_settings(
    project: Project, daemon: Daemon
) -> None:
    wait_for("the first checkpoint of the sensor's run", lambda: first_checkpoint_written(project))
    (run,) = daemon.runs()
    assert run.tags["dagster/sensor_name"] == "datapool_inbox"
    os.kill(int(run.tags["bucketlake/pid"]), signal.SIGKILL)  # the run worker dies mid-batch

    # While the sensor heals: the UI shows each resource with the settings loaded.
    sources = {v["key"]: v["value"] for v in daemon.resource("sources")["configuredValues"]}
    assert '"checkpoint_rows": 5' in sources["sources"] and str(project.inbox) in sources["sources"]
    assert {n["name"] for n in daemon.resource("lake")["nestedResources"]} == {"store"}
    store = {v["key"]: v["value"] for v in daemon.resource("lake_store")["configuredValues"]}
    assert str(project.root / "lake") in store["uri"]

    wait_for(
        "the items of the killed batch",
        lambda: project.lake.is_committed("dataset_items", "inbox_000001"),
    )
    commit = project.lake.read_commit("dataset_items", "inbox_000001")
    assert commit is not None and commit.rows == 13
    # The second run resumed after the last checkpoint the killed one wrote (5 rows, or 10 when
    # the second chunk landed before the kill did).
    assert commit.extra["resumed_rows"] in (5, 10)
    wait_for(
        "the second run to finish",
        lambda: [r.status for r in daemon.runs()].count(DagsterRunStatus.SUCCESS) == 1,
    )
    by_id = {r.run_id: r for r in daemon.runs()}
    killed = by_id.pop(run.run_id)
    (again_run,) = by_id.values()
    assert killed.status == DagsterRunStatus.FAILURE
    assert again_run.status == DagsterRunStatus.SUCCESS
    assert again_run.tags["dagster/sensor_name"] == "datapool_inbox"
    retried = again_run.tags.get("dagster/parent_run_id") == killed.run_id
    if retried:  # Dagster's run retry, of the run the code server saw die
        assert daemon.run_retries
    else:  # the sensor's own request, with the next run key (it may see the death first)
        assert again_run.tags["dagster/run_key"] == "inbox_000001:2"
        assert again_run.tags["bucketlake/attempt"] == "2"

    project.write_config(checkpoint_rows=77)  # takes effect when the code location reloads
    again = {v["key"]: v["value"] for v in daemon.resource("sources")["configuredValues"]}
    assert '"checkpoint_rows": 5' in again["sources"]
