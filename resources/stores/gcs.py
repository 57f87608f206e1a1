"""Google Cloud Storage as an object store (``gs://bucket/prefix``), wrapping dagster-gcp's
:class:`~dagster_gcp.gcs.GCSResource`.

Credentials come from application default credentials, from a service-account key file whose path
an environment variable names (``gcs_key_file_env``), or, with ``STORAGE_EMULATOR_HOST`` set, are
anonymous (emulators). The client library's own retries are off: transient errors are retried
here, so the final error says how many attempts failed. Every provider error is translated at this
boundary (:data:`PROVIDER_ERRORS`) into the project's exceptions, naming the store, bucket and key.
"""

from __future__ import annotations

import mimetypes
import os
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import requests
import urllib3
from dagster_gcp.gcs import GCSResource
from google.api_core import exceptions as google_api
from google.auth import exceptions as google_auth
from google.cloud import storage
from google.cloud.storage.exceptions import DataCorruption

from resources.errors import (
    AccessDenied,
    BadCredentials,
    InvalidKey,
    ObjectNotFound,
    PreconditionFailed,
    StoreError,
    TransientStoreError,
)
from resources.stores.base import DEFAULT_PAGE_SIZE, ObjectInfo, ObjectStore, check_key
from resources.stores.options import StorageOptions
from resources.stores.retry import DEFAULT_RETRY, RetryPolicy, call_with_retries

T = TypeVar("T")

#: (connect, read) seconds for one request; a dead endpoint fails fast and is retried.
REQUEST_TIMEOUT = (10.0, 60.0)
#: Connections kept per host, so a thread pool of this size never queues on the HTTP session.
HTTP_POOL_SIZE = 32
#: The most names GCS returns per listing request.
GCS_MAX_PAGE = 1000
REQUEST_TIMEOUT_STATUS = 408
DEFAULT_ENDPOINT = "https://storage.googleapis.com"
EMULATOR_VARIABLE = "STORAGE_EMULATOR_HOST"

#: Provider exceptions and what they become, first match wins (subclasses before their bases).
PROVIDER_ERRORS: tuple[tuple[type[BaseException], type[StoreError]], ...] = (
    (google_api.NotFound, ObjectNotFound),
    (google_api.Forbidden, AccessDenied),
    (google_api.Unauthorized, BadCredentials),
    (google_api.PreconditionFailed, PreconditionFailed),
    (google_api.TooManyRequests, TransientStoreError),
    (google_api.InternalServerError, TransientStoreError),
    (google_api.BadGateway, TransientStoreError),
    (google_api.ServiceUnavailable, TransientStoreError),
    (google_api.GatewayTimeout, TransientStoreError),
    (google_api.ServerError, TransientStoreError),  # any other 5xx
    (google_auth.DefaultCredentialsError, BadCredentials),
    (google_auth.RefreshError, BadCredentials),
    (google_auth.TransportError, TransientStoreError),  # token endpoint unreachable
    (requests.exceptions.ConnectionError, TransientStoreError),
    (requests.exceptions.Timeout, TransientStoreError),
    (requests.exceptions.ChunkedEncodingError, TransientStoreError),
    (urllib3.exceptions.HTTPError, TransientStoreError),
    (DataCorruption, TransientStoreError),  # checksum mismatch on download: read it again
    (google_api.GoogleAPICallError, StoreError),  # any other refusal (400, 409, ...)
)


def endpoint() -> str:
    """The endpoint google-cloud-storage talks to, as it picks it (the emulator variable first)."""
    return (
        os.environ.get(EMULATOR_VARIABLE)
        or os.environ.get("API_ENDPOINT_OVERRIDE")
        or DEFAULT_ENDPOINT
    )


def translate_error(
    exc: BaseException,
    *,
    store: str,
    operation: str,
    key: str | None,
    credentials: str,
    bucket_missing: bool = False,
) -> StoreError:
    """The project exception for a provider exception (``StoreError`` for unknown ones), with
    a message that names the store, the object and what to do next."""
    kind: type[StoreError] = StoreError
    for provider, mapped in PROVIDER_ERRORS:
        if isinstance(exc, provider):
            kind = mapped
            break
    if isinstance(exc, google_auth.GoogleAuthError) and exc.retryable:
        kind = TransientStoreError
    if isinstance(exc, google_api.GoogleAPICallError) and exc.code == REQUEST_TIMEOUT_STATUS:
        kind = TransientStoreError  # api_core has no class of its own for 408
    cause = f"{type(exc).__name__}: {_short(exc)}"
    where = f"{store}: {operation}" if key is None else f"{store}: {operation} {key!r}"
    bucket = store.removeprefix("gs://").split("/", 1)[0]
    if kind is ObjectNotFound:
        if bucket_missing:
            message = (
                f"{where}: bucket {bucket!r} does not exist (or these credentials cannot see "
                "it); check the bucket name in the URI"
            )
        else:
            message = f"{where}: no such object in bucket {bucket!r}"
    elif kind is AccessDenied:
        message = (
            f"{where}: access denied ({cause}); the credentials in use ({credentials}) need "
            f"permission on bucket {bucket!r}, e.g. roles/storage.objectViewer to read or "
            "roles/storage.objectAdmin to write"
        )
    elif kind is BadCredentials:
        message = f"{where}: credentials missing or refused ({cause}); they come from {credentials}"
    elif kind is PreconditionFailed:
        message = f"{where}: precondition failed: the object changed or already exists ({cause})"
    elif kind is TransientStoreError and isinstance(exc, google_api.GoogleAPICallError):
        message = f"{where}: the GCS endpoint {endpoint()} answered a temporary error ({cause})"
    elif kind is TransientStoreError:
        message = f"{where}: cannot reach the GCS endpoint {endpoint()} ({cause})"
    else:
        message = f"{where}: refused by GCS ({cause})"
    return kind(message, store=store, key=key)


