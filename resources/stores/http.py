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

Proxies from the environment are not used: connections go to the address that was checked.
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Literal

import httpcore
import httpx

from resources.errors import (
    AccessDenied,
    BadCredentials,
    ObjectNotFound,
    StoreError,
    TransientStoreError,
)
from resources.stores.base import ObjectInfo
from resources.stores.retry import DEFAULT_RETRY, RetryPolicy, call_with_retries

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
#: Why an address is refused (``"loopback"``, ``"private"``, ...), or None if it may be reached.
AddressPolicy = Callable[[IPAddress], str | None]

MAX_REDIRECTS = 5
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
#: When the server gives no Last-Modified: old enough that batching never waits on it.
UNKNOWN_TIME = datetime.fromtimestamp(0, tz=UTC)

_PRIVATE_NETWORKS = tuple(
    ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7")
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_METADATA_SERVICES = frozenset(
    ipaddress.ip_address(a) for a in ("169.254.169.254", "fd00:ec2::254", "169.254.170.2")
)


def refused_address_reason(address: IPAddress) -> str | None:
    """Why HTTP sources may not reach ``address`` by default, or None for a public address."""
    embedded = _embedded_ipv4(address)
    if embedded is not None:
        return refused_address_reason(embedded)
    if address in _METADATA_SERVICES:
        return "cloud metadata service"
    checks: list[tuple[bool, str]] = [
        (address.is_unspecified, "unspecified"),
        (address.is_loopback, "loopback"),
        (address.is_link_local, "link-local"),
        (address.is_multicast, "multicast"),
        (any(address in network for network in _PRIVATE_NETWORKS), "private"),
        (address.is_reserved, "reserved"),
        (isinstance(address, ipaddress.IPv6Address) and address.is_site_local, "site-local"),
        (not address.is_global, "non-public"),
    ]
    return next((reason for refused, reason in checks if refused), None)


def _embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv4-mapped, 6to4 or NAT64 address reaches, if it is one."""
    if not isinstance(address, ipaddress.IPv6Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def allow_every_address(address: IPAddress) -> str | None:
    """The policy of a source with ``allow_private_addresses: true``."""
    return None


class AddressRefused(Exception):
    """A host resolved to an address the policy refuses (raised before any connection)."""

    def __init__(self, host: str, address: str, reason: str) -> None:
        super().__init__(f"host {host!r} resolves to {address} ({reason} address)")
        self.host = host
        self.address = address
        self.reason = reason


def resolve_checked(host: str, port: int, policy: AddressPolicy) -> list[str]:
    """Every address ``host`` resolves to, after checking each one against ``policy``.
    Raises AddressRefused if any is refused (a host with one bad address is not trusted)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise _ResolveFailed(host, exc) from exc
    addresses: list[str] = []
    for *_, sockaddr in infos:
        text = str(sockaddr[0])
        reason = policy(ipaddress.ip_address(text))
        if reason is not None:
            raise AddressRefused(host, text, reason)
        if text not in addresses:
            addresses.append(text)
    return addresses


class _ResolveFailed(Exception):
    def __init__(self, host: str, error: socket.gaierror) -> None:
        super().__init__(f"cannot resolve host {host!r}: {error.strerror or error}")
        self.permanent = error.errno == socket.EAI_NONAME


#: What httpcore accepts as a socket option (its own alias lives in a private module).
_SocketOption = (
    tuple[int, int, int] | tuple[int, int, bytes | bytearray] | tuple[int, int, None, int]
)


class _CheckedBackend(httpcore.NetworkBackend):
    """Opens TCP connections only to addresses the policy allows, and only to those it checked."""

    def __init__(self, policy: AddressPolicy) -> None:
        self._policy = policy
        self._sockets = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[_SocketOption] | None = None,
    ) -> httpcore.NetworkStream:
        last_error: Exception | None = None
        for address in resolve_checked(host, port, self._policy):
            try:
                return self._sockets.connect_tcp(
                    address, port, timeout, local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last_error = exc  # try the host's next address, as a resolver-based connect would
        assert last_error is not None  # getaddrinfo returns at least one address or raises
        raise last_error

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[_SocketOption] | None = None,
    ) -> httpcore.NetworkStream:
        raise AddressRefused(path, path, "unix socket")

    def sleep(self, seconds: float) -> None:
        self._sockets.sleep(seconds)


def checked_transport(policy: AddressPolicy) -> httpx.HTTPTransport:
    """An httpx transport whose connections go only to addresses ``policy`` allows."""
    transport = httpx.HTTPTransport()
    limits = httpx.Limits()
    # httpx has no public way to pass a network backend; the pool it builds is replaced by an
    # identical one that resolves and checks addresses itself (test_http proves the guard holds).
    transport._pool = httpcore.ConnectionPool(
        ssl_context=httpx.create_ssl_context(),
        max_connections=limits.max_connections,
        max_keepalive_connections=limits.max_keepalive_connections,
        keepalive_expiry=limits.keepalive_expiry,
        network_backend=_CheckedBackend(policy),
    )
    return transport


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
        except _ResolveFailed as exc:
            error = StoreError if exc.permanent else TransientStoreError
            raise error(f"{url}: {exc}", store=self.name, key=requested) from exc

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
        except _ResolveFailed as exc:
            error = StoreError if exc.permanent else TransientStoreError
            raise error(f"{url}: {exc}", store=self.name, key=requested) from exc
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
