"""The S3 store against a real S3 server (SeaweedFS, authentication on), beyond the contract every
store keeps (test_contract.py): prefixes of one bucket, folder markers, missing buckets, ETags as
tokens, replies lost after the work was done, versioned buckets, one client for many threads,
credentials from every source, outages, and provider errors translated into the project's own."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import urllib3.exceptions
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    PartialCredentialsError,
    ReadTimeoutError,
)
from dagster import EnvVar
from dagster_aws.s3 import S3Resource

from resources.errors import (
    AccessDenied,
    BadCredentials,
    ObjectNotFound,
    PreconditionFailed,
    StoreError,
    TransientStoreError,
)
from resources.stores.open import open_store
from resources.stores.options import StorageOptions
from resources.stores.retry import RetryPolicy
from resources.stores.s3 import S3ObjectStore
from resources.stores.s3_errors import PROVIDER_ERRORS
from tests.servers import free_port
from tests.servers.seaweed import SeaweedS3

#: Retries that finish in milliseconds, so failing paths keep the suite quick.
FAST_RETRY = RetryPolicy(max_attempts=3, backoff_factor=0.001, backoff_max=0.01)


def make_store(
    seaweed: SeaweedS3,
    bucket: str,
    prefix: str = "src/",
    *,
    retry: RetryPolicy = FAST_RETRY,
    **resource: Any,
) -> S3ObjectStore:
    fields: dict[str, Any] = {
        "endpoint_url": seaweed.endpoint,
        "region_name": "us-east-1",
        "aws_access_key_id": seaweed.access_key,
        "aws_secret_access_key": seaweed.secret_key,
        **resource,
    }
    return S3ObjectStore(bucket, prefix, S3Resource(**fields), retry)


@pytest.fixture
def store(seaweed: SeaweedS3, s3_bucket: str) -> S3ObjectStore:
    return make_store(seaweed, s3_bucket)


def listed(store: S3ObjectStore, **kwargs: Any) -> list[str]:
    return [info.key for page in store.list_objects(**kwargs) for info in page]


def bucket_keys(seaweed: SeaweedS3, bucket: str) -> list[str]:
    answer = seaweed.client().list_objects_v2(Bucket=bucket)
    return [entry["Key"] for entry in answer.get("Contents", [])]


# -- listing -----------------------------------------------------------------------------------


def test_folder_markers_are_not_objects(seaweed: SeaweedS3, store: S3ObjectStore) -> None:
    store.put("a/b.jpg", b"x")
    for marker in ("src/", "src/a/", "src/empty/"):
        seaweed.client().put_object(Bucket=store.bucket, Key=marker, Body=b"")

    assert listed(store) == ["a/b.jpg"]


def test_two_prefixes_of_one_bucket_never_see_each_others_keys(
    seaweed: SeaweedS3, s3_bucket: str
) -> None:
    # "team" is a string prefix of "team-2": only the '/' keeps them apart.
    first = make_store(seaweed, s3_bucket, "team/")
    second = make_store(seaweed, s3_bucket, "team-2/")
    root = make_store(seaweed, s3_bucket, "")
    for store in (first, second):
        store.put("shared.jpg", store.prefix.encode())
    first.put("only-first.jpg", b"1")

    assert listed(first) == ["only-first.jpg", "shared.jpg"]
    assert listed(second) == ["shared.jpg"]
    assert second.get("shared.jpg") == b"team-2/"
    assert not second.exists("only-first.jpg")
    second.delete("shared.jpg")
    assert first.get("shared.jpg") == b"team/"
    assert sorted(listed(root)) == ["team/only-first.jpg", "team/shared.jpg"]
    assert first.uri("shared.jpg") == f"s3://{s3_bucket}/team/shared.jpg"


# -- a missing bucket --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("operation", "key"),
    [
        (lambda s: s.list_page(), None),
        (lambda s: s.head("a.jpg"), "a.jpg"),
        (lambda s: s.get("a.jpg"), "a.jpg"),
        (lambda s: s.get_range("a.jpg", 0, 4), "a.jpg"),
        (lambda s: s.put("a.jpg", b"x"), "a.jpg"),
    ],
    ids=["list", "head", "get", "get_range", "put"],
)
def test_a_missing_bucket_says_the_bucket_does_not_exist(
    seaweed: SeaweedS3, operation: Callable[[S3ObjectStore], object], key: str | None
) -> None:
    bucket = f"never-made-{uuid.uuid4().hex[:12]}"
    store = make_store(seaweed, bucket)

    with pytest.raises(ObjectNotFound) as caught:
        operation(store)

    message = str(caught.value)
    assert message.startswith(f"s3://{bucket}/src/ at {seaweed.endpoint}: ")
    assert f"bucket {bucket!r} does not exist" in message
    assert "region" in message and "endpoint" in message
    assert caught.value.key == key
    assert key is None or repr(key) in message
    # SeaweedFS creates a bucket on a first PUT; the store must not have done that.
    assert bucket not in [b["Name"] for b in seaweed.client().list_buckets()["Buckets"]]


# -- change tokens, lost replies, versioned buckets --------------------------------------------


def test_a_change_token_is_the_etag_without_its_quotes(
    seaweed: SeaweedS3, store: S3ObjectStore
) -> None:
    token = store.put("k.bin", b"aaaa").change_token

    etag = seaweed.client().head_object(Bucket=store.bucket, Key="src/k.bin")["ETag"]
    assert '"' in etag and '"' not in token
    assert token == etag.strip('"')


def lose_the_next_reply(store: S3ObjectStore, operation: str) -> list[str]:
    """Make the next ``operation`` call fail as if its reply were lost on the way back (the
    server has done the work): boto3's own event hooks, run after the response arrived."""
    lost: list[str] = []

    def drop_reply(**kwargs: Any) -> None:
        if not lost:
            lost.append(operation)
            raise ConnectionClosedError(endpoint_url=store.client().meta.endpoint_url)

    store.client().meta.events.register(f"after-call.s3.{operation}", drop_reply)
    return lost


