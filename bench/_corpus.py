"""A folder of N real-looking JPEGs for the benchmarks, one folder per label (the layout both
our ``folder`` label strategy and FiftyOne's ImageClassificationDirectoryTree read).

Three quarters are random crops of scikit-image's bundled photos, the rest scikit-learn's
handwritten digits scaled up; sizes are log-uniform from 96 to 1024 px on the longest side,
JPEG quality 60-95, some grayscale, some progressive, and some stored sideways with an EXIF
orientation (a phone photo). Everything comes from installed packages; nothing is downloaded.
The same N and seed give the same files, so a corpus is made once and reused.
"""

from __future__ import annotations

import io
import math
import os
import random
import shutil
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

PHOTOS = (
    "astronaut", "coffee", "chelsea", "rocket", "camera", "coins", "moon", "immunohistochemistry",
    "hubble_deep_field", "retina", "colorwheel", "grass", "gravel", "brick", "cell", "clock",
)  # fmt: skip
DIGIT_SHARE = 0.25
SIDE_RANGE = (96, 1024)

_SOURCES: dict[str, np.ndarray] = {}


def _source(name: str) -> np.ndarray:
    if name not in _SOURCES:
        if name.startswith("digit"):
            from sklearn.datasets import load_digits

            digits = load_digits()
            for index, (pixels, target) in enumerate(
                zip(digits.images, digits.target, strict=True)
            ):
                _SOURCES[f"digit{index}"] = (pixels * (255.0 / 16.0)).astype(np.uint8)
                _SOURCES[f"digit{index}.label"] = np.array(target)
        else:
            from skimage import data

            _SOURCES[name] = getattr(data, name)()
    return _SOURCES[name]


def _one(index: int, seed: int, root: str) -> int:
    rng = random.Random(seed * 1_000_003 + index)
    side = int(math.exp(rng.uniform(math.log(SIDE_RANGE[0]), math.log(SIDE_RANGE[1]))))
    exif = Image.Exif()
    if rng.random() < DIGIT_SHARE:
        number = rng.randrange(1797)
        image = Image.fromarray(_source(f"digit{number}"), "L")
        label = f"digit_{int(_source(f'digit{number}.label'))}"
        image = image.resize(
            (side, side), rng.choice([Image.Resampling.NEAREST, Image.Resampling.BILINEAR])
        )
    else:
        label = rng.choice(PHOTOS)
        pixels = _source(label)
        height, width = pixels.shape[:2]
        crop_h = int(height * rng.uniform(0.5, 1.0))
        crop_w = int(width * rng.uniform(0.5, 1.0))
        top, left = rng.randrange(height - crop_h + 1), rng.randrange(width - crop_w + 1)
        image = Image.fromarray(pixels[top : top + crop_h, left : left + crop_w]).convert(
            "L" if pixels.ndim == 2 or rng.random() < 0.1 else "RGB"
        )
        scale = side / max(crop_w, crop_h)
        image = image.resize(
            (max(8, round(crop_w * scale)), max(8, round(crop_h * scale))), Image.Resampling.LANCZOS
        )
        if rng.random() < 0.08:  # a phone photo: stored sideways, shown upright
            image = image.transpose(Image.Transpose.ROTATE_90)
            exif[0x0112] = 6
    out = io.BytesIO()
    image.save(out, "JPEG", quality=rng.randint(60, 95), progressive=rng.random() < 0.15, exif=exif)
    path = Path(root) / label / f"img_{index:06d}.jpg"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(out.getvalue())
    return len(out.getvalue())


def make_corpus(root: Path, count: int, seed: int = 7, workers: int | None = None) -> Path:
    """``root/<label>/img_<i>.jpg`` for ``count`` images; reused when already complete."""
    done = root / ".complete"
    if done.exists() and done.read_text() == f"{count} {seed}\n":
        return root
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    with ProcessPoolExecutor(workers or os.cpu_count()) as pool:
        list(pool.map(_one, range(count), [seed] * count, [str(root)] * count, chunksize=64))
    done.write_text(f"{count} {seed}\n")
    return root


def corpus_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.jpg"))
