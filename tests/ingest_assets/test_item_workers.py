"""The item table is the same, row for row, whatever the workers (inline, processes, threads)
and the checkpoint size; a store that is down fails the batch, while objects a working store
cannot deliver become items."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from dagster import DagsterInstance
from dagster_aws.s3 import S3Resource

from ingest_assets.assets.item_workers import OUTAGE_PROBE, item_builder
from ingest_assets.items.fetch import FetchRules, fetch_object
from resources.config import SourceConfig
from resources.errors import TransientStoreError
from resources.stores.base import ObjectStore
from resources.stores.manifest import ManifestStore
from resources.stores.retry import RetryPolicy
from resources.stores.s3 import S3ObjectStore
from tests.conftest import Project
from tests.images import write_image
from tests.servers import free_port
from tests.servers.http import HttpFiles

QUICK = RetryPolicy(max_attempts=2, backoff_factor=0.001, backoff_max=0.001)


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


# -- a store that is down ------------------------------------------------------------------------
def claimed(store: ManifestStore, keys: list[str]) -> list[dict[str, Any]]:
    """``raw_items`` rows for the manifest's entries ``keys``, as a claim would write them."""
    tokens = {info.key: info.change_token for info in store.list_page()}
    return [
        {"key": k, "uri": store.uri(k), "change_token": tokens[k], "size": 0, "kind": "image"}
        for k in keys
    ]


def build_rows(store: ObjectStore, source: SourceConfig, raws: list[dict[str, Any]]) -> list[Any]:
    """Item rows for ``raws``, as dataset_items builds them on the step's last attempt (outside
    a run, no step retry is left)."""
    with item_builder(source, store, "src_000001", workers=1) as build:
        return list(build(raws))


@pytest.mark.parametrize("objects", [3, OUTAGE_PROBE + 5])
def test_a_store_that_is_down_fails_the_batch_instead_of_recording_it_unreadable(
    objects: int,
) -> None:
    """Every object failing with connection errors (nothing listens at the endpoint) is an
    outage: the batch fails, to be run again, rather than commit a batch of unreadable rows.
    A long batch stops after OUTAGE_PROBE objects."""
    endpoint = f"http://127.0.0.1:{free_port()}"
    resource = S3Resource(
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="key",
        aws_secret_access_key="secret",
    )
    store = S3ObjectStore("photos", "", resource, QUICK, versioned=False)
    source = SourceConfig.model_validate(
        {"name": "src", "uri": "s3://photos/", "endpoint_url": endpoint}
    )
    raws = [
        {"key": k, "uri": store.uri(k), "change_token": "etag", "size": 9, "kind": "image"}
        for k in (f"{n:03d}.jpg" for n in range(objects))
    ]

    with pytest.raises(TransientStoreError) as caught:
        build_rows(store, source, raws)

    message = str(caught.value)
    tried = min(objects, OUTAGE_PROBE)
    assert f"source src, batch src_000001: none of the {tried} objects" in message
    assert "the store looks unreachable" in message
    assert f"unavailable after retries: s3://photos/{tried - 1:03d}.jpg" in message


def manifest_of(
    tmp_path: Path, locations: list[str], **settings: Any
) -> tuple[ManifestStore, SourceConfig]:
    """A manifest source listing ``locations`` (reference ids ``e000``, ``e001``, ...)."""
    entries = [{"image_location": u, "reference_id": f"e{n:03d}"} for n, u in enumerate(locations)]
    manifest = tmp_path / f"{uuid.uuid4().hex}.jsonl"
    manifest.write_text("".join(json.dumps(e) + "\n" for e in entries), encoding="utf-8")
    source = SourceConfig.model_validate(
        {"name": "src", "manifest": str(manifest), "allow_private_addresses": True, **settings}
    )
    return ManifestStore(str(manifest), source.storage(), retry=QUICK), source


def test_a_manifest_whose_every_entry_fails_is_an_outage(
    http_files: HttpFiles, tmp_path: Path
) -> None:
    down = [http_files.url(f"_status/503/{uuid.uuid4().hex}.jpg") for _ in range(2)]
    store, source = manifest_of(tmp_path, down)
    with store, pytest.raises(TransientStoreError, match="none of the 2 objects"):
        build_rows(store, source, claimed(store, ["e000", "e001"]))


def test_many_entries_on_a_host_that_is_down_do_not_hold_back_a_manifests_good_entries(
    http_files: HttpFiles, tmp_path: Path
) -> None:
    """A manifest's entries live on many hosts: a long run of failures on one of them, before
    any entry was fetched, is not taken for an outage of the whole source."""
    folder = uuid.uuid4().hex
    write_image(http_files.root / folder / "good.jpg", seed=2)
    down = [http_files.url(f"_status/503/{folder}/{n}.jpg") for n in range(OUTAGE_PROBE + 1)]
    store, source = manifest_of(tmp_path, [*down, http_files.url(f"{folder}/good.jpg")])
    keys = [f"e{n:03d}" for n in range(len(down) + 1)]
    with store:
        rows = build_rows(store, source, claimed(store, keys))

    assert [row["status"] for row in rows] == ["unreadable"] * len(down) + ["ok"]


@pytest.fixture
def one_failing_url(http_files: HttpFiles, tmp_path: Path) -> tuple[ManifestStore, SourceConfig]:
    """A manifest source over HTTP: ``e000`` an image, ``e001`` a URL that answers 503 every
    time."""
    folder = uuid.uuid4().hex
    write_image(http_files.root / folder / "a.jpg", seed=1)
    return manifest_of(
        tmp_path,
        [http_files.url(f"{folder}/a.jpg"), http_files.url(f"_status/503/{folder}/b.jpg")],
    )


def test_an_object_the_store_cannot_deliver_among_good_ones_is_unreadable(
    one_failing_url: tuple[ManifestStore, SourceConfig],
) -> None:
    """The store answered for the other objects: the one that kept failing (HTTP 503 after the
    store's retries) is that item's status, and the rest are built."""
    store, source = one_failing_url
    with store:
        good, failing = build_rows(store, source, claimed(store, ["e000", "e001"]))

    assert good["status"] == "ok"
    assert failing["status"] == "unreadable"
    error = failing["error"]
    assert error.startswith(f"unavailable after retries: GET {store.uri('e001')}: failed 2")
    assert "HTTP 503" in error


def test_transient_failures_raise_while_the_step_has_retries_left(
    one_failing_url: tuple[ManifestStore, SourceConfig],
) -> None:
    store, source = one_failing_url
    with store:
        [raw] = claimed(store, ["e001"])
        with pytest.raises(TransientStoreError, match="HTTP 503"):
            fetch_object(raw, store, "src_000001", FetchRules.of(source, raise_transient=True))
        assert fetch_object(raw, store, "src_000001").outcome["status"] == "unreadable"
