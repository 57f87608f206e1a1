"""HttpStore against a real HTTP server on loopback (no mocks of httpx)."""

from __future__ import annotations

import ipaddress
import uuid
from collections.abc import Iterator
from urllib.parse import quote

import httpx
import pytest

from resources.errors import (
    AccessDenied,
    BadCredentials,
    DeadlineExceeded,
    ObjectNotFound,
    ObjectTooLarge,
    StoreError,
    TransientStoreError,
)
from resources.stores.base import ReadLimits
from resources.stores.http import MAX_REDIRECTS, HttpStore
from resources.stores.http_addresses import (
    AddressRefused,
    IPAddress,
    checked_transport,
    refused_address_reason,
)
from resources.stores.retry import RetryPolicy
from tests.resources.stores.misbehaving_http import HUGE, MisbehavingServer, serve_misbehaving
from tests.servers import free_port
from tests.servers.http import HttpFiles

BODY = bytes(range(256)) * 4  # 1 KiB, every offset distinguishable
QUICK = RetryPolicy(max_attempts=3, backoff_factor=0.001, backoff_max=0.001)


@pytest.fixture
def served(http_files: HttpFiles) -> str:
    """A file name, unique to the test, served by ``http_files`` with ``BODY``."""
    name = f"{uuid.uuid4().hex}/photo.jpg"
    path = http_files.root / name
    path.parent.mkdir(parents=True)
    path.write_bytes(BODY)
    return name


@pytest.fixture
def store() -> Iterator[HttpStore]:
    """A store that may reach the loopback test server."""
    with HttpStore(allow_private_addresses=True, retry=QUICK) as made:
        yield made


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("127.1.2.3", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("172.31.255.255", "private"),
        ("192.168.1.1", "private"),
        ("169.254.169.254", "cloud metadata service"),
        ("169.254.1.1", "link-local"),
        ("0.0.0.0", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("240.0.0.1", "reserved"),
        ("100.64.0.1", "non-public"),
        ("::1", "loopback"),
        ("::", "unspecified"),
        ("fe80::1", "link-local"),
        ("fc00::1", "private"),
        ("fd12:3456::1", "private"),
        ("ff02::1", "multicast"),
        ("::ffff:127.0.0.1", "loopback"),
        ("::ffff:10.0.0.1", "private"),
        ("2002:c0a8:0101::1", "private"),  # 6to4 wrapping 192.168.1.1
        ("64:ff9b::a9fe:a9fe", "cloud metadata service"),  # NAT64 wrapping 169.254.169.254
        ("8.8.8.8", None),
        ("1.1.1.1", None),
        ("172.32.0.1", None),
        ("2001:4860::8888", None),
        ("2606:4700:4700::1111", None),
    ],
)
def test_address_classifier(address: str, reason: str | None) -> None:
    assert refused_address_reason(ipaddress.ip_address(address)) == reason


def test_get_whole_object(store: HttpStore, http_files: HttpFiles, served: str) -> None:
    assert store.get_url(http_files.url(served)) == BODY


@pytest.mark.parametrize(
    ("start", "length", "expected"),
    [(0, 10, BODY[:10]), (300, 200, BODY[300:500]), (1000, 100, BODY[1000:]), (5000, 10, b"")],
)
@pytest.mark.parametrize("route", ["", "_norange/"])
def test_get_range(
    store: HttpStore,
    http_files: HttpFiles,
    served: str,
    route: str,
    start: int,
    length: int,
    expected: bytes,
) -> None:
    """Ranged reads give the same bytes whether the server honours Range (206) or not (200)."""
    assert store.get_url_range(http_files.url(route + served), start, length) == expected


def test_head_reports_size_token_and_type(
    store: HttpStore, http_files: HttpFiles, served: str
) -> None:
    info = store.head_url(http_files.url(served))
    stat = (http_files.root / served).stat()
    assert info.size == len(BODY)
    assert info.change_token == f"{stat.st_size}-{stat.st_mtime_ns}"
    assert info.content_type == "image/jpeg"
    assert abs(info.last_modified.timestamp() - stat.st_mtime) < 1


def test_head_falls_back_to_a_ranged_get_when_head_is_refused(
    store: HttpStore, http_files: HttpFiles, served: str
) -> None:
    info = store.head_url(http_files.url("_nohead/" + served))
    assert info.size == len(BODY)
    assert info.change_token


