"""Deletions found by claiming: tombstones in the manifests, for a local folder source."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator

from ingest_assets.claiming.claim import Claimer, ClaimResult
from resources.lake.datapool import DatapoolRecord, read_manifest
from resources.stores.base import DEFAULT_PAGE_SIZE, ObjectInfo
from resources.stores.local import LocalFolderStore
from tests.conftest import Project
from tests.images import write_image


class SmallPages(LocalFolderStore):
    """A local folder listed a few keys a page, so that a few files make a long listing."""

    def list_objects(
        self, prefix: str = "", start_after: str = "", page_size: int = DEFAULT_PAGE_SIZE
    ) -> Iterator[list[ObjectInfo]]:
        return super().list_objects(prefix, start_after, 3)


def claimer(project: Project, *, name: str = "test", small_pages: bool = False) -> Claimer:
    store = SmallPages(project.inbox) if small_pages else LocalFolderStore(project.inbox)
    return Claimer(
        project.config.source("inbox"), store, LocalFolderStore(project.root / "lake"), claimer=name
    )


def rows(project: Project, batch: str) -> list[dict[str, object]]:
    lake = LocalFolderStore(project.root / "lake")
    return read_manifest(lake, batch, ["key", "uri", "change_token", "deleted"]).to_pylist()


def tombstones(project: Project) -> list[str]:
    """Every key a manifest of the lake holds a tombstone for, in manifest order."""
    found = []
    for path in sorted((project.root / "lake/_datapool/inbox").glob("inbox_*.parquet")):
        found += [r["key"] for r in rows(project, path.stem) if r["deleted"]]
    return found


def seed(project: Project, names: list[str]) -> None:
    for i, name in enumerate(names):
        write_image(project.inbox / name, seed=i)


def test_a_deleted_object_gets_a_tombstone_at_the_next_claim(project: Project) -> None:
    seed(project, ["a.jpg", "b/1.jpg", "b/2.jpg", "c.jpg"])
    project.claim()
    uri = LocalFolderStore(project.inbox).uri("b/1.jpg")
    (project.inbox / "b" / "1.jpg").unlink()
    (project.inbox / "c.jpg").unlink()  # after the last key still listed

    result = project.claim()
    again = project.claim()

    assert (result.new_batches, result.new_objects, result.deleted) == (["inbox_000002"], 2, 2)
    assert rows(project, "inbox_000002") == [
        {"key": "b/1.jpg", "uri": uri, "change_token": None, "deleted": True},
        {
            "key": "c.jpg",
            "uri": uri.replace("b/1.jpg", "c.jpg"),
            "change_token": None,
            "deleted": True,
        },
    ]
    assert again.new_batches == [] and again.deleted == 0  # a tombstone is written once


def test_deletions_and_new_objects_share_batches_in_key_order(project: Project) -> None:
    seed(project, ["a.jpg", "c.jpg", "e.jpg"])
    project.claim()
    (project.inbox / "c.jpg").unlink()
    seed(project, ["b.jpg", "d.jpg"])

    result = project.claim()

    assert result.new_batches == ["inbox_000002"]
    assert [(r["key"], r["deleted"]) for r in rows(project, "inbox_000002")] == [
        ("b.jpg", False),
        ("c.jpg", True),
        ("d.jpg", False),
    ]


def test_an_empty_listing_deletes_nothing_and_says_why(project: Project) -> None:
    seed(project, ["a.jpg", "b.jpg", "c.jpg"])
    project.claim()
    for name in ("a.jpg", "b.jpg", "c.jpg"):
        (project.inbox / name).unlink()
    project.inbox.rmdir()  # as an unmounted disk or a wrong prefix looks

    result = project.claim()

    assert (result.listed, result.deleted, result.new_batches) == (0, 0, [])
    assert "listing" in result.warning and "is empty" in result.warning
    assert "reachable" in result.warning
    assert tombstones(project) == []

    project.inbox.mkdir()
    seed(project, ["c.jpg"])  # one object back: the others are gone for real
    after = project.claim()
    assert after.warning == "" and tombstones(project) == ["a.jpg", "b.jpg"]


def test_an_object_back_after_its_tombstone_is_claimed_again_with_the_same_token(
    project: Project,
) -> None:
    path = write_image(project.inbox / "a.jpg")
    write_image(project.inbox / "b.jpg", seed=2)  # stays: the source is not empty
    data, stat = path.read_bytes(), path.stat()
    project.claim()
    path.unlink()
    assert project.claim().deleted == 1
    path.write_bytes(data)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # the very same change token

    back = project.claim()

    assert back.new_batches == ["inbox_000003"] and back.deleted == 0
    assert (
        rows(project, "inbox_000003")[0]["change_token"]
        == rows(project, "inbox_000001")[0]["change_token"]
    )


def test_an_object_rewritten_back_to_an_earlier_version_is_claimed_again(
    project: Project,
) -> None:
    path = write_image(project.inbox / "a.jpg", seed=1)
    first, stat = path.read_bytes(), path.stat()
    project.claim()
    write_image(path, width=40, seed=2)
    project.claim()
    path.write_bytes(first)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # token of the first version

    again = project.claim()

    assert again.new_batches == ["inbox_000003"]
    tokens = [rows(project, f"inbox_00000{i}")[0]["change_token"] for i in (1, 2, 3)]
    assert tokens[0] == tokens[2] != tokens[1]


def test_a_key_a_changed_filter_leaves_out_is_not_deleted(project: Project) -> None:
    seed(project, ["a.jpg", "b.png", "c.png"])
    project.claim()
    project.write_config(include=["**/*.jpg"])
    (project.inbox / "c.png").unlink()  # gone, but the source no longer takes .png files

    result = project.claim()
    project.write_config()
    (project.inbox / "a.jpg").unlink()
    back = project.claim()  # the filter takes .png again: c.png is gone, b.png is as it was

    assert result.new_batches == [] and tombstones(project) == ["a.jpg", "c.png"]
    assert back.deleted == 2


def test_a_cut_and_resumed_listing_gives_the_tombstones_of_one_pass(project: Project) -> None:
    names = [f"{folder}/{i}.jpg" for folder in "abcd" for i in range(4)]
    seed(project, names)
    project.claim()
    gone = ["a/0.jpg", "b/1.jpg", "b/2.jpg", "c/3.jpg", "d/3.jpg"]
    for name in gone:
        (project.inbox / name).unlink()

    results: list[ClaimResult] = []
    cursor = ""
    while not results or not results[-1].exhausted:
        # A deadline already passed: each claim lists one page of three keys.
        results.append(
            claimer(project, small_pages=True).claim(
                registered=set(), start_after=cursor, deadline=0.0, close_all=True
            )
        )
        cursor = results[-1].cursor

    assert len(results) > 3 and all(not r.exhausted for r in results[:-1])
    assert tombstones(project) == gone  # each once, in key order, as one pass writes them
    assert sum(r.deleted for r in results) == len(gone)
    # d/3.jpg sorts after every key still listed: only the pass that reached the end knew.
    last = results[-1].new_batches[-1]
    assert [r["key"] for r in rows(project, last) if r["deleted"]][-1] == "d/3.jpg"


def test_a_cut_listing_leaves_keys_after_its_last_listed_key_alone(project: Project) -> None:
    seed(project, [f"{i}.jpg" for i in range(6)])
    project.claim()
    (project.inbox / "5.jpg").unlink()

    cut = claimer(project, small_pages=True).claim(registered=set(), deadline=0.0, close_all=True)

    assert not cut.exhausted and cut.cursor == "2.jpg"
    assert cut.deleted == 0 and tombstones(project) == []


def test_a_deletion_waits_in_a_trickle_like_a_new_object(project: Project) -> None:
    project.write_config(min_batch_size=3, max_batch_wait_seconds=3600)
    seed(project, ["a.jpg", "b.jpg"])
    claimer(project).claim(registered=set(), close_all=True)
    (project.inbox / "a.jpg").unlink()

    waiting = claimer(project).claim(registered=set())
    seed(project, ["c.jpg", "d.jpg"])
    full = claimer(project).claim(registered=set())

    assert waiting.new_batches == [] and waiting.pending == 1
    assert full.new_batches == ["inbox_000002"] and full.deleted == 1
    assert [(r["key"], r["deleted"]) for r in rows(project, "inbox_000002")] == [
        ("a.jpg", True),
        ("c.jpg", False),
        ("d.jpg", False),
    ]


def test_racing_claimers_write_each_tombstone_once(project: Project) -> None:
    """Each claimer has its own record (as separate processes would) and skips the lease."""
    project.write_config(batch_size=4)
    names = [f"{i:03d}.jpg" for i in range(40)]
    seed(project, names)
    project.claim()
    lake = LocalFolderStore(project.root / "lake")
    stop = threading.Event()
    errors: list[BaseException] = []

    def claim_repeatedly(name: str) -> None:
        racer = claimer(project, name=name)
        racer.record = DatapoolRecord(lake, "inbox")
        try:
            while not stop.is_set():
                racer.claim(registered=set(), close_all=True, hold_lease=False)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=claim_repeatedly, args=(f"c{i}",)) for i in range(3)]
    for thread in threads:
        thread.start()
    for name in names[::2]:
        (project.inbox / name).unlink()
        time.sleep(0.01)
    stop.set()
    for thread in threads:
        thread.join()
    project.claim()

    assert not errors
    assert sorted(tombstones(project)) == names[::2]


def test_what_another_claimer_claims_after_the_listing_began_is_not_deleted(
    project: Project,
) -> None:
    """The listing read the inbox before z.jpg was made, so it does not show it; another
    claimer claims z.jpg meanwhile, and this claim learns of it when it loses a manifest
    race to it. That is no deletion."""
    project.write_config(batch_size=2)
    seed(project, ["0.jpg"])
    project.claim()
    seed(project, ["a.jpg", "b.jpg", "c.jpg"])
    lake = LocalFolderStore(project.root / "lake")

    class ClaimedMeanwhile(LocalFolderStore):
        def list_objects(
            self, prefix: str = "", start_after: str = "", page_size: int = DEFAULT_PAGE_SIZE
        ) -> Iterator[list[ObjectInfo]]:
            for number, page in enumerate(super().list_objects(prefix, start_after, page_size)):
                if number == 0:  # the inbox is read: z.jpg comes, and the other claims it
                    write_image(project.inbox / "z.jpg", seed=9)
                    other = claimer(project, name="other")
                    other.record = DatapoolRecord(lake, "inbox")
                    other.claim(registered=set(), close_all=True, hold_lease=False)
                yield page

    this = Claimer(
        project.config.source("inbox"), ClaimedMeanwhile(project.inbox), lake, claimer="this"
    )
    this.record = DatapoolRecord(lake, "inbox")
    result = this.claim(registered=set(), close_all=True, hold_lease=False)

    assert result.listed == 4 and result.deleted == 0
    assert tombstones(project) == []
    claimed = [
        r["key"]
        for path in sorted(lake.root.glob("_datapool/inbox/inbox_*.parquet"))
        for r in rows(project, path.stem)
    ]
    assert sorted(claimed) == ["0.jpg", "a.jpg", "b.jpg", "c.jpg", "z.jpg"]


def test_a_listing_resumed_into_an_empty_source_deletes_nothing(
    project: Project,
) -> None:
    seed(project, ["a.jpg", "b.jpg", "c.jpg", "d.jpg"])
    project.claim()
    resumed = claimer(project).claim(registered=set(), start_after="b.jpg", close_all=True)
    assert resumed.deleted == 0  # nothing changed: a plain resumed listing
    for name in ("a.jpg", "b.jpg", "c.jpg", "d.jpg"):
        (project.inbox / name).unlink()
    (project.inbox / ".DS_Store").write_bytes(b"\x00")  # listed, but no object of the source

    after_cursor = claimer(project).claim(registered=set(), start_after="b.jpg", close_all=True)
    from_start = claimer(project).claim(registered=set(), close_all=True)

    assert after_cursor.deleted == 0 and "is empty" in after_cursor.warning
    assert from_start.deleted == 0 and "is empty" in from_start.warning
    assert tombstones(project) == []
