"""Write leases: one live holder per key, taking over dead or stale holders, and the heartbeat."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import pytest

from resources.errors import LeaseHeld
from resources.lake.lease import Lease, LeaseHolder, process_start_ticks
from resources.lake.tables import Lake
from resources.stores.local import LocalFolderStore

KEY = "dataset_items/src_000001/_LEASE"
OTHER_HOST = "worker-7.cluster.example"


@pytest.fixture
def store(tmp_path: Path) -> LocalFolderStore:
    return LocalFolderStore(tmp_path)


def holder(**fields: object) -> LeaseHolder:
    now = time.time()
    values: dict[str, object] = {
        "owner": "run crashed",
        "nonce": "left-behind",
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "pid_start": process_start_ticks(os.getpid()),
        "heartbeat": now,
        "acquired": now,
    }
    values.update(fields)
    return LeaseHolder(**values)  # type: ignore[arg-type]


def leave_lease(store: LocalFolderStore, left: LeaseHolder) -> None:
    """Write a lease object by hand, as another process would have left it."""
    store.put(KEY, json.dumps(asdict(left)).encode())


def recorded(store: LocalFolderStore) -> LeaseHolder:
    return LeaseHolder.parse(store.get(KEY))


def dead_pid() -> int:
    """The pid of a process that has already exited."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def wait_until(condition: Callable[[], bool]) -> None:
    """Wait for the heartbeat thread to act (bounded, so a broken heartbeat fails the test)."""
    for _ in range(2000):
        if condition():
            return
        time.sleep(0.005)
    raise AssertionError("the condition never became true")


# -- one holder at a time ------------------------------------------------------------------------


def test_a_second_lease_on_the_same_key_is_refused_naming_the_holder(
    store: LocalFolderStore,
) -> None:
    with Lease(store, KEY, owner="run first"):
        with pytest.raises(LeaseHeld) as caught:
            Lease(store, KEY, owner="run second").acquire()

        assert recorded(store).owner == "run first"

    message = str(caught.value)
    assert "run first" in message
    assert f"pid {os.getpid()}" in message
    assert socket.gethostname() in message
    assert KEY in message


def test_two_leases_in_one_process_exclude_each_other(store: LocalFolderStore) -> None:
    first = Lease(store, KEY, owner="run same-owner").acquire()
    second = Lease(store, KEY, owner="run same-owner")
    try:
        with pytest.raises(LeaseHeld):
            second.acquire()
        second.release()  # releasing a lease it never got must not free the first one's
        assert recorded(store).nonce == first.nonce
    finally:
        first.release()


def test_after_release_the_lease_can_be_acquired_again(store: LocalFolderStore) -> None:
    with Lease(store, KEY, owner="run first"):
        pass
    assert not store.exists(KEY)

    with Lease(store, KEY, owner="run second") as second:
        assert second.took_over is None
        assert recorded(store).owner == "run second"
    assert not store.exists(KEY)


def test_a_lease_is_released_when_its_block_fails(store: LocalFolderStore) -> None:
    with pytest.raises(RuntimeError), Lease(store, KEY, owner="run failing"):
        raise RuntimeError("the work failed")

    with Lease(store, KEY, owner="run next") as lease:
        assert lease.took_over is None


def test_releasing_never_deletes_a_lease_somebody_else_took_over(
    store: LocalFolderStore,
) -> None:
    lease = Lease(store, KEY, owner="run slow").acquire()
    successor = holder(owner="run successor", nonce="successor")
    leave_lease(store, successor)

    lease.release()

    assert recorded(store) == successor


def test_the_lease_records_who_holds_it(store: LocalFolderStore) -> None:
    with Lease(store, KEY, owner="run abc") as lease:
        held = recorded(store)

    assert (held.owner, held.nonce, held.host, held.pid) == (
        "run abc",
        lease.nonce,
        socket.gethostname(),
        os.getpid(),
    )
    assert held.pid_start == process_start_ticks(os.getpid())


