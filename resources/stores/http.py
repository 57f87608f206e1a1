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
address policy and the checking transport live in :mod:`resources.stores.http_addresses`, the
mapping of failures to the project's errors in :mod:`resources.stores.http_errors`.

Bodies are streamed: a read with :class:`~resources.stores.base.ReadLimits` refuses a
Content-Length over the cap before reading, never holds more than the cap when the length is
absent, and gives up at its deadline (socket timeouts are shortened to end by it). Messages
show URLs without their query, which may hold a presigned URL's signature.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Literal

import httpx

from resources.errors import StoreError
from resources.stores.base import NO_LIMITS, BoundedBuffer, ObjectInfo, ReadLimits, shown_uri
from resources.stores.http_addresses import (
    AddressPolicy,
    AddressRefused,
    ResolveFailed,
    allow_every_address,
    checked_transport,
    refused_address_reason,
    resolve_checked,
)
from resources.stores.http_errors import (
    STORE_NAME,
    refused,
    status_error,
    translated,
    unresolved,
)
from resources.stores.retry import DEFAULT_RETRY, Deadline, RetryPolicy, call_with_retries

MAX_REDIRECTS = 5
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
#: When the server gives no Last-Modified: old enough that batching never waits on it.
UNKNOWN_TIME = datetime.fromtimestamp(0, tz=UTC)


@dataclass(frozen=True)
class _Answer:
    """A response (closed: its status and headers) and as much of its body as was read."""

    response: httpx.Response
    body: bytes

    @property
    def status_code(self) -> int:
        return self.response.status_code

    @property
    def headers(self) -> httpx.Headers:
        return self.response.headers


