"""Retries for transient store errors: exponential backoff with a cap, and a final error that
says how many attempts failed and why."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from resources.errors import TransientStoreError

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """``max_attempts`` tries in all; the wait before try n+1 is
    ``min(backoff_max, backoff_factor * 2**(n-1))`` seconds."""

    max_attempts: int = 5
    backoff_factor: float = 0.5
    backoff_max: float = 8.0

    def wait(self, attempt: int) -> float:
        return float(min(self.backoff_max, self.backoff_factor * 2 ** (attempt - 1)))


DEFAULT_RETRY = RetryPolicy()


def call_with_retries(
    operation: Callable[[], T],
    *,
    what: str,
    policy: RetryPolicy = DEFAULT_RETRY,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Run ``operation``; retry it while it raises TransientStoreError. ``what`` names the
    operation in the final error (e.g. ``get s3://bucket/key``)."""
    for attempt in range(1, policy.max_attempts + 1):
        try:
            return operation()
        except TransientStoreError as exc:
            if attempt == policy.max_attempts:
                raise TransientStoreError(
                    f"{what}: failed {attempt} attempts in a row; last error: {exc}",
                    store=exc.store,
                    key=exc.key,
                ) from exc
            sleep(policy.wait(attempt))
    raise AssertionError("unreachable")