def test_a_create_whose_reply_was_lost_is_recognised_on_retry(store: S3ObjectStore) -> None:
    lost = lose_the_next_reply(store, "PutObject")

    info = store.put("batch/7.parquet", b"manifest", create_only=True)

    assert lost == ["PutObject"]
    assert info.change_token == store.head("batch/7.parquet").change_token
    with pytest.raises(PreconditionFailed):
        store.put("batch/7.parquet", b"another manifest", create_only=True)


def test_a_conditional_delete_whose_reply_was_lost_is_recognised_on_retry(
    store: S3ObjectStore,
) -> None:
    token = store.put("lease", b"holder").change_token
    lost = lose_the_next_reply(store, "DeleteObject")

    store.delete("lease", if_token=token)

    assert lost == ["DeleteObject"]
    assert not store.exists("lease")


def test_a_versioned_bucket_puts_the_version_in_tokens(seaweed: SeaweedS3, s3_bucket: str) -> None:
    seaweed.client().put_bucket_versioning(
        Bucket=s3_bucket, VersioningConfiguration={"Status": "Enabled"}
    )
    store = make_store(seaweed, s3_bucket)
    first = store.put("k.jpg", b"same bytes").change_token
    second = store.put("k.jpg", b"same bytes").change_token  # same ETag, new version
    store.put("gone.jpg", b"x")
    store.delete("gone.jpg")

    page = store.list_page()

    assert "@" in first and first != second
    assert first.split("@")[0] == second.split("@")[0]
    assert [(info.key, info.change_token) for info in page] == [("k.jpg", second)]
    assert store.head("k.jpg").change_token == second
    with pytest.raises(PreconditionFailed):
        store.delete("k.jpg", if_token=first)
    store.delete("k.jpg", if_token=second)
    assert listed(store) == []


def test_versioned_listing_pages_through_many_versions(seaweed: SeaweedS3, s3_bucket: str) -> None:
    seaweed.client().put_bucket_versioning(
        Bucket=s3_bucket, VersioningConfiguration={"Status": "Enabled"}
    )
    store = make_store(seaweed, s3_bucket)
    keys = [f"k{n:02d}.jpg" for n in range(12)]
    for round_ in range(3):
        for key in keys:
            store.put(key, f"{key} round {round_}".encode())

    pages = list(store.list_objects(page_size=5))

    assert [len(page) for page in pages] == [5, 5, 2]
    assert [info.key for page in pages for info in page] == keys
    assert all(info.change_token == store.head(info.key).change_token for p in pages for info in p)


# -- the client --------------------------------------------------------------------------------


def test_one_client_serves_a_thread_pool(store: S3ObjectStore) -> None:
    with ThreadPoolExecutor(8) as pool:
        clients = list(pool.map(lambda _: store.client(), range(32)))

    assert len({id(client) for client in clients}) == 1


def test_a_closed_store_reconnects_on_its_next_call(store: S3ObjectStore) -> None:
    with store:
        store.put("a.jpg", b"pixels")
        first = store.client()

    assert store.get("a.jpg") == b"pixels"
    assert store.client() is not first


# -- credentials -------------------------------------------------------------------------------


