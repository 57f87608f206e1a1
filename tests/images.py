"""Real image files for tests, written with Pillow (no fixtures on disk)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image


def noise(width: int, height: int, mode: str = "RGB", seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    channels = {"RGB": 3, "L": 1, "RGBA": 4}[mode]
    pixels = rng.integers(0, 256, size=(height, width, channels), dtype=np.uint8)
    return Image.fromarray(pixels.squeeze() if channels == 1 else pixels, mode)


def encode(image: Image.Image, fmt: str, **params: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **params)
    return buffer.getvalue()


def write_image(
    path: Path, width: int = 32, height: int = 24, fmt: str = "JPEG", seed: int = 0
) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(encode(noise(width, height, seed=seed), fmt))
    return path
