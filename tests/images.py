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


def write_digits(folder: Path, count: int, *, scale: int = 4, start: int = 0) -> list[int]:
    """scikit-learn's handwritten digits as PNGs in one folder per class (``3/d0007.png``);
    the classes, in order."""
    from sklearn.datasets import load_digits

    data = load_digits()
    targets = []
    for index in range(start, start + count):
        grey = (data.images[index] * (255.0 / 16.0)).astype(np.uint8)
        image = Image.fromarray(grey, "L").resize((8 * scale, 8 * scale), Image.Resampling.NEAREST)
        path = folder / str(data.target[index]) / f"d{index:04d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        image.save(path)
        targets.append(int(data.target[index]))
    return targets


def write_photo(path: Path, name: str, *, brighten: float = 1.0, quality: int = 90) -> Path:
    """A scikit-image sample photo (``coffee``, ``chelsea``, ...) as a JPEG, optionally
    brightened (a near-identical copy)."""
    from skimage import data

    pixels = getattr(data, name)().astype(np.float32) * brighten
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(path, quality=quality)
    return path
