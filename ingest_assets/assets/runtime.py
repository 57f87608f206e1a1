"""What ingest assets share about their runs: the retry policy, and the process tags that let
``bucketlake sync`` tell a run that died (SIGKILL leaves it STARTED forever) from a live one."""

from __future__ import annotations

import multiprocessing
import os
import socket

from dagster import AssetExecutionContext, Backoff, DagsterRun, RetryPolicy

from resources.lake.lease import pid_running, process_start_ticks

#: Transient failures (a store that stopped answering, a dead lease) are retried; each retry
#: resumes after the last checkpoint. Failures that would repeat are raised with
#: ``Failure(allow_retries=False)``.
INGEST_RETRY = RetryPolicy(max_retries=2, delay=5, backoff=Backoff.EXPONENTIAL)

HOST_TAG = "bucketlake/host"
PID_TAG = "bucketlake/pid"
PID_START_TAG = "bucketlake/pid_start"
#: The run the process tags were recorded by: a re-execution copies its parent's tags, whose
#: process is not its own.
PID_RUN_TAG = "bucketlake/pid_run"


def run_worker_pid(context: AssetExecutionContext) -> int:
    """The process of the run, which outlives its steps: this process when steps run in it (the
    in-process executor), else the run worker that spawned this step's process (multiprocess)."""
    parent = multiprocessing.parent_process()
    if context.job_def.executor_def.name == "multiprocess" and parent and parent.pid:
        return parent.pid
    return os.getpid()


def record_run_process(context: AssetExecutionContext) -> None:
    """Tag the run with the process executing it (the run worker, not a step's process, so that
    the tag does not point at a step process that has ended while the run goes on)."""
    pid = run_worker_pid(context)
    tags = {HOST_TAG: socket.gethostname(), PID_TAG: str(pid), PID_RUN_TAG: context.run.run_id}
    ticks = process_start_ticks(pid)
    if ticks is not None:
        tags[PID_START_TAG] = str(ticks)
    context.instance.add_run_tags(context.run.run_id, tags)


def run_process_is_dead(run: DagsterRun) -> bool:
    """True when the run's recorded process on this host no longer runs. Unknown (another
    host, no process recorded yet, or only a parent run's copied tags) is not dead."""
    pid = run.tags.get(PID_TAG)
    if pid is None or run.tags.get(HOST_TAG) != socket.gethostname():
        return False
    if run.tags.get(PID_RUN_TAG) != run.run_id:
        return False
    start = run.tags.get(PID_START_TAG)
    return not pid_running(int(pid), int(start) if start else None)
