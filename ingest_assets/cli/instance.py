"""The Dagster instance every entry point shares (DESIGN §3). As everywhere in Dagster, an
explicit ``DAGSTER_HOME`` wins; the config's ``dagster_home`` applies when it is unset."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from dagster import DagsterInstance

from resources.config import BucketlakeConfig

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
    home.mkdir(parents=True, exist_ok=True)
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


def open_instance(config: BucketlakeConfig) -> DagsterInstance:
    """The instance in effect; sets ``DAGSTER_HOME`` for the run processes started from here."""
    home = ensure_dagster_home(config)
    os.environ["DAGSTER_HOME"] = str(home)
    return DagsterInstance.get()
