"""S3's provider errors and what they become here.

:data:`PROVIDER_ERRORS` maps error codes to the project's exceptions, :data:`CONNECTION_ERRORS`
lists the failures below HTTP, and :func:`translate_error` turns a boto3/botocore exception into
a project exception whose message names the store (bucket, prefix, endpoint) and the key.
"""

from __future__ import annotations

import urllib3.exceptions
from botocore.exceptions import (
    ClientError,
    ConnectionError,
    HTTPClientError,
    IncompleteReadError,
    NoCredentialsError,
    PartialCredentialsError,
    ResponseStreamingError,
    SSLError,
)

from resources.errors import (
    AccessDenied,
    BadCredentials,
    ObjectNotFound,
    PreconditionFailed,
    StoreError,
    TransientStoreError,
)

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


def error_code(exc: ClientError) -> str:
    """The provider's error code (``NoSuchKey``; a bodiless HEAD answer gives its status)."""
    return str(exc.response.get("Error", {}).get("Code", ""))


def http_status(exc: ClientError) -> int:
    """The HTTP status of the answer, or 0 if there was none."""
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)


def translate_error(
    exc: Exception,
    *,
    store: str,
    where: str,
    key: str | None,
    bucket: str,
    credentials: str,
    endpoint: str,
) -> StoreError:
    """The project's error for a provider error. ``where`` opens the message (the store, the
    action and the key); ``credentials`` says where the credentials come from, in words;
    ``endpoint`` is the server the client talks to."""
    facts = {"bucket": bucket, "credentials": credentials}
    if isinstance(exc, ClientError):
        code, status = error_code(exc), http_status(exc)
        error, explanation = PROVIDER_ERRORS.get(code) or PROVIDER_ERRORS.get(
            str(status), (StoreError, "")
        )
        if error is StoreError and (status == 429 or (status >= 500 and status != 501)):
            error, explanation = TransientStoreError, _SERVER
        if not explanation:
            message = exc.response.get("Error", {}).get("Message", "")
            explanation = f"the server answered {status} {code}: {message}".rstrip(": ")
        return error(f"{where}: {explanation.format(**facts)}", store=store, key=key)
    if isinstance(exc, NoCredentialsError | PartialCredentialsError):
        return BadCredentials(
            f"{where}: no complete credentials were found ({exc.__class__.__name__}); "
            f"they come from {facts['credentials']}",
            store=store,
            key=key,
        )
    if isinstance(exc, SSLError):
        return StoreError(
            f"{where}: the TLS connection to {endpoint} failed ({exc}); check the endpoint "
            "URL and its certificate",
            store=store,
            key=key,
        )
    if isinstance(exc, CONNECTION_ERRORS):
        return TransientStoreError(
            f"{where}: cannot reach {endpoint} ({exc.__class__.__name__}); check that the "
            "endpoint URL is right and the server is up",
            store=store,
            key=key,
        )
    return StoreError(f"{where}: {exc}", store=store, key=key)
