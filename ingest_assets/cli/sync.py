"""``bucketlake sync``: claim now (every pending batch closed), then run ``ingest_job`` for each
new batch and each batch that never finished, at most ``--jobs`` at a time."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from dagster import DagsterInstance, RunsFilter

from ingest_assets.assets.runtime import run_process_is_dead
from ingest_assets.claiming.claim import Claimer, ClaimResult
from ingest_assets.cli.instance import open_instance
from ingest_assets.cli.models import register_configured
from ingest_assets.cli.progress_bar import ProgressBar
from ingest_assets.cli.run_batch import RESULT_PREFIX
from ingest_assets.healing import (
    IN_FLIGHT,
    batch_finished,
    batch_tables,
    mark_dead_run_failed,
    next_attempt,
    plan_healing,
)
from ingest_assets.items.rows import STATUSES
from ingest_assets.names import DATASET_ITEMS, PARTITION_TAG, RAW_ITEMS
from ingest_assets.partitions import BATCHES
from resources.config import BucketlakeConfig, SourceConfig
from resources.errors import LeaseHeld
from resources.lake.datapool import parse_batch_key
from resources.lake.lease import Lease
from resources.lake.tables import Lake
from resources.stores.base import ObjectStore
from resources.stores.open import open_lake_store, open_source_store

CLAIM_LEASE_WAIT_S = 120.0
#: Where the launch leases of ``bucketlake sync`` live in the lake (see :func:`launch_lease`).
LAUNCHES = "_launches"


@dataclass
class BatchOutcome:
    batch: str
    success: bool
    run_id: str | None = None
    error: str | None = None
    status_counts: dict[str, int] = field(default_factory=dict)
    resumed_rows: int = 0
    #: Who ran the batch instead, since the plan was made: another sync, or the daemon's run.
    left_to: str = ""


@dataclass
class SyncReport:
    new_objects: int = 0
    new_batches: int = 0
    outcomes: list[BatchOutcome] = field(default_factory=list)
    gave_up: list[str] = field(default_factory=list)

    @property
    def failed(self) -> list[BatchOutcome]:
        return [o for o in self.outcomes if not o.success]


def claim_waiting(claimer: Claimer, registered: set[str]) -> ClaimResult:
    """Claim everything now, waiting while another claimer (the sensor) holds the lease."""
    waited_until = time.monotonic() + CLAIM_LEASE_WAIT_S
    while True:
        try:
            return claimer.claim(registered=registered, close_all=True)
        except LeaseHeld:
            if time.monotonic() > waited_until:
                raise
            time.sleep(0.1)


class RunProcesses:
    """The run processes sync started; stopping sync stops them (they share its process group,
    so a Ctrl-C on the terminal reaches them too)."""

    def __init__(self) -> None:
        self._running: set[subprocess.Popen[str]] = set()
        self._lock = threading.Lock()
        self.stopping = False

    def run(self, batch: str, attempt: int) -> dict[str, Any]:
        with self._lock:
            if self.stopping:
                return {"batch": batch, "run_id": None, "success": False, "error": "sync stopped"}
            proc = subprocess.Popen(
                [sys.executable, "-m", "ingest_assets.cli.run_batch", batch, str(attempt)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=os.environ.copy(),
            )
            self._running.add(proc)
        try:
            stdout, stderr = proc.communicate()
        finally:
            with self._lock:
                self._running.discard(proc)
        for line in stdout.splitlines():
            if line.startswith(RESULT_PREFIX):
                result: dict[str, Any] = json.loads(line[len(RESULT_PREFIX) :])
                return result
        tail = (stderr or stdout).strip().splitlines()[-5:]
        return {
            "batch": batch,
            "run_id": None,
            "success": False,
            "error": f"run process exited with {proc.returncode}: " + " / ".join(tail),
        }

    def stop(self, grace: float = 2.0) -> None:
        """Stop every run: SIGTERM, then SIGKILL after ``grace`` seconds (Dagster defers a
        SIGTERM until the running step ends, which can take long)."""
        with self._lock:
            self.stopping = True
            running = list(self._running)
        for proc in running:
            proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace
        for proc in running:
            try:
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def launch_lease(lake_store: ObjectStore, batch: str) -> Lease:
    """The lease a sync holds while it looks for a batch's runs and runs it: two syncs at once
    never both start the same batch (the run's write lease would refuse the second, and the
    refusal would count as a failure of the batch)."""
    source, _ = parse_batch_key(batch)
    return Lease(
        lake_store,
        f"{LAUNCHES}/{source}/{batch}",
        owner=f"bucketlake sync (pid {os.getpid()})",
    )


def mark_stopped_runs_failed(instance: DagsterInstance, stopped: list[str]) -> None:
    """Runs of these batches left STARTED by a process that is gone are marked failed."""
    for batch in stopped:
        for run in instance.get_runs(RunsFilter(tags={PARTITION_TAG: batch}, statuses=IN_FLIGHT)):
            if run_process_is_dead(run):
                mark_dead_run_failed(instance, run.run_id, "stopped by bucketlake sync")


def sync(
    config: BucketlakeConfig,
    sources: list[SourceConfig],
    *,
    jobs: int,
    say: Callable[[str], None],
    retry_failed: bool = False,
) -> SyncReport:
    instance = open_instance(config)
    lake_store = open_lake_store(config)
    lake = Lake(lake_store)
    report = SyncReport()
    register_configured(config, lake, instance, say)
    to_run: list[str] = []
    for source in sources:
        registered = set(instance.get_dynamic_partitions(BATCHES))
        with open_source_store(source) as source_store:
            claimer = Claimer(
                source, source_store, lake_store, claimer=f"bucketlake sync (pid {os.getpid()})"
            )
            result = claim_waiting(claimer, registered)
        if result.unregistered:
            instance.add_dynamic_partitions(BATCHES, result.unregistered)
        report.new_objects += result.new_objects
        report.new_batches += len(result.new_batches)
        heal = plan_healing(
            instance,
            lake,
            source.name,
            registered,
            healer="bucketlake sync",
            retry_failed=retry_failed,
            finished_by=batch_tables(config),
        )
        say(
            f"{source.name}: {result.listed} objects listed, {result.new_objects} new object "
            f"versions in {len(result.new_batches)} new batches"
            + (f" ({result.deleted} of them deleted from the source)" if result.deleted else "")
            + (f", {len(heal.run)} unfinished batches to run again" if heal.run else "")
        )
        if result.warning:
            say(f"  warning: {result.warning}")
        for run_id in heal.marked_failed:
            say(f"  run {run_id[:8]} was left STARTED by a process that is gone: marked failed")
        if heal.waiting:
            say(
                f"  {len(heal.waiting)} batches have a run queued or in progress (the daemon of "
                f"`make dev` runs queued runs): {', '.join(heal.waiting[:5])}"
            )
        for batch, failures in heal.gave_up:
            say(
                f"  {batch}: failed {failures} times; not run again (see its runs in the UI; "
                "`bucketlake sync --retry-failed` tries once more)"
            )
        report.gave_up += [b for b, _ in heal.gave_up]
        to_run += result.unregistered + [b for b in heal.run if b not in result.unregistered]

    bar = ProgressBar(len(to_run))

    def run_one(batch: str) -> BatchOutcome:
        try:
            with launch_lease(lake_store, batch):
                return launch(batch)
        except LeaseHeld:
            done = BatchOutcome(batch, True, left_to="another sync, which runs it now")
            (bar.say if bar.enabled else say)(describe(done))
            return done

    def launch(batch: str) -> BatchOutcome:
        # Another sync may have run the batch, or the daemon's sensor taken it, since the plan
        # was made; under the launch lease, nobody else starts it while this looks.
        if batch_finished(lake, batch, batch_tables(config)):
            done = BatchOutcome(batch, True, left_to="another sync, which ran it meanwhile")
            (bar.say if bar.enabled else say)(describe(done))
            return done
        taken = instance.get_runs(RunsFilter(tags={PARTITION_TAG: batch}, statuses=IN_FLIGHT))
        if taken:
            run_id = taken[0].run_id
            done = BatchOutcome(
                batch, True, run_id, left_to=f"run {run_id[:8]}, which the daemon started meanwhile"
            )
            (bar.say if bar.enabled else say)(describe(done))
            return done
        outcome = processes.run(batch, next_attempt(instance, batch))
        done = BatchOutcome(
            batch, bool(outcome["success"]), outcome.get("run_id"), outcome.get("error")
        )
        commit = lake.read_commit(DATASET_ITEMS, batch) if done.success else None
        if commit is not None:
            done.status_counts = dict(commit.extra.get("status_counts", {}))
            done.resumed_rows = int(commit.extra.get("resumed_rows", 0))
        (bar.say if bar.enabled else say)(describe(done))
        bar.advance(sum(done.status_counts.values()))
        return done

    processes = RunProcesses()
    try:
        with ThreadPoolExecutor(max(1, jobs)) as pool:
            try:
                report.outcomes = list(pool.map(run_one, to_run))
            except BaseException:  # Ctrl-C or SIGTERM: stop the runs this sync started
                processes.stop()
                mark_stopped_runs_failed(instance, to_run)
                raise
    finally:
        bar.close()
    return report


def describe(outcome: BatchOutcome) -> str:
    run = f"run {outcome.run_id[:8]}" if outcome.run_id else "no run"
    if not outcome.success:
        return f"  {outcome.batch}: FAILED ({run}): {outcome.error}"
    if outcome.left_to:
        return f"  {outcome.batch}: left to {outcome.left_to}"
    counts = outcome.status_counts
    total = sum(counts.values())
    parts = [f"{counts.get(s, 0)} {s}" for s in STATUSES if counts.get(s, 0) or s == "ok"]
    resumed = f", resumed {outcome.resumed_rows} rows" if outcome.resumed_rows else ""
    return f"  {outcome.batch}: {total} items ({', '.join(parts)}){resumed} ({run})"


def summary(report: SyncReport, config: BucketlakeConfig) -> str:
    counts: dict[str, int] = {}
    for outcome in report.outcomes:
        for status, n in outcome.status_counts.items():
            counts[status] = counts.get(status, 0) + n
    bad = sum(n for s, n in counts.items() if s != "ok")
    lake = open_lake_store(config).uri(DATASET_ITEMS)
    lines = [
        f"sync: {report.new_objects} new object versions in {report.new_batches} batches; "
        f"{len(report.outcomes)} runs, {len(report.failed)} failed; "
        f"items: {counts.get('ok', 0)} ok, {bad} not ok",
        f"tables: {lake}/<batch>/ ({DATASET_ITEMS}), and {RAW_ITEMS} beside it",
    ]
    return "\n".join(lines)
