"""S3 and S3-compatible buckets (MinIO, R2, SeaweedFS, ...) as an object store, through
dagster-aws's ``S3Resource``.

boto3 makes a single attempt per request; transient failures are retried here (``RetryPolicy``) so
the final error says how many attempts failed. Provider errors are translated at this boundary
(:data:`~resources.stores.s3_errors.PROVIDER_ERRORS`), and every message names the store (bucket,
prefix, endpoint) and the key. Building the client and describing its credentials live in
:mod:`resources.stores.s3_client`.
"""

from __future__ import annotations

import mimetypes
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar

import urllib3.exceptions
from botocore.exceptions import BotoCoreError, ClientError
from dagster_aws.s3 import S3Resource

from resources.errors import (
    AccessDenied,
    ConfigError,
    ObjectChanged,
    ObjectNotFound,
    PreconditionFailed,
    StoreError,
)
from resources.stores.base import (
    DEFAULT_PAGE_SIZE,
    NO_LIMITS,
    BoundedBuffer,
    ObjectInfo,
    ObjectStore,
    ReadLimits,
    check_key,
    read_pinned,
)
from resources.stores.options import StorageOptions
from resources.stores.retry import DEFAULT_RETRY, Deadline, RetryPolicy, call_with_retries
from resources.stores.s3_client import build_client, describe_credentials, resource_from_options
from resources.stores.s3_errors import error_code, http_status, translate_error
from resources.stores.s3_listing import list_objects, list_versions

T = TypeVar("T")

