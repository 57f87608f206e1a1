"""Mutation fuzzing of image inspection: mutated JPEG, PNG, GIF, TIFF, WebP and BMP files
(``_media_fuzz.py``) through ``describe_bytes`` (what an item worker runs) with ``verify:
full`` and ``verify: header``, as a worker has Pillow set up. Inspection promises that a bad
file is a result, never an exception: anything that escapes is a finding, saved under the
findings folder and printed. Inputs that take over ``--slow`` CPU seconds, and inputs that
hang (``--hang``), are saved too. The report (JSON) gives the inputs tried, the rate, the
slowest inputs, what the statuses and reasons were, and every finding.

    nice -n 19 .venv/bin/python bench/fuzz_media.py --seconds 1800
    .venv/bin/python bench/fuzz_media.py --inputs 20000 --seed 7 --report /tmp/fuzz.json

Input ``i`` of seed ``s`` is the same on every run (``--start i --inputs 1`` replays it).
"""

from __future__ import annotations

import argparse
import collections
import heapq
import io
import json
import os
import platform
import re
import signal
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import PIL
from PIL import Image

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(BENCH.parent))  # bench._media_fuzz, as the test imports it

from _meter import Meter  # noqa: E402

from bench import _media_fuzz as fuzz  # noqa: E402
from ingest_assets.items.inspect import describe_bytes  # noqa: E402
from resources.config import PILLOW_MAX_IMAGE_PIXELS  # noqa: E402

PROGRESS_EVERY = 60.0  # seconds between progress lines
SLOWEST_KEPT = 10


class InputHung(BaseException):
    """Raised by the alarm in an input that runs past ``--hang``. A BaseException, so that no
    ``except Exception`` in the code under test can take it for a failure of the file."""


