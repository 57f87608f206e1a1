"""The local folder store: S3 listing order and cursors, whole and create-only writes, conditional
deletes, and keys that are data, never paths."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

from resources.errors import InvalidKey, ObjectNotFound, PreconditionFailed, StoreError
from resources.stores.base import check_key
from resources.stores.local import TEMP_PREFIX, LocalFolderStore

#: The example from the design: '-' < '/' < '0', so a folder sorts between its neighbours.
S3_ORDER = ["a-b.jpg", "a/b.jpg", "a/c/d.jpg", "a0.jpg", "b.jpg"]

#: Deeper nesting, folders and files sharing a stem, and a folder named like a file's prefix.
NESTED = [
    *S3_ORDER,
    "a/c.jpg",
    "a/c/e/f.jpg",
    "a/c0.jpg",
    "a/c-1.jpg",
    "ab/x.jpg",
    "ab.jpg",
    "c/d/e/f/g.jpg",
    "c/d.jpg",
]

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
    "a\\..\\x",
]


def make_store(root: Path, keys: list[str]) -> LocalFolderStore:
    store = LocalFolderStore(root)
    for key in keys:
        store.put(key, f"content of {key}".encode())
    return store


def listed(store: LocalFolderStore, **kwargs: str | int) -> list[str]:
    return [info.key for page in store.list_objects(**kwargs) for info in page]  # type: ignore[arg-type]


def files_under(folder: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(folder)): path.read_bytes()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


# -- listing ---------------------------------------------------------------------------------


def test_listing_is_in_s3_key_order_across_nested_folders(tmp_path: Path) -> None:
    store = make_store(tmp_path, list(reversed(S3_ORDER)))

    assert listed(store) == ["a-b.jpg", "a/b.jpg", "a/c/d.jpg", "a0.jpg", "b.jpg"]


def test_listing_of_a_deep_tree_is_plain_string_order(tmp_path: Path) -> None:
    store = make_store(tmp_path, NESTED)

    assert listed(store) == sorted(NESTED)


def test_listing_reports_each_objects_size_and_the_same_token_as_head(tmp_path: Path) -> None:
    store = make_store(tmp_path, NESTED)

    for page in store.list_objects():
        for info in page:
            assert info.size == len(f"content of {info.key}".encode())
            assert info.change_token == store.head(info.key).change_token


@pytest.mark.parametrize("page_size", [1, 2, 3, 5, len(NESTED) - 1, len(NESTED), 1000])
def test_pagination_returns_every_key_once_in_order(tmp_path: Path, page_size: int) -> None:
    store = make_store(tmp_path, NESTED)

    pages = list(store.list_objects(page_size=page_size))

    assert [info.key for page in pages for info in page] == sorted(NESTED)
    assert all(len(page) <= page_size for page in pages)
    assert all(len(page) == page_size for page in pages[:-1])


def test_paging_by_hand_with_list_page_resumes_exactly_after_the_cursor(tmp_path: Path) -> None:
    store = make_store(tmp_path, NESTED)

    seen: list[str] = []
    cursor = ""
    while page := store.list_page(start_after=cursor, page_size=2):
        seen.extend(info.key for info in page)
        cursor = page[-1].key

    assert seen == sorted(NESTED)


@pytest.mark.parametrize("cursor", ["", *sorted(NESTED)])
def test_start_after_an_existing_key_resumes_right_after_it(tmp_path: Path, cursor: str) -> None:
    store = make_store(tmp_path, NESTED)

    assert listed(store, start_after=cursor) == [k for k in sorted(NESTED) if k > cursor]
    assert listed(store, start_after=cursor, page_size=2) == [
        k for k in sorted(NESTED) if k > cursor
    ]


@pytest.mark.parametrize(
    "cursor",
    ["a", "a/", "a/c", "a/c/", "a/c/d", "a/c/e/", "a/bz", "a/c/zz", "ab/", "c/d/e/", "0", "zzz"],
)
def test_start_after_a_cursor_inside_or_beside_a_folder_misses_nothing(
    tmp_path: Path, cursor: str
) -> None:
    store = make_store(tmp_path, NESTED)

    assert listed(store, start_after=cursor, page_size=3) == [
        k for k in sorted(NESTED) if k > cursor
    ]


@pytest.mark.parametrize(
    "prefix", ["a", "a/", "a/c", "a/c/", "a/c/e/f.jpg", "ab", "c/d/", "b", "z", "a-", "a/c/d.jpgx"]
)
def test_prefix_lists_only_keys_that_start_with_it(tmp_path: Path, prefix: str) -> None:
    store = make_store(tmp_path, NESTED)

    assert listed(store, prefix=prefix) == [k for k in sorted(NESTED) if k.startswith(prefix)]
    assert listed(store, prefix=prefix, page_size=1) == [
        k for k in sorted(NESTED) if k.startswith(prefix)
    ]


def test_prefix_and_start_after_combine(tmp_path: Path) -> None:
    store = make_store(tmp_path, NESTED)

    assert listed(store, prefix="a/", start_after="a/c/d.jpg", page_size=2) == [
        "a/c/e/f.jpg",
        "a/c0.jpg",
    ]


def test_listing_a_missing_or_empty_root_is_empty(tmp_path: Path) -> None:
    assert listed(LocalFolderStore(tmp_path / "never-made")) == []
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    assert listed(LocalFolderStore(tmp_path / "empty")) == []


def test_unicode_keys_list_in_utf8_byte_order(tmp_path: Path) -> None:
    keys = ["z.jpg", "é.jpg", "日本/写真.jpg", "e.jpg", "\U0001f600.jpg", "ß/a b.jpg"]
    store = make_store(tmp_path, keys)

    assert listed(store) == sorted(keys, key=lambda k: k.encode("utf-8"))


# -- reading -----------------------------------------------------------------------------------


def test_head_get_and_get_range_return_the_object(tmp_path: Path) -> None:
    store = LocalFolderStore(tmp_path)
    written = store.put("photos/cat.jpg", b"0123456789")

    info = store.head("photos/cat.jpg")
    assert (info.key, info.size, info.content_type) == ("photos/cat.jpg", 10, "image/jpeg")
    assert info.change_token == written.change_token
    assert store.get("photos/cat.jpg") == b"0123456789"
    assert store.get_range("photos/cat.jpg", 0, 3) == b"012"
    assert store.get_range("photos/cat.jpg", 4, 3) == b"456"
    assert store.get_range("photos/cat.jpg", 8, 100) == b"89"
    assert store.get_range("photos/cat.jpg", 20, 5) == b""
    assert store.exists("photos/cat.jpg")


def test_change_token_changes_when_a_file_is_rewritten(tmp_path: Path) -> None:
    store = LocalFolderStore(tmp_path)
    first = store.put("k.bin", b"aaaa").change_token

    same_size = store.put("k.bin", b"bbbb").change_token
    other_size = store.put("k.bin", b"ccccc").change_token

    assert len({first, same_size, other_size}) == 3
    assert store.head("k.bin").change_token == other_size


def test_change_token_changes_when_another_program_rewrites_the_file(tmp_path: Path) -> None:
    store = make_store(tmp_path, ["a.jpg"])
    before = store.head("a.jpg").change_token

    path = tmp_path / "a.jpg"
    path.write_bytes(b"edited in place by another program")

    assert store.head("a.jpg").change_token != before


@pytest.mark.parametrize(
    "read",
    [
        lambda s, k: s.head(k),
        lambda s, k: s.get(k),
        lambda s, k: s.get_range(k, 0, 1),
    ],
    ids=["head", "get", "get_range"],
)
@pytest.mark.parametrize("key", ["missing.jpg", "a", "a/missing/deeper.jpg", "b.jpg/under-a-file"])
def test_missing_key_raises_object_not_found_naming_the_key(
    tmp_path: Path, read: Callable[[LocalFolderStore, str], object], key: str
) -> None:
    store = make_store(tmp_path, S3_ORDER)  # "a" is a folder here, not an object

    with pytest.raises(ObjectNotFound) as caught:
        read(store, key)

    assert caught.value.key == key
    assert repr(key) in str(caught.value)
    assert not store.exists(key)


# -- writing -----------------------------------------------------------------------------------


def test_put_overwrites_whole_and_returns_the_new_info(tmp_path: Path) -> None:
    store = LocalFolderStore(tmp_path)
    store.put("a/b/c.txt", b"a long first version")

    info = store.put("a/b/c.txt", b"short")

    assert store.get("a/b/c.txt") == b"short"
    assert (info.key, info.size) == ("a/b/c.txt", 5)


def test_create_only_refuses_a_second_writer_and_keeps_the_first_content(tmp_path: Path) -> None:
    store = LocalFolderStore(tmp_path)
    first = store.put("batch/000001.parquet", b"first", create_only=True)

    with pytest.raises(PreconditionFailed) as caught:
        store.put("batch/000001.parquet", b"second", create_only=True)

    assert "batch/000001.parquet" in str(caught.value)
    assert store.get("batch/000001.parquet") == b"first"
    assert store.head("batch/000001.parquet").change_token == first.change_token
    assert files_under(tmp_path) == {"batch/000001.parquet": b"first"}


def test_create_only_race_of_eight_threads_has_exactly_one_winner(tmp_path: Path) -> None:
    store = LocalFolderStore(tmp_path)
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
    assert len(winners) == 1
    assert len(losers) == 7
    assert store.get("claims/batch-7") == f"claimer {winners[0]}".encode()
    assert files_under(tmp_path) == {"claims/batch-7": f"claimer {winners[0]}".encode()}


def test_put_never_shows_temp_files_or_half_written_objects(tmp_path: Path) -> None:
    store = LocalFolderStore(tmp_path)
    versions = [bytes([n]) * 200_000 for n in range(1, 4)]
    store.put("big.bin", versions[0])
    done = threading.Event()
    errors: list[BaseException] = []

    def rewrite() -> None:
        try:
            for n in range(60):
                store.put("big.bin", versions[n % len(versions)])
                store.put(f"other/{n % 5}.bin", b"x")
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            done.set()

    writer = threading.Thread(target=rewrite)
    writer.start()
    seen_keys: set[str] = set()
    seen_content: set[bytes] = set()
    while not done.is_set():
        seen_keys.update(listed(store))
        seen_content.add(store.get("big.bin"))
    writer.join()

    assert errors == []
    assert all(TEMP_PREFIX not in key for key in seen_keys)
    assert seen_keys <= {"big.bin", *(f"other/{n}.bin" for n in range(5))}
    assert seen_content <= set(versions)
    assert not [p for p in tmp_path.rglob("*") if p.name.startswith(TEMP_PREFIX)]


def test_a_temp_file_left_by_a_crashed_put_is_never_an_object(tmp_path: Path) -> None:
    store = make_store(tmp_path, ["a/b.jpg"])
    (tmp_path / "a" / f"{TEMP_PREFIX}0123abcd").write_bytes(b"half")
    (tmp_path / f"{TEMP_PREFIX}zz").write_bytes(b"half")

    assert listed(store) == ["a/b.jpg"]
    assert listed(store, prefix="a/") == ["a/b.jpg"]


def test_a_refused_create_only_put_leaves_no_temp_file(tmp_path: Path) -> None:
    store = make_store(tmp_path, ["k"])

    with pytest.raises(PreconditionFailed):
        store.put("k", b"again", create_only=True)

    assert sorted(os.listdir(tmp_path)) == ["k"]


def test_put_where_a_file_stands_in_for_a_folder_is_a_store_error(tmp_path: Path) -> None:
    store = make_store(tmp_path, ["b.jpg"])

    with pytest.raises(StoreError) as caught:
        store.put("b.jpg/x", b"data")

    assert "b.jpg/x" in str(caught.value)
    assert store.get("b.jpg") == b"content of b.jpg"


# -- deleting ----------------------------------------------------------------------------------


def test_delete_removes_the_object_and_a_missing_object_is_not_an_error(tmp_path: Path) -> None:
    store = make_store(tmp_path, ["a/b.jpg", "a/c.jpg"])

    store.delete("a/b.jpg")
    store.delete("a/b.jpg")
    store.delete("never/there.jpg")
    store.delete("a/c.jpg/under-a-file")

    assert listed(store) == ["a/c.jpg"]


def test_conditional_delete_refuses_when_the_object_changed(tmp_path: Path) -> None:
    store = LocalFolderStore(tmp_path)
    old_token = store.put("lease", b"holder one").change_token
    store.put("lease", b"holder two!")

    with pytest.raises(PreconditionFailed) as caught:
        store.delete("lease", if_token=old_token)

    assert "'lease'" in str(caught.value)
    assert store.get("lease") == b"holder two!"


def test_conditional_delete_with_the_current_token_deletes(tmp_path: Path) -> None:
    store = LocalFolderStore(tmp_path)
    token = store.put("lease", b"holder").change_token

    store.delete("lease", if_token=token)

    assert not store.exists("lease")


def test_conditional_delete_of_a_missing_object_is_refused(tmp_path: Path) -> None:
    store = LocalFolderStore(tmp_path)
    token = store.put("lease", b"holder").change_token
    store.delete("lease")

    with pytest.raises(PreconditionFailed):
        store.delete("lease", if_token=token)


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


@pytest.mark.parametrize("key", [*BAD_KEYS, "OUTSIDE"], ids=repr)
def test_the_store_never_reads_or_writes_outside_its_root(tmp_path: Path, key: str) -> None:
    root = tmp_path / "root" / "inner"
    store = make_store(root, ["a/b.jpg", "x"])
    (tmp_path / "x").write_bytes(b"secret beside the root")
    (tmp_path / "root" / "x").write_bytes(b"secret above the root")
    if key == "OUTSIDE":
        key = str(tmp_path / "x")  # an absolute path to a real file outside the root
    before = files_under(tmp_path)
    attempts: list[Callable[[], object]] = [
        lambda: store.head(key),
        lambda: store.get(key),
        lambda: store.get_range(key, 0, 5),
        lambda: store.exists(key),
        lambda: store.put(key, b"overwritten"),
        lambda: store.put(key, b"created", create_only=True),
        lambda: store.delete(key),
        lambda: store.delete(key, if_token="anything"),
        lambda: store.uri(key),
    ]

    for attempt in attempts:
        with pytest.raises(InvalidKey):
            attempt()

    assert files_under(tmp_path) == before


def test_listing_prefixes_cannot_reach_outside_the_root(tmp_path: Path) -> None:
    store = make_store(tmp_path / "root", ["a/b.jpg"])
    (tmp_path / "secret.txt").write_bytes(b"secret")

    assert listed(store, prefix="../") == []
    assert listed(store, prefix="/") == []
    assert listed(store, start_after="../") == ["a/b.jpg"]


def test_keys_with_spaces_and_unicode_work_everywhere(tmp_path: Path) -> None:
    store = LocalFolderStore(tmp_path)
    key = "my photos/été 2024/ü ñ 写真 #1 %20.jpg"

    store.put(key, b"pixels", create_only=True)

    assert store.get(key) == b"pixels"
    assert store.head(key).size == 6
    assert store.get_range(key, 1, 2) == b"ix"
    assert listed(store) == [key]
    assert listed(store, prefix="my photos/été") == [key]
    assert (tmp_path / "my photos" / "été 2024" / "ü ñ 写真 #1 %20.jpg").read_bytes() == b"pixels"
    uri = store.uri(key)
    assert uri.startswith("file://")
    assert Path(unquote(urlparse(uri).path)) == tmp_path / key
    token = store.head(key).change_token
    store.delete(key, if_token=token)
    assert not store.exists(key)