@pytest.mark.parametrize("operation", ["list", "head"])
def test_a_wrong_secret_is_bad_credentials_that_says_so(
    seaweed: SeaweedS3, s3_bucket: str, operation: str
) -> None:
    seaweed.client().put_object(Bucket=s3_bucket, Key="src/a.jpg", Body=b"x")
    wrong = "wrong-" + seaweed.secret_key[::-1]
    # A known versioning state leaves HEAD to report first; its bare 403 must still be told apart.
    store = S3ObjectStore(
        s3_bucket,
        "src/",
        S3Resource(
            endpoint_url=seaweed.endpoint,
            region_name="us-east-1",
            aws_access_key_id=seaweed.access_key,
            aws_secret_access_key=wrong,
        ),
        FAST_RETRY,
        versioned=False if operation == "head" else None,
    )

    with pytest.raises(BadCredentials) as caught:
        store.list_page() if operation == "list" else store.head("a.jpg")

    message = str(caught.value)
    assert "secret access key is wrong" in message
    assert "access key id" in message and "does not know" not in message
    assert wrong not in message and seaweed.secret_key not in message
    assert s3_bucket in message


def test_an_unknown_access_key_id_is_bad_credentials_that_says_so(
    seaweed: SeaweedS3, s3_bucket: str
) -> None:
    store = make_store(seaweed, s3_bucket, aws_access_key_id="nobody-knows-me")

    with pytest.raises(BadCredentials) as caught:
        store.list_page()

    message = str(caught.value)
    assert "does not know this access key id" in message
    assert "secret access key is wrong" not in message
    assert seaweed.secret_key not in message


