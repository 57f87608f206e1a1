"""Lake tables (DESIGN §5): commit markers, whole replacement, checkpoint resume, current view."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from resources.errors import InvalidKey, LakeError, LeaseHeld
from resources.lake.lease import LeaseHolder
from resources.lake.tables import (
    ATTEMPT,
    MARKER,
    META_FINGERPRINT,
    META_INPUT_END,
    META_INPUT_START,
    Commit,
    Lake,
    PartitionWriter,
)
from resources.stores.local import LocalFolderStore
from tests.resources.lake.test_lease import take_over_until_noticed

ASSET = "dataset_items"
SCHEMA = pa.schema([("item_id", pa.string()), ("value", pa.int64()), ("made_by", pa.string())])
REPO_ROOT = Path(__file__).resolve().parents[3]


def rows(start: int, end: int, made_by: str = "fp-1") -> pa.Table:
    """The rows for inputs ``[start, end)``: one row per input, tagged with who made them."""
    return pa.table(
        {
            "item_id": [f"item-{i:04d}" for i in range(start, end)],
            "value": list(range(start, end)),
            "made_by": [made_by] * (end - start),
        },
        schema=SCHEMA,
    )


def write_whole(
    lake: Lake,
    partition: str,
    n: int,
    *,
    step: int = 3,
    fingerprint: str = "fp-1",
    run_id: str = "run-1",
    asset: str = ASSET,
) -> Commit:
    with lake.writer(asset, partition, fingerprint=fingerprint, run_id=run_id) as writer:
        for start in range(writer.resume_from, n, step):
            end = min(start + step, n)
            writer.write_chunk(rows(start, end, fingerprint), input_end=end)
        return writer.commit(SCHEMA)


def write_abandoned(
    lake: Lake, partition: str, ends: list[int], *, fingerprint: str = "fp-1"
) -> str:
    """Write chunks ending at ``ends`` and leave without a commit, as a crashed run would."""
    with lake.writer(ASSET, partition, fingerprint=fingerprint, run_id="crashed") as writer:
        for end in ends:
            writer.write_chunk(rows(writer.resume_from, end, fingerprint), input_end=end)
        return writer.attempt


def attempts_on_disk(root: Path, partition: str) -> dict[str, list[str]]:
    """Attempt folders of a partition and the files in each (empty folders included)."""
    folder = root / ASSET / partition
    return {
        sub.name: sorted(p.name for p in sub.iterdir() if p.is_file())
        for sub in sorted(folder.iterdir())
        if sub.is_dir()
    }


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "lake"


@pytest.fixture
def lake(root: Path) -> Lake:
    return Lake(LocalFolderStore(root))


# -- visibility --------------------------------------------------------------------------------


def test_a_table_is_invisible_until_its_commit(lake: Lake) -> None:
    with lake.writer(ASSET, "src_000001", fingerprint="fp-1", run_id="run-1") as writer:
        writer.write_chunk(rows(0, 5), input_end=5)
        writer.write_chunk(rows(5, 10), input_end=10)

        with pytest.raises(LakeError) as caught:
            lake.read_table(ASSET, "src_000001")
        assert not lake.is_committed(ASSET, "src_000001")
        assert lake.read_commit(ASSET, "src_000001") is None

        writer.commit(SCHEMA)

    assert ASSET in str(caught.value)
    assert "'src_000001'" in str(caught.value)
    assert lake.is_committed(ASSET, "src_000001")
    assert lake.read_table(ASSET, "src_000001").equals(rows(0, 10))


def test_reading_a_partition_never_written_names_the_asset_and_partition(lake: Lake) -> None:
    with pytest.raises(LakeError, match=r"embeddings .*'src_000042'"):
        lake.read_table("embeddings", "src_000042")


def test_readers_read_exactly_the_files_the_marker_lists(lake: Lake, root: Path) -> None:
    commit = write_whole(lake, "p1", 7)
    attempt = commit.files[0]["path"].split("/")[0]
    stray = rows(100, 103, "stray")
    pq.write_table(stray, root / ASSET / "p1" / attempt / "part-00009.parquet")
    pq.write_table(stray, root / ASSET / "p1" / "part-00000.parquet")
    (root / ASSET / "p1" / "w-other").mkdir()
    pq.write_table(stray, root / ASSET / "p1" / "w-other" / "part-00000.parquet")

    table = lake.read_table(ASSET, "p1")

    assert table.equals(rows(0, 7))
    assert table.num_rows == commit.rows == 7


def test_the_marker_is_json_naming_files_rows_schema_run_time_and_fingerprint(
    lake: Lake, root: Path
) -> None:
    commit = write_whole(lake, "p1", 7, step=3, fingerprint="manifest-abc", run_id="run-42")
    folder = root / ASSET / "p1"

    marker = json.loads((folder / MARKER).read_bytes())

    assert marker["rows"] == 7
    assert marker["run_id"] == "run-42"
    assert marker["fingerprint"] == "manifest-abc"
    assert isinstance(marker["time"], float) and marker["time"] > 0
    assert marker["schema"] == [
        {"name": "item_id", "type": "string"},
        {"name": "value", "type": "int64"},
        {"name": "made_by", "type": "string"},
    ]
    assert [f["rows"] for f in marker["files"]] == [3, 3, 1]
    for listed in marker["files"]:
        assert listed["size"] == (folder / listed["path"]).stat().st_size
        assert listed["path"].endswith(".parquet")
        assert not Path(listed["path"]).is_absolute()
    assert Commit.from_json((folder / MARKER).read_bytes()) == commit
    assert commit.schema == SCHEMA


def test_extra_commit_fields_land_in_the_marker(lake: Lake, root: Path) -> None:
    with lake.writer(ASSET, "p1", fingerprint="fp-1", run_id="run-1") as writer:
        writer.write_chunk(rows(0, 2), input_end=2)
        writer.commit(SCHEMA, corrupt=1, source="inbox")

    marker = json.loads((root / ASSET / "p1" / MARKER).read_bytes())
    assert (marker["corrupt"], marker["source"]) == (1, "inbox")
    commit = lake.read_commit(ASSET, "p1")
    assert commit is not None
    assert commit.extra["corrupt"] == 1


def test_an_empty_table_commits_and_reads_back_with_its_schema(lake: Lake, root: Path) -> None:
    with lake.writer(ASSET, "empty", fingerprint="fp-1", run_id="run-1") as writer:
        commit = writer.commit(SCHEMA)

    table = lake.read_table(ASSET, "empty")

    assert table.num_rows == 0
    assert table.schema == SCHEMA
    assert lake.read_table(ASSET, "empty", columns=["value"]).schema == pa.schema(
        [("value", pa.int64())]
    )
    assert commit.rows == 0
    assert json.loads((root / ASSET / "empty" / MARKER).read_bytes())["files"] == []


def test_read_table_can_read_some_columns(lake: Lake) -> None:
    write_whole(lake, "p1", 5)

    table = lake.read_table(ASSET, "p1", columns=["value", "item_id"])

    assert table.column_names == ["value", "item_id"]
    assert table.column("value").to_pylist() == [0, 1, 2, 3, 4]


def test_a_partition_name_that_could_leave_the_lake_is_refused(lake: Lake, root: Path) -> None:
    with pytest.raises(InvalidKey):
        lake.read_table(ASSET, "../outside")
    with pytest.raises(InvalidKey):
        lake.writer(ASSET, "../outside", fingerprint="fp-1", run_id="run-1")
    assert not root.exists()


# -- re-running a partition ----------------------------------------------------------------------


@pytest.mark.parametrize("second_fingerprint", ["fp-1", "fp-2"])
def test_rerunning_a_partition_replaces_it_whole(
    lake: Lake, root: Path, second_fingerprint: str
) -> None:
    first = write_whole(lake, "p1", 10, run_id="run-1")
    old_attempt = first.files[0]["path"].split("/")[0]

    second = write_whole(lake, "p1", 4, fingerprint=second_fingerprint, run_id="run-2")

    table = lake.read_table(ASSET, "p1")
    assert table.equals(rows(0, 4, second_fingerprint))
    assert second.run_id == "run-2"
    new_attempt = second.files[0]["path"].split("/")[0]
    assert new_attempt != old_attempt
    assert not [
        info.key for page in lake.store.list_objects(f"{ASSET}/p1/{old_attempt}/") for info in page
    ]
    on_disk = attempts_on_disk(root, "p1")
    assert on_disk[new_attempt] == [ATTEMPT, "part-00000.parquet", "part-00001.parquet"]
    assert all(files == [] for name, files in on_disk.items() if name != new_attempt)


def test_a_reader_of_the_old_marker_never_sees_a_mix_of_old_and_new(lake: Lake, root: Path) -> None:
    write_whole(lake, "p1", 9, step=3, fingerprint="old", run_id="run-old")
    rewrites: list[Commit] = []

    class RewrittenWhileRead(LocalFolderStore):
        """Another run replaces the partition right after this reader read its first file."""

        def get(self, key: str, *, if_token: str | None = None) -> bytes:
            data = super().get(key, if_token=if_token)
            if key.endswith(".parquet") and not rewrites:
                rewrites.append(write_whole(lake, "p1", 5, step=2, fingerprint="new"))
            return data

    reader = Lake(RewrittenWhileRead(root))
    old_marker = reader.read_commit(ASSET, "p1")

    table = reader.read_table(ASSET, "p1")

    assert rewrites, "the rewrite did not happen during the read"
    assert table.equals(rows(0, 5, "new"))
    assert old_marker is not None
    assert not any(lake.store.exists(f"{ASSET}/p1/{f['path']}") for f in old_marker.files)


# -- checkpoints and resume ----------------------------------------------------------------------


def resumed_from(writer: PartitionWriter) -> set[str]:
    """The attempt folders whose chunks a writer resumed (it writes into a folder of its own)."""
    return {c.path.split("/", 1)[0] for c in writer.chunks}


def test_a_crashed_writer_is_resumed_and_the_result_equals_an_uninterrupted_run(
    lake: Lake, root: Path
) -> None:
    uninterrupted = write_whole(lake, "whole", 10, step=3)
    abandoned = write_abandoned(lake, "p1", [3, 6])

    with lake.writer(ASSET, "p1", fingerprint="fp-1", run_id="run-2") as writer:
        assert resumed_from(writer) == {abandoned} and writer.attempt != abandoned
        assert writer.resume_from == 6
        assert writer.resumed_rows == 6
        assert pa.concat_tables(writer.iter_chunks()).equals(rows(0, 6))
        for start in range(writer.resume_from, 10, 3):
            writer.write_chunk(rows(start, min(start + 3, 10)), input_end=min(start + 3, 10))
        commit = writer.commit(SCHEMA)

    assert commit.rows == uninterrupted.rows == 10
    assert commit.extra["resumed_rows"] == 6
    assert uninterrupted.extra["resumed_rows"] == 0
    assert lake.read_table(ASSET, "p1").equals(lake.read_table(ASSET, "whole"))


def test_a_writer_killed_mid_run_is_taken_over_and_resumed(lake: Lake, root: Path) -> None:
    crash = textwrap.dedent(
        f"""
        import os
        from resources.lake.tables import Lake
        from resources.stores.local import LocalFolderStore
        from tests.resources.lake.test_tables import ASSET, rows

        lake = Lake(LocalFolderStore({str(root)!r}))
        writer = lake.writer(ASSET, "p1", fingerprint="fp-1", run_id="run-crashed").__enter__()
        writer.write_chunk(rows(0, 3), input_end=3)
        writer.write_chunk(rows(3, 6), input_end=6)
        print(os.getpid(), flush=True)
        os._exit(9)  # dies holding the lease, without a commit
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", crash], cwd=REPO_ROOT, capture_output=True, text=True, check=False
    )
    assert done.returncode == 9, done.stderr
    assert (root / ASSET / "p1" / "_LEASE").exists()

    with lake.writer(ASSET, "p1", fingerprint="fp-1", run_id="run-2") as writer:
        assert writer.lease.took_over is not None
        assert writer.lease.took_over.owner == "run run-crashed"
        assert writer.lease.took_over.pid == int(done.stdout)
        assert writer.resume_from == 6
        for start in range(6, 10, 3):
            writer.write_chunk(rows(start, min(start + 3, 10)), input_end=min(start + 3, 10))
        writer.commit(SCHEMA)

    assert lake.read_table(ASSET, "p1").equals(rows(0, 10))


