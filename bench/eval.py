"""The evaluation path against pycocotools, on the same input in the same run.

Inputs: the COCO conformance set (100 images, 839 objects, 734 box detections) and the same
scaled up until it has ``--detections`` detections (100,000 by default: 13,700 images), its
images and annotations repeated under new ids, each copy's detections with them. Both are
imported once into a project with no source (images linked, detections as model ``fake``),
which is not timed. Then, each in a process of its own, one at a time, wall time and peak
RSS from ``wait4``:

- *pycocotools*: ``COCO(file)``, ``loadRes(file)``, ``evaluate``, ``accumulate``,
  ``summarize`` for bbox: what a user runs on the two files;
- *ours*: ``evaluate_model`` on the lake: reading the items, ground truth and predictions
  from the lake's tables, building the inputs, scoring with the engine, and the per-class
  and per-item summaries.

Both print their 12 statistics, and the script checks they are identical.

    .venv/bin/python bench/eval.py [--detections 100000] [--rounds 1]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from _meter import measure_command

HERE = Path(__file__).resolve().parent
CONFORMANCE = HERE.parents[1] / "shared/data/coco-conformance"
DATA = HERE / ".data"
BIN = Path(sys.executable).parent

PYCOCOTOOLS = """
import contextlib, io, json, sys
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
with contextlib.redirect_stdout(io.StringIO()):
    gt = COCO(sys.argv[1])
    run = COCOeval(gt, gt.loadRes(sys.argv[2]), "bbox")
    run.evaluate(); run.accumulate(); run.summarize()
print(json.dumps([float(s) for s in run.stats]))
"""

OURS = """
import json, sys
from resources.lake.tables import Lake
from resources.stores.local import LocalFolderStore
from ingest_assets.evaluation.report import evaluate_model
report = evaluate_model(Lake(LocalFolderStore(sys.argv[1])), "fake", "1")
report.per_item()
print(json.dumps(report.detection["bbox"].stats))
"""


def scaled(detections: int) -> tuple[Path, Path]:
    """The conformance set repeated until it has ``detections`` detections (made once)."""
    truth = json.loads((CONFORMANCE / "instances_val2014_100.json").read_text())
    results = json.loads((CONFORMANCE / "instances_val2014_fakebbox100_results.json").read_text())
    copies = -(-detections // len(results))
    gt_path, dt_path = DATA / f"eval_gt_{copies}.json", DATA / f"eval_dt_{copies}.json"
    if gt_path.exists() and dt_path.exists():
        return gt_path, dt_path
    DATA.mkdir(exist_ok=True)
    images, annotations, dets = [], [], []
    for copy in range(copies):
        offset = copy * 1_000_000
        for image in truth["images"]:
            images.append(
                {**image, "id": image["id"] + offset, "file_name": f"c{copy}_{image['file_name']}"}
            )
        for ann in truth["annotations"]:
            annotations.append(
                {**ann, "id": len(annotations) + 1, "image_id": ann["image_id"] + offset}
            )
        for det in results:
            dets.append({**det, "image_id": det["image_id"] + offset})
    gt_path.write_text(json.dumps({**truth, "images": images, "annotations": annotations}))
    dt_path.write_text(json.dumps(dets))
    return gt_path, dt_path


def project_of(truth: Path, results: Path) -> Path:
    """A project with no source where the two files are imported (not timed)."""
    root = Path(tempfile.mkdtemp(prefix="bench-eval-"))
    (root / "bucketlake.yaml").write_text("lake: lake\ndagster_home: dagster_home\n")
    for args in (
        ["import", str(truth), "--format", "coco"],
        ["add-model", "fake", "--version", "1"],
        ["import", str(results), "--format", "coco-results", "--model", "fake", "--version", "1"],
    ):
        done = subprocess.run(
            [str(BIN / "bucketlake"), *args], cwd=root, capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            raise SystemExit(f"bucketlake {args[0]} failed: {done.stderr[-2000:]}")
    return root


def compare(name: str, truth: Path, results: Path, rounds: int) -> None:
    root = project_of(truth, results)
    try:
        for round_ in range(1, rounds + 1):
            order = ["pycocotools", "ours"] if round_ % 2 else ["ours", "pycocotools"]
            got: dict[str, dict[str, Any]] = {}
            for contender in order:
                if contender == "ours":
                    got[contender] = measure_command(
                        [sys.executable, "-c", OURS, str(root / "lake")], HERE.parent
                    )
                else:
                    got[contender] = measure_command(
                        [sys.executable, "-c", PYCOCOTOOLS, str(truth), str(results)], HERE
                    )
                got[contender]["stats"] = json.loads(got[contender]["said"])
            p, o = got["pycocotools"], got["ours"]
            same = (
                "identical"
                if p["stats"] == o["stats"]
                else f"DIFFERENT: {p['stats']} vs {o['stats']}"
            )
            print(
                f"{name} round {round_}: pycocotools {p['seconds']:.2f} s "
                f"({p['rss_mib']:,.0f} MiB), ours {o['seconds']:.2f} s ({o['rss_mib']:,.0f} MiB): "
                f"{p['seconds'] / o['seconds']:.1f}x faster, statistics {same}"
            )
    finally:
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--detections", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    compare(
        "conformance (734 detections)",
        CONFORMANCE / "instances_val2014_100.json",
        CONFORMANCE / "instances_val2014_fakebbox100_results.json",
        args.rounds,
    )
    truth, results = scaled(args.detections)
    n = len(json.loads(results.read_text()))
    compare(f"scaled ({n:,} detections)", truth, results, args.rounds)


if __name__ == "__main__":
    main()
