"""Google Cloud Storage as an object store (``gs://bucket/prefix``), wrapping dagster-gcp's
:class:`~dagster_gcp.gcs.GCSResource`.

Credentials come from application default credentials, from a service-account key file whose path
an environment variable names (``gcs_key_file_env``), or, with ``STORAGE_EMULATOR_HOST`` set, are
anonymous (emulators); :mod:`resources.stores.gcs_client` builds the client. The client library's
own retries are off: transient errors are retried here, so the final error says how many attempts
failed. Every provider error is translated at this boundary
(:data:`~resources.stores.gcs_errors.PROVIDER_ERRORS`) into the project's exceptions, naming the
store, bucket and key.
"""

from __future__ import annotations

import mimetypes
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from dagster_gcp.gcs import GCSResource
from google.api_core import exceptions as google_api

from resources.errors import (
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
from resources.stores.gcs_client import build_client, describe_credentials, key_file_from_env
from resources.stores.gcs_errors import translate_error
from resources.stores.options import StorageOptions
from resources.stores.retry import DEFAULT_RETRY, Deadline, RetryPolicy, call_with_retries

T = TypeVar("T")

#: (connect, read) seconds for one request; a dead endpoint fails fast and is retried.
REQUEST_TIMEOUT = (10.0, 60.0)
#: The most names GCS returns per listing request.
GCS_MAX_PAGE = 1000


class GCSObjectStore(ObjectStore):
    """Objects under ``prefix`` in one bucket; keys are the object names without the prefix.

    Listings come back in lexicographic (UTF-8 byte) order, as GCS lists. Change tokens are the
    object generation. Folder placeholders (names ending with ``/``) are not objects here. The
    client is built once, on first use, and is safe to share between threads.
    """

    def __init__(
        self,
        bucket: str,
        prefix: str,
        resource: GCSResource,
        retry: RetryPolicy = DEFAULT_RETRY,
        key_file: str | None = None,
        *,
        key_file_env: str | None = None,
    ) -> None:
        if prefix and not prefix.endswith("/"):
            raise ValueError(f"prefix {prefix!r} must be empty or end with '/'")
        self.bucket = bucket
        self.prefix = prefix
        self.resource = resource
        self.retry = retry
        self.key_file = key_file
        self.key_file_env = key_file_env
        self.name = f"gs://{bucket}/{prefix}"
        self._lock = threading.Lock()
        self._client: Any = None
        self._bucket_seen = False

    @classmethod
    def from_options(
        cls, bucket: str, prefix: str, options: StorageOptions, retry: RetryPolicy = DEFAULT_RETRY
    ) -> GCSObjectStore:
        """The store for ``gs://bucket/prefix`` with the project and the key-file variable of
        ``options``; without a key-file variable, application default credentials apply."""
        variable = options.gcs_key_file_env
        key_file = key_file_from_env(variable, f"gs://{bucket}/{prefix}")
        return cls(
            bucket,
            prefix,
            GCSResource(project=options.gcs_project),
            retry,
            key_file,
            key_file_env=variable,
        )

    # -- the client ------------------------------------------------------------------------
    @property
    def credentials(self) -> str:
        """Where credentials come from, in words (never the secret itself)."""
        return describe_credentials(self.key_file, self.key_file_env)

    def client(self) -> Any:
        """The google-cloud-storage client, built on first use."""
        if self._client is None:
            with self._lock:
                if self._client is None:
                    self._client = build_client(
                        self.resource, self.key_file, self.key_file_env, self.name
                    )
        return self._client

    def close(self) -> None:
        """Close the client's connections (a later call builds a new client)."""
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()

    def _call(
        self,
        operation: str,
        key: str | None,
        action: Callable[[Any], T],
        deadline: Deadline | None = None,
    ) -> T:
        """Run ``action(client)``, translating provider errors and retrying transient ones
        (none past ``deadline``)."""
        uri = self.name if key is None else self.uri(key)

        def attempt() -> T:
            try:
                return action(self.client())
            except StoreError:
                raise
            except Exception as exc:
                missing = isinstance(exc, google_api.NotFound) and self._bucket_missing(exc, key)
                raise translate_error(
                    exc,
                    store=self.name,
                    operation=operation,
                    key=key,
                    credentials=self.credentials,
                    bucket_missing=missing,
                ) from exc

        return call_with_retries(
            attempt, what=f"{operation} {uri}", policy=self.retry, deadline=deadline
        )

    def _bucket_missing(self, exc: google_api.NotFound, key: str | None) -> bool:
        """Whether a 404 means the bucket is missing. GCS says so in its message; emulators
        answer a bare 404, so ask once (and remember a bucket that exists)."""
        if key is None:
            return True  # listing an existing bucket never answers 404
        if "bucket does not exist" in str(exc.message).lower():
            return True
        if self._bucket_seen:
            return False
        try:
            exists = bool(
                self.client().bucket(self.bucket).exists(retry=None, timeout=REQUEST_TIMEOUT)
            )
        except Exception:  # e.g. no storage.buckets.get permission: we cannot tell
            return False
        self._bucket_seen = exists
        return not exists

    # -- keys ------------------------------------------------------------------------------
    def uri(self, key: str) -> str:
        return f"gs://{self.bucket}/{self.prefix}{check_key(key, store=self.name)}"

    def _blob(self, client: Any, key: str) -> Any:
        return client.bucket(self.bucket).blob(self.prefix + check_key(key, store=self.name))

    def _info(self, key: str, blob: Any) -> ObjectInfo:
        updated = blob.updated or blob.time_created or datetime.fromtimestamp(0, tz=UTC)
        return ObjectInfo(
            key=key,
            size=int(blob.size or 0),
            change_token=str(blob.generation),
            last_modified=updated,
            content_type=blob.content_type,
        )

    # -- listing ---------------------------------------------------------------------------
    def list_page(
        self, prefix: str = "", start_after: str = "", page_size: int = DEFAULT_PAGE_SIZE
    ) -> list[ObjectInfo]:
        full_prefix = self.prefix + prefix
        after = self.prefix + start_after if start_after else ""

        def page(client: Any) -> list[ObjectInfo]:
            found: list[ObjectInfo] = []
            blobs = client.list_blobs(
                self.bucket,
                prefix=full_prefix,
                # inclusive, so the cursor itself comes back first and is skipped below
                start_offset=max(full_prefix, after) or None,
                page_size=min(page_size + 1, GCS_MAX_PAGE),
                retry=None,
                timeout=REQUEST_TIMEOUT,
            )
            for blob in blobs:  # follows the library's pages until we have enough
                name: str = blob.name
                key = name[len(self.prefix) :]
                if name <= after or not key or key.endswith("/"):
                    continue
                found.append(self._info(key, blob))
                if len(found) >= page_size:
                    break
            return found

        return self._call("list", None, page)

    # -- objects ---------------------------------------------------------------------------
    def head(self, key: str) -> ObjectInfo:
        def reload(client: Any) -> ObjectInfo:
            blob = self._blob(client, key)
            blob.reload(retry=None, timeout=REQUEST_TIMEOUT)
            return self._info(key, blob)

        return self._call("head", key, reload)

    def get(self, key: str, *, if_token: str | None = None) -> bytes:
        return self.get_bounded(key, if_token=if_token)

    def get_bounded(
        self, key: str, *, if_token: str | None = None, limits: ReadLimits = NO_LIMITS
    ) -> bytes:
        """The object's bytes, streamed into a buffer that refuses to pass the cap or the
        deadline (socket timeouts are shortened to end by it too)."""
        if if_token is not None and not if_token.isdigit():
            raise StoreError(
                f"{self.name}: {key!r}: {if_token!r} is not a GCS generation; pin reads to the "
                "change token this store listed",
                store=self.name,
                key=key,
            )
        pin = {} if if_token is None else {"if_generation_match": int(if_token)}
        deadline = limits.deadline()

        def download(client: Any) -> bytes:
            blob = self._blob(client, key)
            data = BoundedBuffer(limits, deadline, self.uri(key), store=self.name, key=key)
            blob.download_to_file(data, retry=None, timeout=_timeout_by(deadline), **pin)
            # Emulators that ignore ifGenerationMatch still say which generation they sent.
            if if_token is not None and str(blob.generation) != if_token:
                raise ObjectChanged.rewritten(self.name, key, if_token)
            return data.getvalue()

        return read_pinned(self, key, if_token, lambda: self._call("get", key, download, deadline))

    def get_range(self, key: str, start: int, length: int) -> bytes:
        if start < 0 or length < 0:
            raise ValueError(f"a range needs start >= 0 and length >= 0, not {start}, {length}")

        def download(client: Any) -> bytes:
            blob = self._blob(client, key)
            if length == 0:
                blob.reload(retry=None, timeout=REQUEST_TIMEOUT)  # still: a missing key raises
                return b""
            try:
                data: bytes = blob.download_as_bytes(
                    start=start, end=start + length - 1, retry=None, timeout=REQUEST_TIMEOUT
                )  # GCS ranges include their last byte
            except google_api.RequestRangeNotSatisfiable:
                return b""  # starts at or past the end
            return data

        return self._call("get_range", key, download)

    def put(
        self, key: str, data: bytes, *, create_only: bool = False, if_token: str | None = None
    ) -> ObjectInfo:
        check_key(key, store=self.name)
        content_type = mimetypes.guess_type(key)[0] or "application/octet-stream"
        if if_token is not None and not if_token.isdigit():  # no generation looks like it
            raise PreconditionFailed(
                f"{self.name}: {key!r} has no generation {if_token!r}; conditional write refused",
                store=self.name,
                key=key,
            )
        generation = 0 if create_only else int(if_token) if if_token is not None else None

        def upload(client: Any) -> ObjectInfo:
            blob = self._blob(client, key)
            blob.upload_from_string(
                data,
                content_type=content_type,
                if_generation_match=generation,
                retry=None,
                timeout=REQUEST_TIMEOUT,
            )
            return self._info(key, blob)

        # A create-only put whose answer was lost and that is retried sees 412 as if another
        # writer had won; the claimer then gives up a batch it owns, and the next claim heals it.
        if if_token is not None:
            try:
                return self._call("conditional put", key, upload)
            except PreconditionFailed as exc:
                raise PreconditionFailed(
                    f"{self.name}: {key!r} changed or is gone (expected generation {if_token}); "
                    "conditional write refused",
                    store=self.name,
                    key=key,
                ) from exc
        if not create_only:
            return self._call("put", key, upload)
        try:
            return self._call("create-only put", key, upload)
        except PreconditionFailed as exc:
            raise PreconditionFailed(
                f"{self.name}: {key!r} already exists (create-only write refused)",
                store=self.name,
                key=key,
            ) from exc

    def delete(self, key: str, *, if_token: str | None = None) -> None:
        check_key(key, store=self.name)
        if if_token is not None:
            self._delete_if(key, if_token)
            return

        def remove(client: Any) -> None:
            try:
                self._blob(client, key).delete(retry=None, timeout=REQUEST_TIMEOUT)
            except google_api.NotFound as exc:
                if self._bucket_missing(exc, key):
                    raise  # say so rather than pretend all is well
                # a missing object is not an error

        self._call("delete", key, remove)

    def _delete_if(self, key: str, token: str) -> None:
        # GCS enforces if_generation_match atomically; fake-gcs-server 1.54 ignores it on
        # DELETE, so the token is also compared first (which gives the clearer message too).
        try:
            current = self.head(key).change_token
        except ObjectNotFound as exc:
            raise self._gone(key) from exc
        if current != token:
            raise PreconditionFailed(
                f"{self.name}: {key!r} changed (generation {current}, expected {token}); "
                "delete refused",
                store=self.name,
                key=key,
            )

        def remove(client: Any) -> None:
            self._blob(client, key).delete(
                if_generation_match=int(token), retry=None, timeout=REQUEST_TIMEOUT
            )

        try:
            self._call("conditional delete", key, remove)
        except ObjectNotFound as exc:
            raise self._gone(key) from exc

    def _gone(self, key: str) -> PreconditionFailed:
        return PreconditionFailed(
            f"{self.name}: {key!r} is gone; conditional delete refused",
            store=self.name,
            key=key,
        )


def _timeout_by(deadline: Deadline | None) -> tuple[float, float]:
    """The request timeout, shortened so that a stalled read ends by the deadline."""
    if deadline is None:
        return REQUEST_TIMEOUT
    connect, read = REQUEST_TIMEOUT
    return deadline.within(connect), deadline.within(read)
