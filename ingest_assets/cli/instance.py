"""The Dagster instance every entry point shares (DESIGN §3). As everywhere in Dagster, an
explicit ``DAGSTER_HOME`` wins; the config's ``dagster_home`` applies when it is unset."""

from __future__ import annotations

import contextlib
import fcntl
import os
import sys
from collections.abc import Iterator
from pathlib import Path

from dagster import DagsterInstance

from ingest_assets.partitions import BATCHES
from resources.config import BucketlakeConfig

#: Held while an entry point makes the instance (see :func:`creation_lock`).
LOCK_FILE = ".bucketlake-instance.lock"

HEADER = "# The Dagster instance of this Bucketlake project"
DAGSTER_YAML = (
    HEADER
    + """ (SQLite storage in this folder).
# Run-queue limits fit one machine: batches run side by side as separate runs, each using
# several threads inside. Raise the limits on a bigger machine.
run_queue:
  max_concurrent_runs: {max_runs}
  tag_concurrency_limits:
    - key: "bucketlake/source"
      value:
        applyLimitPerUniqueValue: true
      limit: {max_runs}
{monitoring}telemetry:
  enabled: false
"""
)

#: Added to the dagster.yaml of an instance made before Bucketlake set these.
MONITORING_YAML = """\
# Runs that never start (or never finish cancelling) are failed by the daemon.
run_monitoring:
  enabled: true
  start_timeout_seconds: 300
  cancel_timeout_seconds: 300
  poll_interval_seconds: 30
# A run whose worker crashed is retried by the daemon; a step that failed is not (its own
# retry policy already ran, and the datapool sensor decides about the batch).
run_retries:
  enabled: true
  max_retries: 2
  retry_on_asset_or_op_failure: false
"""


def dagster_home(config: BucketlakeConfig) -> Path:
    """The instance folder in effect: ``$DAGSTER_HOME`` if set, else the config's
    ``dagster_home``. When both are set and differ, a one-line warning names both."""
    named = os.environ.get("DAGSTER_HOME") or None
    if named is None:
        return config.dagster_home_path
    home = Path(named).absolute()
    if config.names_dagster_home and home != config.dagster_home_path.absolute():
        print(
            f"bucketlake: warning: DAGSTER_HOME={named} and the config's dagster_home="
            f"{config.dagster_home_path} differ; using DAGSTER_HOME",
            file=sys.stderr,
        )
    return home


def ensure_dagster_home(config: BucketlakeConfig) -> Path:
    """The instance folder in effect, created with its ``dagster.yaml`` where it has none."""
    home = dagster_home(config)
    with creation_lock(home):
        return _write_settings(home)


def _write_settings(home: Path) -> Path:
    settings = home / "dagster.yaml"
    if not settings.exists():
        max_runs = max(1, min(4, (os.cpu_count() or 2) // 2))
        text = DAGSTER_YAML.format(max_runs=max_runs, monitoring=MONITORING_YAML)
        settings.write_text(text, encoding="utf-8")
        return home
    text = settings.read_text(encoding="utf-8")
    if text.startswith(HEADER) and "run_monitoring:" not in text:  # one Bucketlake wrote
        settings.write_text(text.rstrip("\n") + "\n" + MONITORING_YAML, encoding="utf-8")
    return home


@contextlib.contextmanager
def creation_lock(home: Path) -> Iterator[None]:
    """Hold the instance folder's creation lock (other processes wait): two entry points
    starting at once on a fresh folder would both write ``dagster.yaml`` and both create and
    stamp Dagster's SQLite schema, leaving it with two migration heads."""
    home.mkdir(parents=True, exist_ok=True)
    with open(home / LOCK_FILE, "a+b") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def open_instance(config: BucketlakeConfig) -> DagsterInstance:
    """The instance in effect, its folder, settings and storage schema made first (under the
    creation lock); sets ``DAGSTER_HOME`` for the run processes started from here."""
    home = dagster_home(config)
    with creation_lock(home):
        _write_settings(home)
        os.environ["DAGSTER_HOME"] = str(home)
        instance = DagsterInstance.get()
        # Touch each storage, so that a fresh one's schema is made while the lock is held.
        instance.get_runs(limit=1)
        instance.get_dynamic_partitions(BATCHES)
        instance.all_instigator_state()
    return instance
