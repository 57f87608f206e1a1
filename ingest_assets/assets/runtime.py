"""What ingest assets share about their runs: the retry policy, and the process tags that let
``bucketlake sync`` tell a run that died (SIGKILL leaves it STARTED forever) from a live one."""

from __future__ import annotations

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


def record_run_process(context: AssetExecutionContext) -> None:
    """Tag the run with the process executing it."""
    pid = os.getpid()
    tags = {HOST_TAG: socket.gethostname(), PID_TAG: str(pid)}
    ticks = process_start_ticks(pid)
    if ticks is not None:
        tags[PID_START_TAG] = str(ticks)
    context.instance.add_run_tags(context.run.run_id, tags)


def run_process_is_dead(run: DagsterRun) -> bool:
    """True when the run's recorded process on this host no longer runs. Unknown (another
    host, or no process recorded yet) is not dead."""
    pid = run.tags.get(PID_TAG)
    if pid is None or run.tags.get(HOST_TAG) != socket.gethostname():
        return False
    start = run.tags.get(PID_START_TAG)
    return not pid_running(int(pid), int(start) if start else None)
