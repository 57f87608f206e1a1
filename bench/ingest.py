"""Ingest throughput: our ``dataset_items`` step on one batch of N JPEGs against a bare process
pool doing the same work per file (read, sha256, full decode, perceptual hash, EXIF-aware size),
and FiftyOne's ``Dataset.from_dir`` + ``compute_metadata()`` where it installs; then our
per-item function in threads vs processes. Every figure is a ratio to runs made in this same
invocation (the machine is shared), each contender in its own process; before each run it waits
(up to 15 s) for other processes to leave the cores idle, and it reports the load they put on
the machine during each measurement.

    .venv/bin/python bench/ingest.py            # N = 2000
    .venv/bin/python bench/ingest.py 10000 --no-fiftyone
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import _contenders  # noqa: E402
import _fiftyone  # noqa: E402
import _workers  # noqa: E402
from _meter import wait_for_quiet  # noqa: E402

TARGET = 0.8  # ours >= 0.8x the bare baseline's throughput


def _contender(name: str, corpus: Path, count: int, passes: int = 1) -> dict[str, Any]:
    """Run one contender in a fresh interpreter and return its JSON result."""
    args = [
        sys.executable, str(Path(__file__).resolve()), "--contender", name,
        str(count), "--corpus", str(corpus), "--passes", str(passes),
    ]  # fmt: skip
    done = subprocess.run(args, capture_output=True, text=True, check=False)
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("{")]
    if done.returncode != 0 or not lines:
        tail = "\n    ".join((done.stdout + done.stderr).strip().splitlines()[-20:])
        raise SystemExit(f"contender {name} failed (exit {done.returncode}):\n    {tail}")
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def _machine() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
        mem_kib = int(Path("/proc/meminfo").read_text().split()[1])
    except OSError:
        mem_kib = 0
    return (
        f"{os.cpu_count()} cores ({model}), {mem_kib / 2**20:.0f} GiB RAM, "
        f"Linux {platform.release()}, Python {platform.python_version()}"
    )


def _warm_page_cache(files: list[Path]) -> int:
    total = 0
    for path in files:
        total += len(path.read_bytes())
    return total


def _spread(values: list[float]) -> str:
    return f"{min(values):.2f}-{max(values):.2f}" if len(values) > 1 else f"{values[0]:.2f}"


def compare_contenders(
    corpus: Path, count: int, rounds: int, with_fiftyone: bool
) -> dict[str, Any]:
    """Rounds of baseline / ours / FiftyOne, each in its own process, the order rotating."""
    names = ["baseline", "ours"]
    peer_error = None
    if with_fiftyone:
        try:
            _fiftyone.ensure_venv(lambda msg: print(f"  {msg}", flush=True))
            names.append("fiftyone")
        except _fiftyone.PeerUnavailable as exc:
            peer_error = f"FiftyOne could not be installed: {exc}"
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    for round_ in range(rounds):
        order = names[round_ % len(names) :] + names[: round_ % len(names)]
        for name in order:
            waited, load = wait_for_quiet()
            if load > 0.5:
                print(f"  (the machine stayed busy: {load:.2f} cores after {waited:.0f} s)")
            if name == "fiftyone":
                try:
                    peer = _fiftyone.run_fiftyone(corpus, repeats=1, expected=count)[0]
                except _fiftyone.PeerUnavailable as exc:
                    peer_error = f"FiftyOne did not run: {exc}"
                    names.remove("fiftyone")
                    continue
                runs[name].append(vars(peer))
            else:
                runs[name].append(_contender(name, corpus, count))
            got = runs[name][-1]
            others = got.get("others_cores")
            note = "" if others is None else f"   (other processes kept {others:.2f} cores busy)"
            print(f"  round {round_ + 1} {name:9s} {got['seconds']:7.2f} s{note}", flush=True)
    return {"runs": {k: v for k, v in runs.items() if v}, "peer_error": peer_error}


def report_contenders(result: dict[str, Any], count: int) -> None:
    runs = result["runs"]
    base = [r["seconds"] for r in runs["baseline"]]
    ours = [r["seconds"] for r in runs["ours"]]
    whole = [r["run_seconds"] for r in runs["ours"]]
    b, o = statistics.median(base), statistics.median(ours)
    paired = [bs / os_ for bs, os_ in zip(base, ours, strict=False)]
    ratio = b / o
    rows = [
        ("bare baseline (process pool, all cores)", base),
        ("ours: dataset_items step", ours),
        ("ours: whole run (raw_items + dataset_items)", whole),
    ]
    if "fiftyone" in runs:
        rows.append(
            ("FiftyOne from_dir + compute_metadata", [r["seconds"] for r in runs["fiftyone"]])
        )
    print(f"\n== ingest: {count} JPEGs, one batch, {len(base)} rounds ==")
    print(
        f"{'contender':44s} {'median s':>8s} {'files/s':>7s} {'x base':>6s}   "
        f"{'best s':>6s} {'x base':>6s}"
    )
    for name, times in rows:
        mid, best = statistics.median(times), min(times)
        print(
            f"{name:44s} {mid:8.2f} {count / mid:7.0f} {b / mid:6.2f}   "
            f"{best:6.2f} {min(base) / best:6.2f}"
        )
    print(
        "(x base: throughput as a multiple of the bare baseline's; 'best' compares the fastest "
        "round of each, the one least disturbed by other processes)"
    )
    verdict = "met" if ratio >= TARGET else "NOT met"
    print(
        f"\nours / baseline throughput: {ratio:.2f} on medians, {min(base) / min(ours):.2f} on "
        f"best rounds (per round {_spread(paired)}); target >= {TARGET}: {verdict}"
    )
    ours_runs, base_runs = runs["ours"], runs["baseline"]

    def med(rs: list[dict[str, Any]], key: str) -> float:
        return float(statistics.median(r[key] for r in rs))

    print(
        f"CPU per file: ours {1000 * med(ours_runs, 'cpu_seconds') / count:.2f} ms (whole run), "
        f"baseline {1000 * med(base_runs, 'cpu_seconds') / count:.2f} ms; other processes kept "
        f"{med(ours_runs + base_runs, 'others_cores'):.2f} cores busy meanwhile (median)"
    )
    used_ours = statistics.median(r["cpu_seconds"] / r["run_seconds"] for r in ours_runs)
    used_base = statistics.median(r["cpu_seconds"] / r["seconds"] for r in base_runs)
    print(
        f"cores kept busy (CPU time / wall time): ours {used_ours:.2f} (whole run), baseline "
        f"{used_base:.2f}; CPU-only ratio (baseline CPU per file / ours): "
        f"{med(base_runs, 'cpu_seconds') / med(ours_runs, 'cpu_seconds'):.2f}"
    )
    print(
        f"ours also: claim (listing + manifest) {med(ours_runs, 'claim_seconds'):.2f} s, "
        f"raw_items step {med(ours_runs, 'raw_items_seconds'):.2f} s, Dagster's STEP_SUCCESS "
        f"duration {med(ours_runs, 'step_duration_seconds'):.2f} s, "
        f"workers: {ours_runs[0]['workers']}"
    )
    print(
        f"peak RSS: ours {max(r['maxrss_mib'] for r in ours_runs):.0f} MiB in one process "
        f"({ours_runs[0]['rss_before_mib']:.0f} MiB of it before the run: Dagster, pyarrow, "
        f"imports); baseline parent {max(r['maxrss_mib'] for r in base_runs):.0f} MiB + "
        f"{base_runs[0]['workers']} workers of <= "
        f"{max(r['child_maxrss_mib'] for r in base_runs):.0f} MiB each"
    )
    if "fiftyone" in runs:
        fo_runs = runs["fiftyone"]
        fo = med(fo_runs, "seconds")
        print(
            f"FiftyOne / ours throughput: {o / fo:.2f}; FiftyOne / baseline: {b / fo:.2f} "
            f"(from_dir {med(fo_runs, 'from_dir_seconds'):.2f} s + compute_metadata "
            f"{med(fo_runs, 'metadata_seconds'):.2f} s, {fo_runs[0]['workers']} threads; "
            f"MongoDB start-up {fo_runs[0]['startup_seconds']:.1f} s not counted). It does less "
            "work: compute_metadata reads headers only (no decode, no sha256, no perceptual "
            f"hash). Peak RSS: its Python {max(r['maxrss_mib'] for r in fo_runs):.0f} MiB + "
            f"mongod {max(r['mongod_hwm_mib'] for r in fo_runs):.0f} MiB"
        )
    if result["peer_error"]:
        print(f"FiftyOne: {result['peer_error']}")


def report_workers(result: dict[str, Any]) -> None:
    runs, start = result["runs"], result["startup"]
    files, cores = result["files"], result["cores"]
    med = {name: statistics.median(r["seconds"] for r in rs) for name, rs in runs.items()}
    best = {name: min(r["seconds"] for r in rs) for name, rs in runs.items()}
    cpu = {name: statistics.median(r["cpu_seconds"] for r in rs) for name, rs in runs.items()}
    others = {name: statistics.median(r["others_cores"] for r in rs) for name, rs in runs.items()}
    one = med["threads x1"]
    print(
        f"\n== build_item over {files} files: threads vs processes; median of "
        f"{len(runs['threads x1'])} passes, each pass cut in slices of {result['slice']} that go "
        "through every pool in turn; page cache warm; pools started beforehand =="
    )
    print(
        f"{'pool':26s} {'start s':>7s} {'median s':>8s} {'files/s':>7s} {'x thr x1':>8s} "
        f"{'best s':>6s} {'x thr x1':>8s} {'CPU ms/file':>11s} {'cores':>5s} {'others':>6s}"
    )
    for name, seconds in med.items():
        print(
            f"{name:26s} {start[name]:7.2f} {seconds:8.2f} {files / seconds:7.0f} "
            f"{one / seconds:8.2f} {best[name]:6.2f} {best['threads x1'] / best[name]:8.2f} "
            f"{1000 * cpu[name] / files:11.2f} {cpu[name] / seconds:5.2f} {others[name]:6.2f}"
        )
    threads, fork = f"threads x{cores}", f"processes:fork x{cores}"
    forkserver, bare = f"processes:forkserver x{cores}", f"bare baseline x{cores}"
    paired = [t["seconds"] / p["seconds"] for t, p in zip(runs[threads], runs[fork], strict=True)]
    print(
        f"\nprocesses (fork) / threads at {cores} workers: {med[threads] / med[fork]:.2f}x "
        f"throughput (per pass {_spread(paired)}); forkserver / threads: "
        f"{med[threads] / med[forkserver]:.2f}x; parallel speed-up x1 -> x{cores}: threads "
        f"{med['threads x1'] / med[threads]:.2f}, processes "
        f"{med['processes:fork x1'] / med[fork]:.2f}"
    )
    print(
        f"against the bare baseline's pool: threads x{cores} {med[bare] / med[threads]:.2f}, "
        f"processes (fork) x{cores} {med[bare] / med[fork]:.2f}; CPU per file of build_item "
        f"over the bare work: {cpu[threads] / cpu[bare]:.2f} (threads), "
        f"{cpu[fork] / cpu[bare]:.2f} (processes)"
    )
    print(
        f"start-up, once per batch: {start[fork]:.2f} s fork, {start[forkserver]:.2f} s "
        f"forkserver (its first start, the server included: "
        f"{result['first_startup'][forkserver]:.2f} s), {start[threads]:.3f} s threads"
    )
    print(
        "'cores': CPU time / wall time, the cores the pool kept busy; 'others': cores that other "
        f"processes kept busy meanwhile. On {cores} cores a high 'others' starves every "
        "multi-worker row alike (the slices interleave them), so the ratios hold; the absolute "
        "files/s do not."
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("count", nargs="?", type=int, default=2000, help="number of JPEGs (2000)")
    parser.add_argument(
        "--rounds", type=int, default=5, help="rounds of baseline/ours/FiftyOne; medians (5)"
    )
    parser.add_argument(
        "--passes", type=int, default=3, help="passes of threads vs processes; medians (3)"
    )
    parser.add_argument("--seed", type=int, default=7, help="corpus seed (7)")
    parser.add_argument("--no-fiftyone", action="store_true", help="skip the FiftyOne peer")
    parser.add_argument(
        "--no-workers-compare", action="store_true", help="skip threads vs processes"
    )
    parser.add_argument("--corpus", type=Path, help="an existing folder of JPEGs to use instead")
    parser.add_argument(
        "--profile", type=Path, help="write a cProfile of one run of ours (all threads) here"
    )
    parser.add_argument(
        "--contender", choices=["baseline", "ours", "workers"], help=argparse.SUPPRESS
    )
    args = parser.parse_args()

    if args.contender:  # one contender, in this fresh process
        corpus = args.corpus.resolve()
        if args.contender == "baseline":
            out = _contenders.run_baseline(corpus, os.cpu_count() or 1)
        elif args.contender == "ours":
            out = _contenders.run_ours(corpus, args.count, args.profile)
        else:
            out = _workers.run_workers(corpus, args.passes)
        print(json.dumps(out))
        return

    print(f"machine: {_machine()}")
    import _corpus

    if args.corpus:
        corpus = args.corpus.resolve()
    else:
        started = time.monotonic()
        corpus = _corpus.make_corpus(
            BENCH / ".data" / f"jpegs-{args.count}-{args.seed}", args.count, args.seed
        )
        print(f"corpus: {corpus} ({time.monotonic() - started:.0f} s to make or find)")
    files = _corpus.corpus_files(corpus)
    count = len(files)
    size = _warm_page_cache(files)
    print(
        f"corpus: {count} JPEGs, {size / 2**20:.1f} MiB, {size / count / 1024:.1f} KiB each on "
        "average; page cache warmed"
    )

    if args.profile:
        out = _contenders.run_ours(corpus, count, args.profile.resolve())
        print(f"profile of one run of ours ({out['seconds']:.2f} s step) written to {args.profile}")
        return

    result = compare_contenders(corpus, count, args.rounds, not args.no_fiftyone)
    report_contenders(result, count)
    if not args.no_workers_compare:
        print("\nthreads vs processes ...", flush=True)
        report_workers(_contender("workers", corpus, count, args.passes))


if __name__ == "__main__":
    main()
