"""``bucketlake select`` after a sync with embeddings: each run adds items no earlier run chose,
never a deleted item and never both of two duplicates, and the UI gets the run's embedding map."""

from __future__ import annotations

import json
import shutil

from dagster import AssetKey, DagsterInstance

from tests.conftest import Project
from tests.images import write_digits
from tests.ingest_assets.cli.test_sync import BIN, run, sync


def select(project: Project, *args: str) -> dict:
    done = run([str(BIN / "bucketlake"), "select", *args, "--json"], project.root)
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout)


def test_runs_add_new_items_never_deleted_ones_nor_both_duplicates(project: Project) -> None:
    project.write_config(embeddings=None)
    write_digits(project.inbox / "digits", 30)
    original = next((project.inbox / "digits").rglob("d0003.png"))
    shutil.copy(original, original.with_name("copy-of-d0003.png"))
    assert sync(project).returncode == 0
    next((project.inbox / "digits").rglob("d0007.png")).unlink()
    assert sync(project).returncode == 0

    first = select(project, "--n-samples", "12")
    second = select(project, "--n-samples", "100")

    assert (first["run"], second["run"]) == ("sel0001", "sel0002")
    one = {r["key"] for r in first["rows"]}
    two = {r["key"] for r in second["rows"]}
    assert len(one) == 12 and not one & two
    # 31 objects, one deleted, one of the two duplicates left out: 29 to choose from.
    assert len(one | two) == 29
    assert not any(key.endswith("d0007.png") for key in one | two)
    twins = {key for key in one | two if key.endswith("d0003.png")}
    assert len(twins) == 1
    assert [r["rank"] for r in first["rows"]] == list(range(1, 13))
    assert all(r["strategy"] == "diversity" for r in first["rows"])
    assert abs(second["radius_before"] - first["radius_after"]) < 1e-4  # float32 distances
    with DagsterInstance.from_config(str(project.config.dagster_home_path)) as instance:
        event = instance.get_latest_materialization_event(AssetKey("selection"))
        assert event is not None and event.asset_materialization is not None
        metadata = event.asset_materialization.metadata
    assert metadata["selected_before"].value == 12
    assert "data:image/png;base64," in metadata["embedding_map"].value


def test_a_selection_before_any_embedding_says_what_to_run(project: Project) -> None:
    project.write_config()  # embeddings off
    write_digits(project.inbox / "digits", 3)
    assert sync(project).returncode == 0

    done = run([str(BIN / "bucketlake"), "select", "--n-samples", "2"], project.root)

    assert done.returncode == 2
    assert "no embeddings are committed yet" in done.stderr
    assert "bucketlake sync" in done.stderr
