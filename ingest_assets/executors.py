"""The executor the config chooses for every job (DESIGN §9): in-process by default, a process
per step on request; distributed executors plug in here."""

from __future__ import annotations

from dagster import ExecutorDefinition, in_process_executor, multiprocess_executor

from resources.config import ExecutorConfig


def executor_for(config: ExecutorConfig) -> ExecutorDefinition:
    """In-process: a batch parallelises inside ``dataset_items`` and batches run side by side as
    separate runs, so a process per step would only add start-up time. Multiprocess runs each
    step in its own process (at most ``max_concurrent`` at once)."""
    if config.kind == "multiprocess":
        if config.max_concurrent is None:
            return multiprocess_executor
        return multiprocess_executor.configured({"max_concurrent": config.max_concurrent})
    return in_process_executor