@pytest.mark.parametrize("status", [404, 410])
def test_missing_object(store: HttpStore, http_files: HttpFiles, status: int) -> None:
    url = http_files.url(f"_status/{status}/{uuid.uuid4().hex}")
    with pytest.raises(ObjectNotFound, match=str(status)) as caught:
        store.get_url(url)
    assert url in str(caught.value)


def test_missing_file_is_not_found(store: HttpStore, http_files: HttpFiles) -> None:
    with pytest.raises(ObjectNotFound):
        store.head_url(http_files.url("no/such/file.jpg"))


@pytest.mark.parametrize(
    ("status", "error"), [(401, BadCredentials), (403, AccessDenied), (400, StoreError)]
)
def test_client_errors_are_mapped_and_not_retried(
    store: HttpStore, http_files: HttpFiles, status: int, error: type[StoreError]
) -> None:
    path = f"/_status/{status}/{uuid.uuid4().hex}"
    with pytest.raises(error) as caught:
        store.get_url(http_files.base_url + path)
    assert not isinstance(caught.value, TransientStoreError)
    assert http_files.count(path) == 1


@pytest.mark.parametrize("status", [500, 503, 429])
def test_transient_statuses_are_retried_then_counted(
    store: HttpStore, http_files: HttpFiles, status: int
) -> None:
    path = f"/_status/{status}/{uuid.uuid4().hex}"
    with pytest.raises(TransientStoreError, match="failed 3 attempts in a row") as caught:
        store.get_url(http_files.base_url + path)
    assert f"HTTP {status}" in str(caught.value)
    assert http_files.count(path) == 3


def test_refused_connection_is_transient() -> None:
    url = f"http://127.0.0.1:{free_port()}/photo.jpg"  # nothing listens there
    with (
        HttpStore(allow_private_addresses=True, retry=QUICK) as store,
        pytest.raises(TransientStoreError, match="failed 3 attempts"),
    ):
        store.get_url(url)


def test_timeout_is_transient(http_files: HttpFiles, served: str) -> None:
    once = RetryPolicy(max_attempts=1)
    with (
        HttpStore(allow_private_addresses=True, retry=once, timeout=0.2) as slow,
        pytest.raises(TransientStoreError, match="timed out"),
    ):
        slow.get_url(http_files.url("_sleep/1/" + served))


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "[::1]"])
def test_loopback_refused_by_default_before_connecting(
    http_files: HttpFiles, served: str, host: str
) -> None:
    url = f"http://{host}:{http_files.port}/{served}"
    with HttpStore(retry=QUICK) as store, pytest.raises(AccessDenied) as caught:
        store.get_url(url)
    message = str(caught.value)
    assert url in message
    assert "(loopback address)" in message
    assert "set `allow_private_addresses: true` on the source" in message
    assert http_files.count(f"/{served}") == 0  # refused before any connection


def test_metadata_service_refused_by_default() -> None:
    url = "http://169.254.169.254/latest/meta-data/"
    with (
        HttpStore(retry=QUICK) as store,
        pytest.raises(AccessDenied, match=r"169\.254\.169\.254 \(cloud metadata service address\)"),
    ):
        store.get_url(url)


def test_redirects_are_followed(store: HttpStore, http_files: HttpFiles, served: str) -> None:
    assert store.get_url(http_files.url(f"_redirect/{MAX_REDIRECTS}/{served}")) == BODY
    assert store.get_url_range(http_files.url(f"_redirect/2/{served}"), 10, 5) == BODY[10:15]


def test_too_many_redirects(store: HttpStore, http_files: HttpFiles, served: str) -> None:
    with pytest.raises(StoreError, match=f"more than {MAX_REDIRECTS} redirects"):
        store.get_url(http_files.url(f"_redirect/{MAX_REDIRECTS + 1}/{served}"))


def test_redirect_into_a_refused_address_is_refused(http_files: HttpFiles, served: str) -> None:
    """Each hop is checked: here the first host (127.0.0.1) stands for a public one, and it
    redirects to 127.0.0.2, which the policy refuses. Nothing listens on 127.0.0.2, so had the
    hop not been checked this would fail to connect instead."""

    def only_first_host(address: IPAddress) -> str | None:
        return None if str(address) == "127.0.0.1" else refused_address_reason(address)

    target = f"http://127.0.0.2:{http_files.port}/{served}"
    path = f"/_redirect_to/{uuid.uuid4().hex}"
    start = f"{http_files.base_url}{path}?url={quote(target, safe='')}"
    with (
        HttpStore(address_policy=only_first_host, retry=QUICK) as store,
        pytest.raises(AccessDenied) as caught,
    ):
        store.get_url(start)
    message = str(caught.value)
    assert f"redirected to {target}" in message
    assert "resolves to 127.0.0.2 (loopback address)" in message
    assert http_files.count(path) == 1


