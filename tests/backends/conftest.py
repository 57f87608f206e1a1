"""One ``backend`` fixture for every kind of source: a local folder, S3 through the default
credential chain, an S3-compatible endpoint with credentials from named variables (and the lake
on S3 too), GCS, and an HTTP manifest; each on a real server the test session starts."""

from __future__ import annotations

import itertools
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from resources.lake.tables import Lake
from resources.stores.open import open_lake_store
from tests.conftest import Project

BACKENDS = ["local", "s3", "s3_compatible", "gcs", "http_manifest"]


@dataclass
class Backend:
    """How a test puts objects into the source, and how the source is configured."""

    name: str
    put: Callable[[str, bytes], None]
    delete: Callable[[str], None]
    source: dict[str, Any]
    lake: Any = "lake"
    env: dict[str, str] = field(default_factory=dict)
    #: Take the object out of the source's listing: delete it from a bucket, drop a manifest's
    #: entry (``delete`` leaves a manifest's entry pointing at nothing). None: as ``delete``.
    drop_entry: Callable[[str], None] | None = None

    def unlist(self, key: str) -> None:
        (self.drop_entry or self.delete)(key)

    def configure(self, project: Project, **more: Any) -> None:
        project.write_config(lake=self.lake, **{**self.source, **more})

    def lake_of(self, project: Project) -> Lake:
        return Lake(open_lake_store(project.config))


def _local(project: Project) -> Backend:
    def put(key: str, data: bytes) -> None:
        path = project.inbox / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)

    return Backend("local", put, lambda key: (project.inbox / key).unlink(), {"uri": "inbox"})


def _s3(request: pytest.FixtureRequest, project: Project, compatible: bool) -> Backend:
    seaweed = request.getfixturevalue("seaweed")
    bucket = seaweed.create_bucket(f"src-{uuid.uuid4().hex[:16]}")
    client = seaweed.client()

    def put(key: str, data: bytes) -> None:
        client.put_object(Bucket=bucket, Key=f"images/{key}", Body=data)

    def delete(key: str) -> None:
        client.delete_object(Bucket=bucket, Key=f"images/{key}")

    uri = f"s3://{bucket}/images"
    if not compatible:  # endpoint and credentials from the environment: boto3's default chain
        return Backend("s3", put, delete, {"uri": uri}, env=seaweed.env())
    options = {
        "endpoint_url": seaweed.endpoint,
        "region": "us-east-1",
        "access_key_id_env": "CAMERA_BUCKET_KEY",
        "secret_access_key_env": "CAMERA_BUCKET_SECRET",
    }
    return Backend(
        "s3_compatible",
        put,
        delete,
        {"uri": uri, **options},
        lake={"uri": f"s3://{bucket}/lake", **options},
        env={"CAMERA_BUCKET_KEY": seaweed.access_key, "CAMERA_BUCKET_SECRET": seaweed.secret_key},
    )


def _gcs(request: pytest.FixtureRequest) -> Backend:
    fake_gcs = request.getfixturevalue("fake_gcs")
    bucket = fake_gcs.create_bucket(f"src-{uuid.uuid4().hex[:16]}")
    handle = fake_gcs.client().bucket(bucket)

    def put(key: str, data: bytes) -> None:
        handle.blob(f"images/{key}").upload_from_string(data)

    def delete(key: str) -> None:
        handle.blob(f"images/{key}").delete()

    return Backend("gcs", put, delete, {"uri": f"gs://{bucket}/images"}, env=fake_gcs.env())


def _http_manifest(request: pytest.FixtureRequest, project: Project) -> Backend:
    """Images served over HTTP, listed in a JSONL manifest (Nucleus style). A new version of an
    object is a new file under a new URL, as a manifest source sees changes."""
    http_files = request.getfixturevalue("http_files")
    folder = f"m-{uuid.uuid4().hex[:12]}"
    entries: dict[str, dict[str, Any]] = {}
    versions = itertools.count(1)
    manifest = project.root / "manifest.jsonl"

    def write_manifest() -> None:
        manifest.write_text("".join(json.dumps(e) + "\n" for e in entries.values()))

    def put(key: str, data: bytes) -> None:
        version = next(versions)
        path = http_files.root / folder / f"v{version}" / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        entries[key] = {
            "image_location": http_files.url(f"{folder}/v{version}/{key}"),
            "reference_id": key,
            "metadata": {"camera": "north-gate", "version": version},
        }
        write_manifest()

    def delete(key: str) -> None:
        location = entries[key]["image_location"]
        (http_files.root / location.split(f"{http_files.port}/", 1)[1]).unlink()

    def drop_entry(key: str) -> None:
        del entries[key]
        write_manifest()

    write_manifest()
    return Backend(
        "http_manifest",
        put,
        delete,
        {"uri": None, "manifest": "manifest.jsonl", "allow_private_addresses": True},
        drop_entry=drop_entry,
    )


@pytest.fixture(params=BACKENDS)
def backend(
    request: pytest.FixtureRequest, project: Project, monkeypatch: pytest.MonkeyPatch
) -> Backend:
    kind = request.param
    if kind == "local":
        made = _local(project)
    elif kind in ("s3", "s3_compatible"):
        made = _s3(request, project, compatible=kind == "s3_compatible")
    elif kind == "gcs":
        made = _gcs(request)
    else:
        made = _http_manifest(request, project)
    for name, value in made.env.items():
        monkeypatch.setenv(name, value)
    made.configure(project)
    return made
