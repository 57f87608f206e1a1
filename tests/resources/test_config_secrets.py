"""Secrets never appear in the config, nor in its error messages: a secret put there by mistake
is refused by the name of its field, and a URL carrying credentials is refused without them."""

from __future__ import annotations

from pathlib import Path

import pytest

from resources.config import load_config
from tests.resources.test_config import error_for, source, write

LEAK = "leakcheck-s3cr3t"


@pytest.mark.parametrize(
    ("key", "names"),
    [
        ("secret_access_key", "secret_access_key_env"),
        ("aws_access_key_id", "access_key_id_env"),
        ("session_token", "session_token_env"),
        ("password", "secret_access_key_env"),
        ("api_credentials", "gcs_key_file_env"),
    ],
)
def test_a_secret_in_a_source_is_refused_without_its_value(
    tmp_path: Path, key: str, names: str
) -> None:
    message = error_for(tmp_path, source(**{key: LEAK}))
    assert f"sources[0].{key}" in message
    assert "environment variable" in message and names in message
    assert LEAK not in message


def test_a_secret_in_the_lake_mapping_is_refused_without_its_value(tmp_path: Path) -> None:
    lake = {"uri": "s3://lake-bucket/bl", "secret_access_key": LEAK, "region": 5}
    message = error_for(tmp_path, {"lake": lake})
    assert "lake.secret_access_key" in message and "secret_access_key_env" in message
    assert "lake.region" in message  # the other problem is still reported
    assert LEAK not in message


@pytest.mark.parametrize("field", ["secret_access_key_env", "session_token_env"])
def test_a_secret_value_in_an_env_field_is_refused_without_it(tmp_path: Path, field: str) -> None:
    others = {"access_key_id_env": "CAMS_KEY"} if field == "secret_access_key_env" else {}
    message = error_for(tmp_path, source(**{field: f"{LEAK}/a+b=", **others}))
    assert f"sources[0].{field}" in message
    assert "NAME of an environment variable" in message and "not its value" in message
    assert "part of Dagster names" not in message  # that hint is for source names
    assert "leakcheck" not in message


@pytest.mark.parametrize(
    ("body", "where"),
    [
        (source(endpoint_url="http://AKIAUSER:leakcheck@minio:9000/"), "sources[0].endpoint_url"),
        (source(endpoint_url="http://AKIAUSER:leak/check@minio:9000"), "sources[0].endpoint_url"),
        (source(uri="s3://AKIAUSER:leakcheck@cams/raw"), "sources[0].uri"),
        (
            source(uri=None, manifest="https://AKIAUSER:leakcheck@partner.example/m.jsonl"),
            "sources[0].manifest",
        ),
        ({"lake": "s3://AKIAUSER:leakcheck@lake-bucket/bl"}, "lake"),
        ({"lake": {"uri": "file://AKIAUSER:leakcheck@host/lake"}}, "lake.uri"),
        (
            {"lake": {"uri": "s3://lake/bl", "endpoint_url": "https://AKIAUSER:leakcheck@r2.x"}},
            "lake.endpoint_url",
        ),
    ],
)
def test_credentials_inside_a_url_are_refused_without_them(
    tmp_path: Path, body: dict[str, object], where: str
) -> None:
    message = error_for(tmp_path, body)
    assert f"{where}: " in message
    assert "access_key_id_env" in message and "secret_access_key_env" in message
    assert "leak" not in message and "AKIAUSER" not in message


def test_urls_without_credentials_are_accepted(tmp_path: Path) -> None:
    body = source(uri="s3://cams/raw/user@example", endpoint_url="http://[::1]:9000/s3")
    (cams,) = load_config(write(tmp_path, body)).sources
    assert (cams.uri, cams.endpoint_url) == ("s3://cams/raw/user@example", "http://[::1]:9000/s3")
