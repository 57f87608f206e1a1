"""The contract every object store keeps, run against each of them: the local folder, S3 (a real
SeaweedFS) and GCS (a real fake-gcs-server). Listing, paging and cursors, prefixes, reads and
ranges, change tokens, whole and create-only writes, plain and conditional deletes, and keys that
could leave the store's root. What only one store does is tested in its own file.

On order: SeaweedFS lists a tree in folder-walk order (``a/b.jpg`` before ``a-b.jpg``), not in
S3's byte order. So for a tree the contract is "paging by cursor gives the one full listing, page
by page in its order"; strict byte order of a tree is tested in test_local.py and test_gcs.py.
Where no key shares a stem with a folder the two orders agree, and byte order is in the contract.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from dagster_aws.s3 import S3Resource
from dagster_gcp.gcs import GCSResource

from resources.errors import InvalidKey, ObjectChanged, ObjectNotFound, PreconditionFailed
from resources.stores.base import ObjectInfo, ObjectStore, check_key
from resources.stores.gcs import GCSObjectStore
from resources.stores.local import LocalFolderStore
from resources.stores.retry import RetryPolicy
from resources.stores.s3 import S3ObjectStore
from tests.servers.gcs import FakeGCS
from tests.servers.seaweed import SeaweedS3

#: Every store's root lies two levels down in its folder or bucket, so that something can sit
#: beside it and above it: key ``k`` is stored as ``ROOT + k``.
ROOT = "root/inner/"

#: Retries that finish in milliseconds, so failing paths keep the suite quick.
QUICK = RetryPolicy(max_attempts=3, backoff_factor=0.001, backoff_max=0.01)

#: Folders beside files that share their stem, a folder named like a file's prefix, deep nesting
#: and keys beyond ASCII. test_local.py and test_gcs.py list it in strict byte order.
TREE = [
    "a-b.jpg",
    "a/b.jpg",
    "a/c/d.jpg",
    "a0.jpg",
    "b.jpg",
    "a/c.jpg",
    "a/c/e/f.jpg",
    "a/c0.jpg",
    "a/c-1.jpg",
    "ab/x.jpg",
    "ab.jpg",
    "c/d/e/f/g.jpg",
    "c/d.jpg",
    "z.jpg",
    "ß/a b.jpg",
    "é.jpg",
    "日本/写真.jpg",
]

#: Keys that could name a place outside the root (with them, ``Backing.outside``: an absolute path
#: to a real object beside the root).
BAD_KEYS = [
    "../x",
    "a/../../x",
    "/abs",
    "a//b",
    "",
    "a\x00b",
    "..",
    ".",
    "./a",
    "a/",
    "a/./b",
    "a\\b",
    "a\\..\\x",
]

#: google-cloud-storage must see only the fake server: no real credentials or project.
GCS_VARIABLES = [
    "GOOGLE_APPLICATION_CREDENTIALS",
    "GOOGLE_CLOUD_PROJECT",
    "GCLOUD_PROJECT",
    "API_ENDPOINT_OVERRIDE",
]


@pytest.fixture(params=["local", "s3", "gcs"])
def store(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[ObjectStore]:
    made: ObjectStore
    if request.param == "local":
        made = LocalFolderStore(tmp_path / ROOT)
    elif request.param == "s3":
        seaweed: SeaweedS3 = request.getfixturevalue("seaweed")
        resource = S3Resource(
            endpoint_url=seaweed.endpoint,
            region_name="us-east-1",
            aws_access_key_id=seaweed.access_key,
            aws_secret_access_key=seaweed.secret_key,
        )
        made = S3ObjectStore(request.getfixturevalue("s3_bucket"), ROOT, resource, QUICK)
    else:
        fake_gcs: FakeGCS = request.getfixturevalue("fake_gcs")
        for variable in GCS_VARIABLES:
            monkeypatch.delenv(variable, raising=False)
        for variable, value in fake_gcs.env().items():
            monkeypatch.setenv(variable, value)
        made = GCSObjectStore(request.getfixturevalue("gcs_bucket"), ROOT, GCSResource(), QUICK)
    yield made
    made.close()


@dataclass
class Backing:
    """What holds a store's objects, seen past the store: the whole temporary folder or bucket."""

    #: Every object or file there, by its name there (``ROOT + key`` for the store's own).
    everything: Callable[[], dict[str, bytes]]
    #: Write an object or file there by its name, past the store and its key checks.
    write: Callable[[str, bytes], None]
    #: An absolute path naming the object ``x`` beside the root (for the local folder a real file).
    outside: str


