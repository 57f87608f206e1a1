"""ManifestStore: parsing JSONL and CSV manifests, listing entries, fetching what they name."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from resources.errors import (
    AccessDenied,
    ObjectChanged,
    ObjectNotFound,
    ObjectTooLarge,
    StoreError,
)
from resources.stores.base import ReadLimits
from resources.stores.manifest import ManifestStore
from resources.stores.manifest_parse import InvalidManifest, parse_manifest
from resources.stores.open import open_source_store
from resources.stores.options import StorageOptions
from resources.stores.retry import RetryPolicy
from tests.conftest import Project
from tests.servers.http import HttpFiles

QUICK = RetryPolicy(max_attempts=2, backoff_factor=0.001, backoff_max=0.001)
ALLOW_PRIVATE = StorageOptions(allow_private_addresses=True)


def write_jsonl(path: Path, *records: dict[str, Any]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


@pytest.fixture
def images(tmp_path: Path) -> Path:
    """A folder with three small 'images' whose bytes name them."""
    folder = tmp_path / "images"
    (folder / "sub").mkdir(parents=True)
    for name in ("a.jpg", "b.jpg", "sub/c.jpg"):
        (folder / name).write_bytes(f"bytes of {name}".encode())
    return folder


@pytest.fixture
def open_manifest() -> Iterator[Any]:
    """Opens ManifestStores and closes them when the test ends."""
    opened: list[ManifestStore] = []

    def make(uri: str | Path, options: StorageOptions | None = None) -> ManifestStore:
        store = ManifestStore(str(uri), options, retry=QUICK)
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()


# -- parsing -------------------------------------------------------------------------------------
def test_jsonl_entries_with_metadata_and_default_reference_ids() -> None:
    data = b"\n".join(
        [
            b'{"image_location": "https://cdn.example.com/cats/1.jpg?sig=x",'
            b' "metadata": {"b": 2, "a": 1}}',
            b"",
            b'{"image_location": "s3://bucket/dogs/2.jpg", "reference_id": "dog-2"}',
            b'{"image_location": "gs://bucket/birds/3.jpg"}',
            b'{"image_location": "file:///data/my%20cats/4.jpg"}',
            b'{"image_location": "/data/plain/5.jpg", "size": 123}',
        ]
    )
    entries = parse_manifest(data, "items.jsonl")
    assert [(e.reference_id, e.location) for e in entries] == [
        ("cats/1.jpg", "https://cdn.example.com/cats/1.jpg?sig=x"),
        ("dog-2", "s3://bucket/dogs/2.jpg"),
        ("birds/3.jpg", "gs://bucket/birds/3.jpg"),
        ("data/my cats/4.jpg", "file:///data/my%20cats/4.jpg"),
        ("data/plain/5.jpg", "file:///data/plain/5.jpg"),
    ]
    assert entries[0].metadata == '{"a":1,"b":2}'  # canonical: sorted keys, no spaces
    assert entries[1].metadata is None
    assert [e.size for e in entries] == [0, 0, 0, 0, 123]


def test_csv_entries_with_a_json_metadata_column() -> None:
    data = (
        "\ufeffimage_location,reference_id,metadata,size\r\n"
        'https://cdn.example.com/x.jpg,x,"{""camera"": ""left"", ""n"": 3}",10\r\n'
        "s3://bucket/y.jpg,,,\r\n"
    ).encode()
    entries = parse_manifest(data, "s3://bucket/items.csv")
    assert [(e.reference_id, e.metadata, e.size) for e in entries] == [
        ("x", '{"camera":"left","n":3}', 10),
        ("y.jpg", None, 0),
    ]


def test_json_array_manifest() -> None:
    data = b'[{"image_location": "s3://b/1.jpg"}, {"image_location": "s3://b/2.jpg"}]'
    assert [e.reference_id for e in parse_manifest(data, "items.json")] == ["1.jpg", "2.jpg"]


def test_relative_paths_resolve_against_a_local_manifest(tmp_path: Path) -> None:
    entry = parse_manifest(b'{"image_location": "imgs/a.jpg"}', "m.jsonl", base=tmp_path)[0]
    assert entry.reference_id == "imgs/a.jpg"
    assert entry.location == "file://" + quote(str(tmp_path / "imgs/a.jpg"))


def test_relative_paths_are_refused_in_a_remote_manifest() -> None:
    data = b'{"image_location": "s3://b/0.jpg"}\n{"image_location": "imgs/1.jpg"}\n'
    with pytest.raises(InvalidManifest) as caught:
        parse_manifest(data, "https://example.com/m.jsonl")
    assert str(caught.value).startswith(
        "manifest https://example.com/m.jsonl, line 2: field 'image_location': 'imgs/1.jpg' is a "
        "relative path"
    )


def test_repeated_identical_entries_are_one() -> None:
    line = b'{"image_location": "s3://b/1.jpg", "metadata": {"k": 1}}\n'
    assert len(parse_manifest(line * 3, "m.jsonl")) == 1


@pytest.mark.parametrize(
    ("name", "text", "where", "field", "problem"),
    [
        (
            "m.jsonl",
            '{"image_location": "s3://b/1.jpg"}\n{"reference_id": "x"}\n',
            "line 2",
            "'image_location'",
            "missing; every entry needs",
        ),
        (
            "m.jsonl",
            '{"image_location": "s3://b/1.jpg"}\n{"image_location": \n',
            "line 2",
            "",
            "not valid JSON",
        ),
        ("m.jsonl", '["s3://b/1.jpg"]\n', "record 1", "", "not a JSON object"),
        ("m.jsonl", '"s3://b/1.jpg"\n', "line 1", "", "not a JSON object"),
        (
            "m.jsonl",
            '{"image_location": "s3://b/1.jpg", "metadata": [1, 2]}\n',
            "line 1",
            "'metadata'",
            "must be a JSON object",
        ),
        (
            "m.jsonl",
            '{"image_location": "s3://b/1.jpg", "reference_id": "x"}\n'
            '{"image_location": "s3://b/2.jpg", "reference_id": "x"}\n',
            "line 2",
            "'reference_id'",
            "already used by line 1",
        ),
        (
            "m.jsonl",
            '{"image_location": "ftp://host/1.jpg"}\n',
            "line 1",
            "'image_location'",
            "unsupported scheme 'ftp'",
        ),
        (
            "m.jsonl",
            '{"image_location": "s3://b/1.jpg", "reference_id": "../../etc/passwd"}\n',
            "line 1",
            "'reference_id'",
            "not a usable key",
        ),
        (
            "m.jsonl",
            '{"image_location": "s3://b/1.jpg", "size": -1}\n',
            "line 1",
            "'size'",
            "whole number",
        ),
        (
            "m.csv",
            "location,reference_id\ns3://b/1.jpg,x\n",
            "line 1 (header)",
            "'image_location'",
            "no image_location column",
        ),
        (
            "m.csv",
            'image_location,metadata\ns3://b/1.jpg,"{bad"\n',
            "row 1 (line 2)",
            "'metadata'",
            "not valid JSON",
        ),
        (
            "m.csv",
            "image_location,metadata\ns3://b/1.jpg,[1]\n",
            "row 1 (line 2)",
            "'metadata'",
            "must be a JSON object",
        ),
        (
            "m.csv",
            "image_location\ns3://b/1.jpg\n,\n",
            "row 2 (line 3)",
            "",
            "more values than the header",
        ),
        (
            "m.csv",
            "image_location,size\ns3://b/1.jpg,12kb\n",
            "row 1 (line 2)",
            "'size'",
            "whole number",
        ),
    ],
)
def test_bad_manifests_name_file_record_and_field(
    tmp_path: Path,
    open_manifest: Any,
    name: str,
    text: str,
    where: str,
    field: str,
    problem: str,
) -> None:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    with pytest.raises(InvalidManifest) as caught:
        open_manifest(path).list_page()
    message = str(caught.value)
    assert message.startswith(f"manifest {path}, {where}: ")
    assert f"field {field}: " in message if field else "field" not in message
    assert problem in message


def test_unsupported_extension_is_refused_before_reading(tmp_path: Path) -> None:
    with pytest.raises(InvalidManifest, match=r"unsupported extension '\.txt'.*\.jsonl, .*\.csv"):
        ManifestStore(str(tmp_path / "items.txt"))


def test_missing_manifest_is_not_found(tmp_path: Path, open_manifest: Any) -> None:
    path = tmp_path / "absent.jsonl"
    with pytest.raises(ObjectNotFound, match="the manifest file does not exist"):
        open_manifest(path).list_page()


# -- listing -------------------------------------------------------------------------------------
def test_listing_is_sorted_paged_and_carries_metadata(tmp_path: Path, open_manifest: Any) -> None:
    keys = [f"img-{n:02d}" for n in range(25)]
    records: list[dict[str, Any]] = [
        {"image_location": f"s3://b/{k}.jpg", "reference_id": k} for k in reversed(keys)
    ]
    records[0]["metadata"] = {"label": "cat"}
    path = write_jsonl(tmp_path / "m.jsonl", *records)
    os.utime(path, (1_700_000_000, 1_700_000_000))
    store = open_manifest(path)

    first = store.list_page(page_size=10)
    assert [o.key for o in first] == keys[:10]
    assert [o.key for o in store.list_page(start_after="img-09", page_size=10)] == keys[10:20]
    assert [o.key for o in store.list_page(start_after="img-19", page_size=10)] == keys[20:]
    assert store.list_page(start_after="img-24") == []
    assert [o.key for page in store.list_objects(page_size=7) for o in page] == keys
    assert [o.key for o in store.list_page(prefix="img-1")] == keys[10:20]
    assert [o.key for o in store.list_page(prefix="img-1", start_after="img-15")] == keys[16:20]

    last = store.list_page(start_after="img-23")[0]
    assert last.metadata == '{"label":"cat"}'
    assert last.last_modified == datetime.fromtimestamp(1_700_000_000, tz=UTC)
    assert last.content_type == "image/jpeg"
    assert store.uri("img-24") == "s3://b/img-24.jpg"


def test_change_token_follows_location_and_metadata(tmp_path: Path, open_manifest: Any) -> None:
    path = tmp_path / "m.jsonl"

    def tokens(*records: dict[str, Any]) -> dict[str, str]:
        write_jsonl(path, *records)
        return {o.key: o.change_token for o in open_manifest(path).list_page()}

    a = {"image_location": "s3://b/a.jpg", "metadata": {"label": "cat", "n": 1}}
    b = {"image_location": "s3://b/b.jpg"}
    before = tokens(a, b)
    assert tokens(b, {**a, "metadata": {"n": 1, "label": "cat"}}) == before  # same content
    relabelled = tokens({**a, "metadata": {"label": "dog", "n": 1}}, b)
    assert relabelled["a.jpg"] != before["a.jpg"]
    assert relabelled["b.jpg"] == before["b.jpg"]
    moved = tokens(a, {"image_location": "s3://other/b.jpg", "reference_id": "b.jpg"})
    assert moved["b.jpg"] != before["b.jpg"]
    assert len(before["a.jpg"]) == 16


def test_manifest_is_reread_at_the_start_of_each_listing_pass(
    tmp_path: Path, open_manifest: Any
) -> None:
    path = write_jsonl(tmp_path / "m.jsonl", {"image_location": "s3://b/a.jpg"})
    store = open_manifest(path)
    assert [o.key for o in store.list_page()] == ["a.jpg"]
    write_jsonl(path, {"image_location": "s3://b/a.jpg"}, {"image_location": "s3://b/b.jpg"})
    assert store.list_page(start_after="a.jpg") == []  # a pass in progress keeps its snapshot
    assert [o.key for o in store.list_page()] == ["a.jpg", "b.jpg"]  # a new pass sees the change


# -- fetching ------------------------------------------------------------------------------------
def test_fetches_file_uri_plain_and_relative_paths(
    images: Path, tmp_path: Path, open_manifest: Any
) -> None:
    path = write_jsonl(
        tmp_path / "m.jsonl",
        {"image_location": "file://" + quote(str(images / "a.jpg")), "reference_id": "a"},
        {"image_location": str(images / "b.jpg"), "reference_id": "b"},
        {"image_location": "images/sub/c.jpg", "reference_id": "c"},
    )
    store = open_manifest(path)
    assert store.get("a") == b"bytes of a.jpg"
    assert store.get("b") == b"bytes of b.jpg"
    assert store.get("c") == b"bytes of sub/c.jpg"
    assert store.get_range("c", 9, 3) == b"sub"
    head = store.head("c")
    assert head.size == len(b"bytes of sub/c.jpg")
    assert head.change_token == store.list_page(start_after="b")[0].change_token
    assert store.exists("a")
    assert not store.exists("nope")


def test_a_pinned_read_of_an_entry_changed_in_the_manifest_is_object_changed(
    images: Path, tmp_path: Path, open_manifest: Any
) -> None:
    entry = {"image_location": str(images / "a.jpg"), "reference_id": "a"}
    path = write_jsonl(tmp_path / "m.jsonl", {**entry, "metadata": {"label": "cat"}})
    claimed = open_manifest(path).list_page()[0].change_token
    write_jsonl(path, {**entry, "metadata": {"label": "dog"}})  # relabelled after the claim

    store = open_manifest(path)  # an ingest opens the manifest afresh
    with pytest.raises(ObjectChanged, match="no longer the version"):
        store.get("a", if_token=claimed)
    assert store.get("a", if_token=store.head("a").change_token) == b"bytes of a.jpg"


def test_entry_whose_file_is_gone(tmp_path: Path, open_manifest: Any) -> None:
    path = write_jsonl(tmp_path / "m.jsonl", {"image_location": str(tmp_path / "gone.jpg")})
    store = open_manifest(path)
    assert [o.key for o in store.list_page()] == [str(tmp_path / "gone.jpg").lstrip("/")]
    with pytest.raises(ObjectNotFound):
        store.get(store.list_page()[0].key)


def test_unknown_key_is_not_found(tmp_path: Path, open_manifest: Any) -> None:
    store = open_manifest(write_jsonl(tmp_path / "m.jsonl", {"image_location": "s3://b/a.jpg"}))
    with pytest.raises(ObjectNotFound, match=r"no entry 'b\.jpg'"):
        store.get("b.jpg")


@pytest.fixture
def served(http_files: HttpFiles) -> str:
    """A folder name under ``http_files.root``, unique to the test, holding two images."""
    folder = uuid.uuid4().hex
    (http_files.root / folder).mkdir()
    for name in ("x.jpg", "y.jpg"):
        (http_files.root / folder / name).write_bytes(f"served {name}".encode())
    return folder


def test_fetches_https_locations_and_a_manifest_over_http(
    http_files: HttpFiles, served: str, open_manifest: Any
) -> None:
    write_jsonl(
        http_files.root / served / "m.jsonl",
        {"image_location": http_files.url(f"{served}/x.jpg"), "metadata": {"split": "train"}},
        {"image_location": http_files.url(f"{served}/y.jpg"), "reference_id": "y"},
    )
    store = open_manifest(http_files.url(f"{served}/m.jsonl"), ALLOW_PRIVATE)
    listed = store.list_page()
    assert [o.key for o in listed] == [f"{served}/x.jpg", "y"]
    manifest_mtime = (http_files.root / served / "m.jsonl").stat().st_mtime
    assert abs(listed[0].last_modified.timestamp() - manifest_mtime) < 1
    assert store.get("y") == b"served y.jpg"
    assert store.get_range(f"{served}/x.jpg", 7, 1) == b"x"
    assert store.head("y").size == len(b"served y.jpg")
    assert store.head("y").content_type == "image/jpeg"


def test_https_locations_refuse_private_addresses_by_default(
    http_files: HttpFiles, served: str, tmp_path: Path, open_manifest: Any
) -> None:
    url = http_files.url(f"{served}/x.jpg")
    store = open_manifest(write_jsonl(tmp_path / "m.jsonl", {"image_location": url}))
    key = store.list_page()[0].key
    with pytest.raises(AccessDenied, match="allow_private_addresses: true"):
        store.get(key)
    assert http_files.count(f"/{served}/x.jpg") == 0


# -- local files: only under the manifest's file roots -----------------------------------------
@pytest.fixture
def hostile_manifest(tmp_path: Path) -> Path:
    """A manifest in ``tmp_path/shared`` with one good entry and three that lead out of its
    folder: an absolute file:// URI, a relative path climbing out, and a link to a file
    outside."""
    folder, outside = tmp_path / "shared", tmp_path / "private"
    folder.mkdir()
    outside.mkdir()
    (folder / "good.jpg").write_bytes(b"good bytes")
    (outside / "secret.jpg").write_bytes(b"secret bytes")
    (folder / "link.jpg").symlink_to(outside / "secret.jpg")
    climb = "../" * len(folder.parts)
    return write_jsonl(
        folder / "m.jsonl",
        {"image_location": "good.jpg", "reference_id": "good"},
        {"image_location": "file:///etc/passwd", "reference_id": "passwd"},
        {"image_location": f"{climb}etc/passwd", "reference_id": "climb"},
        {"image_location": "link.jpg", "reference_id": "link"},
    )


def test_local_files_outside_the_manifests_folder_are_refused(
    hostile_manifest: Path, open_manifest: Any
) -> None:
    store = open_manifest(hostile_manifest)
    assert store.get("good") == b"good bytes"
    for key in ("passwd", "climb", "link"):
        with pytest.raises(AccessDenied, match="manifest_file_roots") as caught:
            store.get(key)
        assert f"the manifest's own folder, {hostile_manifest.parent}" in str(caught.value)
        with pytest.raises(AccessDenied):
            store.head(key)
    with pytest.raises(AccessDenied, match=r"link\.jpg \(it resolves to .*/private/secret\.jpg\)"):
        store.get("link")


def test_manifest_file_roots_say_which_folders_files_may_come_from(
    hostile_manifest: Path, tmp_path: Path
) -> None:
    with ManifestStore(
        str(hostile_manifest), retry=QUICK, file_roots=[str(tmp_path / "private")]
    ) as store:
        assert store.get("link") == b"secret bytes"  # its real path is under a root
        with pytest.raises(AccessDenied, match=r"manifest_file_roots: .*/private\)"):
            store.get("good")  # the roots replace the default, the manifest's folder


def test_a_link_that_stays_under_the_roots_is_read(tmp_path: Path, open_manifest: Any) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "a.jpg").write_bytes(b"linked bytes")
    (tmp_path / "a.jpg").symlink_to(tmp_path / "real" / "a.jpg")
    store = open_manifest(write_jsonl(tmp_path / "m.jsonl", {"image_location": "a.jpg"}))
    assert store.get("a.jpg") == b"linked bytes"


def test_a_remote_manifest_may_name_no_local_file_by_default(
    http_files: HttpFiles, served: str, images: Path, open_manifest: Any
) -> None:
    location = "file://" + quote(str(images / "a.jpg"))
    write_jsonl(http_files.root / served / "m.jsonl", {"image_location": location})
    store = open_manifest(http_files.url(f"{served}/m.jsonl"), ALLOW_PRIVATE)
    [entry] = store.list_page()
    with pytest.raises(AccessDenied, match="none, for a manifest that is not on the local disk"):
        store.get(entry.key)


def test_bounded_reads_apply_to_every_kind_of_location(
    http_files: HttpFiles, served: str, images: Path, tmp_path: Path, open_manifest: Any
) -> None:
    path = write_jsonl(
        tmp_path / "m.jsonl",
        {"image_location": str(images / "a.jpg"), "reference_id": "local"},
        {"image_location": http_files.url(f"{served}/x.jpg"), "reference_id": "http"},
    )
    store = open_manifest(path, ALLOW_PRIVATE)
    small = ReadLimits(max_bytes=5)
    for key in ("local", "http"):
        with pytest.raises(ObjectTooLarge, match=r"max_object_bytes \(5 bytes\)"):
            store.get_bounded(key, limits=small)
    assert store.get_bounded("http", limits=ReadLimits(max_bytes=100)) == b"served x.jpg"


def test_manifest_sources_are_read_only(tmp_path: Path, open_manifest: Any) -> None:
    store = open_manifest(write_jsonl(tmp_path / "m.jsonl", {"image_location": "s3://b/a.jpg"}))
    with pytest.raises(StoreError, match="a manifest source is read-only"):
        store.put("a.jpg", b"x")
    with pytest.raises(StoreError, match="a manifest source is read-only"):
        store.delete("a.jpg")


def test_a_source_with_a_manifest_opens_a_manifest_store(project: Project, images: Path) -> None:
    write_jsonl(project.root / "m.jsonl", {"image_location": str(images / "a.jpg")})
    # The images lie outside the manifest's folder: the source names their folder as a root.
    project.write_config(uri=None, manifest="m.jsonl", manifest_file_roots=[str(images)])
    config = project.config
    store = open_source_store(config.sources[0])
    assert isinstance(store, ManifestStore)
    assert store.get(store.list_page()[0].key) == b"bytes of a.jpg"
