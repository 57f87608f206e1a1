"""``bucketlake verify-source`` names what is wrong with GCS and manifest sources too."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.conftest import Project

BIN = Path(sys.executable).parent


def verify(project: Project, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if k != "DAGSTER_HOME"}
    environment.update(env)
    return subprocess.run(
        [str(BIN / "bucketlake"), "verify-source", "inbox"],
        cwd=project.root,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_gcs_missing_bucket(project: Project, fake_gcs: Any) -> None:
    project.write_config(uri="gs://no-such-bucket-anywhere/images")
    result = verify(project, **fake_gcs.env())
    assert result.returncode == 2
    assert "FAILED" in result.stdout
    assert "no-such-bucket-anywhere" in result.stderr and "does not exist" in result.stderr


def test_manifest_that_is_not_there(project: Project, http_files: Any) -> None:
    project.write_config(
        uri=None, manifest=http_files.url("nowhere/manifest.jsonl"), allow_private_addresses=True
    )
    result = verify(project)
    assert result.returncode == 2
    assert "nowhere/manifest.jsonl" in result.stderr


def test_manifest_on_loopback_is_refused_unless_allowed(project: Project, http_files: Any) -> None:
    (http_files.root / "m.jsonl").write_text("")
    project.write_config(uri=None, manifest=http_files.url("m.jsonl"))
    result = verify(project)
    assert result.returncode == 2
    assert "allow_private_addresses: true" in result.stderr
