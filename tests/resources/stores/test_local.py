"""The local folder store, beyond the contract every store keeps (test_contract.py): strict S3
byte order of a folder tree and cursors inside it, temporary files that never show, files that
other programs change, and keys that stay inside the folder."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

from resources.errors import StoreError, TransientStoreError
from resources.stores import local
from resources.stores.local import TEMP_PREFIX, LocalFolderStore
from tests.resources.stores.test_contract import TREE

#: The example from the design: '-' < '/' < '0', so a folder sorts between its neighbours.
S3_ORDER = ["a-b.jpg", "a/b.jpg", "a/c/d.jpg", "a0.jpg", "b.jpg"]

#: The contract's tree in the order this store lists it: UTF-8 byte order.
IN_ORDER = sorted(TREE, key=lambda key: key.encode("utf-8"))


def make_store(root: Path, keys: list[str]) -> LocalFolderStore:
    store = LocalFolderStore(root)
    for key in keys:
        store.put(key, f"content of {key}".encode())
    return store


def listed(store: LocalFolderStore, **kwargs: str | int) -> list[str]:
    return [info.key for page in store.list_objects(**kwargs) for info in page]  # type: ignore[arg-type]


# -- listing ---------------------------------------------------------------------------------


def test_listing_is_in_s3_key_order_across_nested_folders(tmp_path: Path) -> None:
    store = make_store(tmp_path, list(reversed(S3_ORDER)))

    assert listed(store) == ["a-b.jpg", "a/b.jpg", "a/c/d.jpg", "a0.jpg", "b.jpg"]


def test_listing_of_the_contracts_tree_is_in_utf8_byte_order(tmp_path: Path) -> None:
    store = make_store(tmp_path, TREE)

    assert listed(store) == IN_ORDER


@pytest.mark.parametrize(
    "cursor",
    ["a", "a/", "a/c", "a/c/", "a/c/d", "a/c/e/", "a/bz", "a/c/zz", "ab/", "c/d/e/", "0", "zzz"],
)
def test_start_after_a_cursor_inside_or_beside_a_folder_misses_nothing(
    tmp_path: Path, cursor: str
) -> None:
    store = make_store(tmp_path, TREE)

    expected = [key for key in IN_ORDER if key.encode() > cursor.encode()]
    assert listed(store, start_after=cursor, page_size=3) == expected


def test_paging_with_list_page_gives_what_one_walk_gives(tmp_path: Path) -> None:
    store = make_store(tmp_path, TREE)
    paged: list[str] = []
    while page := store.list_page(start_after=paged[-1] if paged else "", page_size=2):
        paged += [info.key for info in page]

    assert paged == listed(store, page_size=2) == IN_ORDER


def test_a_file_deleted_during_a_listing_is_left_out_and_the_listing_goes_on(
    tmp_path: Path,
) -> None:
    keys = [f"{folder}/{i}.jpg" for folder in "ab" for i in range(4)]
    store = make_store(tmp_path, keys)
    pages = store.list_objects(page_size=3)

    first = [info.key for info in next(pages)]
    store.delete("a/3.jpg")
    store.delete("b/0.jpg")
    rest = [info.key for page in pages for info in page]

    assert first == ["a/0.jpg", "a/1.jpg", "a/2.jpg"]
    assert rest == ["b/1.jpg", "b/2.jpg", "b/3.jpg"]


def test_listing_a_missing_or_empty_root_is_empty(tmp_path: Path) -> None:
    assert listed(LocalFolderStore(tmp_path / "never-made")) == []
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    assert listed(LocalFolderStore(tmp_path / "empty")) == []


# -- reading -----------------------------------------------------------------------------------


def test_change_token_changes_when_another_program_rewrites_the_file(tmp_path: Path) -> None:
    store = make_store(tmp_path, ["a.jpg"])
    before = store.head("a.jpg").change_token

    path = tmp_path / "a.jpg"
    path.write_bytes(b"edited in place by another program")

    assert store.head("a.jpg").change_token != before


# -- writing -----------------------------------------------------------------------------------


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


def test_put_where_a_file_stands_in_for_a_folder_is_a_store_error(tmp_path: Path) -> None:
    store = make_store(tmp_path, ["b.jpg"])

    with pytest.raises(StoreError) as caught:
        store.put("b.jpg/x", b"data")

    assert "b.jpg/x" in str(caught.value)
    assert store.get("b.jpg") == b"content of b.jpg"


# -- keys are data, never paths ----------------------------------------------------------------


def test_listing_prefixes_cannot_reach_outside_the_root(tmp_path: Path) -> None:
    store = make_store(tmp_path / "root", ["a/b.jpg"])
    (tmp_path / "secret.txt").write_bytes(b"secret")

    assert listed(store, prefix="../") == []
    assert listed(store, prefix="/") == []
    assert listed(store, start_after="../") == ["a/b.jpg"]


def test_a_key_is_the_file_at_its_path_and_its_uri_names_that_file(tmp_path: Path) -> None:
    store = LocalFolderStore(tmp_path)
    key = "my photos/été 2024/ü ñ 写真 #1 %20.jpg"

    store.put(key, b"pixels", create_only=True)

    assert (tmp_path / "my photos" / "été 2024" / "ü ñ 写真 #1 %20.jpg").read_bytes() == b"pixels"
    uri = store.uri(key)
    assert uri.startswith("file://")
    assert Path(unquote(urlparse(uri).path)) == tmp_path / key


def test_a_put_survives_its_folder_being_removed_while_it_writes(tmp_path: Path) -> None:
    # A delete removes the folders it leaves empty; a put into the same folder from another
    # thread or process may see its folder vanish between making it and writing into it.
    store = LocalFolderStore(tmp_path)
    removals = 0
    done = threading.Event()

    def remove_the_folder_whenever_empty() -> None:
        nonlocal removals
        while removals < 20 and not done.is_set():
            try:
                (tmp_path / "batch").rmdir()
                removals += 1
            except OSError:
                pass

    remover = threading.Thread(target=remove_the_folder_whenever_empty)
    remover.start()
    try:
        while remover.is_alive():
            store.put("batch/_LEASE", b"held")
            store.delete("batch/_LEASE")
    finally:
        done.set()
        remover.join()
    assert removals == 20


def test_a_conditional_write_in_a_folder_locked_by_a_stopped_process_fails_in_bounded_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = LocalFolderStore(tmp_path)
    info = store.put("batch/_LEASE", b"held")
    monkeypatch.setattr(local, "FOLDER_LOCK_WAIT_S", 0.2)
    holder = subprocess.Popen(  # holds the folder's lock as a writer stopped inside it would
        [sys.executable, "-c", HOLD_LOCK, str(tmp_path / "batch")], stdout=subprocess.PIPE
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == b"locked\n"
        with pytest.raises(TransientStoreError, match="seems stopped"):
            store.put("batch/_LEASE", b"mine", if_token=info.change_token)
    finally:
        holder.kill()
        holder.communicate()
    assert store.put("batch/_LEASE", b"mine", if_token=info.change_token).size == 4


HOLD_LOCK = """
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDONLY | os.O_DIRECTORY)
fcntl.flock(fd, fcntl.LOCK_EX)
print("locked", flush=True)
time.sleep(60)
"""
