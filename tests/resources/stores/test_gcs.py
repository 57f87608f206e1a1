"""The GCS store against a real GCS API (fake-gcs-server), beyond the contract every store keeps
(test_contract.py): strict UTF-8 byte order and cursors anywhere, prefixes of one bucket,
generations as change tokens, large objects, missing buckets, credentials, outages, and every
provider error translated into the project's own, naming the store, bucket and key."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from dagster_gcp.gcs import GCSResource
from google.api_core import exceptions as google_api
from google.auth import exceptions as google_auth

from resources.errors import (
    BadCredentials,
    ObjectNotFound,
    PreconditionFailed,
    StoreError,
    TransientStoreError,
)
from resources.stores.gcs import GCSObjectStore
from resources.stores.gcs_errors import PROVIDER_ERRORS, translate_error
from resources.stores.open import open_store
from resources.stores.options import StorageOptions
from resources.stores.retry import RetryPolicy
from tests.resources.stores.test_contract import TREE
from tests.servers import free_port
from tests.servers.gcs import FakeGCS

#: Retries without real waiting, so error tests stay fast.
QUICK = RetryPolicy(max_attempts=3, backoff_factor=0.001, backoff_max=0.001)

#: The contract's tree in UTF-8 byte order, where '-' < '.' < '/' < '0': a folder sorts between
#: its neighbours.
KEYS = sorted(TREE, key=lambda key: key.encode("utf-8"))

CREDENTIAL_VARIABLES = [
    "GOOGLE_APPLICATION_CREDENTIALS",
    "GOOGLE_CLOUD_PROJECT",
    "GCLOUD_PROJECT",
    "API_ENDPOINT_OVERRIDE",
]


@pytest.fixture
def gcs_env(fake_gcs: FakeGCS, monkeypatch: pytest.MonkeyPatch) -> FakeGCS:
    """google-cloud-storage pointed at the fake server (anonymous), nothing else in the way."""
    for variable in CREDENTIAL_VARIABLES:
        monkeypatch.delenv(variable, raising=False)
    for variable, value in fake_gcs.env().items():
        monkeypatch.setenv(variable, value)
    return fake_gcs


@pytest.fixture
def make_store(gcs_env: FakeGCS) -> Iterator[Callable[..., GCSObjectStore]]:
    made: list[GCSObjectStore] = []

    def make(bucket: str, prefix: str = "root/", retry: RetryPolicy = QUICK) -> GCSObjectStore:
        store = GCSObjectStore(bucket, prefix, GCSResource(), retry)
        made.append(store)
        return store

    yield make
    for store in made:
        store.close()


@pytest.fixture
def store(gcs_bucket: str, make_store: Callable[..., GCSObjectStore]) -> GCSObjectStore:
    return make_store(gcs_bucket)


def listed(store: GCSObjectStore, **kwargs: Any) -> list[str]:
    return [info.key for page in store.list_objects(**kwargs) for info in page]


def put_all(store: GCSObjectStore, keys: list[str], workers: int = 16) -> None:
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(lambda key: store.put(key, f"content of {key}".encode()), keys))


def utf8_sorted(keys: list[str]) -> list[str]:
    return sorted(keys, key=lambda key: key.encode("utf-8"))


# -- listing -----------------------------------------------------------------------------------


def test_listing_is_in_utf8_byte_order(store: GCSObjectStore) -> None:
    put_all(store, list(reversed(KEYS)))

    pages = list(store.list_objects(page_size=5))

    assert [info.key for page in pages for info in page] == KEYS
    assert KEYS[:4] == ["a-b.jpg", "a/b.jpg", "a/c-1.jpg", "a/c.jpg"]
    assert [len(page) for page in pages] == [5, 5, 5, 2]


@pytest.mark.parametrize(
    "cursor", ["", "a", "a/", "a/c", "a/c/", "a/c/d.jpg", "a/bz", "ab/", "b.jpg", "zzz", "é.jpg"]
)
def test_start_after_resumes_right_after_the_cursor(store: GCSObjectStore, cursor: str) -> None:
    put_all(store, KEYS)
    expected = [key for key in utf8_sorted(KEYS) if key.encode() > cursor.encode()]

    assert listed(store, start_after=cursor) == expected
    assert listed(store, start_after=cursor, page_size=2) == expected


def test_a_store_sees_only_objects_under_its_own_prefix(
    gcs_bucket: str, make_store: Callable[..., GCSObjectStore], fake_gcs: FakeGCS
) -> None:
    inner = make_store(gcs_bucket, "photos/")
    sibling = make_store(gcs_bucket, "photos-2024/")
    whole = make_store(gcs_bucket, "")
    inner.put("cat.jpg", b"cat")
    sibling.put("dog.jpg", b"dog")
    whole.put("photos.jpg", b"top")
    bucket = fake_gcs.client().bucket(gcs_bucket)
    bucket.blob("photos/").upload_from_string(b"")  # a console "folder" placeholder
    bucket.blob("photos/empty/").upload_from_string(b"")

    assert listed(inner) == ["cat.jpg"]
    assert listed(sibling) == ["dog.jpg"]
    assert listed(whole) == ["photos-2024/dog.jpg", "photos.jpg", "photos/cat.jpg"]
    assert inner.uri("cat.jpg") == f"gs://{gcs_bucket}/photos/cat.jpg"
    assert inner.name == f"gs://{gcs_bucket}/photos/"
    with pytest.raises(ObjectNotFound):
        inner.head("dog.jpg")


def test_open_store_opens_a_gs_uri_with_its_prefix(
    gcs_bucket: str, gcs_env: FakeGCS, fake_gcs: FakeGCS
) -> None:
    store = open_store(f"gs://{gcs_bucket}/incoming/today", StorageOptions())
    assert isinstance(store, GCSObjectStore)
    try:
        store.put("x.png", b"png")

        assert store.name == f"gs://{gcs_bucket}/incoming/today/"
        blob = fake_gcs.client().bucket(gcs_bucket).blob("incoming/today/x.png")
        assert blob.download_as_bytes() == b"png"
        assert listed(store) == ["x.png"]
    finally:
        store.close()


# -- reading -----------------------------------------------------------------------------------


def test_tokens_are_generations_that_change_even_when_the_same_bytes_are_rewritten(
    store: GCSObjectStore, fake_gcs: FakeGCS
) -> None:
    first = store.put("k.bin", b"same bytes").change_token
    second = store.put("k.bin", b"same bytes").change_token

    info = store.head("k.bin")
    blob = fake_gcs.client().bucket(store.bucket).get_blob("root/k.bin")
    assert first != second and first.isdigit()
    assert info.change_token == second == str(blob.generation)
    assert info.last_modified == blob.updated


def test_a_large_object_reads_back_whole_and_by_range(store: GCSObjectStore) -> None:
    data = random.Random(1).randbytes(3_000_000)
    store.put("big.bin", data)

    assert store.get("big.bin") == data
    assert store.get_range("big.bin", 1_234_567, 1_000_000) == data[1_234_567:2_234_567]


def test_an_empty_range_of_a_missing_object_is_still_object_not_found(
    store: GCSObjectStore,
) -> None:
    store.put("there.jpg", b"x")

    with pytest.raises(ObjectNotFound) as caught:
        store.get_range("missing/key.jpg", 0, 0)  # the S3 store answers b"" without asking

    assert caught.value.key == "missing/key.jpg"
    assert str(caught.value).startswith(f"gs://{store.bucket}/root/: ")


@pytest.mark.parametrize(
    "operation",
    [
        lambda s: s.head("k.jpg"),
        lambda s: s.get("k.jpg"),
        lambda s: s.get_range("k.jpg", 0, 4),
        lambda s: s.list_page(),
        lambda s: s.put("k.jpg", b"data"),
        lambda s: s.delete("k.jpg"),
    ],
    ids=["head", "get", "get_range", "list", "put", "delete"],
)
def test_a_missing_bucket_says_the_bucket_does_not_exist(
    make_store: Callable[..., GCSObjectStore], operation: Callable[[GCSObjectStore], object]
) -> None:
    store = make_store("no-such-bucket-bucketlake")

    with pytest.raises(ObjectNotFound) as caught:
        operation(store)

    assert "bucket 'no-such-bucket-bucketlake' does not exist" in str(caught.value)


# -- writing -----------------------------------------------------------------------------------


def test_a_refused_create_only_write_says_so(store: GCSObjectStore) -> None:
    store.put("_datapool/src/000001.parquet", b"first", create_only=True)

    with pytest.raises(PreconditionFailed, match="create-only"):
        store.put("_datapool/src/000001.parquet", b"second", create_only=True)


# -- credentials and endpoints -------------------------------------------------------------------


def test_a_key_file_variable_that_is_unset_is_bad_credentials_naming_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("BUCKETLAKE_TEST_GCS_KEY", raising=False)
    options = StorageOptions(gcs_key_file_env="BUCKETLAKE_TEST_GCS_KEY")

    with pytest.raises(BadCredentials) as caught:
        GCSObjectStore.from_options("bucket", "p/", options)

    assert "BUCKETLAKE_TEST_GCS_KEY" in str(caught.value)
    assert "is not set" in str(caught.value)


def test_a_key_file_variable_naming_a_missing_file_is_bad_credentials_naming_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    missing = tmp_path / "nowhere" / "key.json"
    monkeypatch.setenv("BUCKETLAKE_TEST_GCS_KEY", str(missing))
    options = StorageOptions(gcs_key_file_env="BUCKETLAKE_TEST_GCS_KEY")

    with pytest.raises(BadCredentials) as caught:
        open_store("gs://bucket/p", options)

    assert "BUCKETLAKE_TEST_GCS_KEY" in str(caught.value)
    assert str(missing) in str(caught.value)


def test_a_key_file_that_is_no_key_is_bad_credentials_without_its_content(
    gcs_env: FakeGCS, gcs_bucket: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    key_file = tmp_path / "key.json"
    key_file.write_text('{"type": "service_account", "private_key": "SECRET-MATERIAL"}')
    monkeypatch.setenv("BUCKETLAKE_TEST_GCS_KEY", str(key_file))
    store = GCSObjectStore.from_options(
        gcs_bucket, "", StorageOptions(gcs_key_file_env="BUCKETLAKE_TEST_GCS_KEY"), QUICK
    )

    with pytest.raises(BadCredentials) as caught:
        store.list_page()

    assert "BUCKETLAKE_TEST_GCS_KEY" in str(caught.value)
    assert "SECRET-MATERIAL" not in str(caught.value)


def test_no_credentials_anywhere_is_bad_credentials_saying_where_they_come_from(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for variable in [*CREDENTIAL_VARIABLES, "STORAGE_EMULATOR_HOST"]:
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path / "gcloud"))  # no gcloud login here
    monkeypatch.setenv("GCE_METADATA_HOST", f"127.0.0.1:{free_port()}")  # no metadata server
    monkeypatch.setenv("GCE_METADATA_IP", f"127.0.0.1:{free_port()}")
    store = GCSObjectStore("bucket", "p/", GCSResource(), QUICK)

    with pytest.raises(BadCredentials) as caught:
        store.head("a.jpg")

    assert "application default credentials" in str(caught.value)
    assert "gcs_key_file_env" in str(caught.value)


def test_nothing_listening_at_the_endpoint_is_transient_after_every_attempt(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", dead)
    store = GCSObjectStore("bucket", "p/", GCSResource(), QUICK)

    for operation in (lambda: store.get("a.jpg"), store.list_page):
        with pytest.raises(TransientStoreError) as caught:
            operation()

        message = str(caught.value)
        assert "failed 3 attempts in a row" in message
        assert dead in message
        assert "gs://bucket/p/" in message
    store.close()


def test_data_survives_a_restart_and_a_brief_outage_is_retried(
    store: GCSObjectStore, fake_gcs: FakeGCS
) -> None:
    written = store.put("kept.jpg", b"still here")
    fake_gcs.stop()
    restart = threading.Timer(0.5, fake_gcs.start)
    patient = GCSObjectStore(store.bucket, store.prefix, store.resource, RetryPolicy(20, 0.1, 0.2))
    try:
        restart.start()
        info = patient.head("kept.jpg")  # fails while the server is down, then succeeds
    finally:
        restart.join()
        fake_gcs.start()  # no-op when the timer already started it
        patient.close()

    assert info.change_token == written.change_token
    assert store.get("kept.jpg") == b"still here"
    assert listed(store) == ["kept.jpg"]


# -- translation of every provider error ---------------------------------------------------------


def provider_error(kind: type[BaseException]) -> BaseException:
    """A real instance of a provider exception class (the classes differ in their arguments)."""
    try:
        return kind("simulated failure")
    except TypeError:
        return kind(None, "simulated failure")  # google.cloud.storage's (response, *args)


@pytest.mark.parametrize(
    ("provider", "expected"), PROVIDER_ERRORS, ids=[kind.__name__ for kind, _ in PROVIDER_ERRORS]
)
def test_every_mapped_provider_error_is_translated(
    provider: type[BaseException], expected: type[StoreError]
) -> None:
    error = translate_error(
        provider_error(provider),
        store="gs://bucket/p/",
        operation="get",
        key="a/b.jpg",
        credentials="application default credentials",
    )

    assert type(error) is expected
    assert (error.store, error.key) == ("gs://bucket/p/", "a/b.jpg")
    assert "gs://bucket/p/" in str(error)
    assert "'a/b.jpg'" in str(error)
    assert "bucket" in str(error)


@pytest.mark.parametrize(
    ("provider", "expected"),
    [
        (google_api.from_http_status(408, "request timeout"), TransientStoreError),
        (google_auth.RefreshError("token endpoint busy", retryable=True), TransientStoreError),
        (google_auth.RefreshError("invalid_grant"), BadCredentials),
        (google_api.BadRequest("bad"), StoreError),
        (RuntimeError("unexpected"), StoreError),
    ],
    ids=["http_408", "retryable_refresh", "refused_refresh", "bad_request", "unknown"],
)
def test_errors_outside_the_table_are_translated_by_their_nature(
    provider: BaseException, expected: type[StoreError]
) -> None:
    error = translate_error(provider, store="gs://b/", operation="head", key="k", credentials="ADC")

    assert type(error) is expected


def test_a_bucket_missing_translation_says_so() -> None:
    error = translate_error(
        google_api.NotFound("Not Found"),
        store="gs://gone/p/",
        operation="list",
        key=None,
        credentials="ADC",
        bucket_missing=True,
    )

    assert isinstance(error, ObjectNotFound)
    assert "bucket 'gone' does not exist" in str(error)
