"""GCS's provider errors and what they become here: :data:`PROVIDER_ERRORS` maps the client
libraries' exceptions to the project's, and :func:`translate_error` words the message, naming the
store, the bucket, the object and what to do next."""

from __future__ import annotations

import requests
import urllib3
from google.api_core import exceptions as google_api
from google.auth import exceptions as google_auth
from google.cloud.storage.exceptions import DataCorruption

from resources.errors import (
    AccessDenied,
    BadCredentials,
    ObjectNotFound,
    PreconditionFailed,
    StoreError,
    TransientStoreError,
)
from resources.stores.gcs_client import endpoint

REQUEST_TIMEOUT_STATUS = 408

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
