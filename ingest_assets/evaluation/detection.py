"""What a person reads off one COCO evaluation besides its 12 statistics: AP per class, the
precision-recall curve per class at IoU 0.5, and true positives, false positives and misses
at IoU 0.5 per class and per item (the items where the model fails most), all taken from the
engine's own matches, so that they agree with the statistics."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ingest_assets.evaluation.engine import Counts, Evaluated

#: The names of the 12 COCO statistics (10 for keypoints), in pycocotools' order.
STAT_NAMES = [
    "AP", "AP50", "AP75", "AP_small", "AP_medium", "AP_large",
    "AR1", "AR10", "AR100", "AR_small", "AR_medium", "AR_large",
]  # fmt: skip
KEYPOINT_STAT_NAMES = [
    "AP", "AP50", "AP75", "AP_medium", "AP_large", "AR", "AR50", "AR75", "AR_medium", "AR_large",
]  # fmt: skip


def stat_names(iou_type: str) -> list[str]:
    return KEYPOINT_STAT_NAMES if iou_type == "keypoints" else STAT_NAMES


@dataclass
class Detection:
    """One IoU type's results for one model version."""

    iou_type: str
    engine: str
    stats: list[float]
    #: By category id: name, AP (IoU .50:.95), AP50, and the counts at IoU 0.5.
    per_class: list[dict[str, Any]] = field(default_factory=list)
    #: By category id: precision at each of the 101 recall thresholds, IoU 0.5.
    pr_curves: dict[int, list[float]] = field(default_factory=dict)
    recall_thresholds: list[float] = field(default_factory=list)
    #: By COCO image id: the counts at IoU 0.5.
    per_image: dict[int, Counts] = field(default_factory=dict)

    def stats_by_name(self) -> dict[str, float]:
        return dict(zip(stat_names(self.iou_type), self.stats, strict=True))


def _mean_valid(values: np.ndarray) -> float:
    valid = values[values > -1]
    return float(np.mean(valid)) if valid.size else -1.0


def summarize(evaluated: Evaluated, names: dict[int, str]) -> Detection:
    """The per-class and per-image results of ``evaluated``; ``names`` by category id."""
    area_all = next(i for i, a in enumerate(evaluated.area_ranges) if a[1] >= 1e10 - 1)
    last = len(evaluated.max_dets) - 1
    at_50 = int(np.argmin(np.abs(evaluated.iou_thresholds - 0.5)))
    detection = Detection(
        evaluated.iou_type,
        evaluated.engine,
        evaluated.stats,
        recall_thresholds=[float(r) for r in evaluated.rec_thresholds],
        per_image=evaluated.per_image,
    )
    for k, cat_id in enumerate(evaluated.cat_ids):
        curve = evaluated.precision[at_50, :, k, area_all, last]
        counts = evaluated.per_class.get(cat_id, Counts())
        detection.per_class.append(
            {
                "category_id": cat_id,
                "name": names.get(cat_id, str(cat_id)),
                "AP": _mean_valid(evaluated.precision[:, :, k, area_all, last]),
                "AP50": _mean_valid(curve),
                "tp": counts.tp,
                "fp": counts.fp,
                "fn": counts.fn,
                "ground_truth": counts.ground_truth,
            }
        )
        if (curve > -1).any():
            detection.pr_curves[cat_id] = [float(v) for v in curve]
    return detection
