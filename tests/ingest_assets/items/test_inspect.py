"""Image inspection on real files made with Pillow: sizes as displayed, formats and modes,
frames, perceptual hashes, and bad files reported as results, never raised."""

from __future__ import annotations

import io
import random
import struct
import warnings
import zlib

import imagehash
import numpy as np
import pytest
from PIL import Image

from ingest_assets.items.inspect import ImageFacts, configure_pillow, inspect_image, perceptual_hash
from resources.config import PILLOW_MAX_IMAGE_PIXELS, VerifyLevel
from tests.images import encode, noise

LIMIT = PILLOW_MAX_IMAGE_PIXELS
LEVELS: list[VerifyLevel] = ["full", "header", "none"]


def inspect(data: bytes, verify: VerifyLevel = "full", max_pixels: int = LIMIT) -> ImageFacts:
    return inspect_image(data, verify=verify, max_pixels=max_pixels)


def scene(seed: int, size: tuple[int, int] = (320, 240)) -> Image.Image:
    """A smooth picture (a few colour blobs), the kind of image a perceptual hash is for."""
    return noise(8, 6, seed=seed).resize(size, Image.Resampling.BICUBIC)


def with_orientation(image: Image.Image, orientation: int, fmt: str = "JPEG") -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encode(image, fmt, exif=exif.tobytes())


def animated_gif(frames: int, size: tuple[int, int] = (24, 16)) -> bytes:
    images = [noise(*size, seed=seed).convert("P") for seed in range(frames)]
    return encode(images[0], "GIF", save_all=True, append_images=images[1:], duration=100)


def blank_png(width: int, height: int) -> bytes:
    """A valid black 1-bit PNG of any size, built without holding its pixels in memory (a
    decompression bomb: a few kilobytes that decode to ``width * height`` pixels)."""

    def chunk(tag: bytes, body: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(tag + body))
        return struct.pack(">I", len(body)) + tag + body + crc

    row = b"\x00" * (1 + (width + 7) // 8)  # filter byte + packed bits
    packer = zlib.compressobj(9)
    full, rest = divmod(height, 1000)
    idat = b"".join(packer.compress(row * 1000) for _ in range(full))
    idat += packer.compress(row * rest) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    )


def phash_distance(a: ImageFacts, b: ImageFacts) -> int:
    assert a.phash is not None and b.phash is not None
    return int(imagehash.hex_to_hash(a.phash) - imagehash.hex_to_hash(b.phash))


