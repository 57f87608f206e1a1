"""A real HTTP server over a temporary folder, with Range support and a few test routes.

Routes (``NAME`` is a file path under ``root``):

* ``/NAME``: the file, honouring ``Range: bytes=...`` (206 / 416) and HEAD;
* ``/_norange/NAME``: the file whole, ignoring Range (as some servers do);
* ``/_nohead/NAME``: the file, but HEAD answers 405;
* ``/_status/CODE/ANYTHING``: always answers ``CODE``;
* ``/_sleep/SECONDS/NAME``: the file after a pause;
* ``/_redirect/N/NAME``: N redirects (302) in a row, then the file;
* ``/_redirect_to?url=URL``: one redirect to URL.

Every request is recorded (method and path) so tests can count what reached the server.
"""

from __future__ import annotations

import email.utils
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, quote, unquote, urlsplit

import pytest


@dataclass
class HttpFiles:
    """What the ``http_files`` fixture gives: the served folder and its URLs."""

    root: Path
    port: int
    requests: list[tuple[str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, name: str) -> str:
        """The URL of ``name`` (a path under ``root``, or a test route)."""
        return f"{self.base_url}/{quote(name)}"

    def count(self, path: str) -> int:
        """How many requests (any method) reached ``path``."""
        with self.lock:
            return sum(1 for _, seen in self.requests if seen == path)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    files: HttpFiles  # set on the subclass the fixture makes

    def log_message(self, format: str, *args: object) -> None:
        pass  # keep the test output clean

    def do_HEAD(self) -> None:
        self._answer(body=False)

    def do_GET(self) -> None:
        self._answer(body=True)

    def _answer(self, *, body: bool) -> None:
        with self.files.lock:
            self.files.requests.append((self.command, urlsplit(self.path).path))
        parts = urlsplit(self.path)
        path = unquote(parts.path).lstrip("/")
        honour_range = True
        if path.startswith("_status/"):
            code = int(path.split("/")[1])
            return self._send(code, b"status route\n", body=body)
        if path.startswith("_redirect_to"):
            target = parse_qs(parts.query)["url"][0]
            return self._send(302, b"", body=body, headers={"Location": target})
        if path.startswith("_redirect/"):
            _, count, rest = path.split("/", 2)
            left = int(count) - 1
            target = f"/_redirect/{left}/{rest}" if left > 0 else f"/{rest}"
            return self._send(302, b"", body=body, headers={"Location": quote(target)})
        if path.startswith("_sleep/"):
            _, seconds, path = path.split("/", 2)
            time.sleep(float(seconds))
        if path.startswith("_norange/"):
            path, honour_range = path.removeprefix("_norange/"), False
        if path.startswith("_nohead/"):
            path = path.removeprefix("_nohead/")
            if not body:
                return self._send(405, b"", body=False)
        self._send_file(path, body=body, honour_range=honour_range)

    def _send_file(self, name: str, *, body: bool, honour_range: bool) -> None:
        root = self.files.root.resolve()
        target = (root / name).resolve()
        if root not in target.parents or not target.is_file():
            return self._send(404, b"not found\n", body=body)
        data = target.read_bytes()
        st = target.stat()
        headers = {
            "ETag": f'"{st.st_size}-{st.st_mtime_ns}"',
            "Last-Modified": email.utils.formatdate(st.st_mtime, usegmt=True),
            "Accept-Ranges": "bytes" if honour_range else "none",
            "Content-Type": "image/jpeg" if name.endswith(".jpg") else "application/octet-stream",
        }
        wanted = self.headers.get("Range")
        if not (honour_range and wanted and wanted.startswith("bytes=")):
            return self._send(200, data, body=body, headers=headers)
        first, _, last = wanted.removeprefix("bytes=").partition("-")
        if first == "":  # the last N bytes
            start, end = max(0, len(data) - int(last)), len(data) - 1
        else:
            start, end = int(first), min(int(last) if last else len(data) - 1, len(data) - 1)
        if start >= len(data) or start > end:
            headers["Content-Range"] = f"bytes */{len(data)}"
            return self._send(416, b"", body=body, headers=headers)
        headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
        self._send(206, data[start : end + 1], body=body, headers=headers)

    def _send(
        self, code: int, data: bytes, *, body: bool, headers: dict[str, str] | None = None
    ) -> None:
        self.send_response(code)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if body:
            self.wfile.write(data)


@pytest.fixture(scope="session")
def http_files(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HttpFiles]:
    """A threaded HTTP server on 127.0.0.1 serving a temporary folder, for the whole session."""
    files = HttpFiles(root=tmp_path_factory.mktemp("http_files"), port=0)
    handler = type("FilesHandler", (_Handler,), {"files": files})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)  # port 0: the OS picks a free one
    files.port = int(server.server_address[1])
    thread = threading.Thread(target=server.serve_forever, name="http_files", daemon=True)
    thread.start()
    try:
        yield files
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