@pytest.fixture
def backing(store: ObjectStore, tmp_path: Path, request: pytest.FixtureRequest) -> Backing:
    if isinstance(store, LocalFolderStore):

        def write_file(name: str, data: bytes) -> None:
            (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / name).write_bytes(data)

        def files() -> dict[str, bytes]:
            found = (path for path in sorted(tmp_path.rglob("*")) if path.is_file())
            return {str(path.relative_to(tmp_path)): path.read_bytes() for path in found}

        return Backing(files, write_file, str(tmp_path / "x"))
    if isinstance(store, S3ObjectStore):
        client = request.getfixturevalue("seaweed").client()

        def put_object(name: str, data: bytes) -> None:
            client.put_object(Bucket=store.bucket, Key=name, Body=data)

        def objects() -> dict[str, bytes]:
            pages = client.get_paginator("list_objects_v2").paginate(Bucket=store.bucket)
            names = [entry["Key"] for page in pages for entry in page.get("Contents", [])]
            return {
                name: client.get_object(Bucket=store.bucket, Key=name)["Body"].read()
                for name in names
            }

        return Backing(objects, put_object, "/x")
    assert isinstance(store, GCSObjectStore)
    bucket = request.getfixturevalue("fake_gcs").client().bucket(store.bucket)

    def upload(name: str, data: bytes) -> None:
        bucket.blob(name).upload_from_string(data)

    def blobs() -> dict[str, bytes]:
        return {blob.name: blob.download_as_bytes() for blob in bucket.list_blobs()}

    return Backing(blobs, upload, "/x")


def keys_of(pages: list[list[ObjectInfo]]) -> list[str]:
    return [info.key for page in pages for info in page]


def listed(store: ObjectStore, **kwargs: Any) -> list[str]:
    return keys_of(list(store.list_objects(**kwargs)))


def content(key: str) -> bytes:
    return f"content of {key}".encode()


def put_all(store: ObjectStore, keys: list[str]) -> None:
    # One at a time: two writers making the same new folder at once cost SeaweedFS a second.
    for key in keys:
        store.put(key, content(key))


# -- listing -----------------------------------------------------------------------------------


def test_an_empty_store_lists_nothing(store: ObjectStore) -> None:
    assert listed(store) == []
    assert store.list_page() == []
    assert store.list_page(prefix="a/", start_after="a") == []


def test_1200_keys_in_one_folder_list_in_key_order_in_full_pages(store: ObjectStore) -> None:
    keys = [f"img/{n:05d}.jpg" for n in range(1200)]
    shuffled = random.Random(7).sample(keys, len(keys))
    store.put(shuffled[0], content(shuffled[0]))  # makes the folder the others go to
    with ThreadPoolExecutor(16) as pool:  # one store, one client, many threads
        list(pool.map(lambda key: store.put(key, content(key)), shuffled[1:]))

    pages = list(store.list_objects(page_size=500))

    assert [len(page) for page in pages] == [500, 500, 200]
    assert keys_of(pages) == keys
    assert keys_of([store.list_page(start_after=keys[499], page_size=500)]) == keys[500:1000]
    assert keys_of([store.list_page(start_after=keys[699], page_size=500)]) == keys[700:]
    # More than one request where the provider caps a page (S3 at 1,000).
    assert keys_of([store.list_page(page_size=1100)]) == keys[:1100]
    assert store.list_page(start_after=keys[-1]) == []


def test_paging_gives_the_one_full_listing_page_by_page(store: ObjectStore) -> None:
    put_all(store, TREE)
    full = listed(store)
    assert sorted(full) == sorted(TREE)  # every key, each once

    for page_size in [1, 2, 3, 5, 7, len(TREE) - 1, len(TREE), 1000]:
        pages = list(store.list_objects(page_size=page_size))
        assert keys_of(pages) == full, page_size
        assert all(len(page) == page_size for page in pages[:-1]), page_size
        assert 0 < len(pages[-1]) <= page_size, page_size

        by_hand: list[list[ObjectInfo]] = []
        cursor = ""
        while page := store.list_page(start_after=cursor, page_size=page_size):
            by_hand.append(page)
            cursor = page[-1].key
        assert keys_of(by_hand) == full, page_size
        assert [len(page) for page in by_hand] == [len(page) for page in pages], page_size


def test_start_after_a_key_resumes_right_after_it(store: ObjectStore) -> None:
    put_all(store, TREE)
    full = listed(store)

    for position, cursor in enumerate(["", *full]):
        assert listed(store, start_after=cursor) == full[position:], cursor
        assert listed(store, start_after=cursor, page_size=2) == full[position:], cursor