def test_resumed_rows_counts_rows_even_when_an_input_makes_several(lake: Lake) -> None:
    boxes = pa.table({"item_id": ["a", "a", "a", "b"], "box": [1, 2, 3, 4]})
    with lake.writer("predictions", "p1", fingerprint="fp-1", run_id="crashed") as writer:
        writer.write_chunk(boxes, input_end=2)  # two images, four boxes

    with lake.writer("predictions", "p1", fingerprint="fp-1", run_id="run-2") as writer:
        assert writer.resume_from == 2
        assert writer.resumed_rows == 4
        commit = writer.commit(boxes.schema)

    assert commit.extra["resumed_rows"] == 4
    assert lake.read_table("predictions", "p1").equals(boxes)


def test_a_different_fingerprint_starts_from_zero_and_never_stitches_old_chunks(
    lake: Lake, root: Path
) -> None:
    old_attempt = write_abandoned(lake, "p1", [3, 6], fingerprint="fp-old")

    with lake.writer(ASSET, "p1", fingerprint="fp-new", run_id="run-2") as writer:
        assert writer.resume_from == 0
        assert writer.resumed_rows == 0
        assert writer.attempt != old_attempt
        assert list(writer.iter_chunks()) == []
        writer.write_chunk(rows(0, 2, "fp-new"), input_end=2)
        commit = writer.commit(SCHEMA)

    assert commit.rows == 2
    assert lake.read_table(ASSET, "p1").equals(rows(0, 2, "fp-new"))
    assert attempts_on_disk(root, "p1").get(old_attempt, []) == []