# -- taking over dead holders --------------------------------------------------------------------


def test_a_lease_left_by_a_dead_process_is_taken_over(store: LocalFolderStore) -> None:
    pid = dead_pid()
    leave_lease(store, holder(pid=pid, pid_start=None))

    with Lease(store, KEY, owner="run next") as lease:
        assert lease.took_over is not None
        assert (lease.took_over.owner, lease.took_over.pid) == ("run crashed", pid)
        assert recorded(store).owner == "run next"
        assert recorded(store).nonce == lease.nonce


def test_a_recycled_pid_is_not_mistaken_for_the_holder(store: LocalFolderStore) -> None:
    start = process_start_ticks(os.getpid())
    assert start is not None, "this test needs /proc"
    leave_lease(store, holder(pid=os.getpid(), pid_start=start - 1))

    with Lease(store, KEY, owner="run next") as lease:
        assert lease.took_over is not None
        assert lease.took_over.pid_start == start - 1


def test_a_live_process_on_this_host_with_a_fresh_heartbeat_keeps_its_lease(
    store: LocalFolderStore,
) -> None:
    leave_lease(store, holder(owner="run busy", heartbeat=time.time() - 5))

    with pytest.raises(LeaseHeld, match="run busy"):
        Lease(store, KEY, owner="run next").acquire()
    assert recorded(store).owner == "run busy"


def test_a_running_pid_on_this_host_whose_heartbeat_went_stale_loses_its_lease(
    store: LocalFolderStore,
) -> None:
    # A paused holder keeps its pid, and a container sharing this host name may show a pid
    # that is somebody else's: only the heartbeat tells that the holder still works.
    leave_lease(store, holder(owner="run paused", heartbeat=time.time() - 600))

    with Lease(store, KEY, owner="run next", stale_after=120) as lease:
        assert lease.took_over is not None
        assert lease.took_over.owner == "run paused"
        assert recorded(store).owner == "run next"


def test_a_lease_from_another_host_with_a_stale_heartbeat_is_taken_over(
    store: LocalFolderStore,
) -> None:
    leave_lease(store, holder(host=OTHER_HOST, pid=4242, heartbeat=time.time() - 600))

    with Lease(store, KEY, owner="run next", stale_after=120) as lease:
        assert lease.took_over is not None
        assert (lease.took_over.host, lease.took_over.pid) == (OTHER_HOST, 4242)
        assert recorded(store).host == socket.gethostname()


def test_a_lease_from_another_host_with_a_fresh_heartbeat_is_not_taken_over(
    store: LocalFolderStore,
) -> None:
    leave_lease(store, holder(host=OTHER_HOST, pid=4242, heartbeat=time.time() - 5))

    with pytest.raises(LeaseHeld) as caught:
        Lease(store, KEY, owner="run next", stale_after=120).acquire()

    assert OTHER_HOST in str(caught.value)
    assert "run crashed" in str(caught.value)
    assert recorded(store).host == OTHER_HOST


def test_staleness_is_judged_against_stale_after() -> None:
    remote = holder(host=OTHER_HOST, heartbeat=1000.0)

    assert remote.is_live(stale_after=120, now=1119.0)
    assert not remote.is_live(stale_after=120, now=1120.0)
    assert remote.is_live(stale_after=600, now=1500.0)


def test_an_unreadable_lease_object_is_taken_over(store: LocalFolderStore) -> None:
    store.put(KEY, b'{"owner": "run torn", "pi')

    with Lease(store, KEY, owner="run next") as lease:
        assert lease.took_over is not None
        assert lease.took_over.owner == "unreadable lease"
        assert recorded(store).owner == "run next"


