"""What a user sees when an S3 source is misconfigured or its server goes away mid-batch."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from tests.conftest import Project
from tests.images import encode, noise

BIN = Path(sys.executable).parent
KEY_VAR, SECRET_VAR = "CAMERA_BUCKET_KEY", "CAMERA_BUCKET_SECRET"


def configure(project: Project, seaweed: Any, bucket: str, **more: Any) -> None:
    project.write_config(
        uri=f"s3://{bucket}/images",
        endpoint_url=seaweed.endpoint,
        region="us-east-1",
        access_key_id_env=KEY_VAR,
        secret_access_key_env=SECRET_VAR,
        **more,
    )


def bucketlake(
    project: Project, *args: str, key: str, secret: str
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "DAGSTER_HOME"}
    env.update({KEY_VAR: key, SECRET_VAR: secret})
    return subprocess.run(
        [str(BIN / "bucketlake"), *args],
        cwd=project.root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.fixture
def bucket(seaweed: Any) -> str:
    name = seaweed.create_bucket(f"cams-{uuid.uuid4().hex[:12]}")
    seaweed.client().put_object(Bucket=name, Key="images/a/1.jpg", Body=encode(noise(8, 8), "JPEG"))
    return str(name)


def test_wrong_secret_is_named_and_never_printed(
    project: Project, seaweed: Any, bucket: str
) -> None:
    configure(project, seaweed, bucket)
    wrong = "definitely-not-the-secret-123"

    verify = bucketlake(project, "verify-source", "inbox", key=seaweed.access_key, secret=wrong)
    sync = bucketlake(project, "sync", key=seaweed.access_key, secret=wrong)

    for result in (verify, sync):
        assert result.returncode == 2
        assert "secret access key is wrong for this access key id" in result.stderr
        assert f"{SECRET_VAR}" in result.stderr
        assert wrong not in result.stdout + result.stderr
    assert "FAILED" in verify.stdout


def test_unknown_access_key_is_told_apart(project: Project, seaweed: Any, bucket: str) -> None:
    configure(project, seaweed, bucket)
    result = bucketlake(project, "verify-source", "inbox", key="AKIDNOBODYKNOWS", secret="x")
    assert result.returncode == 2
    assert "does not know this access key id" in result.stderr


def test_missing_bucket_and_the_good_case(project: Project, seaweed: Any, bucket: str) -> None:
    assert seaweed.secret_key
    configure(project, seaweed, "no-such-bucket-here")
    missing = bucketlake(
        project, "verify-source", "inbox", key=seaweed.access_key, secret=seaweed.secret_key
    )
    configure(project, seaweed, bucket)
    good = bucketlake(
        project, "verify-source", "inbox", key=seaweed.access_key, secret=seaweed.secret_key
    )

    assert missing.returncode == 2
    assert "the bucket 'no-such-bucket-here' does not exist" in missing.stderr
    assert good.returncode == 0, good.stderr
    assert f"s3://{bucket}/images/" in good.stdout and "sample: a/1.jpg" in good.stdout


def test_server_stopped_mid_batch_then_sync_heals_from_the_checkpoint(
    project: Project, seaweed: Any, bucket: str
) -> None:
    client = seaweed.client()
    for i in range(4):  # with a/1.jpg: five small images, the first checkpoint
        client.put_object(
            Bucket=bucket, Key=f"images/a/small_{i}.jpg", Body=encode(noise(8, 8, seed=i), "JPEG")
        )
    for i in range(8):  # then images that take a while to decode
        big = Image.linear_gradient("L").resize((5000, 5000)).rotate(i * 10)
        client.put_object(Bucket=bucket, Key=f"images/b/big_{i}.jpg", Body=encode(big, "JPEG"))
    configure(
        project, seaweed, bucket, checkpoint_rows=5, num_workers=1, max_image_pixels=30_000_000
    )
    env = {k: v for k, v in os.environ.items() if k != "DAGSTER_HOME"}
    env.update({KEY_VAR: seaweed.access_key, SECRET_VAR: seaweed.secret_key})
    first = subprocess.Popen(
        [str(BIN / "bucketlake"), "sync"],
        cwd=project.root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    checkpoint = project.root / "lake" / "dataset_items" / "inbox_000001"
    deadline = time.monotonic() + 120
    while not any(checkpoint.glob("*/part-00000.parquet")):
        assert first.poll() is None and time.monotonic() < deadline, "no checkpoint was written"
        time.sleep(0.02)
    seaweed.stop(hard=True)  # the server dies mid-batch
    try:
        output = first.communicate(timeout=240)[0]
    finally:
        seaweed.start()

    assert first.returncode == 1
    assert "inbox_000001: FAILED" in output
    assert "failed 5 attempts in a row" in output and seaweed.endpoint in output

    healed = bucketlake(project, "sync", key=seaweed.access_key, secret=seaweed.secret_key)

    assert healed.returncode == 0, healed.stdout + healed.stderr
    assert "1 unfinished batches to run again" in healed.stdout
    assert "inbox_000001: 13 items (13 ok), resumed 5 rows" in healed.stdout
