"""Config loading: errors name the field, the value and what is allowed; the embedded default."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from resources.config import load_config
from resources.errors import ConfigError


def write(tmp_path: Path, body: object) -> Path:
    path = tmp_path / "bucketlake.yaml"
    path.write_text(yaml.safe_dump(body) if not isinstance(body, str) else body, encoding="utf-8")
    return path


def error_for(tmp_path: Path, body: object) -> str:
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, body))
    return str(caught.value)


def source(**fields: object) -> dict[str, object]:
    return {"lake": "lake", "sources": [{"name": "cams", "uri": "inbox", **fields}]}


def test_a_valid_config_resolves_paths_against_its_folder(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, source(label_strategy="filename", batch_size=50)))
    (cams,) = config.sources
    assert (cams.label_strategy, cams.batch_size, cams.test_fraction) == ("filename", 50, 0.2)
    assert config.lake_uri == str(tmp_path / "lake")
    assert config.dagster_home_path == tmp_path / ".bucketlake/dagster_home"
    assert config.resolve("s3://bucket/prefix") == "s3://bucket/prefix"


def test_manifest_file_roots_resolve_against_the_configs_folder(tmp_path: Path) -> None:
    body = {
        "lake": "lake",
        "sources": [
            {"name": "m", "manifest": "lists/m.jsonl", "manifest_file_roots": ["photos", "/srv"]}
        ],
    }
    (m,) = load_config(write(tmp_path, body)).sources
    assert m.manifest_file_roots == [str(tmp_path / "photos"), "/srv"]


def test_unknown_label_strategy_names_field_value_and_allowed_values(tmp_path: Path) -> None:
    message = error_for(tmp_path, source(label_strategy="folders"))
    assert "sources[0].label_strategy" in message
    assert "'folders'" in message
    assert "'folder', 'split-folders', 'filename' or 'none'" in message
    assert str(tmp_path / "bucketlake.yaml") in message


def test_source_name_must_fit_dagster_names(tmp_path: Path) -> None:
    message = error_for(tmp_path, source(name="my-cams"))
    assert "sources[0].name" in message and "'my-cams'" in message
    assert "letters, digits and underscores only" in message


def test_the_name_of_linked_items_is_reserved(tmp_path: Path) -> None:
    message = error_for(tmp_path, source(name="linked"))
    assert "'linked' is reserved for the items that COCO imports link" in message
    assert load_config(write(tmp_path, source(name="linked_cams"))).sources[0].name


def test_unknown_key_is_refused(tmp_path: Path) -> None:
    message = error_for(tmp_path, source(batchsize=10))
    assert "sources[0].batchsize" in message and "unknown key" in message


def test_out_of_range_values(tmp_path: Path) -> None:
    message = error_for(tmp_path, source(test_fraction=1.5, batch_size=0))
    assert "sources[0].test_fraction" in message and "1.5" in message
    assert "sources[0].batch_size" in message


def test_min_batch_size_above_batch_size(tmp_path: Path) -> None:
    message = error_for(tmp_path, source(batch_size=10, min_batch_size=20))
    assert "min_batch_size (20) must not exceed batch_size (10)" in message


def test_missing_lake_and_duplicate_source_names(tmp_path: Path) -> None:
    assert "lake: Field required" in error_for(tmp_path, {"sources": []})
    twice = {"lake": "l", "sources": [{"name": "a", "uri": "x"}, {"name": "a", "uri": "y"}]}
    assert "'a' is used twice" in error_for(tmp_path, twice)


def test_not_yaml_and_not_a_mapping(tmp_path: Path) -> None:
    assert "not valid YAML" in error_for(tmp_path, "lake: [unclosed")
    assert "expected a mapping" in error_for(tmp_path, "- just\n- a list\n")


def test_bucketlake_config_must_name_a_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BUCKETLAKE_CONFIG", str(tmp_path / "nope.yaml"))
    with pytest.raises(ConfigError, match=r"BUCKETLAKE_CONFIG=.*nope\.yaml names no file"):
        load_config()


def test_bucketlake_config_points_elsewhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, source())
    monkeypatch.chdir(tmp_path.parent)
    monkeypatch.setenv("BUCKETLAKE_CONFIG", str(path))
    assert load_config().sources[0].name == "cams"


def test_no_config_file_gives_the_embedded_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("BUCKETLAKE_CONFIG", raising=False)
    config = load_config()
    assert config.is_embedded
    assert [s.name for s in config.sources] == ["inbox"]
    assert config.sources[0].uri == str(tmp_path / ".bucketlake/inbox")  # resolved already
    assert config.lake_uri == str(tmp_path / ".bucketlake/lake")
    assert config.dagster_home_path == tmp_path / ".bucketlake/dagster_home"
    assert not (tmp_path / ".bucketlake").exists()  # loading creates nothing


def alias_bomb(levels: int = 7) -> str:
    """The "billion laughs" shape: each level repeats the one before nine times."""
    lines = ['a0: &a0 ["x","x","x","x","x","x","x","x","x"]']
    for level in range(1, levels):
        lines.append(f"a{level}: &a{level} [" + ",".join([f"*a{level - 1}"] * 9) + "]")
    return "lake: lake\n" + "\n".join(lines) + "\n"


def test_a_yaml_alias_bomb_is_refused_with_a_short_message(tmp_path: Path) -> None:
    body = alias_bomb()
    assert len(body) < 400
    message = error_for(tmp_path, body)
    assert len(message) < 1000
    assert str(tmp_path / "bucketlake.yaml") in message
    assert "aliases" in message and "expands to more than" in message


def test_a_recursive_alias_is_refused(tmp_path: Path) -> None:
    message = error_for(tmp_path, "lake: &loop [lake, *loop]\n")
    assert "line 1, column 7 holds an alias of itself" in message


def test_deeply_nested_values_are_refused(tmp_path: Path) -> None:
    message = error_for(tmp_path, "lake: " + "[" * 5000 + "]" * 5000 + "\n")
    assert "values nest too deeply" in message


def test_aliases_that_share_settings_are_accepted(tmp_path: Path) -> None:
    body = (
        "lake: lake\n"
        "sources:\n"
        "  - {name: cams, uri: cams, <<: &shared {batch_size: 50, verify: header}}\n"
        "  - {name: phones, uri: phones, <<: *shared}\n"
    )
    config = load_config(write(tmp_path, body))
    assert [(s.batch_size, s.verify) for s in config.sources] == [(50, "header")] * 2


def test_long_values_and_many_problems_give_a_bounded_message(tmp_path: Path) -> None:
    many = {
        "lake": "lake",
        "sources": [{"name": f"s{i}", "uri": "x" * 5000, "batch_size": 0} for i in range(500)],
    }
    message = error_for(tmp_path, {**many, "sources": [*many["sources"], "y" * 100_000]})
    assert len(message) < 5000
    assert "sources[0].batch_size" in message
    assert "more problems" in message
    long_value = error_for(tmp_path, source(label_strategy="folders" + "s" * 100_000))
    assert "sources[0].label_strategy" in long_value and "'folderss" in long_value
    assert len(long_value) < 1000


def test_env_fields_say_they_take_a_variable_name(tmp_path: Path) -> None:
    message = error_for(tmp_path, source(access_key_id_env="1CAMS", secret_access_key_env="S"))
    assert "sources[0].access_key_id_env" in message
    assert "NAME of an environment variable" in message
    assert "part of Dagster names" not in message


def test_two_models_that_would_pre_tag_as_one_asset_are_refused(tmp_path: Path) -> None:
    model = {"task": "classification", "weights": "m.pt", "pretag": True}
    message = error_for(
        tmp_path,
        {
            "lake": "lake",
            "models": [
                {"name": "tag-a", "version": "1", **model},
                {"name": "tag_a", "version": "2", **model},
            ],
        },
    )
    assert "would both pre-tag as asset predictions_tag_a" in message


def test_embeddings_name_a_version_only_for_a_registered_model(tmp_path: Path) -> None:
    message = error_for(tmp_path, {"lake": "lake", "embeddings": {"model": "pool"}})
    assert "embeddings.model 'pool' needs embeddings.version" in message
    refused = error_for(
        tmp_path, {"lake": "lake", "embeddings": {"model": "default", "version": "1"}}
    )
    assert "embeddings.version applies to a registered model" in refused
