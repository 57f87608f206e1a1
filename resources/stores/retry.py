"""Retries for transient store errors: exponential backoff with a cap, and a final error that
says how many attempts failed and why. A :class:`Deadline` bounds one read in all, retries
included."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from resources.errors import DeadlineExceeded, TransientStoreError

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


@dataclass(frozen=True)
class Deadline:
    """The moment (``time.monotonic()``) by which one read must be done, however slowly its
    bytes arrive and however often it is retried; ``seconds`` is its length, for messages."""

    seconds: float
    at: float

    @classmethod
    def after(cls, seconds: float) -> Deadline:
        return cls(seconds, time.monotonic() + seconds)

    def remaining(self) -> float:
        return self.at - time.monotonic()

    def within(self, seconds: float) -> float:
        """``seconds``, shortened so that a wait (a socket timeout) ends by the deadline."""
        return max(0.001, min(seconds, self.remaining()))

    def check(self, what: str, *, store: str = "", key: str | None = None) -> None:
        """Raise DeadlineExceeded if the deadline has passed."""
        if self.remaining() <= 0:
            raise self.exceeded(what, store=store, key=key)

    def exceeded(
        self, what: str, *, store: str = "", key: str | None = None, last_error: str = ""
    ) -> DeadlineExceeded:
        cause = f" (last error: {last_error})" if last_error else ""
        return DeadlineExceeded(
            f"{what}: not done within fetch_deadline_seconds ({self.seconds:g} s){cause}; the "
            "server sends too slowly or keeps failing. If the object is merely large and the "
            "server slow, raise the source's fetch_deadline_seconds",
            store=store,
            key=key,
        )


def call_with_retries(
    operation: Callable[[], T],
    *,
    what: str,
    policy: RetryPolicy = DEFAULT_RETRY,
    sleep: Callable[[float], None] = time.sleep,
    deadline: Deadline | None = None,
) -> T:
    """Run ``operation``; retry it while it raises TransientStoreError. ``what`` names the
    operation in the final error (e.g. ``get s3://bucket/key``). With a ``deadline``, no retry
    starts (nor is waited for) past it: DeadlineExceeded says so, with the last error."""
    for attempt in range(1, policy.max_attempts + 1):
        try:
            return operation()
        except TransientStoreError as exc:
            last = attempt == policy.max_attempts
            wait = 0.0 if last else policy.wait(attempt)
            if deadline is not None and deadline.remaining() <= wait:
                raise deadline.exceeded(
                    f"{what}: after {attempt} attempts",
                    store=exc.store,
                    key=exc.key,
                    last_error=str(exc),
                ) from exc
            if last:
                raise TransientStoreError(
                    f"{what}: failed {attempt} attempts in a row; last error: {exc}",
                    store=exc.store,
                    key=exc.key,
                ) from exc
            sleep(wait)
    raise AssertionError("unreachable")
