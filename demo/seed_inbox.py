"""Writes real labelled images into an inbox folder for the demo: scikit-learn's handwritten
digits as PNG in one folder per label (some in ``unlabeled/``), a few scikit-image photos, and
two deliberately broken files. Everything comes from the installed packages; nothing is
downloaded."""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import numpy as np
from PIL import Image

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "camera")
UNLABELED_EVERY = 10  # every tenth digit goes to unlabeled/


def digits(inbox: Path, scale: int) -> int:
    from sklearn.datasets import load_digits

    data = load_digits()
    for index, (pixels, target) in enumerate(zip(data.images, data.target, strict=True)):
        gray = (pixels * (255.0 / 16.0)).astype(np.uint8)
        image = Image.fromarray(gray, "L").resize((8 * scale, 8 * scale), Image.Resampling.NEAREST)
        folder = "unlabeled" if index % UNLABELED_EVERY == 0 else f"digits/{target}"
        path = inbox / folder / f"digit_{index:04d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        image.save(path)
    return len(data.images)


def photos(inbox: Path) -> int:
    from skimage import data

    folder = inbox / "photos"
    folder.mkdir(parents=True, exist_ok=True)
    for name in PHOTOS:
        Image.fromarray(getattr(data, name)()).save(folder / f"{name}.jpg", quality=90)
    # A phone photo: stored landscape, shown portrait (EXIF orientation 6).
    image = Image.fromarray(data.chelsea())
    exif = image.getexif()
    exif[0x0112] = 6
    image.save(folder / "chelsea_rotated.jpg", quality=90, exif=exif)
    return len(PHOTOS) + 1


def broken(inbox: Path) -> int:
    folder = inbox / "broken"
    folder.mkdir(parents=True, exist_ok=True)
    whole = io.BytesIO()
    Image.new("RGB", (64, 64), (200, 30, 30)).save(whole, "JPEG")
    (folder / "truncated.jpg").write_bytes(whole.getvalue()[: len(whole.getvalue()) // 2])
    (folder / "not_an_image.jpg").write_text("this is a text file with an image's name\n")
    return 2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("inbox", type=Path, help="the folder to fill (the source's folder)")
    parser.add_argument("--scale", type=int, default=4, help="digit upscaling (8x8 -> 32x32)")
    args = parser.parse_args()
    counts = (digits(args.inbox, args.scale), photos(args.inbox), broken(args.inbox))
    print(
        f"demo: wrote {counts[0]} digits, {counts[1]} photos and {counts[2]} broken files "
        f"into {args.inbox}"
    )


if __name__ == "__main__":
    main()
