"""The Dagster instance every entry point shares (DESIGN §3): ``dagster_home`` of the config."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from dagster import DagsterInstance

from ingest_assets.config import BucketlakeConfig

DAGSTER_YAML = """\
# The Dagster instance of this Bucketlake project (SQLite storage in this folder).
# Run-queue limits fit one machine: batches run side by side as separate runs, each using
# several threads inside. Raise the limits on a bigger machine.
run_queue:
  max_concurrent_runs: {max_runs}
  tag_concurrency_limits:
    - key: "bucketlake/source"
      value:
        applyLimitPerUniqueValue: true
      limit: {max_runs}
telemetry:
  enabled: false
"""


def ensure_dagster_home(config: BucketlakeConfig) -> Path:
    """Create the instance folder with its ``dagster.yaml`` if it does not exist yet."""
    home = config.dagster_home_path
    home.mkdir(parents=True, exist_ok=True)
    settings = home / "dagster.yaml"
    if not settings.exists():
        max_runs = max(1, min(4, (os.cpu_count() or 2) // 2))
        settings.write_text(DAGSTER_YAML.format(max_runs=max_runs), encoding="utf-8")
    return home


def open_instance(config: BucketlakeConfig) -> DagsterInstance:
    """The project's instance; sets ``DAGSTER_HOME`` for child processes, warning when the
    environment named another one."""
    home = ensure_dagster_home(config)
    current = os.environ.get("DAGSTER_HOME")
    if current and Path(current).absolute() != home.absolute():
        print(
            f"bucketlake: warning: DAGSTER_HOME={current} but this project's instance is {home} "
            "(the config's dagster_home); using the project's instance",
            file=sys.stderr,
        )
    os.environ["DAGSTER_HOME"] = str(home)
    return DagsterInstance.get()