def test_a_prefix_lists_only_the_keys_that_start_with_it(store: ObjectStore) -> None:
    put_all(store, TREE)
    full = listed(store)
    prefixes = ["a", "a/", "a/c", "a/c/", "a/c/e/f.jpg", "a-", "a/c/d.jpgx", "ab", "b", "c/d/"]

    for prefix in [*prefixes, "z", "q", "日本/"]:
        expected = [key for key in full if key.startswith(prefix)]
        assert listed(store, prefix=prefix) == expected, prefix
        assert listed(store, prefix=prefix, page_size=1) == expected, prefix

    after = full[full.index("a/c/d.jpg") + 1 :]
    assert listed(store, prefix="a/", start_after="a/c/d.jpg", page_size=2) == [
        key for key in after if key.startswith("a/")
    ]
    assert listed(store, prefix="a/c/") == ["a/c/d.jpg", "a/c/e/f.jpg"]
    assert listed(store, prefix="a/c/", start_after="a/c/d.jpg") == ["a/c/e/f.jpg"]


def test_listing_reports_size_time_and_the_same_token_as_head(store: ObjectStore) -> None:
    put_all(store, TREE)

    for page in store.list_objects(page_size=4):
        for info in page:
            head = store.head(info.key)
            assert (info.size, head.size) == (len(content(info.key)), len(content(info.key)))
            assert info.change_token == head.change_token
            assert info.last_modified.tzinfo is not None


def test_unicode_keys_list_in_utf8_byte_order_and_round_trip(store: ObjectStore) -> None:
    # No key here shares a stem with a folder: folder-walk and byte order agree.
    keys = [
        "z.jpg",
        "é.jpg",
        "日本/写真.jpg",
        "e.jpg",
        "\U0001f600.jpg",
        "ß/a b.jpg",
        "p%20+#1.jpg",
    ]
    put_all(store, keys)

    assert listed(store) == sorted(keys, key=lambda key: key.encode("utf-8"))
    for key in keys:
        assert store.get(key) == content(key)
        assert store.head(key).size == len(content(key))


def test_a_key_with_spaces_and_unicode_works_everywhere(store: ObjectStore) -> None:
    key = "my photos/été 2024/ü ñ 写真 #1 %20.jpg"

    store.put(key, b"pixels", create_only=True)

    assert store.get(key) == b"pixels"
    assert store.head(key).size == 6
    assert store.get_range(key, 1, 2) == b"ix"
    assert listed(store) == [key]
    assert listed(store, prefix="my photos/été") == [key]
    store.delete(key, if_token=store.head(key).change_token)
    assert not store.exists(key)


# -- reading -----------------------------------------------------------------------------------


def test_head_get_and_get_range_return_the_object(store: ObjectStore) -> None:
    written = store.put("photos/cat.jpg", b"0123456789")
    store.put("empty.bin", b"")

    info = store.head("photos/cat.jpg")
    assert (info.key, info.size, info.content_type) == ("photos/cat.jpg", 10, "image/jpeg")
    assert info.change_token == written.change_token
    assert abs((info.last_modified - written.last_modified).total_seconds()) < 5
    assert store.get("photos/cat.jpg") == b"0123456789"
    assert store.get_range("photos/cat.jpg", 0, 3) == b"012"
    assert store.get_range("photos/cat.jpg", 4, 3) == b"456"
    assert store.get_range("photos/cat.jpg", 9, 1) == b"9"
    assert store.get_range("photos/cat.jpg", 8, 100) == b"89"
    assert store.get_range("photos/cat.jpg", 10, 5) == b""
    assert store.get_range("photos/cat.jpg", 20, 5) == b""
    assert store.get_range("photos/cat.jpg", 2, 0) == b""
    assert store.get("empty.bin") == b""
    assert store.get_range("empty.bin", 0, 10) == b""
    assert store.exists("photos/cat.jpg")


def test_change_token_changes_whenever_the_object_is_rewritten(store: ObjectStore) -> None:
    first = store.put("k.bin", b"aaaa").change_token
    same_size = store.put("k.bin", b"bbbb").change_token
    other_size = store.put("k.bin", b"ccccc").change_token

    assert len({first, same_size, other_size}) == 3
    assert store.head("k.bin").change_token == other_size
    assert [info.change_token for info in store.list_page()] == [other_size]
    assert store.get("k.bin") == b"ccccc"


