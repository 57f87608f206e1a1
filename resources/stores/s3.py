"""S3 and S3-compatible buckets (MinIO, R2, SeaweedFS, ...) as an object store, through
dagster-aws's ``S3Resource``.

boto3 makes a single attempt per request; transient failures are retried here (``RetryPolicy``) so
the final error says how many attempts failed. Provider errors are translated at this boundary
(:data:`PROVIDER_ERRORS`), and every message names the store (bucket, prefix, endpoint) and the key.
"""

from __future__ import annotations

import mimetypes
import os
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar

import urllib3.exceptions
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionError,
    HTTPClientError,
    IncompleteReadError,
    NoCredentialsError,
    PartialCredentialsError,
    ProfileNotFound,
    ResponseStreamingError,
    SSLError,
)
from dagster import EnvVar
from dagster_aws.s3 import S3Resource

from resources.errors import (
    AccessDenied,
    BadCredentials,
    ConfigError,
    ObjectNotFound,
    PreconditionFailed,
    StoreError,
    TransientStoreError,
)
from resources.stores.base import DEFAULT_PAGE_SIZE, ObjectInfo, ObjectStore, check_key
from resources.stores.options import StorageOptions
from resources.stores.retry import DEFAULT_RETRY, RetryPolicy, call_with_retries

T = TypeVar("T")

#: S3's limit on keys per listing request.
MAX_LIST_KEYS = 1000

_PRECONDITION = "the object changed or already exists (conditional request refused)"
_SLOW_DOWN = "the server is throttling requests"
_SERVER = "the server failed (a 5xx answer)"
_DENIED = "access denied: the credentials ({credentials}) lack permission for this on {bucket!r}"

#: Provider error codes and what they become here (HEAD answers have no body, so they carry only
#: the HTTP status: hence the numeric codes). A code not listed falls back on its HTTP status.
PROVIDER_ERRORS: dict[str, tuple[type[StoreError], str]] = {
    **dict.fromkeys(["NoSuchKey", "NotFound", "404"], (ObjectNotFound, "no such object")),
    "NoSuchBucket": (
        ObjectNotFound,
        "the bucket {bucket!r} does not exist; check the bucket name, the region and the endpoint",
    ),
    **dict.fromkeys(["AccessDenied", "AllAccessDisabled", "403"], (AccessDenied, _DENIED)),
    "InvalidAccessKeyId": (
        BadCredentials,
        "the server does not know this access key id; check the key id ({credentials})",
    ),
    "SignatureDoesNotMatch": (
        BadCredentials,
        "the secret access key is wrong for this access key id (the signature does not match); "
        "check the secret ({credentials})",
    ),
    "ExpiredToken": (BadCredentials, "the session token has expired ({credentials})"),
    "InvalidToken": (BadCredentials, "the session token is invalid ({credentials})"),
    **dict.fromkeys(["PreconditionFailed", "412"], (PreconditionFailed, _PRECONDITION)),
    "ConditionalRequestConflict": (
        PreconditionFailed,
        "another conditional write to the object was in progress (conditional request refused)",
    ),
    **dict.fromkeys(
        ["SlowDown", "Throttling", "ThrottlingException", "RequestLimitExceeded", "429"],
        (TransientStoreError, _SLOW_DOWN),
    ),
    "TooManyRequests": (TransientStoreError, _SLOW_DOWN),
    "RequestTimeout": (TransientStoreError, "the server timed out waiting for the request"),
    **dict.fromkeys(
        ["InternalError", "ServiceUnavailable", "500", "502", "503", "504"],
        (TransientStoreError, _SERVER),
    ),
}

#: Failures below HTTP (nothing listening, a dropped connection, a timeout): worth retrying.
CONNECTION_ERRORS: tuple[type[Exception], ...] = (
    ConnectionError,  # botocore's: EndpointConnectionError, ConnectionClosedError, ConnectTimeout
    HTTPClientError,  # ReadTimeoutError and other failures inside the HTTP client
    ResponseStreamingError,
    IncompleteReadError,
    urllib3.exceptions.HTTPError,
)


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _status(exc: ClientError) -> int:
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)


