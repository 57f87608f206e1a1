"""Decoding for the models: EXIF orientation applied, JPEG decoded at a reduced scale where it
serves, and the three resize modes."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from resources.errors import ConfigError
from resources.inference.decode import decode
from resources.inference.specs import InputSpec


def jpeg(image: Image.Image, **params: object) -> bytes:
    out = io.BytesIO()
    image.save(out, "JPEG", quality=95, **params)
    return out.getvalue()


def test_a_phone_photo_is_seen_as_displayed() -> None:
    # Stored 200x100 with a bright left half; orientation 6 shows it 100x200, bright on top.
    pixels = np.zeros((100, 200, 3), np.uint8)
    pixels[:, :100] = 255
    image = Image.fromarray(pixels)
    exif = image.getexif()
    exif[0x0112] = 6
    out = decode(jpeg(image, exif=exif), InputSpec(size=(64, 32), resize="stretch"))
    assert out.shape == (64, 32, 3)
    assert out[:28].mean() > 200 and out[36:].mean() < 50


def test_crop_takes_the_centre_at_the_model_size() -> None:
    pixels = np.zeros((400, 800, 3), np.uint8)
    pixels[:, 300:500] = 255  # a bright band in the middle
    out = decode(jpeg(Image.fromarray(pixels)), InputSpec(size=(224, 224)))
    assert out.shape == (224, 224, 3)
    assert out[:, 112].mean() > 200 and out[:, 0].mean() < 50


def test_full_keeps_the_size_and_grey_has_one_channel() -> None:
    image = Image.new("RGB", (37, 21), (10, 20, 30))
    assert decode(jpeg(image), InputSpec(resize="full")).shape == (21, 37, 3)
    assert decode(jpeg(image), InputSpec.grey((8, 8))).shape == (8, 8)


def test_a_one_channel_spec_gets_one_channel_statistics_and_a_bad_one_is_named() -> None:
    grey = InputSpec.from_json('{"channels": 1, "size": [28, 28]}', InputSpec())
    assert (grey.channels, grey.size, len(grey.mean), len(grey.std)) == (1, (28, 28), 1, 1)
    with pytest.raises(ConfigError, match=r"bucketlake.json\) is invalid: .*3 channels needs 3"):
        InputSpec.from_json('{"mean": [0.5]}', InputSpec())