def test_redirect_to_another_scheme_is_refused(store: HttpStore, http_files: HttpFiles) -> None:
    start = f"{http_files.base_url}/_redirect_to?url={quote('file:///etc/passwd', safe='')}"
    with pytest.raises(StoreError, match="only http:// and https:// URLs"):
        store.get_url(start)


def test_transport_checks_addresses_when_connecting(http_files: HttpFiles, served: str) -> None:
    """The connection itself is guarded too, so a DNS answer that changes after the store's
    check (DNS rebinding) still cannot reach a refused address."""
    with (
        httpx.Client(transport=checked_transport(refused_address_reason)) as client,
        pytest.raises(AddressRefused, match="loopback"),
    ):
        client.get(http_files.url(served))
    assert http_files.count(f"/{served}") == 0


def test_unknown_host_names_the_url() -> None:
    url = "https://no-such-host.invalid/photo.jpg"
    with HttpStore(retry=QUICK) as store, pytest.raises(StoreError) as caught:
        store.get_url(url)
    assert "cannot resolve host 'no-such-host.invalid'" in str(caught.value)
    assert url in str(caught.value)


def test_a_presigned_urls_query_stays_out_of_messages(
    store: HttpStore, http_files: HttpFiles
) -> None:
    url = http_files.url(f"_status/403/{uuid.uuid4().hex}") + "?X-Amz-Signature=s3cr3t"
    with pytest.raises(AccessDenied) as caught:
        store.get_url(url)
    assert "s3cr3t" not in str(caught.value)
    assert url.partition("?")[0] + "?..." in str(caught.value)


# -- limits: size and deadline -----------------------------------------------------------------
@pytest.fixture
def misbehaving() -> Iterator[MisbehavingServer]:
    with serve_misbehaving() as server:
        yield server


def test_a_content_length_over_the_cap_is_refused_unread_and_not_retried(
    store: HttpStore, misbehaving: MisbehavingServer
) -> None:
    path = f"announce-huge/{uuid.uuid4().hex}"
    with pytest.raises(ObjectTooLarge) as caught:
        store.get_url(misbehaving.url(path), ReadLimits(max_bytes=1000))
    message = str(caught.value)
    assert f"its Content-Length is {HUGE} bytes" in message
    assert "max_object_bytes (1000 bytes)" in message
    assert misbehaving.count(path) == 1


def test_a_body_without_a_length_is_cut_off_at_the_cap(
    store: HttpStore, misbehaving: MisbehavingServer
) -> None:
    path = f"unsized/200000/{uuid.uuid4().hex}"
    with pytest.raises(ObjectTooLarge, match="it sent more than 1000 bytes"):
        store.get_url(misbehaving.url(path), ReadLimits(max_bytes=1000))
    assert misbehaving.count(path) == 1
    within = f"unsized/900/{uuid.uuid4().hex}"
    assert store.get_url(misbehaving.url(within), ReadLimits(max_bytes=1000)) == b"\0" * 900


def test_a_trickling_server_is_cut_off_at_the_deadline_and_not_retried(
    store: HttpStore, misbehaving: MisbehavingServer
) -> None:
    """One byte every 0.2 s never trips the per-read timeout; the total deadline stops it."""
    path = f"trickle/100/0.2/{uuid.uuid4().hex}"
    with pytest.raises(DeadlineExceeded) as caught:
        store.get_url(misbehaving.url(path), ReadLimits(deadline_seconds=0.5))
    assert "fetch_deadline_seconds (0.5 s)" in str(caught.value)
    assert misbehaving.count(path) == 1


def test_a_server_that_stalls_is_cut_off_at_the_deadline_across_retries(
    misbehaving: MisbehavingServer,
) -> None:
    """A byte every 10 s: each read times out (the timeout shortened to the deadline), and no
    retry starts once the deadline has passed."""
    path = f"trickle/5/10/{uuid.uuid4().hex}"
    with (
        HttpStore(allow_private_addresses=True, retry=QUICK, timeout=30) as store,
        pytest.raises(DeadlineExceeded, match=r"last error: .*timed out") as caught,
    ):
        store.get_url(misbehaving.url(path), ReadLimits(deadline_seconds=0.5))
    assert "fetch_deadline_seconds (0.5 s)" in str(caught.value)
