"""Write leases: one live writer per partition (or per source claim), on any object store.

A lease is a small JSON object created create-only. Its holder refreshes a heartbeat in the
background, each beat a write conditional on the token of its own last write, so a holder that
was paused and taken over finds out at its next beat and never overwrites its successor's lease.
A lease is *live* while its heartbeat is fresh; on the holder's own host and pid namespace a
lease whose process is gone (the pid is not running, or was recycled: it started at another
time) is dead at once.
The heartbeat counts on the same host too: containers share host names, not pid namespaces, and
a paused process keeps its pid. A dead lease is taken over with a conditional delete, so two
would-be successors cannot both take it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
import time
import uuid
from dataclasses import asdict, dataclass
from types import TracebackType

from resources.errors import LeaseHeld, ObjectNotFound, PreconditionFailed, StoreError
from resources.stores.base import ObjectStore

LOG = logging.getLogger(__name__)
DEFAULT_STALE_AFTER_S = 120.0
DEFAULT_HEARTBEAT_S = 10.0


def process_start_ticks(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (Linux), or None where unknown."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as handle:
            stat = handle.read()
    except OSError:
        return None
    # The command name may hold spaces and parentheses; fields resume after the last ')'.
    fields = stat.rsplit(")", 1)[-1].split()
    try:
        return int(fields[19])
    except (IndexError, ValueError):
        return None


def pid_namespace() -> str | None:
    """This process's pid namespace (Linux), or None where unknown: two containers on one host
    may share its host name, not its pids."""
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return None


def pid_running(pid: int, start_ticks: int | None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    if start_ticks is None:
        return True
    current = process_start_ticks(pid)
    return current is None or current == start_ticks


@dataclass(frozen=True)
class LeaseHolder:
    """Who holds a lease, as recorded in the lease object."""

    owner: str
    nonce: str  # unique per Lease object: tells two holders in one process apart
    host: str
    pid: int
    pid_start: int | None
    heartbeat: float
    acquired: float
    pid_ns: str | None = None  # None: written before it was recorded

    def is_live(self, stale_after: float = DEFAULT_STALE_AFTER_S, now: float | None = None) -> bool:
        here = self.host == socket.gethostname() and self.pid_ns in (None, pid_namespace())
        if here and not pid_running(self.pid, self.pid_start):
            return False
        return ((now or time.time()) - self.heartbeat) < stale_after

    def describe(self, now: float | None = None) -> str:
        age = (now or time.time()) - self.heartbeat
        return f"{self.owner} (pid {self.pid} on {self.host}, heartbeat {age:.0f}s ago)"

    @staticmethod
    def parse(data: bytes) -> LeaseHolder:
        return LeaseHolder(**json.loads(data))

    def held_by(self, lease: Lease) -> bool:
        return self.nonce == lease.nonce


def read_holder(store: ObjectStore, key: str) -> tuple[LeaseHolder, str] | None:
    """The current holder and the lease object's change token, or None if no lease exists."""
    try:
        token = store.head(key).change_token
        return LeaseHolder.parse(store.get(key)), token
    except ObjectNotFound:
        return None
    except (ValueError, TypeError):
        # A torn or foreign lease object: treat it as dead so it can be taken over.
        return LeaseHolder("unreadable lease", "", "", -1, None, 0.0, 0.0), token


class Lease:
    """A held-while-in-use lease at ``key``; use as a context manager."""

    def __init__(
        self,
        store: ObjectStore,
        key: str,
        owner: str,
        *,
        stale_after: float = DEFAULT_STALE_AFTER_S,
        heartbeat_every: float = DEFAULT_HEARTBEAT_S,
    ) -> None:
        self.store = store
        self.key = key
        self.owner = owner
        self.stale_after = stale_after
        self.heartbeat_every = heartbeat_every
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._acquired_at = 0.0
        self.took_over: LeaseHolder | None = None
        self.nonce = uuid.uuid4().hex
        self.lost = False
        self._token = ""  # the change token of this holder's last write of the lease

    def _record(self) -> bytes:
        pid = os.getpid()
        holder = LeaseHolder(
            owner=self.owner,
            nonce=self.nonce,
            host=socket.gethostname(),
            pid=pid,
            pid_start=process_start_ticks(pid),
            heartbeat=time.time(),
            acquired=self._acquired_at,
            pid_ns=pid_namespace(),
        )
        return json.dumps(asdict(holder)).encode()

    def acquire(self) -> Lease:
        self._acquired_at = time.time()
        for _ in range(5):
            try:
                self._token = self.store.put(
                    self.key, self._record(), create_only=True
                ).change_token
                break
            except PreconditionFailed:
                pass
            found = read_holder(self.store, self.key)
            if found is None:
                continue
            holder, token = found
            mine = holder.held_by(self)
            if not mine and holder.is_live(self.stale_after):
                raise LeaseHeld(
                    f"{self.store.name}: {self.key} is held by {holder.describe()}; "
                    "wait for that writer to finish, or stop it and run again"
                )
            try:
                self.store.delete(self.key, if_token=token)
                self.took_over = None if mine else holder
            except PreconditionFailed:
                continue  # somebody else took it over first; look again
        else:
            raise LeaseHeld(f"{self.store.name}: could not acquire {self.key} after 5 attempts")
        self._stop.clear()
        self._thread = threading.Thread(target=self._beat, name=f"lease:{self.key}", daemon=True)
        self._thread.start()
        return self

    def _beat(self) -> None:
        while not self._stop.wait(self.heartbeat_every):
            try:
                self._token = self.store.put(
                    self.key, self._record(), if_token=self._token
                ).change_token
            except PreconditionFailed:
                # Taken over, unless a beat whose answer was lost did write it: look.
                with contextlib.suppress(StoreError):
                    found = read_holder(self.store, self.key)
                    if found is not None and found[0].held_by(self):
                        self._token = found[1]
                        continue
                self.lost = True  # the writer finds out before it commits
                return
            except StoreError as exc:
                # The next beat tries again; if none gets through, others may take it over.
                LOG.warning("lease %s: a heartbeat was not written: %s", self.key, exc)
                continue

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        found = read_holder(self.store, self.key)
        if found is not None and found[0].held_by(self):
            with contextlib.suppress(PreconditionFailed):
                self.store.delete(self.key, if_token=found[1])

    def __enter__(self) -> Lease:
        return self.acquire()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()