#: S3's limit on keys per listing request.
MAX_LIST_KEYS = 1000
#: Bytes read from a response body at a time (the cap and the deadline are checked per chunk).
READ_CHUNK = 64 * 1024


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
        return cls(bucket, prefix, resource_from_options(options), retry)

    # -- the client --------------------------------------------------------------------------
    def client(self) -> Any:
        """The boto3 client, built once (the first call from any thread builds it)."""
        if self._client is None:
            with self._client_lock:
                if self._client is None:
                    self._client = build_client(self.resource, self.name)
        return self._client

    def close(self) -> None:
        """Close the client's connections; a later call builds a new client."""
        with self._client_lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()

    def credential_source(self) -> str:
        """Where the credentials come from, in words (never the credentials themselves)."""
        return describe_credentials(self.resource)

    # -- errors ------------------------------------------------------------------------------
    def translate_error(self, exc: Exception, action: str, key: str | None) -> StoreError:
        """The project's error for a provider error raised while doing ``action`` on ``key``."""
        endpoint = (
            self._client.meta.endpoint_url
            if self._client is not None
            else self.resource.endpoint_url or "the S3 endpoint"
        )
        return translate_error(
            exc,
            store=self.name,
            where=self._where(action, key),
            key=key,
            bucket=self.bucket,
            credentials=self.credential_source(),
            endpoint=endpoint,
        )

    def _call(
        self,
        action: str,
        key: str | None,
        request: Callable[[Any], T],
        deadline: Deadline | None = None,
    ) -> T:
        """Run ``request(client)`` with retries (none past ``deadline``), translating provider
        errors."""

        def attempt() -> T:
            client = self.client()
            try:
                return request(client)
            except (ClientError, BotoCoreError, urllib3.exceptions.HTTPError) as exc:
                raise self.translate_error(exc, action, key) from exc

        return call_with_retries(
            attempt, what=self._where(action, key), policy=self.retry, deadline=deadline
        )

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
        list_batch = list_versions if versioned else list_objects

        def send(action: str, request: Callable[[Any], dict[str, Any]]) -> dict[str, Any]:
            return self._call(action, None, request)

        page: list[ObjectInfo] = []
        marker: str | None = None  # where the server resumes (a token or a version id)
        cursor = self.prefix + start_after if start_after else ""
        # A request may return fewer keys than asked (folder markers skipped, old versions):
        # keep asking until the page is full or the listing is done.
        while len(page) < page_size:
            limit = min(MAX_LIST_KEYS, page_size - len(page))
            entries, cursor, marker, more = list_batch(
                send, self.bucket, self.prefix + prefix, cursor, marker, limit
            )
            for entry in entries:
                key = entry["Key"][len(self.prefix) :]
                if key.endswith("/") or not key:
                    continue  # a folder marker (a console's "create folder"), not an object
                page.append(self._info(key, entry, versioned))
            if not more:
                break
        return page

    # -- reading -----------------------------------------------------------------------------
    def head(self, key: str) -> ObjectInfo:
        full = self._full_key(key)
        versioned = self.versioned("head", key)

        def request(client: Any) -> dict[str, Any]:
            try:
                answer: dict[str, Any] = client.head_object(Bucket=self.bucket, Key=full)
            except ClientError as exc:
                if error_code(exc) not in ("400", "403"):
                    raise
                # A HEAD answer has no body, so it says only "403". A one-byte GET tells a
                # wrong secret from an unknown key id from a missing permission.
                try:
                    client.get_object(Bucket=self.bucket, Key=full, Range="bytes=0-0")
                except ClientError as detailed:
                    if error_code(detailed) not in ("InvalidRange", "NoSuchKey"):
                        raise detailed from exc
                raise
            return answer

        return self._info(key, self._call("head", key, request), versioned)

    def get(self, key: str, *, if_token: str | None = None) -> bytes:
        return self.get_bounded(key, if_token=if_token)

    def get_bounded(
        self, key: str, *, if_token: str | None = None, limits: ReadLimits = NO_LIMITS
    ) -> bytes:
        """The object's bytes, streamed: a ContentLength over the cap is refused before the
        body is read, and the body is read in chunks that may not pass the cap or the
        deadline."""
        full = self._full_key(key)
        pin: dict[str, str] = {}
        if if_token is not None:  # "<etag>" or "<etag>@<version id>" (see _token)
            etag, _, version = if_token.partition("@")
            pin = {"IfMatch": f'"{etag}"'} | ({"VersionId": version} if version else {})
        deadline = limits.deadline()
        uri = f"s3://{self.bucket}/{full}"

        def request(client: Any) -> bytes:
            answer = client.get_object(Bucket=self.bucket, Key=full, **pin)
            body = answer["Body"]
            with body:  # closed early, the connection is dropped, not drained
                size = answer.get("ContentLength")
                limits.check_size(size, "its ContentLength is", uri, store=self.name, key=key)
                data = BoundedBuffer(limits, deadline, uri, store=self.name, key=key)
                for chunk in body.iter_chunks(READ_CHUNK):
                    data.write(chunk)
            # Compatible servers that ignore If-Match still say which version they sent.
            if if_token is not None and self._token(answer, "@" in if_token) != if_token:
                raise ObjectChanged.rewritten(self.name, key, if_token)
            return data.getvalue()

        return read_pinned(self, key, if_token, lambda: self._call("get", key, request, deadline))

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
                if error_code(exc) == "InvalidRange":
                    return b""  # the range starts at or past the end (or the object is empty)
                raise
            with answer["Body"] as body:
                data = bytes(body.read())
            if "ContentRange" not in answer:  # a server that ignored the Range header
                data = data[start : start + length]
            return data

        return self._call("get range of", key, request)

    # -- writing -----------------------------------------------------------------------------
    def put(
        self, key: str, data: bytes, *, create_only: bool = False, if_token: str | None = None
    ) -> ObjectInfo:
        full = self._full_key(key)
        action = "create" if create_only else "conditional put" if if_token else "put"
        versioned = self.versioned(action, key)
        content_type = mimetypes.guess_type(key)[0]
        args: dict[str, Any] = {"Bucket": self.bucket, "Key": full, "Body": data}
        if content_type:
            args["ContentType"] = content_type
        if create_only:
            args["IfNoneMatch"] = "*"
        elif if_token is not None:
            etag, _, version = if_token.partition("@")
            if version:  # If-Match compares ETags only: compare the version first
                self._require_token(key, if_token, "write")
            args["IfMatch"] = f'"{etag}"'
        attempts = 0

        def request(client: Any) -> dict[str, Any]:
            nonlocal attempts
            attempts += 1
            try:
                answer: dict[str, Any] = client.put_object(**args)
            except ClientError as exc:
                if attempts == 1 or error_code(exc) not in ("412", "PreconditionFailed"):
                    raise
                # An earlier attempt may have written it and lost only its reply: if the object
                # holds exactly these bytes, this write is the one that created it.
                existing = client.get_object(Bucket=self.bucket, Key=full)
                with existing["Body"] as body:
                    if body.read() != data:
                        raise
                answer = existing
            return answer

        try:
            answer = self._call(action, key, request)
        except PreconditionFailed:
            if if_token is None:
                raise
            raise self._token_refused(key, "changed or is gone", "write") from None
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
                if attempts == 1 or error_code(exc) not in ("412", "PreconditionFailed"):
                    raise
                # An earlier attempt may have deleted it and lost only its reply.
                try:
                    client.head_object(Bucket=self.bucket, Key=full)
                except ClientError as gone:
                    if http_status(gone) == 404:
                        return
                raise

        try:
            self._call("delete", key, request)
        except (ObjectNotFound, PreconditionFailed):
            raise self._token_refused(key, "changed or is gone") from None

    def _require_token(self, key: str, token: str, action: str = "delete") -> None:
        try:
            current = self.head(key).change_token
        except ObjectNotFound:
            raise self._token_refused(key, "is gone", action) from None
        if current != token:
            raise self._token_refused(key, f"changed ({current} != {token})", action)

    def _token_refused(self, key: str, what: str, action: str = "delete") -> PreconditionFailed:
        return PreconditionFailed(
            f"{self.name}: {action} {key!r}: the object {what}; conditional {action} refused",
            store=self.name,
            key=key,
        )
