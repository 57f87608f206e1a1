"""Wall time, our CPU time, and the load everything else put on the machine meanwhile.

The machine is shared (test suites run beside a benchmark), so each measurement also says how
many cores other processes kept busy during it: a figure taken beside a test suite can then be
told from one taken on a quiet machine.
"""

from __future__ import annotations

import os
import resource
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

_TICK = os.sysconf("SC_CLK_TCK")


def _self_cpu() -> float:
    """This process's CPU seconds, all threads, plus its children already waited for."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def _pid_cpu(pid: int) -> float:
    """CPU seconds of a live process (a pool worker that is not waited for yet)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICK  # utime, stime


def _machine_busy() -> float:
    with open("/proc/stat") as stat:
        fields = [int(v) for v in stat.readline().split()[1:9]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields) - idle) / _TICK


def wait_for_quiet(
    max_cores: float = 0.5, timeout: float = 15.0, sample: float = 0.5
) -> tuple[float, float]:
    """Wait (at most ``timeout`` s) until the machine's busy cores, sampled over ``sample`` s
    while this process idles, fall to ``max_cores``; return (seconds waited, last load)."""
    waited, load = 0.0, 0.0
    while True:
        before = _machine_busy()
        time.sleep(sample)
        waited += sample
        load = (_machine_busy() - before) / sample
        if load <= max_cores or waited >= timeout:
            return waited, load


class Meter:
    """``with Meter(pids) as m: work()`` gives ``m.seconds``, ``m.cpu_seconds`` (this process,
    its reaped children and the live processes ``pids()`` names) and ``m.others_cores``."""

    def __init__(self, pids: Callable[[], list[int]] | None = None) -> None:
        self._pids = pids or (lambda: [])

    def _cpu(self) -> tuple[float, dict[int, float]]:
        return _self_cpu(), {pid: _pid_cpu(pid) for pid in self._pids()}

    def __enter__(self) -> Meter:
        self._start_cpu = self._cpu()
        self._start_busy = _machine_busy()
        self._start = time.perf_counter()
        return self

    def __exit__(self, *_: object) -> None:
        self.seconds = time.perf_counter() - self._start
        mine, pids = self._cpu()
        before_mine, before_pids = self._start_cpu
        self.cpu_seconds = mine - before_mine
        self.cpu_seconds += sum(cpu - before_pids.get(pid, 0.0) for pid, cpu in pids.items())
        busy = _machine_busy() - self._start_busy
        self.others_cores = max(0.0, (busy - self.cpu_seconds) / self.seconds)

    def as_dict(self) -> dict[str, float]:
        return {
            "seconds": self.seconds,
            "cpu_seconds": self.cpu_seconds,
            "others_cores": self.others_cores,
        }


def rss_mib() -> float:
    """This process's resident memory now."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def maxrss_mib(who: int = resource.RUSAGE_SELF) -> float:
    """Peak resident memory of this process (or, with RUSAGE_CHILDREN, of its largest waited-for
    child); Linux reports KiB."""
    return resource.getrusage(who).ru_maxrss / 1024


def measure_command(command: list[str], cwd: Path) -> dict[str, Any]:
    """Run one command in a process of its own: its wall seconds, CPU seconds and peak RSS
    (MiB), read from ``wait4``, and ``said``, the last line it printed. Exits naming the
    command when it fails."""
    start = time.perf_counter()
    child = subprocess.Popen(command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - start
    out = child.stdout.read().decode() if child.stdout else ""
    err = child.stderr.read().decode() if child.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{command[:3]} failed:\n{out}\n{err[-3000:]}")
    return {
        "seconds": seconds,
        "cpu": usage.ru_utime + usage.ru_stime,
        "rss_mib": usage.ru_maxrss / 1024,
        "said": out.strip().splitlines()[-1] if out.strip() else "",
    }
