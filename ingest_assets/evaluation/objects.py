"""Located objects as columns: the ground truth's or one IoU type's predictions, one array per
field, as the lake's Parquet columns give them and as hotcoco takes them, with no Python dict
per object until a dict-based path (pycocotools, masks, keypoints) asks for one."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class Objects:
    """``N`` objects: COCO image and category ids, ``[x, y, w, h]`` boxes, and for the ground
    truth its areas and crowd flags, for predictions their scores; masks and keypoints where
    they are scored (one entry per object, in order)."""

    image_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    category_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), dtype=np.float64))
    area: np.ndarray | None = None
    iscrowd: np.ndarray | None = None
    scores: np.ndarray | None = None
    segmentation: list[Any] | None = None
    keypoints: list[Any] | None = None
    num_keypoints: list[int] | None = None
    #: Masked predictions only: which were made as boxes (scored with their box's area, as
    #: loadRes reads a box file that carries masks) rather than as masks.
    boxed: list[bool] | None = None

    def __len__(self) -> int:
        return len(self.image_ids)

    @classmethod
    def concat(cls, parts: list[Objects]) -> Objects:
        """The objects of ``parts``, in order (an optional field is kept if every part has
        it)."""
        if not parts:
            return cls()

        def arrays(name: str) -> np.ndarray | None:
            found = [getattr(p, name) for p in parts]
            return None if any(f is None for f in found) else np.concatenate(found)

        def lists(name: str) -> list[Any] | None:
            found = [getattr(p, name) for p in parts]
            return None if any(f is None for f in found) else [v for f in found for v in f]

        return cls(
            image_ids=np.concatenate([p.image_ids for p in parts]),
            category_ids=np.concatenate([p.category_ids for p in parts]),
            boxes=np.concatenate([p.boxes for p in parts]).reshape(-1, 4),
            area=arrays("area"),
            iscrowd=arrays("iscrowd"),
            scores=arrays("scores"),
            segmentation=lists("segmentation"),
            keypoints=lists("keypoints"),
            num_keypoints=lists("num_keypoints"),
            boxed=lists("boxed"),
        )

    def annotations(self) -> list[dict[str, Any]]:
        """As COCO ground-truth annotations, ids 1 to N in order."""
        assert self.area is not None and self.iscrowd is not None
        out = []
        for n in range(len(self)):
            annotation: dict[str, Any] = {
                "id": n + 1,
                "image_id": int(self.image_ids[n]),
                "category_id": int(self.category_ids[n]),
                "bbox": [float(v) for v in self.boxes[n]],
                "area": float(self.area[n]),
                "iscrowd": int(self.iscrowd[n]),
            }
            if self.segmentation is not None and self.segmentation[n] is not None:
                annotation["segmentation"] = self.segmentation[n]
            if self.keypoints is not None and self.keypoints[n] is not None:
                annotation["keypoints"] = self.keypoints[n]
                annotation["num_keypoints"] = (self.num_keypoints or [0] * len(self))[n] or 0
            out.append(annotation)
        return out

    def results(self, iou_type: str) -> list[dict[str, Any]]:
        """As a COCO results list for ``iou_type``, as ``loadRes`` should read it: a mask
        result without its box (given one, loadRes scores it as a box), a box result with
        its mask where it has one."""
        assert self.scores is not None
        out = []
        for n in range(len(self)):
            result: dict[str, Any] = {
                "image_id": int(self.image_ids[n]),
                "category_id": int(self.category_ids[n]),
                "score": float(self.scores[n]),
            }
            if iou_type == "keypoints":
                assert self.keypoints is not None
                result["keypoints"] = self.keypoints[n]
            elif iou_type == "segm":
                assert self.segmentation is not None
                if self.boxed is not None and self.boxed[n]:
                    result["bbox"] = [float(v) for v in self.boxes[n]]
                result["segmentation"] = self.segmentation[n]
            else:
                result["bbox"] = [float(v) for v in self.boxes[n]]
            out.append(result)
        return out

    def box_array(self) -> np.ndarray:
        """``[image_id, x, y, w, h, score, category_id]`` rows, as ``loadRes`` takes them."""
        assert self.scores is not None
        return np.column_stack([self.image_ids, self.boxes, self.scores, self.category_ids]).astype(
            np.float64
        )