@contextmanager
def deadline(seconds: float) -> Iterator[None]:
    def ring(signum: int, frame: object) -> None:
        raise InputHung(f"still running after {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, ring)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@contextmanager
def c_stderr_to(log: Path) -> Iterator[None]:
    """libtiff and libjpeg print a line to the C stderr for every bad file they meet: send
    those to ``log`` for the run, not to the terminal."""
    sys.stderr.flush()
    saved = os.dup(2)
    with log.open("ab") as sink:
        os.dup2(sink.fileno(), 2)
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


@dataclass
class Tally:
    """What the run saw, for the report."""

    inputs: int = 0
    statuses: collections.Counter[str] = field(default_factory=collections.Counter)
    reasons: collections.Counter[str] = field(default_factory=collections.Counter)
    findings: list[dict[str, Any]] = field(default_factory=list)
    slow: list[dict[str, Any]] = field(default_factory=list)
    slowest: list[tuple[float, int, dict[str, Any]]] = field(default_factory=list)

    def keep_slowest(self, seconds: float, record: dict[str, Any]) -> None:
        entry = (seconds, -record["index"], record)
        if len(self.slowest) < SLOWEST_KEPT:
            heapq.heappush(self.slowest, entry)
        else:
            heapq.heappushpop(self.slowest, entry)


def save_input(folder: Path, kind: str, seed: int, item: fuzz.FuzzInput, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    stem = folder / f"{kind}-s{seed}-i{item.index}-{item.base}"
    stem.with_suffix(".bin").write_bytes(item.data)
    stem.with_suffix(".txt").write_text(
        f"seed {seed}, input {item.index}, from {item.base}, mutations {list(item.mutations)}\n"
        f"{text}\n"
    )
    return stem.with_suffix(".bin")


def reason_kind(error: str) -> str:
    """A corrupt item's reason with its numbers and quoted bytes blanked, to count kinds."""
    return re.sub(r"b'[^']*'|b\"[^\"]*\"|\d[\d,]*", "#", error)[:120]


def record_of(item: fuzz.FuzzInput, checked: fuzz.Checked) -> dict[str, Any]:
    return {
        "index": item.index,
        "base": item.base,
        "mutations": list(item.mutations),
        "bytes": len(item.data),
        "statuses": checked.statuses,
        "cpu_seconds": {k: round(v, 4) for k, v in checked.cpu_seconds.items()},
        "wall_seconds": {k: round(v, 4) for k, v in checked.wall_seconds.items()},
    }


def tally_input(
    tally: Tally, item: fuzz.FuzzInput, checked: fuzz.Checked, args: argparse.Namespace
) -> None:
    fmt = item.base.split("-")[0]
    for verify, status in checked.statuses.items():
        tally.statuses[f"{fmt} {verify} {status}"] += 1
    tally.reasons.update(reason_kind(error) for error in checked.errors.values())
    record = record_of(item, checked)
    for escape in checked.escapes:
        path = save_input(args.findings, "escape", args.seed, item, escape.traceback)
        tally.findings.append({**record, "verify": escape.verify, "error": escape.error})
        print(f"FINDING input {item.index} ({item.base}, verify {escape.verify}): {escape.error}")
        print(f"  saved as {path}", flush=True)
    cpu = max(checked.cpu_seconds.values())
    tally.keep_slowest(cpu, record)
    if cpu > args.slow:
        path = save_input(args.findings, "slow", args.seed, item, json.dumps(record))
        tally.slow.append({**record, "saved": str(path)})
        print(f"SLOW input {item.index} ({item.base}): {cpu:.2f} s of CPU, saved as {path}")


def fuzz_run(args: argparse.Namespace, tally: Tally) -> None:
    corpus = fuzz.seed_corpus()
    stop_at = time.perf_counter() + args.seconds if args.seconds else None
    last_progress = started = time.perf_counter()
    with fuzz.as_in_a_worker(args.max_pixels):
        for item in fuzz.fuzz_inputs(args.seed, corpus, args.start):
            now = time.perf_counter()
            if (stop_at and now >= stop_at) or (args.inputs and tally.inputs >= args.inputs):
                return
            if now - last_progress >= PROGRESS_EVERY:
                last_progress = now
                rate = tally.inputs / (now - started)
                print(
                    f"{now - started:7.0f} s: {tally.inputs:,} inputs ({rate:,.0f}/s), "
                    f"{len(tally.findings)} findings, {len(tally.slow)} slow",
                    flush=True,
                )
            try:
                with deadline(args.hang):
                    checked = fuzz.check_input(item.data, args.max_pixels)
            except InputHung as exc:
                path = save_input(args.findings, "hang", args.seed, item, str(exc))
                tally.findings.append({"index": item.index, "base": item.base, "hang": str(exc)})
                print(f"FINDING input {item.index} ({item.base}) hangs: saved as {path}")
                continue
            tally.inputs += 1
            tally_input(tally, item, checked, args)


def bare_pillow(data: bytes) -> None:
    """The same Pillow work as ``verify: full`` on a file, without ours around it: open,
    decode every frame, the hash's grey thumbnail of the first. Errors end it (a baseline
    for the time, not for the outcome)."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            image.convert("L").resize((32, 32), Image.Resampling.LANCZOS)
            for index in range(1, getattr(image, "n_frames", 1)):
                image.seek(index)
                image.load()
    except Exception:  # the bare loop stops at the first failure, whatever it is
        return


def cpu_seconds(work: Callable[[], object]) -> float:
    started = time.thread_time()
    work()
    return time.thread_time() - started


def compare_slowest(seed: int, records: list[dict[str, Any]], max_pixels: int) -> None:
    """Each of the slowest inputs again, ours (``verify: full``) beside the bare Pillow loop
    doing the same work, so that a slow input can be told from slow code of ours."""
    corpus = fuzz.seed_corpus()
    with fuzz.as_in_a_worker(max_pixels):
        for record in records:
            data = fuzz.fuzz_input(seed, record["index"], corpus).data
            work: dict[str, Callable[[], object]] = {
                "ours": partial(describe_bytes, data, verify="full", max_pixels=max_pixels),
                "bare": partial(bare_pillow, data),
            }
            # Best of two, in the order ours, bare, bare, ours: the first run of a large
            # input also pays for the memory it is the first to touch.
            times = {name: [cpu_seconds(work[name])] for name in ("ours", "bare")}
            for name in ("bare", "ours"):
                times[name].append(cpu_seconds(work[name]))
            ours, bare = min(times["ours"]), min(times["bare"])
            record["again_cpu_seconds"] = {"ours": round(ours, 3), "bare_pillow": round(bare, 3)}
            print(
                f"  input {record['index']} ({record['base']}): ours {ours:.2f} s, "
                f"bare Pillow {bare:.2f} s of CPU, ours / bare {ours / max(bare, 1e-6):.2f}"
            )


def report(args: argparse.Namespace, tally: Tally, meter: Meter) -> dict[str, Any]:
    slowest = [record for _, _, record in sorted(tally.slowest, reverse=True)]
    return {
        "seed": args.seed,
        "start": args.start,
        "max_pixels": args.max_pixels,
        "python": platform.python_version(),
        "pillow": PIL.__version__,
        "finished_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "seconds": round(meter.seconds, 1),
        "cpu_seconds": round(meter.cpu_seconds, 1),
        "others_cores": round(meter.others_cores, 2),
        "inputs": tally.inputs,
        "inputs_per_second": round(tally.inputs / meter.seconds, 1),
        "findings": tally.findings,
        "slow_over_seconds": args.slow,
        "slow": tally.slow,
        "slowest": slowest,
        "statuses": dict(sorted(tally.statuses.items())),
        "reasons": dict(tally.reasons.most_common(40)),
    }


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=1)
    budget = parser.add_mutually_exclusive_group()
    budget.add_argument("--seconds", type=float, help="run for this long (default 60)")
    budget.add_argument("--inputs", type=int, help="run this many inputs")
    parser.add_argument("--start", type=int, default=0, help="index of the first input")
    parser.add_argument("--report", type=Path, default=BENCH / ".data" / "fuzz" / "report.json")
    parser.add_argument("--findings", type=Path, help="default: beside the report")
    parser.add_argument("--max-pixels", type=int, default=PILLOW_MAX_IMAGE_PIXELS)
    parser.add_argument("--slow", type=float, default=2.0, help="CPU seconds that are slow")
    parser.add_argument("--hang", type=float, default=120.0, help="seconds that are a hang")
    parser.add_argument(
        "--compare", type=Path, metavar="REPORT", help="time a report's slowest inputs again"
    )
    args = parser.parse_args()
    if args.seconds is None and args.inputs is None:
        args.seconds = 60.0
    args.findings = args.findings or args.report.parent / "findings"
    return args


def compare_report(path: Path) -> int:
    result = json.loads(path.read_text())
    print(f"the slowest inputs of {path} (seed {result['seed']}), ours beside bare Pillow:")
    with c_stderr_to(path.with_suffix(".stderr.log")):
        compare_slowest(result["seed"], result["slowest"], result["max_pixels"])
    path.write_text(json.dumps(result, indent=1) + "\n")
    return 0


def main() -> int:
    args = parse_args()
    if args.compare:
        return compare_report(args.compare)
    args.report.parent.mkdir(parents=True, exist_ok=True)
    budget = f"{args.seconds:g} s" if args.seconds else f"{args.inputs:,} inputs"
    print(f"fuzzing inspection, seed {args.seed}, for {budget}; report: {args.report}")
    tally = Tally()
    try:
        with Meter() as meter, c_stderr_to(args.report.with_suffix(".stderr.log")):
            fuzz_run(args, tally)
    except KeyboardInterrupt:
        print("interrupted: reporting what was tried")
    result = report(args, tally, meter)
    print(
        f"{result['inputs']:,} inputs in {result['seconds']:,} s "
        f"({result['inputs_per_second']:,}/s, others used {result['others_cores']} cores): "
        f"{len(tally.findings)} findings, {len(tally.slow)} over {args.slow:g} s"
    )
    print("the slowest inputs again, ours beside bare Pillow:")
    with c_stderr_to(args.report.with_suffix(".stderr.log")):
        compare_slowest(args.seed, result["slowest"], args.max_pixels)
    args.report.write_text(json.dumps(result, indent=1) + "\n")
    return 1 if tally.findings else 0


if __name__ == "__main__":
    sys.exit(main())
