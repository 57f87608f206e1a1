"""Read-only HTTP(S) fetching for manifest sources, refusing loopback and private addresses.

An HTTP location in a manifest is data a user (or whoever wrote the manifest) chose, so fetching it
must not become a way into the machine or the cluster: loopback, private, link-local (the cloud
metadata service at 169.254.169.254), unspecified, multicast and reserved addresses are refused
unless the source sets ``allow_private_addresses: true``. The check happens twice:

* before each request, and before following each redirect (redirects are followed here, one hop at
  a time, never by httpx), the host is resolved and every address it resolves to is checked, so a
  public URL cannot redirect into ``127.0.0.1``;
* when a connection is opened, the transport resolves the host again, checks every address and
  connects only to an address it checked, so a DNS answer that changes between the check and the
  connection (DNS rebinding) cannot slip through.

Proxies from the environment are not used: connections go to the address that was checked. The
address policy and the checking transport live in :mod:`resources.stores.http_addresses`.
"""

from __future__ import annotations

import ssl
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Literal

import httpx

from resources.errors import (
    AccessDenied,
    BadCredentials,
    ObjectNotFound,
    StoreError,
    TransientStoreError,
)
from resources.stores.base import ObjectInfo
from resources.stores.http_addresses import (
    AddressPolicy,
    AddressRefused,
    ResolveFailed,
    allow_every_address,
    checked_transport,
    refused_address_reason,
    resolve_checked,
)
from resources.stores.retry import DEFAULT_RETRY, RetryPolicy, call_with_retries

MAX_REDIRECTS = 5
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
#: When the server gives no Last-Modified: old enough that batching never waits on it.
UNKNOWN_TIME = datetime.fromtimestamp(0, tz=UTC)


class HttpStore:
    """Fetches whole or ranged objects over HTTP(S), mapping failures to the project's errors.

    One ``httpx.Client`` per store (thread-safe: parallel fetches may share a store). Transient
    failures (429, 5xx, timeouts, refused connections) are retried with ``retry``; the final error
    says how many attempts failed.
    """

    name = "http(s)"

    def __init__(
        self,
        *,
        allow_private_addresses: bool = False,
        retry: RetryPolicy = DEFAULT_RETRY,
        timeout: float = 30.0,
        connect_timeout: float = 10.0,
        address_policy: AddressPolicy | None = None,
    ) -> None:
        """``address_policy`` overrides which addresses are refused (default: loopback, private,
        link-local and the like, or none with ``allow_private_addresses``)."""
        if address_policy is None:
            address_policy = (
                allow_every_address if allow_private_addresses else refused_address_reason
            )
        self._policy = address_policy
        self._retry = retry
        self._client = httpx.Client(
            transport=checked_transport(address_policy),
            timeout=httpx.Timeout(timeout, connect=connect_timeout),
            follow_redirects=False,
            headers={"User-Agent": "bucketlake"},
        )

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> HttpStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- the public face -------------------------------------------------------------------
    def get_url(self, url: str) -> bytes:
        """The body at ``url``; raises ObjectNotFound, AccessDenied, BadCredentials, StoreError or
        TransientStoreError (after retries)."""
        return self._fetch("GET", url, {}).content

    def get_url_range(self, url: str, start: int, length: int) -> bytes:
        """At most ``length`` bytes from ``start`` (fewer at the end of the body). A server that
        ignores the Range header answers the whole body, which is sliced here."""
        if length <= 0:
            return b""
        headers = {"Range": f"bytes={start}-{start + length - 1}"}
        response = self._fetch("GET", url, headers, range_start=start)
        if response.status_code == 416:  # the range starts past the end
            return b""
        if response.status_code == 206:
            return response.content[:length]
        return response.content[start : start + length]

    def head_url(self, url: str) -> ObjectInfo:
        """Facts about ``url`` without its body: size (Content-Length; 0 if the server gives
        none), change token (ETag, else Last-Modified, else empty), last modified (epoch if
        unknown) and content type. ``key`` is the URL. Servers that refuse HEAD (405, 501, or 403
        as presigned URLs signed for GET do) are asked for the first byte instead."""
        response = self._fetch("HEAD", url, {}, refused_statuses=(403, 405, 501))
        size = _int_header(response, "content-length")
        if response.status_code in (403, 405, 501):
            response = self._fetch("GET", url, {"Range": "bytes=0-0"}, range_start=0)
            total = response.headers.get("content-range", "").rpartition("/")[2]
            if response.status_code == 206:
                size = int(total) if total.isdigit() else None
            elif response.status_code == 416:
                size = int(total) if total.isdigit() else 0
            else:
                size = len(response.content)
        last_modified = response.headers.get("last-modified")
        etag = response.headers.get("etag")
        content_type = response.headers.get("content-type")
        return ObjectInfo(
            key=url,
            size=size or 0,
            change_token=(etag or last_modified or "").strip('"'),
            last_modified=_parse_http_date(last_modified),
            content_type=content_type.split(";")[0].strip() if content_type else None,
        )

    # -- requests, redirects and errors ----------------------------------------------------
    def _fetch(
        self,
        method: Literal["GET", "HEAD"],
        url: str,
        headers: dict[str, str],
        *,
        range_start: int | None = None,
        refused_statuses: tuple[int, ...] = (),
    ) -> httpx.Response:
        """One request with its redirects, retried while it fails transiently. Statuses in
        ``refused_statuses`` are returned to the caller instead of raised."""

        def attempt() -> httpx.Response:
            response = self._follow_redirects(method, url, headers)
            status = response.status_code
            if status in refused_statuses or status < 300:
                return response
            if status == 416 and range_start is not None:
                return response
            raise _status_error(status, url, response)

        return call_with_retries(attempt, what=f"{method} {url}", policy=self._retry)

    def _follow_redirects(
        self, method: Literal["GET", "HEAD"], url: str, headers: dict[str, str]
    ) -> httpx.Response:
        current = self._parse_url(url)
        for hop in range(MAX_REDIRECTS + 1):
            redirected = current if hop else None
            self._check_host(current, url, redirected)
            response = self._send_once(method, current, headers, url, redirected)
            location = response.headers.get("location")
            if response.status_code not in REDIRECT_STATUSES or location is None:
                return response
            if hop == MAX_REDIRECTS:
                break
            current = self._parse_url(str(current.join(location)), via=url)
        raise StoreError(
            f"{url}: more than {MAX_REDIRECTS} redirects (last to {current}); fix the location "
            "in the manifest to point at the object itself",
            store=self.name,
            key=url,
        )

    def _parse_url(self, url: str, *, via: str | None = None) -> httpx.URL:
        try:
            parsed = httpx.URL(url)
        except httpx.InvalidURL as exc:
            raise StoreError(f"{url}: not a valid URL: {exc}", store=self.name, key=url) from exc
        if parsed.scheme not in ("http", "https") or not parsed.host:
            where = f"{via} redirects to {url}" if via else url
            raise StoreError(
                f"{where}: only http:// and https:// URLs with a host can be fetched",
                store=self.name,
                key=via or url,
            )
        return parsed

    def _check_host(self, url: httpx.URL, requested: str, redirected: httpx.URL | None) -> None:
        if self._policy is allow_every_address:
            return
        port = url.port or (443 if url.scheme == "https" else 80)
        try:
            resolve_checked(url.host, port, self._policy)
        except AddressRefused as exc:
            raise _refused(requested, redirected, exc) from None
        except ResolveFailed as exc:
            raise _unresolved(url, requested, exc) from exc

    def _send_once(
        self,
        method: Literal["GET", "HEAD"],
        url: httpx.URL,
        headers: dict[str, str],
        requested: str,
        redirected: httpx.URL | None,
    ) -> httpx.Response:
        try:
            return self._client.request(method, url, headers=headers)
        except AddressRefused as exc:  # the DNS answer changed since the check
            raise _refused(requested, redirected, exc) from None
        except ResolveFailed as exc:
            raise _unresolved(url, requested, exc) from exc
        except httpx.TimeoutException as exc:
            raise TransientStoreError(
                f"{url}: timed out ({type(exc).__name__})", store=self.name, key=requested
            ) from exc
        except httpx.UnsupportedProtocol as exc:
            raise StoreError(f"{url}: {exc}", store=self.name, key=requested) from exc
        except httpx.TransportError as exc:
            if _caused_by(exc, ssl.SSLCertVerificationError):
                raise StoreError(
                    f"{url}: the server's TLS certificate did not verify: {exc}",
                    store=self.name,
                    key=requested,
                ) from exc
            raise TransientStoreError(
                f"{url}: {type(exc).__name__}: {exc}", store=self.name, key=requested
            ) from exc


