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
#: ``PID_RUN_TAG``'s value when the launcher gave the tags as the run was created.
LAUNCHER = "launcher"


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


def launcher_tags() -> dict[str, str]:
    """The process tags of a run this process is about to create and execute itself
    (``bucketlake sync``'s run processes), given with the run's tags, so that the run carries
    its process from the moment its record exists: killed before its first step, it is still
    known dead."""
    pid = os.getpid()
    tags = {HOST_TAG: socket.gethostname(), PID_TAG: str(pid), PID_RUN_TAG: LAUNCHER}
    ticks = process_start_ticks(pid)
    if ticks is not None:
        tags[PID_START_TAG] = str(ticks)
    return tags


def has_own_process_tags(run: DagsterRun) -> bool:
    """Whether the run's process tags are its own: recorded by the run, or given at its
    creation by its launcher (a re-execution or retry copies its parent's, which are not)."""
    recorded_by = run.tags.get(PID_RUN_TAG)
    if PID_TAG not in run.tags:
        return False
    return recorded_by == run.run_id or (recorded_by == LAUNCHER and run.parent_run_id is None)


def run_process_is_dead(run: DagsterRun) -> bool:
    """True when the run's own recorded process on this host no longer runs. Unknown (another
    host, no process recorded yet, or only a parent run's copied tags) is not dead."""
    if not has_own_process_tags(run) or run.tags.get(HOST_TAG) != socket.gethostname():
        return False
    start = run.tags.get(PID_START_TAG)
    return not pid_running(int(run.tags[PID_TAG]), int(start) if start else None)