def test_an_abandoned_attempt_with_another_fingerprint_is_kept_until_a_commit(
    lake: Lake, root: Path
) -> None:
    old_attempt = write_abandoned(lake, "p1", [3, 6], fingerprint="fp-old")
    with lake.writer(ASSET, "p1", fingerprint="fp-new", run_id="run-2") as writer:
        writer.write_chunk(rows(0, 1, "fp-new"), input_end=1)  # and crashes too

    with lake.writer(ASSET, "p1", fingerprint="fp-old", run_id="run-3") as writer:
        assert resumed_from(writer) == {old_attempt} and writer.attempt != old_attempt
        assert writer.resume_from == 6


def test_a_chunk_whose_fingerprint_metadata_does_not_match_is_discarded(
    lake: Lake, root: Path
) -> None:
    attempt = write_abandoned(lake, "p1", [3, 6, 9])
    chunk = root / ASSET / "p1" / attempt / "part-00001.parquet"
    foreign = rows(3, 6, "foreign").replace_schema_metadata(
        {META_FINGERPRINT: b"fp-other", META_INPUT_START: b"3", META_INPUT_END: b"6"}
    )
    pq.write_table(foreign, chunk)

    with lake.writer(ASSET, "p1", fingerprint="fp-1", run_id="run-2") as writer:
        assert resumed_from(writer) == {attempt} and writer.attempt != attempt
        assert writer.resume_from == 3
        assert pa.concat_tables(writer.iter_chunks()).equals(rows(0, 3))
        for start in range(3, 10, 3):
            writer.write_chunk(rows(start, min(start + 3, 10)), input_end=min(start + 3, 10))
        writer.commit(SCHEMA)

    table = lake.read_table(ASSET, "p1")
    assert table.equals(rows(0, 10))
    assert "foreign" not in table.column("made_by").to_pylist()