def race_for_the_lease(store: LocalFolderStore, racers: int) -> tuple[list[Lease], int]:
    """Let ``racers`` threads try to acquire the lease at once: the winners and how many lost."""
    start = threading.Barrier(racers)
    winners: list[Lease] = []
    refused: list[LeaseHeld] = []

    def acquire(n: int) -> None:
        lease = Lease(store, KEY, owner=f"run {n}", heartbeat_every=3600)
        start.wait()
        try:
            winners.append(lease.acquire())
        except LeaseHeld as exc:
            refused.append(exc)

    threads = [threading.Thread(target=acquire, args=(n,)) for n in range(racers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return winners, len(refused)


def test_racing_successors_of_a_dead_holder_take_over_once(store: LocalFolderStore) -> None:
    for _ in range(20):
        leave_lease(store, holder(pid=dead_pid(), pid_start=None))

        winners, refused = race_for_the_lease(store, 8)

        assert len(winners) == 1, [w.owner for w in winners]
        assert refused == 7
        assert recorded(store).nonce == winners[0].nonce
        winners[0].release()


def test_racing_writers_of_a_free_lease_acquire_it_once(store: LocalFolderStore) -> None:
    for _ in range(20):
        winners, refused = race_for_the_lease(store, 8)

        assert len(winners) == 1, [w.owner for w in winners]
        assert refused == 7
        assert recorded(store).nonce == winners[0].nonce
        winners[0].release()


# -- the heartbeat -------------------------------------------------------------------------------


def test_the_holder_refreshes_its_heartbeat(store: LocalFolderStore) -> None:
    with Lease(store, KEY, owner="run beating", heartbeat_every=0.01):
        first = recorded(store).heartbeat
        wait_until(lambda: recorded(store).heartbeat > first)
        assert recorded(store).owner == "run beating"


def take_over_until_noticed(store: LocalFolderStore, lease: Lease, successor: LeaseHolder) -> None:
    """Replace the lease with the successor's, once, and wait for the holder's heartbeat to
    notice (its beats are conditional writes: none of them may overwrite the successor)."""
    store.put(lease.key, json.dumps(asdict(successor)).encode())
    wait_until(lambda: lease.lost)


def test_a_holder_notices_when_its_lease_was_taken_over(store: LocalFolderStore) -> None:
    successor = holder(owner="run successor", nonce="successor")
    with Lease(store, KEY, owner="run slow", heartbeat_every=0.01) as lease:
        assert not lease.lost
        take_over_until_noticed(store, lease, successor)

    assert recorded(store) == successor


# -- partition writers ---------------------------------------------------------------------------


def test_a_partition_writer_refuses_to_start_while_another_live_writer_holds_it(
    tmp_path: Path,
) -> None:
    lake = Lake(LocalFolderStore(tmp_path))

    with (
        lake.writer("dataset_items", "src_000001", fingerprint="fp", run_id="run-1"),
        pytest.raises(LeaseHeld, match="run run-1"),
        lake.writer("dataset_items", "src_000001", fingerprint="fp", run_id="run-2"),
    ):
        pytest.fail("a second writer started")

    with lake.writer("dataset_items", "src_000001", fingerprint="fp", run_id="run-2") as writer:
        assert writer.lease.took_over is None


def test_a_partition_writer_takes_over_from_a_dead_writer(tmp_path: Path) -> None:
    store = LocalFolderStore(tmp_path)
    lake = Lake(store)
    leave_lease(store, holder(owner="run run-1", pid=dead_pid(), pid_start=None))

    with lake.writer("dataset_items", "src_000001", fingerprint="fp", run_id="run-2") as writer:
        assert writer.lease.took_over is not None
        assert writer.lease.took_over.owner == "run run-1"


def test_a_holder_in_another_pid_namespace_of_this_host_is_judged_by_its_heartbeat(
    store: LocalFolderStore,
) -> None:
    # A container sharing this host name: its pid means nothing here, so a pid that does not
    # run here does not make its lease dead while its heartbeat is fresh.
    leave_lease(store, holder(owner="run elsewhere", pid=dead_pid(), pid_ns="pid:[1]"))

    with pytest.raises(LeaseHeld, match="run elsewhere"):
        Lease(store, KEY, owner="run next").acquire()