def test_credentials_come_from_the_variables_the_options_name(
    seaweed: SeaweedS3, s3_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LAKE_KEY_ID", seaweed.access_key)
    monkeypatch.setenv("LAKE_SECRET", seaweed.secret_key)
    options = StorageOptions(
        endpoint_url=seaweed.endpoint,
        region="us-east-1",
        access_key_id_env="LAKE_KEY_ID",
        secret_access_key_env="LAKE_SECRET",
    )
    store = S3ObjectStore.from_options(s3_bucket, "src/", options)

    store.put("a.jpg", b"pixels")

    assert store.get("a.jpg") == b"pixels"
    assert store.name == f"s3://{s3_bucket}/src/ at {seaweed.endpoint}"
    assert isinstance(store.resource.aws_secret_access_key, EnvVar)


def test_wrong_values_in_named_variables_are_blamed_on_those_variables(
    seaweed: SeaweedS3, s3_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LAKE_KEY_ID", seaweed.access_key)
    monkeypatch.setenv("LAKE_SECRET", "not-the-secret")
    options = StorageOptions(
        endpoint_url=seaweed.endpoint,
        access_key_id_env="LAKE_KEY_ID",
        secret_access_key_env="LAKE_SECRET",
    )

    with pytest.raises(BadCredentials) as caught:
        S3ObjectStore.from_options(s3_bucket, "", options, FAST_RETRY).list_page()

    assert "LAKE_KEY_ID and LAKE_SECRET" in str(caught.value)
    assert "not-the-secret" not in str(caught.value)


def test_an_unset_credential_variable_is_reported_by_name(
    seaweed: SeaweedS3, s3_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LAKE_KEY_ID", seaweed.access_key)
    monkeypatch.delenv("LAKE_SECRET_NEVER_SET", raising=False)
    options = StorageOptions(
        endpoint_url=seaweed.endpoint,
        access_key_id_env="LAKE_KEY_ID",
        secret_access_key_env="LAKE_SECRET_NEVER_SET",
    )
    store = S3ObjectStore.from_options(s3_bucket, "", options)

    with pytest.raises(BadCredentials) as caught:
        store.list_page()

    assert "LAKE_SECRET_NEVER_SET" in str(caught.value)
    assert "is not set" in str(caught.value)


def test_the_default_chain_reads_the_environment_including_the_endpoint(
    seaweed: SeaweedS3, s3_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in seaweed.env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    store = open_store(f"s3://{s3_bucket}/inbox")

    store.put("a.jpg", b"pixels")

    assert isinstance(store, S3ObjectStore) and store.prefix == "inbox/"
    assert store.name == f"s3://{s3_bucket}/inbox/"
    assert bucket_keys(seaweed, s3_bucket) == ["inbox/a.jpg"]
    assert store.get("a.jpg") == b"pixels"


def test_no_credentials_anywhere_is_bad_credentials_naming_the_chain(
    seaweed: SeaweedS3, s3_bucket: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    store = S3ObjectStore.from_options(
        s3_bucket, "", StorageOptions(endpoint_url=seaweed.endpoint, region="us-east-1")
    )

    with pytest.raises(BadCredentials) as caught:
        store.list_page()

    assert "default chain" in str(caught.value)
    assert "AWS_ACCESS_KEY_ID" in str(caught.value)


# -- unreachable and restarted servers ---------------------------------------------------------


def test_an_endpoint_with_nothing_listening_fails_after_the_retries(s3_bucket: str) -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"
    store = S3ObjectStore(
        s3_bucket,
        "",
        S3Resource(endpoint_url=endpoint, aws_access_key_id="k", aws_secret_access_key="s"),
        FAST_RETRY,
        versioned=False,
    )
    started = time.monotonic()

    with pytest.raises(TransientStoreError) as caught:
        store.get("a.jpg")

    message = str(caught.value)
    assert "failed 3 attempts in a row" in message
    assert endpoint in message
    assert "'a.jpg'" in message
    assert time.monotonic() - started < 10


def test_a_restarted_server_keeps_its_data_and_retries_bridge_the_outage(
    seaweed: SeaweedS3, s3_bucket: str
) -> None:
    store = make_store(
        seaweed, s3_bucket, retry=RetryPolicy(max_attempts=20, backoff_factor=0.2, backoff_max=1)
    )
    store.put("kept.jpg", b"survives a restart")
    seaweed.stop()
    restart = threading.Timer(1.0, seaweed.start)
    restart.start()
    try:
        assert store.get("kept.jpg") == b"survives a restart"
    finally:
        restart.join()
    assert store.list_page()[0].key == "kept.jpg"


# -- provider errors, translated ---------------------------------------------------------------


def client_error(code: str, status: int) -> ClientError:
    return ClientError(
        {
            "Error": {"Code": code, "Message": f"provider says {code}"},
            "ResponseMetadata": {"HTTPStatusCode": status},
        },
        "GetObject",
    )


def offline_store() -> S3ObjectStore:
    resource = S3Resource(
        endpoint_url="http://127.0.0.1:9", aws_access_key_id="k", aws_secret_access_key="s"
    )
    return S3ObjectStore("my-bucket", "p/", resource)


@pytest.mark.parametrize(("code", "expected"), [(c, e) for c, (e, _) in PROVIDER_ERRORS.items()])
def test_every_mapped_provider_error_code_is_translated(
    code: str, expected: type[StoreError]
) -> None:
    status = int(code) if code.isdigit() else 400

    error = offline_store().translate_error(client_error(code, status), "get", "cat.jpg")

    assert type(error) is expected
    assert str(error).startswith("s3://my-bucket/p/ at http://127.0.0.1:9: get 'cat.jpg': ")
    assert (error.store, error.key) == (offline_store().name, "cat.jpg")
    assert "{" not in str(error)


@pytest.mark.parametrize(
    ("code", "status", "expected"),
    [
        ("SomethingNew", 503, TransientStoreError),
        ("SomethingNew", 500, TransientStoreError),
        ("SomethingNew", 429, TransientStoreError),
        ("NotImplemented", 501, StoreError),
        ("InvalidBucketName", 400, StoreError),
        ("SomethingNew", 404, ObjectNotFound),
        ("SomethingNew", 403, AccessDenied),
        ("SomethingNew", 412, PreconditionFailed),
    ],
)
def test_unlisted_codes_fall_back_on_the_http_status(
    code: str, status: int, expected: type[StoreError]
) -> None:
    error = offline_store().translate_error(client_error(code, status), "get", "cat.jpg")

    assert type(error) is expected
    if expected is StoreError:
        assert f"{status} {code}: provider says {code}" in str(error)


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (EndpointConnectionError(endpoint_url="http://x"), TransientStoreError),
        (ConnectionClosedError(endpoint_url="http://x"), TransientStoreError),
        (ReadTimeoutError(endpoint_url="http://x"), TransientStoreError),
        (ConnectTimeoutError(endpoint_url="http://x"), TransientStoreError),
        (urllib3.exceptions.ProtocolError("connection reset"), TransientStoreError),
        (NoCredentialsError(), BadCredentials),
        (PartialCredentialsError(provider="env", cred_var="AWS_SECRET_ACCESS_KEY"), BadCredentials),
    ],
    ids=lambda value: type(value).__name__,
)
def test_connection_and_credential_failures_are_translated(
    exc: Exception, expected: type[StoreError]
) -> None:
    error = offline_store().translate_error(exc, "get", "cat.jpg")

    assert type(error) is expected
    assert "my-bucket" in str(error) and "'cat.jpg'" in str(error)


def test_from_options_maps_every_option_onto_the_resource() -> None:
    options = StorageOptions(
        endpoint_url="https://minio.example:9000",
        region="eu-west-3",
        profile="lake",
        access_key_id_env="K",
        secret_access_key_env="S",
        session_token_env="T",
    )

    resource = S3ObjectStore.from_options("b", "p/", options).resource

    assert (resource.endpoint_url, resource.region_name, resource.profile_name) == (
        "https://minio.example:9000",
        "eu-west-3",
        "lake",
    )
    for field, name in [
        ("aws_access_key_id", "K"),
        ("aws_secret_access_key", "S"),
        ("aws_session_token", "T"),
    ]:
        value = getattr(resource, field)
        assert isinstance(value, EnvVar) and value.env_var_name == name