def _refused(requested: str, redirected: httpx.URL | None, exc: AddressRefused) -> AccessDenied:
    hop = f" (redirected to {redirected})" if redirected else ""
    return AccessDenied(
        f"{requested}{hop}: {exc}; HTTP sources may not reach loopback, private, link-local or "
        "other non-public addresses. If this location is intended, set "
        "`allow_private_addresses: true` on the source",
        store=HttpStore.name,
        key=requested,
    )


def _unresolved(url: httpx.URL, requested: str, exc: ResolveFailed) -> StoreError:
    error = StoreError if exc.permanent else TransientStoreError
    return error(f"{url}: {exc}", store=HttpStore.name, key=requested)


def _status_error(status: int, url: str, response: httpx.Response) -> StoreError:
    reason = f"HTTP {status} {response.reason_phrase}".rstrip()
    if status in (404, 410):
        return ObjectNotFound(f"{url}: {reason}: no such object", store=HttpStore.name, key=url)
    if status == 401:
        return BadCredentials(
            f"{url}: {reason}: the server wants credentials; use a URL that grants access "
            "(for example a presigned URL)",
            store=HttpStore.name,
            key=url,
        )
    if status == 403:
        return AccessDenied(
            f"{url}: {reason}: access denied (an expired presigned URL answers this too)",
            store=HttpStore.name,
            key=url,
        )
    if status == 429 or status >= 500:
        return TransientStoreError(f"{url}: {reason}", store=HttpStore.name, key=url)
    return StoreError(f"{url}: {reason}", store=HttpStore.name, key=url)


def _int_header(response: httpx.Response, name: str) -> int | None:
    value = response.headers.get(name, "")
    return int(value) if value.isdigit() else None


def _parse_http_date(value: str | None) -> datetime:
    if not value:
        return UNKNOWN_TIME
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return UNKNOWN_TIME
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _caused_by(exc: BaseException, kind: type[BaseException]) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, kind):
            return True
        seen = seen.__cause__ or seen.__context__
    return False
