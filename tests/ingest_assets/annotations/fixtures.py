"""The real COCO reference sets, and what the label-format tests compare records with.

The tests write other formats' files from these COCO sets by hand (not with the exporters under
test), then check that the importers give back COCO's own boxes and polygons.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ingest_assets.annotations.records import Record

DATA = Path(__file__).resolve().parents[3].parent / "shared" / "data"

requires_data = pytest.mark.skipif(
    not DATA.is_dir(), reason=f"the reference data folder {DATA} is absent"
)

#: Pixel coordinates must come back to within this after a trip through fractions.
PIXEL_TOLERANCE = 1e-6


@dataclass(frozen=True)
class CocoSet:
    """A COCO file's images (by id), category names (by id) and annotations, in file order."""

    images: dict[int, dict[str, Any]]
    names: dict[int, str]
    annotations: list[dict[str, Any]]

    def of_image(self, image_id: int) -> list[dict[str, Any]]:
        return [a for a in self.annotations if a["image_id"] == image_id]

    def size(self, annotation: dict[str, Any]) -> tuple[int, int]:
        image = self.images[annotation["image_id"]]
        return image["width"], image["height"]


def load_coco(relative: str, *, results: str | None = None) -> CocoSet:
    """A COCO set under the data folder; with ``results``, that results file's detections
    stand in for the annotations (its images and categories are the set's)."""
    body = json.loads((DATA / relative).read_text())
    annotations = body["annotations"]
    if results is not None:
        annotations = json.loads((DATA / results).read_text())
    return CocoSet(
        images={image["id"]: image for image in body["images"]},
        names={category["id"]: category["name"] for category in body["categories"]},
        annotations=annotations,
    )


def persons() -> CocoSet:
    return load_coco("coco-persons/test_coco.json")


def person_detections() -> CocoSet:
    return load_coco(
        "coco-persons/test_coco.json", results="coco-persons/test_coco_det_AP_H_56.json"
    )


def shapes() -> CocoSet:
    return load_coco("coco-shapes/gt_dataset.json")


def shape_detections() -> CocoSet:
    return load_coco("coco-shapes/gt_dataset.json", results="coco-shapes/dt_dataset.json")


def polygon_extent(polygon: list[float]) -> list[float]:
    xs, ys = polygon[0::2], polygon[1::2]
    return [min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)]


# -- comparing ------------------------------------------------------------------------------


def bbox_in_pixels(record: Record, width: int, height: int) -> list[float]:
    assert record.bbox is not None
    if record.units == "pixel":
        return record.bbox
    x, y, w, h = record.bbox
    return [x * width, y * height, w * width, h * height]


def polygon_in_pixels(record: Record, width: int, height: int) -> list[float]:
    assert isinstance(record.segmentation, list) and len(record.segmentation) == 1
    (polygon,) = record.segmentation
    if record.units == "pixel":
        return list(polygon)
    return [value * (width if i % 2 == 0 else height) for i, value in enumerate(polygon)]


def assert_numbers_close(got: Iterable[float], expected: Iterable[float], tolerance: float) -> None:
    got, expected = list(got), list(expected)
    assert len(got) == len(expected), (got, expected)
    for a, b in zip(got, expected, strict=True):
        assert math.isclose(a, b, rel_tol=0, abs_tol=tolerance), (got, expected)


def assert_same_records(got: list[Record], expected: list[Record], tolerance: float = 1e-9) -> None:
    """The records say the same, numbers to ``tolerance``; ``where`` may differ (a written
    file has its own line numbers)."""
    assert len(got) == len(expected)
    for a, b in zip(got, expected, strict=True):
        assert (a.item, a.kind, a.label, a.category_id, a.units, a.attributes) == (
            b.item,
            b.kind,
            b.label,
            b.category_id,
            b.units,
            b.attributes,
        )
        for name in ("bbox", "score"):
            left, right = getattr(a, name), getattr(b, name)
            assert (left is None) == (right is None), (name, left, right)
            if left is not None:
                assert_numbers_close(_flat(left), _flat(right), tolerance)
        assert (a.segmentation is None) == (b.segmentation is None)
        if a.segmentation is not None:
            assert len(a.segmentation) == len(b.segmentation)
            for left, right in zip(a.segmentation, b.segmentation, strict=True):
                assert_numbers_close(left, right, tolerance)


def _flat(value: float | list[float]) -> list[float]:
    return value if isinstance(value, list) else [value]