def test_a_read_pinned_to_a_version_gets_that_version_or_object_changed(
    store: ObjectStore,
) -> None:
    claimed = store.put("k.bin", b"claimed").change_token
    assert store.get("k.bin", if_token=claimed) == b"claimed"

    store.put("k.bin", b"rewritten")

    with pytest.raises(ObjectChanged, match=r"'k.bin' is no longer the version"):
        store.get("k.bin", if_token=claimed)
    assert store.get("k.bin", if_token=store.head("k.bin").change_token) == b"rewritten"
    store.delete("k.bin")
    with pytest.raises(ObjectNotFound):  # gone is missing, not changed
        store.get("k.bin", if_token=claimed)


@pytest.mark.parametrize(
    "read",
    [
        lambda s, k: s.head(k),
        lambda s, k: s.get(k),
        lambda s, k: s.get_range(k, 0, 1),
    ],
    ids=["head", "get", "get_range"],
)
def test_a_missing_key_is_object_not_found_naming_store_and_key(
    store: ObjectStore, read: Callable[[ObjectStore, str], object]
) -> None:
    put_all(store, ["a/b.jpg", "b.jpg"])  # "a" is a folder here, not an object

    for key in ["missing.jpg", "a", "a/missing/deeper.jpg", "b.jpg/under-a-file"]:
        with pytest.raises(ObjectNotFound) as caught:
            read(store, key)

        message = str(caught.value)
        assert caught.value.key == key
        assert message.startswith(f"{store.name}: ")
        assert repr(key) in message
        assert "does not exist" not in message  # that is said of a missing bucket
        assert not store.exists(key)


# -- writing -----------------------------------------------------------------------------------


def test_put_overwrites_whole_and_returns_the_new_info(store: ObjectStore) -> None:
    store.put("a/b/c.txt", b"a long first version")

    info = store.put("a/b/c.txt", b"short")

    assert store.get("a/b/c.txt") == b"short"
    assert (info.key, info.size) == ("a/b/c.txt", 5)
    assert info.change_token == store.head("a/b/c.txt").change_token


def test_create_only_refuses_a_second_writer_and_keeps_the_first(
    store: ObjectStore, backing: Backing
) -> None:
    first = store.put("batch/000001.parquet", b"first", create_only=True)

    with pytest.raises(PreconditionFailed) as caught:
        store.put("batch/000001.parquet", b"second", create_only=True)

    assert "'batch/000001.parquet'" in str(caught.value)
    assert store.get("batch/000001.parquet") == b"first"
    assert store.head("batch/000001.parquet").change_token == first.change_token
    assert backing.everything() == {f"{ROOT}batch/000001.parquet": b"first"}  # nothing left over


