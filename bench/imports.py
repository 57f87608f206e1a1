"""A whole COCO import of a million annotations against a bare ``json.load`` + pycocotools index.

The file is the COCO conformance set (``../shared/data/coco-conformance``) scaled up: its 100
images repeated under new ids and file names, its 839 annotations repeated onto them with new
ids, until there are ``--annotations`` of them (1,000,000: 119,200 images, about the size of
COCO train2017). Each contender runs in a process of its own, one at a time, and its wall time,
CPU and peak RSS are read from ``wait4``:

- *ours*: ``bucketlake import FILE --format coco`` in a fresh project with no source, so the
  run links the 119,200 images as items and writes every annotation, through the Dagster
  instance, as a user would;
- *bare*: ``json.load`` and ``pycocotools.coco.COCO``'s index of the same file, no writing.

    .venv/bin/python bench/imports.py [--annotations 1000000] [--rounds 1]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from _meter import measure_command

HERE = Path(__file__).resolve().parent
CONFORMANCE = HERE.parents[1] / "shared/data/coco-conformance/instances_val2014_100.json"
DATA = HERE / ".data"
BIN = Path(sys.executable).parent

BARE = """
import json, sys
from pycocotools.coco import COCO
with open(sys.argv[1]) as f:
    data = json.load(f)
index = COCO()
index.dataset = data
index.createIndex()
print(len(index.anns), len(index.imgs))
"""


def build(annotations: int) -> Path:
    """The scaled conformance file (made once per size, then reused)."""
    path = DATA / f"coco_{annotations}.json"
    if path.exists():
        return path
    DATA.mkdir(exist_ok=True)
    base = json.loads(CONFORMANCE.read_text())
    per_copy = len(base["annotations"])
    copies = -(-annotations // per_copy)
    images: list[dict[str, Any]] = []
    anns: list[dict[str, Any]] = []
    for copy in range(copies):
        offset = copy * 1_000_000
        for image in base["images"]:
            name = f"c{copy:05d}_{image['file_name']}"
            images.append({**image, "id": image["id"] + offset, "file_name": name})
        for ann in base["annotations"]:
            if len(anns) == annotations:
                break
            anns.append({**ann, "id": len(anns) + 1, "image_id": ann["image_id"] + offset})
    body = {**base, "images": images, "annotations": anns}
    partial = path.with_suffix(".partial")
    with partial.open("w") as out:
        json.dump(body, out)
    partial.rename(path)
    return path


def ours(path: Path) -> dict[str, float]:
    project = Path(tempfile.mkdtemp(prefix="bench-import-"))
    try:
        (project / "bucketlake.yaml").write_text("lake: lake\ndagster_home: dagster_home\n")
        return measure_command(
            [str(BIN / "bucketlake"), "import", str(path), "--format", "coco"], project
        )
    finally:
        shutil.rmtree(project, ignore_errors=True)


def bare(path: Path) -> dict[str, float]:
    return measure_command([sys.executable, "-c", BARE, str(path)], HERE)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--annotations", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    path = build(args.annotations)
    print(f"{path.name}: {path.stat().st_size / 2**20:,.0f} MiB")
    for round_ in range(1, args.rounds + 1):
        # Alternate the order, so that neither always runs on a warmer machine.
        order = [("bare", bare), ("ours", ours)]
        results = dict((name, run(path)) for name, run in (order if round_ % 2 else order[::-1]))
        b, o = results["bare"], results["ours"]
        for name, r in (("bare json.load + COCO index", b), ("bucketlake import", o)):
            print(
                f"round {round_}: {name:28} {r['seconds']:7.1f} s wall  {r['cpu']:7.1f} s CPU  "
                f"{r['rss_mib']:8,.0f} MiB peak RSS  {r['said']}"
            )
        print(
            f"round {round_}: ours / bare: {o['seconds'] / b['seconds']:.2f} of the time, "
            f"{o['rss_mib'] / b['rss_mib']:.3f} of the memory"
        )


if __name__ == "__main__":
    main()