def test_a_chunk_that_does_not_continue_the_previous_one_is_discarded(
    lake: Lake, root: Path
) -> None:
    attempt = write_abandoned(lake, "p1", [3, 6])
    gap = rows(4, 6).replace_schema_metadata(
        {META_FINGERPRINT: b"fp-1", META_INPUT_START: b"4", META_INPUT_END: b"6"}
    )
    pq.write_table(gap, root / ASSET / "p1" / attempt / "part-00001.parquet")

    with lake.writer(ASSET, "p1", fingerprint="fp-1", run_id="run-2") as writer:
        assert writer.resume_from == 3


def test_a_chunk_must_cover_new_inputs(lake: Lake) -> None:
    with lake.writer(ASSET, "p1", fingerprint="fp-1", run_id="run-1") as writer:
        writer.write_chunk(rows(0, 3), input_end=3)

        with pytest.raises(LakeError, match=r"\[3, 3\)"):
            writer.write_chunk(rows(3, 4), input_end=3)


def test_a_rerun_after_a_commit_does_not_resume_the_committed_attempt(lake: Lake) -> None:
    write_whole(lake, "p1", 6)

    with lake.writer(ASSET, "p1", fingerprint="fp-1", run_id="run-2") as writer:
        assert writer.resume_from == 0
        assert writer.resumed_rows == 0


# -- the current view ----------------------------------------------------------------------------


def commit_rows(lake: Lake, partition: str, ids: list[str], version: int) -> None:
    table = pa.table(
        {"item_id": ids, "version": [version] * len(ids), "note": [f"{i}@{version}" for i in ids]}
    )
    with lake.writer("labels", partition, fingerprint="fp", run_id=f"run-{version}") as writer:
        writer.write_chunk(table, input_end=len(ids))
        writer.commit(table.schema)


