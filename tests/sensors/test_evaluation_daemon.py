"""The evaluation sensor under the real daemon (``dagster dev`` on the project's instance): a
model version's predictions imported with ``bucketlake import`` are evaluated without anyone
asking, and evaluated again when a new prediction import for that version lands."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from dagster import DagsterInstance, DagsterRunStatus, RunsFilter

from ingest_assets.cli.instance import ensure_dagster_home
from tests.conftest import Project
from tests.ingest_assets.cli.test_evaluate import CONFORMANCE, oracle, predictions
from tests.ingest_assets.cli.test_import import bucketlake
from tests.sensors.test_daemon import dagster_dev, wait_for

pytestmark = pytest.mark.skipif(
    not CONFORMANCE.is_dir(), reason=f"the reference data folder {CONFORMANCE} is absent"
)
TRUTH = CONFORMANCE / "instances_val2014_100.json"


@pytest.fixture
def daemon(project: Project) -> Iterator[Path]:
    """A project with no source, its instance under ``dagster dev``; the instance folder."""
    project.config_path.write_text("lake: lake\ndagster_home: dagster_home\n", encoding="utf-8")
    home = ensure_dagster_home(project.config)
    with dagster_dev(project, home):
        yield home


def evaluations(home: Path) -> list[str]:
    """The run ids of the sensor's finished evaluation runs."""
    with DagsterInstance.from_config(str(home)) as instance:
        runs = instance.get_runs(RunsFilter(job_name="evaluation_job"))
        return [
            r.run_id
            for r in runs
            if r.status == DagsterRunStatus.SUCCESS
            and r.tags.get("dagster/sensor_name") == "evaluation_sensor"
        ]


def test_new_predictions_are_evaluated_by_the_daemon_unasked(
    project: Project, daemon: Path, tmp_path: Path
) -> None:
    assert bucketlake(project, "import", str(TRUTH), "--format", "coco")[0] == 0
    assert bucketlake(project, "add-model", "fake", "--version", "1")[0] == 0
    results = json.loads((CONFORMANCE / "instances_val2014_fakebbox100_results.json").read_text())
    half = tmp_path / "half.json"
    half.write_text(json.dumps(results[: len(results) // 2]))
    predictions(project, half)

    wait_for("the sensor's first evaluation", lambda: len(evaluations(daemon)) == 1, 300)
    first = project.lake.read_commit("evaluation", "fake_1")
    assert first is not None
    assert first.extra["report"]["bbox"]["stats"] == pytest.approx(
        oracle(TRUTH, half, "bbox"), abs=1e-9
    )

    rest = tmp_path / "rest.json"
    rest.write_text(json.dumps(results[len(results) // 2 :]))
    predictions(project, rest)  # a second import for the same model version

    wait_for("the evaluation of the new import", lambda: len(evaluations(daemon)) == 2, 300)
    again = project.lake.read_commit("evaluation", "fake_1")
    assert again is not None
    assert again.extra["report"]["prediction_rows"] == len(results)
    whole = CONFORMANCE / "instances_val2014_fakebbox100_results.json"
    assert again.extra["report"]["bbox"]["stats"] == pytest.approx(
        oracle(TRUTH, whole, "bbox"), abs=1e-9
    )