def test_create_only_race_of_eight_threads_has_exactly_one_winner(
    store: ObjectStore, backing: Backing
) -> None:
    start = threading.Barrier(8)
    winners: list[int] = []
    losers: list[int] = []
    unexpected: list[BaseException] = []

    def claim(n: int) -> None:
        start.wait()
        try:
            store.put("claims/batch-7", f"claimer {n}".encode(), create_only=True)
            winners.append(n)
        except PreconditionFailed:
            losers.append(n)
        except BaseException as exc:  # reported below
            unexpected.append(exc)

    threads = [threading.Thread(target=claim, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert unexpected == []
    assert (len(winners), len(losers)) == (1, 7)
    assert store.get("claims/batch-7") == f"claimer {winners[0]}".encode()
    assert listed(store) == ["claims/batch-7"]
    assert backing.everything() == {f"{ROOT}claims/batch-7": f"claimer {winners[0]}".encode()}


# -- deleting ----------------------------------------------------------------------------------


def test_delete_removes_the_object_and_a_missing_object_is_not_an_error(
    store: ObjectStore,
) -> None:
    put_all(store, ["a/b.jpg", "a/c.jpg"])

    store.delete("a/b.jpg")
    store.delete("a/b.jpg")
    store.delete("never/there.jpg")
    store.delete("a/c.jpg/under-a-file")

    assert listed(store) == ["a/c.jpg"]


def test_conditional_delete_holds_only_while_the_token_does(store: ObjectStore) -> None:
    old = store.put("lease", b"holder one").change_token
    store.put("lease", b"holder two!")

    with pytest.raises(PreconditionFailed) as caught:
        store.delete("lease", if_token=old)
    assert "'lease'" in str(caught.value)
    assert store.get("lease") == b"holder two!"

    current = store.head("lease").change_token
    store.delete("lease", if_token=current)
    assert not store.exists("lease")

    with pytest.raises(PreconditionFailed):
        store.delete("lease", if_token=current)  # gone: the condition cannot hold


def test_conditional_put_replaces_only_while_the_token_holds(store: ObjectStore) -> None:
    first = store.put("lease", b"holder one")
    second = store.put("lease", b"holder one, beat 2", if_token=first.change_token)

    assert store.get("lease") == b"holder one, beat 2"
    assert second.change_token == store.head("lease").change_token != first.change_token
    with pytest.raises(PreconditionFailed) as caught:
        store.put("lease", b"a paused holder wakes up", if_token=first.change_token)
    assert "'lease'" in str(caught.value)
    assert store.get("lease") == b"holder one, beat 2"

    store.delete("lease")
    with pytest.raises(PreconditionFailed):
        store.put("lease", b"after it was taken away", if_token=second.change_token)
    assert not store.exists("lease")


def test_conditional_puts_racing_on_one_token_have_exactly_one_winner(store: ObjectStore) -> None:
    token = store.put("marker", b"old table").change_token
    start = threading.Barrier(6)
    winners: list[int] = []

    def commit(n: int) -> None:
        start.wait()
        try:
            store.put("marker", f"table of writer {n}".encode(), if_token=token)
            winners.append(n)
        except PreconditionFailed:
            pass

    with ThreadPoolExecutor(6) as pool:
        list(pool.map(commit, range(6)))

    assert len(winners) == 1
    assert store.get("marker") == f"table of writer {winners[0]}".encode()


# -- keys are data, never paths ----------------------------------------------------------------


@pytest.mark.parametrize("key", BAD_KEYS, ids=repr)
def test_check_key_refuses_keys_that_could_leave_the_root(key: str) -> None:
    with pytest.raises(InvalidKey) as caught:
        check_key(key, store="inbox")

    assert caught.value.key == key
    assert str(caught.value).startswith("inbox:")


@pytest.mark.parametrize(
    "key", ["a", "a/b/c.jpg", "..a", "a..", "a/..b/c", ".hidden", "a b/ü ñ 写真.jpg", "a.b/.c"]
)
def test_check_key_accepts_ordinary_keys(key: str) -> None:
    assert check_key(key) == key


#: Every operation that takes a key, by name: reads, and writes and deletes.
READS: dict[str, Callable[[ObjectStore, str], object]] = {
    "head": lambda s, k: s.head(k),
    "get": lambda s, k: s.get(k),
    "get_range": lambda s, k: s.get_range(k, 0, 5),
    "exists": lambda s, k: s.exists(k),
    "uri": lambda s, k: s.uri(k),
}
WRITES: dict[str, Callable[[ObjectStore, str], object]] = {
    "put": lambda s, k: s.put(k, b"overwritten"),
    "create": lambda s, k: s.put(k, b"created", create_only=True),
    "put_if": lambda s, k: s.put(k, b"replaced", if_token="anything"),
    "delete": lambda s, k: s.delete(k),
    "delete_if": lambda s, k: s.delete(k, if_token="anything"),
}


def not_refused(
    store: ObjectStore, keys: list[str], operations: dict[str, Callable[[ObjectStore, str], object]]
) -> dict[str, list[str]]:
    """For each key, the operations that did not refuse it with InvalidKey (and what they did)."""
    missed: dict[str, list[str]] = {}
    for key in keys:
        for name, operation in operations.items():
            try:
                operation(store, key)
            except InvalidKey:
                continue
            except Exception as exc:  # the wrong refusal: reported below
                missed.setdefault(key, []).append(f"{name} raised {type(exc).__name__}")
            else:
                missed.setdefault(key, []).append(f"{name} went ahead")
    return missed


@pytest.fixture
def planted(store: ObjectStore, backing: Backing) -> list[str]:
    """Objects beside and above the root and inside it; the bad keys, one naming one outside."""
    backing.write("x", b"secret beside the root")
    backing.write("root/x", b"secret above the root")
    put_all(store, ["a/b.jpg", "x"])
    return [*BAD_KEYS, backing.outside]


def test_writes_and_deletes_refuse_keys_that_could_leave_the_root(
    store: ObjectStore, backing: Backing, planted: list[str]
) -> None:
    before = backing.everything()

    assert not_refused(store, planted, WRITES) == {}
    assert backing.everything() == before


def test_reads_refuse_keys_that_could_leave_the_root(
    store: ObjectStore, backing: Backing, planted: list[str], request: pytest.FixtureRequest
) -> None:
    before = backing.everything()

    assert not_refused(store, planted, READS) == {}
    assert backing.everything() == before
