"""Which addresses HTTP sources may reach, and a transport that connects only to those.

An address policy says why an address is refused (loopback, private, link-local, the cloud
metadata service, ...) or None for an address that may be reached. :func:`resolve_checked` resolves
a host and checks every address it resolves to; :func:`checked_transport` gives an httpx transport
that does the same each time it opens a connection and connects only to an address it checked, so
a DNS answer that changes between a check and the connection (DNS rebinding) cannot slip through.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable

import httpcore
import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
#: Why an address is refused (``"loopback"``, ``"private"``, ...), or None if it may be reached.
AddressPolicy = Callable[[IPAddress], str | None]

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
        raise ResolveFailed(host, exc) from exc
    addresses: list[str] = []
    for *_, sockaddr in infos:
        text = str(sockaddr[0])
        reason = policy(ipaddress.ip_address(text))
        if reason is not None:
            raise AddressRefused(host, text, reason)
        if text not in addresses:
            addresses.append(text)
    return addresses


class ResolveFailed(Exception):
    """A host name did not resolve; ``permanent`` when the name does not exist."""

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