class S3ObjectStore(ObjectStore):
    """The objects under ``prefix`` in ``bucket``; keys are relative to the prefix.

    The change token is the ETag (without quotes), plus ``@<VersionId>`` where the bucket keeps
    versions; listing then reads the latest version of each key and skips delete markers.
    Listing order is the server's: S3 sorts keys by their UTF-8 bytes; some compatible servers
    (SeaweedFS) walk folders instead, so ``a/b`` comes before ``a-b``. Resuming with
    ``start_after`` follows the server's own order either way.
    """

    def __init__(
        self,
        bucket: str,
        prefix: str,
        resource: S3Resource,
        retry: RetryPolicy = DEFAULT_RETRY,
        *,
        versioned: bool | None = None,
    ) -> None:
        """``versioned``: whether the bucket keeps versions; None asks the bucket once (a
        reader without s3:GetBucketVersioning gets ETag-only tokens)."""
        if not bucket or "/" in bucket:
            raise ConfigError(f"invalid S3 bucket name {bucket!r}: give the bare bucket name")
        if prefix and not prefix.endswith("/"):
            raise ConfigError(f"S3 prefix {prefix!r} must be empty or end with '/'")
        self.bucket = bucket
        self.prefix = prefix
        self.resource: S3Resource = resource
        self.retry = retry
        endpoint = f" at {resource.endpoint_url}" if resource.endpoint_url else ""
        self.name = f"s3://{bucket}/{prefix}{endpoint}"
        self._client_lock = threading.Lock()
        self._client: Any = None
        self._versioned = versioned

    @classmethod
    def from_options(
        cls,
        bucket: str,
        prefix: str,
        options: StorageOptions,
        retry: RetryPolicy = DEFAULT_RETRY,
    ) -> S3ObjectStore:
        """A store whose credentials come from the variables the options name, else from
        boto3's default chain (environment, ``AWS_ENDPOINT_URL``, profiles, instance roles)."""

        def env(name: str | None) -> EnvVar | None:
            return EnvVar(name) if name else None

        resource = S3Resource(
            region_name=options.region,
            endpoint_url=options.endpoint_url,
            profile_name=options.profile,
            aws_access_key_id=env(options.access_key_id_env),
            aws_secret_access_key=env(options.secret_access_key_env),
            aws_session_token=env(options.session_token_env),
        )
        return cls(bucket, prefix, resource, retry)

    # -- the client --------------------------------------------------------------------------
    def client(self) -> Any:
        """The boto3 client, built once (the first call from any thread builds it)."""
        if self._client is None:
            with self._client_lock:
                if self._client is None:
                    self._client = self._build_client()
        return self._client

    def close(self) -> None:
        """Close the client's connections; a later call builds a new client."""
        with self._client_lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()

    def _build_client(self) -> Any:
        for field in ("aws_access_key_id", "aws_secret_access_key", "aws_session_token"):
            value = getattr(self.resource, field)
            if isinstance(value, EnvVar) and not os.environ.get(value.env_var_name):
                raise BadCredentials(
                    f"{self.name}: the environment variable {value.env_var_name} "
                    f"(the {field.removeprefix('aws_').replace('_', ' ')}) is not set; set it, "
                    "or name no credential variables to use boto3's default chain",
                    store=self.name,
                )
        # boto3 makes one attempt (max_attempts counts retries); call_with_retries does the rest.
        single_attempt = self.resource.model_copy(update={"max_attempts": 0})
        try:
            return single_attempt.process_config_and_initialize().get_client()
        except ProfileNotFound as exc:
            raise BadCredentials(
                f"{self.name}: the AWS profile {self.resource.profile_name!r} is not in the AWS "
                "config files; check the profile name or the AWS_CONFIG_FILE variable",
                store=self.name,
            ) from exc

    def credential_source(self) -> str:
        """Where the credentials come from, in words (never the credentials themselves)."""
        key_id = self.resource.aws_access_key_id
        secret = self.resource.aws_secret_access_key
        if isinstance(key_id, EnvVar) and isinstance(secret, EnvVar):
            return (
                f"read from the variables {key_id.env_var_name} and {secret.env_var_name} "
                "named in the storage options"
            )
        if key_id:
            return "the access key set on the S3Resource"
        if self.resource.profile_name:
            return f"the AWS profile {self.resource.profile_name!r}"
        return (
            "boto3's default chain: AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, then AWS_PROFILE "
            "or ~/.aws/credentials, then the instance role"
        )

    # -- errors ------------------------------------------------------------------------------
    def translate_error(self, exc: Exception, action: str, key: str | None) -> StoreError:
        """The project's error for a provider error raised while doing ``action`` on ``key``."""
        where = self._where(action, key)
        facts = {"bucket": self.bucket, "credentials": self.credential_source()}
        if isinstance(exc, ClientError):
            code, status = _error_code(exc), _status(exc)
            error, explanation = PROVIDER_ERRORS.get(code) or PROVIDER_ERRORS.get(
                str(status), (StoreError, "")
            )
            if error is StoreError and (status == 429 or (status >= 500 and status != 501)):
                error, explanation = TransientStoreError, _SERVER
            if not explanation:
                message = exc.response.get("Error", {}).get("Message", "")
                explanation = f"the server answered {status} {code}: {message}".rstrip(": ")
            return error(f"{where}: {explanation.format(**facts)}", store=self.name, key=key)
        if isinstance(exc, NoCredentialsError | PartialCredentialsError):
            return BadCredentials(
                f"{where}: no complete credentials were found ({exc.__class__.__name__}); "
                f"they come from {facts['credentials']}",
                store=self.name,
                key=key,
            )
        endpoint = (
            self._client.meta.endpoint_url
            if self._client is not None
            else self.resource.endpoint_url or "the S3 endpoint"
        )
        if isinstance(exc, SSLError):
            return StoreError(
                f"{where}: the TLS connection to {endpoint} failed ({exc}); check the endpoint "
                "URL and its certificate",
                store=self.name,
                key=key,
            )
        if isinstance(exc, CONNECTION_ERRORS):
            return TransientStoreError(
                f"{where}: cannot reach {endpoint} ({exc.__class__.__name__}); check that the "
                "endpoint URL is right and the server is up",
                store=self.name,
                key=key,
            )
        return StoreError(f"{where}: {exc}", store=self.name, key=key)

    def _call(self, action: str, key: str | None, request: Callable[[Any], T]) -> T:
        """Run ``request(client)`` with retries, translating provider errors."""

        def attempt() -> T:
            client = self.client()
            try:
                return request(client)
            except (ClientError, BotoCoreError, urllib3.exceptions.HTTPError) as exc:
                raise self.translate_error(exc, action, key) from exc

        return call_with_retries(attempt, what=self._where(action, key), policy=self.retry)

    def _where(self, action: str, key: str | None) -> str:
        return f"{self.name}: {action}" + ("" if key is None else f" {key!r}")

    # -- keys and tokens ---------------------------------------------------------------------
    def _full_key(self, key: str) -> str:
        return self.prefix + check_key(key, store=self.name)

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._full_key(key)}"

    def versioned(self, action: str = "check versioning", key: str | None = None) -> bool:
        """Whether the bucket keeps versions (asked once per store, on the first operation that
        needs to know: ``action`` on ``key`` names it in errors)."""
        if self._versioned is None:
            try:
                answer = self._call(
                    action, key, lambda c: c.get_bucket_versioning(Bucket=self.bucket)
                )
            except AccessDenied:
                # A reader may lack s3:GetBucketVersioning; ETags alone still change with the
                # content, so tokens just leave out the version.
                answer = {}
            self._versioned = answer.get("Status") in ("Enabled", "Suspended")
        return self._versioned

    def _token(self, response: dict[str, Any], versioned: bool) -> str:
        etag = str(response.get("ETag", "")).strip('"')
        version = response.get("VersionId")
        return f"{etag}@{version}" if versioned and version else etag

    def _info(self, key: str, entry: dict[str, Any], versioned: bool) -> ObjectInfo:
        """An ObjectInfo from a listing entry (Key, Size) or a HEAD answer (ContentLength)."""
        size = entry["Size"] if "Size" in entry else entry.get("ContentLength", 0)
        content_type = entry.get("ContentType") or mimetypes.guess_type(key)[0]
        return ObjectInfo(
            key=key,
            size=int(size),
            change_token=self._token(entry, versioned),
            last_modified=entry["LastModified"].astimezone(UTC),
            content_type=content_type,
        )

    # -- listing -----------------------------------------------------------------------------
    def list_page(
        self, prefix: str = "", start_after: str = "", page_size: int = DEFAULT_PAGE_SIZE
    ) -> list[ObjectInfo]:
        if page_size < 1:
            raise ValueError(f"page_size must be at least 1, not {page_size}")
        versioned = self.versioned("list")
        list_batch = self._list_versions if versioned else self._list_objects
        page: list[ObjectInfo] = []
        marker: str | None = None  # where the server resumes (a token or a version id)
        cursor = self.prefix + start_after if start_after else ""
        # A request may return fewer keys than asked (folder markers skipped, old versions):
        # keep asking until the page is full or the listing is done.
        while len(page) < page_size:
            entries, cursor, marker, more = list_batch(
                self.prefix + prefix, cursor, marker, min(MAX_LIST_KEYS, page_size - len(page))
            )
            for entry in entries:
                key = entry["Key"][len(self.prefix) :]
                if key.endswith("/") or not key:
                    continue  # a folder marker (a console's "create folder"), not an object
                page.append(self._info(key, entry, versioned))
            if not more:
                break
        return page

    def _list_objects(
        self, prefix: str, cursor: str, token: str | None, limit: int
    ) -> tuple[list[dict[str, Any]], str, str | None, bool]:
        args: dict[str, Any] = {"Bucket": self.bucket, "Prefix": prefix, "MaxKeys": limit}
        if token:
            args["ContinuationToken"] = token
        elif cursor:
            args["StartAfter"] = cursor
        answer = self._call("list", None, lambda c: c.list_objects_v2(**args))
        entries: list[dict[str, Any]] = answer.get("Contents", [])
        token = answer.get("NextContinuationToken")
        more = bool(answer.get("IsTruncated")) and bool(token or entries)
        return entries, entries[-1]["Key"] if entries else cursor, token, more

    def _list_versions(
        self, prefix: str, cursor: str, version_marker: str | None, limit: int
    ) -> tuple[list[dict[str, Any]], str, str | None, bool]:
        args: dict[str, Any] = {"Bucket": self.bucket, "Prefix": prefix, "MaxKeys": limit}
        if cursor:
            args["KeyMarker"] = cursor
        if version_marker:
            args["VersionIdMarker"] = version_marker
        answer = self._call("list versions", None, lambda c: c.list_object_versions(**args))
        # Delete markers come in their own list ("DeleteMarkers"), so a deleted key's versions
        # all have IsLatest false and drop out here.
        entries = [v for v in answer.get("Versions", []) if v.get("IsLatest")]
        more = bool(answer.get("IsTruncated"))
        next_key = answer.get("NextKeyMarker") or (entries[-1]["Key"] if entries else cursor)
        return entries, next_key, answer.get("NextVersionIdMarker"), more

    # -- reading -----------------------------------------------------------------------------
    def head(self, key: str) -> ObjectInfo:
        full = self._full_key(key)
        versioned = self.versioned("head", key)

        def request(client: Any) -> dict[str, Any]:
            try:
                answer: dict[str, Any] = client.head_object(Bucket=self.bucket, Key=full)
            except ClientError as exc:
                if _error_code(exc) not in ("400", "403"):
                    raise
                # A HEAD answer has no body, so it says only "403". A one-byte GET tells a
                # wrong secret from an unknown key id from a missing permission.
                try:
                    client.get_object(Bucket=self.bucket, Key=full, Range="bytes=0-0")
                except ClientError as detailed:
                    if _error_code(detailed) not in ("InvalidRange", "NoSuchKey"):
                        raise detailed from exc
                raise
            return answer

        return self._info(key, self._call("head", key, request), versioned)

    def get(self, key: str) -> bytes:
        full = self._full_key(key)

        def request(client: Any) -> bytes:
            body = client.get_object(Bucket=self.bucket, Key=full)["Body"]
            with body:
                return bytes(body.read())

        return self._call("get", key, request)

    def get_range(self, key: str, start: int, length: int) -> bytes:
        full = self._full_key(key)
        if length <= 0:
            return b""

        def request(client: Any) -> bytes:
            try:
                answer = client.get_object(
                    Bucket=self.bucket, Key=full, Range=f"bytes={start}-{start + length - 1}"
                )
            except ClientError as exc:
                if _error_code(exc) == "InvalidRange":
                    return b""  # the range starts at or past the end (or the object is empty)
                raise
            with answer["Body"] as body:
                data = bytes(body.read())
            if "ContentRange" not in answer:  # a server that ignored the Range header
                data = data[start : start + length]
            return data

        return self._call("get range of", key, request)

    # -- writing -----------------------------------------------------------------------------
    def put(self, key: str, data: bytes, *, create_only: bool = False) -> ObjectInfo:
        full = self._full_key(key)
        versioned = self.versioned("create" if create_only else "put", key)
        content_type = mimetypes.guess_type(key)[0]
        args: dict[str, Any] = {"Bucket": self.bucket, "Key": full, "Body": data}
        if content_type:
            args["ContentType"] = content_type
        if create_only:
            args["IfNoneMatch"] = "*"
        attempts = 0

        def request(client: Any) -> dict[str, Any]:
            nonlocal attempts
            attempts += 1
            try:
                answer: dict[str, Any] = client.put_object(**args)
            except ClientError as exc:
                if attempts == 1 or _error_code(exc) not in ("412", "PreconditionFailed"):
                    raise
                # An earlier attempt may have written it and lost only its reply: if the object
                # holds exactly these bytes, this write is the one that created it.
                existing = client.get_object(Bucket=self.bucket, Key=full)
                with existing["Body"] as body:
                    if body.read() != data:
                        raise
                answer = existing
            return answer

        answer = self._call("create" if create_only else "put", key, request)
        # The answer's Date header is the server's clock, as LastModified will be.
        date = answer.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("date")
        written = parsedate_to_datetime(date).astimezone(UTC) if date else datetime.now(UTC)
        return ObjectInfo(key, len(data), self._token(answer, versioned), written, content_type)

    def delete(self, key: str, *, if_token: str | None = None) -> None:
        full = self._full_key(key)
        if if_token is None:
            self._call("delete", key, lambda c: c.delete_object(Bucket=self.bucket, Key=full))
            return
        etag, _, version = if_token.partition("@")
        if version:
            # If-Match compares ETags only, and a rewrite with the same bytes keeps the ETag:
            # compare the version first (the If-Match below still guards the content).
            self._require_token(key, if_token)
        attempts = 0

        def request(client: Any) -> None:
            nonlocal attempts
            attempts += 1
            try:
                # S3 (and SeaweedFS) compare and delete in one step: no writer slips in between.
                client.delete_object(Bucket=self.bucket, Key=full, IfMatch=f'"{etag}"')
            except ClientError as exc:
                if attempts == 1 or _error_code(exc) not in ("412", "PreconditionFailed"):
                    raise
                # An earlier attempt may have deleted it and lost only its reply.
                try:
                    client.head_object(Bucket=self.bucket, Key=full)
                except ClientError as gone:
                    if _status(gone) == 404:
                        return
                raise

        try:
            self._call("delete", key, request)
        except (ObjectNotFound, PreconditionFailed):
            raise self._token_refused(key, "changed or is gone") from None

    def _require_token(self, key: str, token: str) -> None:
        try:
            current = self.head(key).change_token
        except ObjectNotFound:
            raise self._token_refused(key, "is gone") from None
        if current != token:
            raise self._token_refused(key, f"changed ({current} != {token})")

    def _token_refused(self, key: str, what: str) -> PreconditionFailed:
        return PreconditionFailed(
            f"{self.name}: delete {key!r}: the object {what}; conditional delete refused",
            store=self.name,
            key=key,
        )
