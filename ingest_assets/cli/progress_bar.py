"""A one-line progress bar for ``bucketlake sync`` on a terminal (plain lines elsewhere)."""

from __future__ import annotations

import sys
import threading
import time
from typing import TextIO

from ingest_assets.progress import format_duration

WIDTH = 24


class ProgressBar:
    """Redraws ``[#####.....] 2/4 batches, 1,000 items, 250 items/s, ETA 0m04s`` in place;
    lines printed through :meth:`say` appear above it. Draws nothing unless the stream is a
    terminal."""

    def __init__(self, total: int, stream: TextIO = sys.stdout) -> None:
        self.total = total
        self.stream = stream
        self.enabled = stream.isatty() and total > 0
        self.done = 0
        self.items = 0
        self._start = time.monotonic()
        self._lock = threading.Lock()

    def line(self) -> str:
        filled = WIDTH * self.done // self.total if self.total else WIDTH
        elapsed = max(time.monotonic() - self._start, 1e-9)
        rate = self.items / elapsed
        per_batch = elapsed / self.done if self.done else 0.0
        eta = format_duration(per_batch * (self.total - self.done)) if self.done else "unknown"
        return (
            f"[{'#' * filled}{'.' * (WIDTH - filled)}] {self.done}/{self.total} batches, "
            f"{self.items:,} items, {rate:.0f} items/s, ETA {eta}"
        )

    def _draw(self) -> None:
        if self.enabled:
            self.stream.write("\r\033[K" + self.line())
            self.stream.flush()

    def say(self, text: str) -> None:
        with self._lock:
            if self.enabled:
                self.stream.write("\r\033[K")
            self.stream.write(text + "\n")
            self._draw()

    def advance(self, items: int) -> None:
        with self._lock:
            self.done += 1
            self.items += items
            self._draw()

    def close(self) -> None:
        with self._lock:
            if self.enabled:
                self.stream.write("\r\033[K")
                self.stream.flush()