@pytest.fixture
def restore_pillow_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    """configure_pillow changes a process-wide setting; put it back after the test."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", Image.MAX_IMAGE_PIXELS)


# -- good images ------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
@pytest.mark.parametrize("size", [(32, 24), (24, 32), (1, 1), (640, 17)])
def test_good_images_report_pillows_size_format_and_mode(fmt: str, size: tuple[int, int]) -> None:
    data = encode(noise(*size), fmt)
    facts = inspect(data)
    with Image.open(io.BytesIO(data)) as image:
        assert (facts.width, facts.height) == image.size == size
        assert (facts.format, facts.mode) == (image.format, image.mode) == (fmt, "RGB")
    assert facts.status == "ok"
    assert facts.error is None
    assert facts.frames == 1
    assert facts.orientation == 1
    assert facts.phash is not None and len(facts.phash) == 16


@pytest.mark.parametrize("mode", ["L", "RGBA"])
def test_grey_and_transparent_pngs_keep_their_mode(mode: str) -> None:
    facts = inspect(encode(noise(20, 10, mode=mode), "PNG"))
    assert (facts.status, facts.mode, facts.width, facts.height) == ("ok", mode, 20, 10)


def test_header_verification_reads_the_size_but_computes_no_hash() -> None:
    facts = inspect(encode(noise(40, 30), "JPEG"), verify="header")
    assert (facts.status, facts.width, facts.height, facts.format) == ("ok", 40, 30, "JPEG")
    assert facts.phash is None


def test_no_verification_does_not_parse_the_file() -> None:
    assert inspect(b"not an image at all", verify="none") == ImageFacts(status="ok")
    assert inspect(encode(noise(40, 30), "PNG"), verify="none") == ImageFacts(status="ok")


# -- EXIF orientation -------------------------------------------------------------------------


@pytest.mark.parametrize("verify", ["full", "header"])
@pytest.mark.parametrize(
    ("orientation", "shown"),
    [(1, (40, 30)), (3, (40, 30)), (6, (30, 40)), (8, (30, 40)), (5, (30, 40)), (2, (40, 30))],
)
def test_size_is_reported_as_displayed_with_exif_orientation_applied(
    orientation: int, shown: tuple[int, int], verify: VerifyLevel
) -> None:
    facts = inspect(with_orientation(noise(40, 30), orientation), verify=verify)
    assert facts.status == "ok"
    assert facts.orientation == orientation
    assert (facts.width, facts.height) == shown


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_the_perceptual_hash_is_of_the_image_as_displayed(fmt: str) -> None:
    picture = scene(1)
    stored_sideways = inspect(with_orientation(picture, 6, fmt))
    # Orientation 6: the viewer turns the stored pixels 90 degrees clockwise.
    upright = inspect(encode(picture.transpose(Image.Transpose.ROTATE_270), fmt))
    assert (stored_sideways.width, stored_sideways.height) == (upright.width, upright.height)
    assert phash_distance(stored_sideways, upright) <= 4
    assert phash_distance(stored_sideways, inspect(encode(picture, fmt))) > 10


def test_a_png_orientation_is_applied_in_header_mode_too() -> None:
    facts = inspect(with_orientation(noise(40, 30), 8, "PNG"), verify="header")
    assert (facts.status, facts.orientation, facts.width, facts.height) == ("ok", 8, 30, 40)


# -- odd but valid ----------------------------------------------------------------------------


def test_a_cmyk_jpeg_is_fine_and_keeps_its_mode() -> None:
    facts = inspect(encode(scene(3).convert("CMYK"), "JPEG"))
    assert facts.status == "ok", facts.error
    assert (facts.format, facts.mode, facts.width, facts.height) == ("JPEG", "CMYK", 320, 240)
    assert facts.phash is not None


def test_a_16_bit_png_is_fine() -> None:
    depth = (np.arange(48 * 64, dtype=np.uint16).reshape(48, 64) * 21).astype(np.uint16)
    data = encode(Image.fromarray(depth), "PNG")
    facts = inspect(data)
    assert facts.status == "ok", facts.error
    assert (facts.format, facts.width, facts.height) == ("PNG", 64, 48)
    assert facts.mode is not None and facts.mode.startswith("I;16")
    assert facts.phash is not None


@pytest.mark.parametrize("verify", ["full", "header"])
def test_an_animated_gif_reports_its_frame_count(verify: VerifyLevel) -> None:
    facts = inspect(animated_gif(3), verify=verify)
    assert facts.status == "ok", facts.error
    assert (facts.format, facts.frames, facts.width, facts.height) == ("GIF", 3, 24, 16)


def test_a_still_gif_has_one_frame() -> None:
    assert inspect(animated_gif(1)).frames == 1


# -- bad files --------------------------------------------------------------------------------


@pytest.mark.parametrize("verify", LEVELS)
def test_an_empty_file_is_corrupt_at_every_level(verify: VerifyLevel) -> None:
    facts = inspect(b"", verify=verify)
    assert facts.status == "corrupt"
    assert facts.error is not None and "empty" in facts.error and "0 bytes" in facts.error


@pytest.mark.parametrize("verify", ["full", "header"])
@pytest.mark.parametrize(
    "data", [b"hello, this is a text file\n", b"\x00" * 100, b"\xff\xd8\xff", b"GIF89a"]
)
def test_bytes_that_are_not_an_image_are_corrupt(data: bytes, verify: VerifyLevel) -> None:
    facts = inspect(data, verify=verify)
    assert facts.status == "corrupt"
    assert facts.error is not None
    assert "not an image" in facts.error or "cannot decode" in facts.error
    assert facts.phash is None


def truncated_jpeg() -> bytes:
    data = encode(noise(256, 256), "JPEG")
    return data[: len(data) // 2]


def test_full_verification_catches_a_truncated_jpeg() -> None:
    facts = inspect(truncated_jpeg(), verify="full")
    assert facts.status == "corrupt"
    assert facts.error is not None and "truncated" in facts.error
    assert facts.error.startswith("cannot decode JPEG")
    # What the header said is kept, to help whoever looks at the bad file.
    assert (facts.format, facts.width, facts.height) == ("JPEG", 256, 256)
    assert facts.phash is None


def test_header_verification_does_not_decode_the_pixels_of_a_truncated_jpeg() -> None:
    facts = inspect(truncated_jpeg(), verify="header")
    assert (facts.status, facts.width, facts.height) == ("ok", 256, 256)


def test_full_verification_catches_a_truncated_png() -> None:
    data = encode(scene(4), "PNG")
    facts = inspect(data[: len(data) // 2], verify="full")
    assert facts.status == "corrupt"
    assert facts.error is not None and "truncated" in facts.error


def test_header_verification_reads_only_the_header_of_a_png_too() -> None:
    # Like a JPEG, a PNG whose pixels are cut short passes a header check: the header check
    # must not decode the pixels (it is the fast mode for large sources).
    data = encode(scene(4), "PNG")
    facts = inspect(data[: len(data) // 2], verify="header")
    assert (facts.status, facts.format, facts.width, facts.height) == ("ok", "PNG", 320, 240)


def test_a_truncated_image_never_raises_at_any_cut() -> None:
    data = encode(noise(64, 48), "JPEG")
    for end in range(0, len(data), 97):
        for verify in LEVELS:
            facts = inspect(data[:end], verify=verify)
            assert facts.status in ("ok", "corrupt")
            assert (facts.status == "corrupt") == (facts.error is not None)


# -- decompression bombs ----------------------------------------------------------------------


def assert_bomb(facts: ImageFacts) -> None:
    assert facts.status == "corrupt"
    assert facts.error is not None
    assert facts.error.startswith("decompression bomb")
    assert "max_image_pixels" in facts.error
    assert facts.phash is None


@pytest.mark.parametrize("verify", ["full", "header"])
def test_an_image_over_the_sources_pixel_limit_is_a_decompression_bomb(verify: VerifyLevel) -> None:
    facts = inspect(blank_png(4000, 3000), verify=verify, max_pixels=1_000_000)
    assert_bomb(facts)
    assert facts.error is not None and "4000x3000" in facts.error and "1,000,000" in facts.error
    assert (facts.width, facts.height) == (4000, 3000)


def test_a_pillow_made_bomb_is_reported_with_a_lowered_limit() -> None:
    data = encode(Image.new("L", (10000, 10000)), "PNG")
    assert len(data) < 200_000  # it compresses to almost nothing
    assert_bomb(inspect(data, max_pixels=50_000_000))


def test_an_image_at_the_limit_is_not_a_bomb() -> None:
    facts = inspect(blank_png(1000, 1000), max_pixels=1_000_000)
    assert (facts.status, facts.width, facts.height, facts.mode) == ("ok", 1000, 1000, "1")


def test_an_image_over_twice_pillows_own_limit_is_a_bomb_not_an_exception() -> None:
    # Pillow refuses this one itself (DecompressionBombError) before we see its size.
    facts = inspect(blank_png(20000, 20000))
    assert_bomb(facts)


@pytest.mark.usefixtures("restore_pillow_limit")
def test_between_once_and_twice_pillows_limit_the_warning_becomes_a_result() -> None:
    # Outside pytest, Pillow only warns here; configure_pillow turns the warning into an error
    # so that inspect_image reports it per item instead of printing it to the run's log.
    with warnings.catch_warnings(record=True) as printed:
        warnings.simplefilter("always")
        configure_pillow(LIMIT)
        assert_bomb(inspect(blank_png(10000, 10000), verify="header"))
    assert printed == []


@pytest.mark.usefixtures("restore_pillow_limit")
def test_raising_max_image_pixels_lets_a_large_image_through() -> None:
    configure_pillow(500_000_000)
    facts = inspect(blank_png(20000, 20000), verify="header", max_pixels=500_000_000)
    assert (facts.status, facts.width, facts.height) == ("ok", 20000, 20000), facts.error


def test_configure_pillow_raises_pillows_limit_but_never_lowers_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", LIMIT)
    seen = [Image.MAX_IMAGE_PIXELS]
    for limit in (1000, LIMIT * 3, LIMIT):
        configure_pillow(limit)
        seen.append(Image.MAX_IMAGE_PIXELS)
    assert seen == [LIMIT, LIMIT, LIMIT * 3, LIMIT * 3]


@pytest.mark.usefixtures("restore_pillow_limit")
def test_a_lowered_limit_still_applies_after_configure_pillow() -> None:
    configure_pillow(1_000_000)
    assert_bomb(inspect(blank_png(2000, 1000), max_pixels=1_000_000))


# -- perceptual hash --------------------------------------------------------------------------


def test_the_same_picture_as_png_and_high_quality_jpeg_has_a_near_identical_phash() -> None:
    picture = scene(1)
    as_png = inspect(encode(picture, "PNG"))
    as_jpeg = inspect(encode(picture, "JPEG", quality=95))
    assert phash_distance(as_png, as_jpeg) <= 4


def test_the_phash_survives_resizing() -> None:
    picture = scene(5)
    small = inspect(encode(picture.resize((160, 120), Image.Resampling.LANCZOS), "PNG"))
    assert phash_distance(inspect(encode(picture, "PNG")), small) <= 6


def test_different_pictures_have_distant_phashes() -> None:
    hashes = [inspect(encode(scene(seed), "PNG")) for seed in range(1, 9)]
    for i, a in enumerate(hashes):
        for b in hashes[i + 1 :]:
            assert phash_distance(a, b) > 10


def test_the_phash_is_the_same_every_time() -> None:
    data = encode(scene(2), "JPEG")
    assert inspect(data).phash == inspect(data).phash


def hash_cases() -> list[Image.Image]:
    rng = random.Random(5)
    cases: list[Image.Image] = [Image.new("L", (64, 64), shade) for shade in (0, 1, 128, 255)]
    ramp = bytes(range(256)) * 40
    cases += [
        Image.frombytes("L", (256, 40), ramp),
        Image.frombytes("L", (256, 40), ramp).rotate(90),
    ]
    for _ in range(60):
        w, h = rng.randrange(8, 300), rng.randrange(8, 300)
        cases.append(Image.frombytes("L", (w, h), bytes(rng.randrange(256) for _ in range(w * h))))
        levels = bytes(rng.randrange(4) * 60 for _ in range(w * h))  # blocky, full of ties
        cases.append(Image.frombytes("L", (w, h), levels))
    from skimage import data

    cases += [Image.fromarray(data.astronaut()), Image.fromarray(data.camera())]
    return cases


def test_the_perceptual_hash_is_imagehash_phash() -> None:
    for image in hash_cases():
        assert perceptual_hash(image) == str(imagehash.phash(image))
