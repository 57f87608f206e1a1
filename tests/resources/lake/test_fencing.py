"""Fenced writers, on every lake store: a writer paused past its lease (SIGSTOP) and taken over
by a second writer that commits finds, once resumed, that it may not commit; the second
writer's table stays whole and readable. Paused before its commit (its heartbeat finds the
lease gone) and inside its commit, after its lease check passed (the conditional marker write
refuses)."""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from resources.errors import LeaseHeld
from resources.lake.tables import Lake
from resources.stores.open import open_store
from tests.resources.lake.paused_writer import ASSET, PARTITION, SCHEMA, table
from tests.resources.stores.test_contract import GCS_VARIABLES

REPO_ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(params=["local", "s3", "gcs"])
def lake_uri(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    if request.param == "local":
        yield str(tmp_path / "lake")
        return
    if request.param == "s3":
        env = request.getfixturevalue("seaweed").env()
        uri = f"s3://{request.getfixturevalue('s3_bucket')}/lake-{uuid.uuid4().hex[:8]}"
    else:
        for variable in GCS_VARIABLES:
            monkeypatch.delenv(variable, raising=False)
        env = request.getfixturevalue("fake_gcs").env()
        uri = f"gs://{request.getfixturevalue('gcs_bucket')}/lake-{uuid.uuid4().hex[:8]}"
    for variable, value in env.items():
        monkeypatch.setenv(variable, value)
    yield uri


class PausedWriter:
    def __init__(self, uri: str, point: str, fingerprint: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.resources.lake.paused_writer", uri, point, fingerprint],
            cwd=REPO_ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def expect(self, line: str) -> str:
        assert self.process.stdout is not None
        got = self.process.stdout.readline().strip()
        assert got.startswith(line), f"the first writer said {got!r}, not {line!r}"
        return got

    def resume(self) -> str:
        os.kill(self.process.pid, signal.SIGCONT)
        out, _ = self.process.communicate("go\n", timeout=60)
        assert self.process.returncode == 0
        return out.strip().splitlines()[-1]

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.communicate()


def stop_outside_its_lock(pid: int, lake_uri: str) -> None:
    """SIGSTOP the writer. On a local lake, while this holds the lease folder's lock, so the
    writer is not stopped inside a conditional heartbeat: that would block the folder for good
    (its conditional writes then fail after a bounded wait, as test_local checks)."""
    if "://" in lake_uri:
        os.kill(pid, signal.SIGSTOP)
        return
    fd = os.open(Path(lake_uri) / ASSET / PARTITION, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.kill(pid, signal.SIGSTOP)
    finally:
        os.close(fd)


def take_over_and_commit(lake: Lake, fingerprint: str) -> None:
    """The second writer: waits out the paused writer's lease, then writes and commits."""
    for _ in range(200):
        writer = lake.writer(ASSET, PARTITION, fingerprint=fingerprint, run_id="second")
        writer.lease.stale_after = 0.5  # judged by the successor: the paused one beats no more
        try:
            with writer:
                assert writer.lease.took_over is not None
                assert writer.lease.took_over.owner == "run first"
                # The same fingerprint resumes the paused writer's chunk (inputs 0-5).
                writer.write_chunk(table("second", 7), input_end=writer.resume_from + 7)
                writer.commit(SCHEMA)
                return
        except LeaseHeld:
            time.sleep(0.05)
    raise AssertionError("the second writer never took over the paused writer's lease")


@pytest.mark.parametrize("fingerprint", ["same", "other"])
@pytest.mark.parametrize("point", ["write", "commit"])
def test_a_paused_writer_taken_over_cannot_commit_over_its_successor(
    lake_uri: str, point: str, fingerprint: str
) -> None:
    first = PausedWriter(lake_uri, point, "fp-first")
    try:
        first.expect("paused")
        stop_outside_its_lock(first.process.pid, lake_uri)
        lake = Lake(open_store(lake_uri))
        take_over_and_commit(lake, "fp-first" if fingerprint == "same" else "fp-second")
        second = lake.read_table(ASSET, PARTITION)

        outcome = first.resume()
    finally:
        first.close()

    assert outcome.startswith("refused:"), outcome
    assert "nothing was committed by this run" in outcome
    commit = lake.read_commit(ASSET, PARTITION)
    assert commit is not None and commit.run_id == "second"
    assert lake.read_table(ASSET, PARTITION).equals(second)
    resumed = ["first"] * 5 if fingerprint == "same" else []
    assert second.column("made_by").to_pylist() == resumed + ["second"] * 7
    assert all(lake.store.exists(f"{ASSET}/{PARTITION}/{f['path']}") for f in commit.files)
    assert lake.committed_partitions(ASSET) == [PARTITION]