def _short(exc: BaseException, limit: int = 300) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


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
        key_file: str | None = None
        variable = options.gcs_key_file_env
        if variable is not None:
            key_file = os.environ.get(variable) or None
            where = f"gs://{bucket}/{prefix}"
            if key_file is None:
                raise BadCredentials(
                    f"{where}: environment variable {variable} (gcs_key_file_env) is not set; "
                    "set it to the path of a service-account key file, or remove gcs_key_file_env "
                    "to use application default credentials",
                    store=where,
                )
            if not os.path.isfile(key_file):
                raise BadCredentials(
                    f"{where}: environment variable {variable} (gcs_key_file_env) names "
                    f"{key_file!r}, which is not a file; point it at a service-account key file",
                    store=where,
                )
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
        if self.key_file is not None:
            named = f" named by ${self.key_file_env}" if self.key_file_env else ""
            return f"the service-account key file {self.key_file!r}{named} (gcs_key_file_env)"
        if os.environ.get(EMULATOR_VARIABLE):
            return f"anonymous credentials for the emulator at ${EMULATOR_VARIABLE}"
        return (
            "application default credentials (GOOGLE_APPLICATION_CREDENTIALS, "
            "`gcloud auth application-default login` or the metadata server); "
            "set gcs_key_file_env to use a service-account key file instead"
        )

    def client(self) -> Any:
        """The google-cloud-storage client, built on first use."""
        if self._client is None:
            with self._lock:
                if self._client is None:
                    self._client = self._build_client()
        return self._client

    def _build_client(self) -> Any:
        if self.key_file is None:
            client = self.resource.get_client()
        else:
            kwargs = {} if self.resource.project is None else {"project": self.resource.project}
            try:
                client = storage.Client.from_service_account_json(self.key_file, **kwargs)
            except OSError as exc:
                raise BadCredentials(
                    f"{self.name}: cannot read {self.credentials}: {type(exc).__name__}",
                    store=self.name,
                ) from exc
            except (ValueError, KeyError) as exc:  # not JSON, or not a service-account key
                raise BadCredentials(
                    f"{self.name}: {self.credentials} is not a valid service-account key "
                    f"({type(exc).__name__}); download a JSON key for the service account",
                    store=self.name,
                ) from exc
        # Make the HTTP session now, once, rather than racing to make it from pool threads.
        adapter = requests.adapters.HTTPAdapter(
            pool_connections=4, pool_maxsize=HTTP_POOL_SIZE, max_retries=0
        )
        client._http.mount("https://", adapter)
        client._http.mount("http://", adapter)
        return client

    def close(self) -> None:
        """Close the client's connections (a later call builds a new client)."""
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()

    def _call(self, operation: str, key: str | None, action: Callable[[Any], T]) -> T:
        """Run ``action(client)``, translating provider errors and retrying transient ones."""
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

        return call_with_retries(attempt, what=f"{operation} {uri}", policy=self.retry)

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
        return f"gs://{self.bucket}/{self.prefix}{key}"

    def _blob(self, client: Any, key: str) -> Any:
        if not key:
            raise InvalidKey(f"{self.name}: an empty object key is not allowed", store=self.name)
        return client.bucket(self.bucket).blob(self.prefix + key)

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

    def get(self, key: str) -> bytes:
        def download(client: Any) -> bytes:
            data: bytes = self._blob(client, key).download_as_bytes(
                retry=None, timeout=REQUEST_TIMEOUT
            )
            return data

        return self._call("get", key, download)

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

    def put(self, key: str, data: bytes, *, create_only: bool = False) -> ObjectInfo:
        check_key(key, store=self.name)
        content_type = mimetypes.guess_type(key)[0] or "application/octet-stream"

        def upload(client: Any) -> ObjectInfo:
            blob = self._blob(client, key)
            blob.upload_from_string(
                data,
                content_type=content_type,
                if_generation_match=0 if create_only else None,
                retry=None,
                timeout=REQUEST_TIMEOUT,
            )
            return self._info(key, blob)

        # A create-only put whose answer was lost and that is retried sees 412 as if another
        # writer had won; the claimer then gives up a batch it owns, and the next claim heals it.
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
            raise PreconditionFailed(
                f"{self.name}: {key!r} is gone; conditional delete refused",
                store=self.name,
                key=key,
            ) from exc
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
            raise PreconditionFailed(
                f"{self.name}: {key!r} is gone; conditional delete refused",
                store=self.name,
                key=key,
            ) from exc