class HttpStore:
    """Fetches whole or ranged objects over HTTP(S), mapping failures to the project's errors.

    One ``httpx.Client`` per store (thread-safe: parallel fetches may share a store). Transient
    failures (429, 5xx, timeouts, refused connections) are retried with ``retry``; the final error
    says how many attempts failed.
    """

    name = STORE_NAME

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
        self._timeout, self._connect_timeout = timeout, connect_timeout
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
    def get_url(self, url: str, limits: ReadLimits = NO_LIMITS) -> bytes:
        """The body at ``url``; raises ObjectNotFound, AccessDenied, BadCredentials, StoreError or
        TransientStoreError (after retries), and with ``limits`` ObjectTooLarge (never
        retried) or DeadlineExceeded."""
        return self._fetch("GET", url, {}, limits=limits).body

    def get_url_range(self, url: str, start: int, length: int) -> bytes:
        """At most ``length`` bytes from ``start`` (fewer at the end of the body). A server that
        ignores the Range header answers the whole body, which is sliced here."""
        if length <= 0:
            return b""
        headers = {"Range": f"bytes={start}-{start + length - 1}"}
        answer = self._fetch("GET", url, headers, range_start=start, body_up_to=start + length)
        if answer.status_code == 416:  # the range starts past the end
            return b""
        if answer.status_code == 206:
            return answer.body[:length]
        return answer.body[start : start + length]

    def head_url(self, url: str) -> ObjectInfo:
        """Facts about ``url`` without its body: size (Content-Length; 0 if the server gives
        none), change token (ETag, else Last-Modified, else empty), last modified (epoch if
        unknown) and content type. ``key`` is the URL. Servers that refuse HEAD (405, 501, or 403
        as presigned URLs signed for GET do) are asked for the first byte instead."""
        response = self._fetch("HEAD", url, {}, refused_statuses=(403, 405, 501))
        size = _int_header(response.headers, "content-length")
        if response.status_code in (403, 405, 501):
            # The body is not read: a server that ignores Range would send all of it.
            response = self._fetch("GET", url, {"Range": "bytes=0-0"}, range_start=0, body_up_to=0)
            total = response.headers.get("content-range", "").rpartition("/")[2]
            if response.status_code in (206, 416):
                size = int(total) if total.isdigit() else None
            else:
                size = _int_header(response.headers, "content-length")
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
        limits: ReadLimits = NO_LIMITS,
        body_up_to: int | None = None,
    ) -> _Answer:
        """One request with its redirects, retried while it fails transiently (within the
        deadline of ``limits``, which covers every attempt). Statuses in ``refused_statuses``
        (and 416 for a ranged request) are returned to the caller, without their body, instead
        of raised. At most ``body_up_to`` bytes of the body are read (None: all of it)."""
        deadline = limits.deadline()

        def attempt() -> _Answer:
            with self._streamed(method, url, headers, deadline) as response:
                status = response.status_code
                if status in refused_statuses or (status == 416 and range_start is not None):
                    return _Answer(response, b"")
                if status >= 300:
                    raise status_error(status, url, response)
                body = self._read_body(response, url, limits, deadline, body_up_to)
                return _Answer(response, body)

        return call_with_retries(
            attempt, what=f"{method} {shown_uri(url)}", policy=self._retry, deadline=deadline
        )

    @contextmanager
    def _streamed(
        self,
        method: Literal["GET", "HEAD"],
        url: str,
        headers: dict[str, str],
        deadline: Deadline | None,
    ) -> Iterator[httpx.Response]:
        """The final response after redirects, its body not yet read; closed on leaving."""
        response = self._follow_redirects(method, url, headers, deadline)
        try:
            yield response
        finally:
            response.close()

    def _read_body(
        self,
        response: httpx.Response,
        url: str,
        limits: ReadLimits,
        deadline: Deadline | None,
        up_to: int | None,
    ) -> bytes:
        """The body, streamed within ``limits`` (the cap applies to the bytes as decoded)."""
        shown = shown_uri(url)
        if up_to is None:
            length = _int_header(response.headers, "content-length")
            limits.check_size(length, "its Content-Length is", shown, store=self.name, key=url)
        body = BoundedBuffer(limits, deadline, shown, store=self.name, key=url)
        with translated(response.url, url, None):
            for chunk in response.iter_bytes():
                if up_to is not None and len(body) + len(chunk) >= up_to:
                    body.write(chunk[: up_to - len(body)])
                    break
                body.write(chunk)
        return body.getvalue()

    def _follow_redirects(
        self,
        method: Literal["GET", "HEAD"],
        url: str,
        headers: dict[str, str],
        deadline: Deadline | None,
    ) -> httpx.Response:
        current = self._parse_url(url)
        for hop in range(MAX_REDIRECTS + 1):
            redirected = current if hop else None
            if deadline is not None:
                deadline.check(shown_uri(url), store=self.name, key=url)
            self._check_host(current, url, redirected)
            response = self._send_once(method, current, headers, url, redirected, deadline)
            location = response.headers.get("location")
            if response.status_code not in REDIRECT_STATUSES or location is None:
                return response
            response.close()
            if hop == MAX_REDIRECTS:
                break
            current = self._parse_url(str(current.join(location)), via=url)
        raise StoreError(
            f"{shown_uri(url)}: more than {MAX_REDIRECTS} redirects (last to "
            f"{shown_uri(str(current))}); fix the location in the manifest to point at the "
            "object itself",
            store=self.name,
            key=url,
        )

    def _parse_url(self, url: str, *, via: str | None = None) -> httpx.URL:
        try:
            parsed = httpx.URL(url)
        except httpx.InvalidURL as exc:
            raise StoreError(
                f"{shown_uri(url)}: not a valid URL: {exc}", store=self.name, key=url
            ) from exc
        if parsed.scheme not in ("http", "https") or not parsed.host:
            where = f"{shown_uri(via)} redirects to {shown_uri(url)}" if via else shown_uri(url)
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
            raise refused(requested, redirected, exc) from None
        except ResolveFailed as exc:
            raise unresolved(url, requested, exc) from exc

    def _send_once(
        self,
        method: Literal["GET", "HEAD"],
        url: httpx.URL,
        headers: dict[str, str],
        requested: str,
        redirected: httpx.URL | None,
        deadline: Deadline | None,
    ) -> httpx.Response:
        """The response to one request, its body not yet read."""
        timeout = httpx.Timeout(self._timeout, connect=self._connect_timeout)
        if deadline is not None:
            timeout = httpx.Timeout(
                deadline.within(self._timeout), connect=deadline.within(self._connect_timeout)
            )
        request = self._client.build_request(method, url, headers=headers, timeout=timeout)
        with translated(url, requested, redirected):
            response = self._client.send(request, stream=True)
        return response


def _int_header(headers: httpx.Headers, name: str) -> int | None:
    value = headers.get(name, "")
    return int(value) if value.isdigit() else None


def _parse_http_date(value: str | None) -> datetime:
    if not value:
        return UNKNOWN_TIME
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return UNKNOWN_TIME
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
