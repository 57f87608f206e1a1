"""Bounded reads (``get_bounded``) on the stores a source can be, against real servers: a local
folder, S3 (SeaweedFS) and GCS (fake-gcs-server). HTTP has its own tests in test_http.py."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from dagster_gcp.gcs import GCSResource

from resources.errors import ObjectChanged, ObjectTooLarge
from resources.stores.base import ObjectStore, ReadLimits
from resources.stores.gcs import GCSObjectStore
from resources.stores.local import LocalFolderStore
from resources.stores.retry import RetryPolicy
from tests.resources.stores.test_s3 import make_store
from tests.servers.gcs import FakeGCS
from tests.servers.seaweed import SeaweedS3

QUICK = RetryPolicy(max_attempts=2, backoff_factor=0.001, backoff_max=0.001)
DATA = bytes(range(256)) * 8  # 2 KiB


def check_bounded_reads(store: ObjectStore, found: str) -> None:
    """The bytes within the cap; ObjectTooLarge naming the size and the setting over it; a
    pinned read still refuses another version."""
    info = store.put("a/photo.jpg", DATA)
    assert store.get_bounded("a/photo.jpg", limits=ReadLimits(max_bytes=len(DATA))) == DATA
    assert store.get_bounded("a/photo.jpg", if_token=info.change_token) == DATA
    with pytest.raises(ObjectTooLarge) as caught:
        store.get_bounded("a/photo.jpg", limits=ReadLimits(max_bytes=1000))
    message = str(caught.value)
    assert found in message
    assert "max_object_bytes (1000 bytes)" in message
    assert store.uri("a/photo.jpg") in message
    store.put("a/photo.jpg", DATA[:100])
    with pytest.raises(ObjectChanged):
        store.get_bounded("a/photo.jpg", if_token=info.change_token, limits=ReadLimits(10_000))


def test_local_folder(tmp_path: Path) -> None:
    check_bounded_reads(LocalFolderStore(tmp_path), f"it holds {len(DATA)} bytes")


def test_s3(seaweed: SeaweedS3, s3_bucket: str) -> None:
    """S3 answers with a ContentLength: a larger object is refused before its body is read."""
    check_bounded_reads(make_store(seaweed, s3_bucket), f"its ContentLength is {len(DATA)} bytes")


def test_gcs(fake_gcs: FakeGCS, monkeypatch: pytest.MonkeyPatch) -> None:
    """GCS is streamed into a buffer that refuses to pass the cap."""
    for variable, value in fake_gcs.env().items():
        monkeypatch.setenv(variable, value)
    bucket = fake_gcs.create_bucket(f"limits-{uuid.uuid4().hex[:16]}")
    store = GCSObjectStore(bucket, "root/", GCSResource(), QUICK)
    try:
        check_bounded_reads(store, "it sent more than 1000 bytes")
    finally:
        store.close()