def test_read_current_keeps_the_latest_row_per_item_with_later_partitions_winning(
    lake: Lake,
) -> None:
    commit_rows(lake, "b1", ["a", "b", "c"], 1)
    commit_rows(lake, "b2", ["b", "d"], 2)
    commit_rows(lake, "b3", ["a", "e", "d"], 3)

    current = lake.read_current("labels", ["b1", "b2", "b3"])

    ids = current.column("item_id").to_pylist()
    assert len(ids) == len(set(ids)) == 5
    assert dict(zip(ids, current.column("version").to_pylist(), strict=True)) == {
        "a": 3,
        "b": 2,
        "c": 1,
        "d": 3,
        "e": 3,
    }
    # Rows come in the order their winning version was written.
    assert ids == ["c", "b", "a", "e", "d"]
    assert current.column("note").to_pylist() == ["c@1", "b@2", "a@3", "e@3", "d@3"]


def test_read_current_takes_partitions_in_the_order_given(lake: Lake) -> None:
    commit_rows(lake, "b1", ["a", "b"], 1)
    commit_rows(lake, "b2", ["a"], 2)

    current = lake.read_current("labels", ["b2", "b1"])

    assert current.to_pydict()["version"] == [1, 1]
    assert current.column("item_id").to_pylist() == ["a", "b"]


def test_read_current_skips_uncommitted_partitions_and_refuses_when_none_is(lake: Lake) -> None:
    commit_rows(lake, "b1", ["a"], 1)
    with lake.writer("labels", "b2", fingerprint="fp", run_id="crashed") as writer:
        writer.write_chunk(pa.table({"item_id": ["a"], "version": [2], "note": ["x"]}), input_end=1)

    assert lake.read_current("labels", ["b1", "b2", "b9"]).column("version").to_pylist() == [1]
    with pytest.raises(LakeError, match="labels"):
        lake.read_current("labels", ["b2", "b9"])


# -- one writer per partition --------------------------------------------------------------------


def test_a_second_writer_refuses_to_start_while_the_first_is_live(lake: Lake, root: Path) -> None:
    with lake.writer(ASSET, "p1", fingerprint="fp-1", run_id="run-1") as first:
        first.write_chunk(rows(0, 3), input_end=3)
        before = attempts_on_disk(root, "p1")

        with pytest.raises(LeaseHeld, match="run run-1"):
            lake.writer(ASSET, "p1", fingerprint="fp-1", run_id="run-2").__enter__()

        assert attempts_on_disk(root, "p1") == before
        first.write_chunk(rows(3, 5), input_end=5)
        first.commit(SCHEMA)

    assert lake.read_table(ASSET, "p1").equals(rows(0, 5))
    write_whole(lake, "p1", 2, run_id="run-2")
    assert lake.read_table(ASSET, "p1").equals(rows(0, 2))


def test_writers_of_different_partitions_run_side_by_side(lake: Lake) -> None:
    with (
        lake.writer(ASSET, "p1", fingerprint="fp-1", run_id="run-1") as one,
        lake.writer(ASSET, "p2", fingerprint="fp-1", run_id="run-2") as two,
    ):
        one.write_chunk(rows(0, 2), input_end=2)
        two.write_chunk(rows(2, 4), input_end=2)
        one.commit(SCHEMA)
        two.commit(SCHEMA)

    assert lake.read_table(ASSET, "p1").equals(rows(0, 2))
    assert lake.read_table(ASSET, "p2").equals(rows(2, 4))


def test_a_writer_whose_lease_was_taken_over_refuses_to_commit(lake: Lake, root: Path) -> None:
    writer = lake.writer(ASSET, "p1", fingerprint="fp-1", run_id="run-1")
    writer.lease.heartbeat_every = 0.01
    with writer:
        writer.write_chunk(rows(0, 3), input_end=3)
        lease_file = root / ASSET / "p1" / "_LEASE"
        usurper = json.loads(lease_file.read_bytes()) | {"nonce": "someone-else", "owner": "run 2"}
        take_over_until_noticed(lake.store, writer.lease, LeaseHolder(**usurper))

        with pytest.raises(LakeError, match="taken over"):
            writer.commit(SCHEMA)

    assert not lake.is_committed(ASSET, "p1")
    assert json.loads(lease_file.read_bytes())["nonce"] == "someone-else"
