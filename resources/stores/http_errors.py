"""HTTP failures as the project's errors: statuses, refused addresses, hosts that do not
resolve, and httpx's exceptions while sending a request or reading its body. Messages show URLs
without their query (:func:`~resources.stores.base.shown_uri`)."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from contextlib import contextmanager

import httpx

from resources.errors import (
    AccessDenied,
    BadCredentials,
    ObjectNotFound,
    StoreError,
    TransientStoreError,
)
from resources.stores.base import shown_uri
from resources.stores.http_addresses import AddressRefused, ResolveFailed

#: The store name HTTP errors carry.
STORE_NAME = "http(s)"


@contextmanager
def translated(url: httpx.URL, requested: str, redirected: httpx.URL | None) -> Iterator[None]:
    """httpx's errors, while sending or reading a body, as the project's."""
    shown = shown_uri(str(url))
    try:
        yield
    except AddressRefused as exc:  # the DNS answer changed since the check
        raise refused(requested, redirected, exc) from None
    except ResolveFailed as exc:
        raise unresolved(url, requested, exc) from exc
    except httpx.TimeoutException as exc:
        raise TransientStoreError(
            f"{shown}: timed out ({type(exc).__name__})", store=STORE_NAME, key=requested
        ) from exc
    except (httpx.UnsupportedProtocol, httpx.DecodingError) as exc:
        raise StoreError(f"{shown}: {exc}", store=STORE_NAME, key=requested) from exc
    except httpx.TransportError as exc:
        if _caused_by(exc, ssl.SSLCertVerificationError):
            raise StoreError(
                f"{shown}: the server's TLS certificate did not verify: {exc}",
                store=STORE_NAME,
                key=requested,
            ) from exc
        raise TransientStoreError(
            f"{shown}: {type(exc).__name__}: {exc}", store=STORE_NAME, key=requested
        ) from exc


def refused(requested: str, redirected: httpx.URL | None, exc: AddressRefused) -> AccessDenied:
    hop = f" (redirected to {shown_uri(str(redirected))})" if redirected else ""
    return AccessDenied(
        f"{shown_uri(requested)}{hop}: {exc}; HTTP sources may not reach loopback, private, "
        "link-local or other non-public addresses. If this location is intended, set "
        "`allow_private_addresses: true` on the source",
        store=STORE_NAME,
        key=requested,
    )


def unresolved(url: httpx.URL, requested: str, exc: ResolveFailed) -> StoreError:
    error = StoreError if exc.permanent else TransientStoreError
    return error(f"{shown_uri(str(url))}: {exc}", store=STORE_NAME, key=requested)


def status_error(status: int, requested: str, response: httpx.Response) -> StoreError:
    reason = f"HTTP {status} {response.reason_phrase}".rstrip()
    url = shown_uri(requested)
    if status in (404, 410):
        return ObjectNotFound(f"{url}: {reason}: no such object", store=STORE_NAME, key=requested)
    if status == 401:
        return BadCredentials(
            f"{url}: {reason}: the server wants credentials; use a URL that grants access "
            "(for example a presigned URL)",
            store=STORE_NAME,
            key=requested,
        )
    if status == 403:
        return AccessDenied(
            f"{url}: {reason}: access denied (an expired presigned URL answers this too)",
            store=STORE_NAME,
            key=requested,
        )
    if status == 429 or status >= 500:
        return TransientStoreError(f"{url}: {reason}", store=STORE_NAME, key=requested)
    return StoreError(f"{url}: {reason}", store=STORE_NAME, key=requested)


def _caused_by(exc: BaseException, kind: type[BaseException]) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, kind):
            return True
        seen = seen.__cause__ or seen.__context__
    return False
