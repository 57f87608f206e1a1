"""The lake, the Dagster instance and the sources must not overlap: a source that holds the lake
would take the lake's own tables, commit markers and leases as new objects on every sync."""

from __future__ import annotations

from pathlib import Path

import pytest

from resources.config import load_config
from tests.resources.test_config import error_for, write


def one_source(
    lake: object, uri: str, dagster_home: str | None = None, endpoint_url: str | None = None
) -> dict[str, object]:
    """A config with the lake and one source ``cams`` (``endpoint_url`` is the source's)."""
    cams = {"name": "cams", "uri": uri, "endpoint_url": endpoint_url}
    body = {
        "lake": lake,
        "sources": [{k: v for k, v in cams.items() if v is not None}],
        "dagster_home": dagster_home,
    }
    return {k: v for k, v in body.items() if v is not None}


@pytest.mark.parametrize(
    ("lake", "uri", "relation"),
    [
        ("src/lake", "src", "lies inside"),
        ("src/lake", "./src/", "lies inside"),
        ("lake", "lake/inbox", "contains"),
        ("lake", "lake", "is the same place as"),
        ("s3://b/a/lake", "s3://b/a", "lies inside"),
        ("s3://b/a/lake/", "s3://b/a/", "lies inside"),
        ("s3://b/lake", "s3://b", "lies inside"),
        ("gs://b/a", "gs://b/a/inbox", "contains"),
        ({"uri": "s3://b/a/lake", "region": "eu-west-1"}, "s3://b/a", "lies inside"),
    ],
)
def test_a_lake_overlapping_a_source_is_refused(
    tmp_path: Path, lake: object, uri: str, relation: str
) -> None:
    message = error_for(tmp_path, one_source(lake, uri))
    assert f"{relation} source 'cams'" in message
    assert "move the lake" in message


def test_the_message_names_both_places(tmp_path: Path) -> None:
    message = error_for(tmp_path, one_source("src/lake", f"file://{tmp_path}/src"))
    assert f"the lake ({tmp_path / 'src/lake'})" in message
    assert f"source 'cams' (file://{tmp_path}/src)" in message


def test_a_lake_linked_into_a_source_is_refused(tmp_path: Path) -> None:
    (tmp_path / "src/lake").mkdir(parents=True)
    (tmp_path / "lake").symlink_to(tmp_path / "src/lake")
    assert "lies inside source 'cams'" in error_for(tmp_path, one_source("lake", "src"))


@pytest.mark.parametrize(
    ("lake", "uri", "endpoint_url"),
    [
        ("srcx", "src", None),
        ("s3://b/ab", "s3://b/a", None),
        ("s3://other/a/lake", "s3://b/a", None),
        ("gs://b/a/lake", "s3://b/a", None),
        ("s3://b/a/lake", "s3://b/a", "http://127.0.0.1:9000"),
    ],
)
def test_places_that_only_look_alike_are_accepted(
    tmp_path: Path, lake: str, uri: str, endpoint_url: str | None
) -> None:
    body = one_source(lake, uri, endpoint_url=endpoint_url)
    config = load_config(write(tmp_path, body))  # no ConfigError
    assert config.sources[0].uri == config.resolve(uri)


@pytest.mark.parametrize("dagster_home", ["inbox/.dagster", "inbox"])
def test_the_dagster_instance_inside_a_source_is_refused(tmp_path: Path, dagster_home: str) -> None:
    message = error_for(tmp_path, one_source("lake", "inbox", dagster_home=dagster_home))
    assert f"dagster_home ({tmp_path / dagster_home})" in message
    assert f"source 'cams' ({tmp_path / 'inbox'})" in message
    assert "set dagster_home to a folder outside the source" in message
