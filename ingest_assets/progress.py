"""Progress lines for long work: items done, rate, ETA and errors so far, at a steady cadence."""

from __future__ import annotations

import time
from collections.abc import Callable


def format_duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"


class Progress:
    """Calls ``emit`` with a progress line at most every ``every`` seconds (and at the end)."""

    def __init__(
        self,
        what: str,
        total: int,
        emit: Callable[[str], None],
        *,
        done: int = 0,
        every: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.what = what
        self.total = total
        self.emit = emit
        self.done = done
        self.errors = 0
        self.every = every
        self.clock = clock
        self._start = clock()
        self._start_done = done
        self._last = self._start

    def line(self) -> str:
        elapsed = max(self.clock() - self._start, 1e-9)
        rate = (self.done - self._start_done) / elapsed
        left = self.total - self.done
        eta = format_duration(left / rate) if rate > 0 else "unknown"
        pct = 100.0 * self.done / self.total if self.total else 100.0
        return (
            f"{self.what}: {self.done}/{self.total} ({pct:.0f}%), {rate:.1f}/s, "
            f"ETA {eta}, {self.errors} bad so far"
        )

    def advance(self, count: int, errors: int = 0) -> None:
        self.done += count
        self.errors += errors
        now = self.clock()
        if now - self._last >= self.every or self.done >= self.total:
            self._last = now
            self.emit(self.line())
