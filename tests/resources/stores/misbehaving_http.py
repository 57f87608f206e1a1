"""A real HTTP server that misbehaves on purpose, in a thread of the test process.

Routes (``NAME`` is free text, so that each test has paths of its own):

* ``/file/NAME``: the bytes put with :meth:`MisbehavingServer.put`;
* ``/announce-huge/NAME``: announces ``Content-Length: 2147483648``, sends 64 KiB, hangs up;
* ``/unsized/N/NAME``: N bytes with no Content-Length (the body ends when the server hangs up);
* ``/trickle/N/SECONDS/NAME``: announces N bytes and sends one every SECONDS.

Every request is counted by path, so tests can tell a response that was retried.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

HUGE = 2 * 1024**3


class MisbehavingServer:
    def __init__(self, port: int) -> None:
        self.port = port
        self.files: dict[str, bytes] = {}
        self.requests: Counter[str] = Counter()
        self.lock = threading.Lock()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/{path.lstrip('/')}"

    def put(self, name: str, data: bytes) -> str:
        """Serve ``data`` at ``/file/NAME``; returns its URL."""
        self.files[name] = data
        return self.url(f"file/{name}")

    def count(self, path: str) -> int:
        with self.lock:
            return self.requests["/" + path.lstrip("/")]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_state: MisbehavingServer  # set on the subclass that serve_misbehaving makes

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        path = unquote(urlsplit(self.path).path)
        with self.server_state.lock:
            self.server_state.requests[path] += 1
        route, _, rest = path.lstrip("/").partition("/")
        try:
            if route == "file" and rest in self.server_state.files:
                self._send(self.server_state.files[rest])
            elif route == "announce-huge":
                self._head(HUGE)
                self.wfile.write(b"\0" * 65536)
                self.close_connection = True
            elif route == "unsized":
                self._head(None)
                self.wfile.write(b"\0" * int(rest.split("/")[0]))
                self.close_connection = True
            elif route == "trickle":
                size, seconds = rest.split("/")[:2]
                self._trickle(int(size), float(seconds))
            else:
                self._send(b"not found\n", status=404)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client gave up: that is what the tests want

    def _head(self, length: int | None, status: int = 200) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "image/jpeg")
        if length is None:
            self.send_header("Connection", "close")
        else:
            self.send_header("Content-Length", str(length))
        self.end_headers()

    def _send(self, data: bytes, status: int = 200) -> None:
        self._head(len(data), status)
        self.wfile.write(data)

    def _trickle(self, size: int, seconds: float) -> None:
        self._head(size)
        for _ in range(size):
            self.wfile.write(b"\0")
            self.wfile.flush()
            time.sleep(seconds)


@contextmanager
def serve_misbehaving() -> Iterator[MisbehavingServer]:
    """The server on a free loopback port, for as long as the context lasts."""
    state = MisbehavingServer(port=0)
    handler = type("Handler", (_Handler,), {"server_state": state})
    http = ThreadingHTTPServer(("127.0.0.1", 0), handler)  # port 0: the OS picks a free one
    http.daemon_threads = True  # a trickling answer never holds up the shutdown
    state.port = int(http.server_address[1])
    thread = threading.Thread(target=http.serve_forever, name="misbehaving_http", daemon=True)
    thread.start()
    try:
        yield state
    finally:
        http.shutdown()
        http.server_close()
        thread.join(timeout=10)
