"""The item table is the same, row for row, whatever the workers (inline, processes, threads)
and the checkpoint size."""

from __future__ import annotations

from dagster import DagsterInstance

from tests.conftest import Project
from tests.images import write_image


def test_output_order_does_not_depend_on_workers(
    project: Project, instance: DagsterInstance
) -> None:
    for i in range(40):
        write_image(project.inbox / f"d{i % 4}" / f"{i:03d}.jpg", width=16 + i, height=12, seed=i)
    (project.inbox / "d0" / "broken.jpg").write_bytes(b"\xff\xd8\xff")
    project.claim()
    instance.add_dynamic_partitions("batches", ["inbox_000001"])
    tables = []
    for workers, chunk, kind in ((1, 1000, "processes"), (4, 7, "processes"), (3, 3, "threads")):
        project.write_config(num_workers=workers, checkpoint_rows=chunk, worker_kind=kind)
        result = project.ingest(instance, "inbox_000001")
        assert result.success
        tables.append(project.lake.read_table("dataset_items", "inbox_000001").to_pylist())
    assert tables[0] == tables[1] == tables[2]
    assert [r["key"] for r in tables[0]] == sorted(r["key"] for r in tables[0])


def test_worker_processes_import_no_dagster_and_no_cloud_clients() -> None:
    """What a worker process imports (the forkserver's preload and the function it runs) stays
    small, so that the pool starts fast for every batch."""
    import subprocess
    import sys

    from ingest_assets.assets.item_workers import PRELOAD
    from ingest_assets.items.fetch import fetch_and_describe_local
    from ingest_assets.items.inspect import describe_many

    modules = [*PRELOAD, describe_many.__module__, fetch_and_describe_local.__module__]
    probe = (
        f"import importlib, sys; [importlib.import_module(m) for m in {modules!r}]; "
        "print(sorted({n.split('.')[0] for n in sys.modules}))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout

    for heavy in ("dagster", "boto3", "botocore", "google", "pyarrow", "pydantic", "scipy"):
        assert f"'{heavy}'" not in loaded, f"a worker imports {heavy}"
