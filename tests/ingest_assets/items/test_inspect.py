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

from ingest_assets.items import inspect as inspect_module
from ingest_assets.items.inspect import (
    ImageFacts,
    configure_pillow,
    describe_many,
    inspect_image,
    perceptual_hash,
)
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


def test_pillows_own_refusal_names_the_sources_limit_not_pillows() -> None:
    # Pillow refuses this one before we see its size, quoting its own limit (2 x 89,478,485).
    facts = inspect(blank_png(20000, 20000), max_pixels=LIMIT)
    assert facts.error is not None
    assert f"{LIMIT:,}" in facts.error and "400,000,000 pixels" in facts.error
    assert str(2 * LIMIT) not in facts.error and f"{2 * LIMIT:,}" not in facts.error


def test_pillows_bomb_warning_names_the_sources_lowered_limit() -> None:
    # 100,000,000 pixels: over Pillow's default limit (it warns, an error here as in a worker)
    # and over the source's 50,000,000, which is the limit a user can change.
    facts = inspect(blank_png(10000, 10000), max_pixels=50_000_000)
    assert_bomb(facts)
    assert facts.error is not None and "50,000,000" in facts.error
    assert str(LIMIT) not in facts.error and f"{LIMIT:,}" not in facts.error


@pytest.mark.usefixtures("restore_pillow_limit")
def test_pillows_limit_below_the_sources_is_our_error_not_a_corrupt_file() -> None:
    # Only a process that skipped configure_pillow gets here: the image is within the
    # source's limit, so calling it a bomb would blame the file for our mistake.
    Image.MAX_IMAGE_PIXELS = 1000
    with pytest.raises(RuntimeError, match=r"configure_pillow\(1000000\)"):
        inspect(blank_png(100, 100), max_pixels=1_000_000)


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

    photos = [data.astronaut(), data.camera()]  # type: ignore[no-untyped-call]
    cases += [Image.fromarray(photo) for photo in photos]
    return cases


def test_the_perceptual_hash_is_imagehash_phash() -> None:
    for image in hash_cases():
        assert perceptual_hash(image) == str(imagehash.phash(image))


# -- crafted files: every frame and page, and whatever Pillow raises ---------------------------


def gif_frame_offsets(data: bytes) -> list[int]:
    """Where each frame's image descriptor (0x2C) starts in a GIF that Pillow wrote: right
    after the frame's graphic control extension (21 F9 04, four bytes, 00)."""
    offsets, at = [], data.find(b"\x21\xf9\x04")
    while at >= 0:
        offsets.append(at + 8)
        at = data.find(b"\x21\xf9\x04", at + 8)
    return offsets


def gif_pixel_data(data: bytes, frame: int) -> int:
    """Where a frame's pixels start: its LZW code size byte, after the descriptor and the
    frame's own colour table."""
    start = gif_frame_offsets(data)[frame]
    flags = data[start + 9]
    palette = 3 << ((flags & 7) + 1) if flags & 0x80 else 0
    return start + 10 + palette


def gif_cut_between_frames() -> bytes:
    """An animated GIF cut just after the second frame's image separator: Pillow's frame
    count reads a frame position from bytes that are not there (``struct.error``)."""
    data = animated_gif(5)
    return data[: gif_frame_offsets(data)[1] + 1]


def gif_with_a_bad_code_size_in_frame_3() -> bytes:
    data = animated_gif(5)
    at = gif_pixel_data(data, 2)
    return data[:at] + bytes([13]) + data[at + 1 :]  # LZW codes are at most 12 bits


def gif_with_garbage_in_frame_3() -> bytes:
    data = animated_gif(5)
    at = gif_pixel_data(data, 2) + 2  # past the code size and the first block's length
    return data[:at] + b"\xff" * 100 + data[at + 100 :]


def gif_cut_in_frame_3() -> bytes:
    data = animated_gif(5)
    return data[: gif_pixel_data(data, 2) + 200]


def tiff_pages(count: int, size: tuple[int, int] = (16, 16)) -> bytes:
    pages = [noise(*size, seed=seed) for seed in range(count)]
    return encode(pages[0], "TIFF", save_all=True, append_images=pages[1:])


def set_tiff_tag(data: bytes, page: int, tag: int, value: int) -> bytes:
    """A little-endian TIFF with one tag's value of one page replaced (a SHORT or LONG held
    in its IFD entry)."""
    out = bytearray(data)
    (ifd,) = struct.unpack_from("<I", out, 4)
    for _ in range(page):
        (entries,) = struct.unpack_from("<H", out, ifd)
        (ifd,) = struct.unpack_from("<I", out, ifd + 2 + 12 * entries)
    (entries,) = struct.unpack_from("<H", out, ifd)
    for entry in range(ifd + 2, ifd + 2 + 12 * entries, 12):
        found, kind = struct.unpack_from("<HH", out, entry)
        if found == tag:
            struct.pack_into("<H" if kind == 3 else "<I", out, entry + 8, value)
            return bytes(out)
    raise AssertionError(f"page {page} has no tag {tag}")


TIFF_COMPRESSION, TIFF_WIDTH, TIFF_LENGTH, TIFF_STRIP_OFFSETS = 259, 256, 257, 273


def animation(fmt: str, frames: int = 3) -> bytes:
    images = [noise(24, 16, seed=seed) for seed in range(frames)]
    return encode(images[0], fmt, save_all=True, append_images=images[1:], duration=100)


def png_with_a_broken_frame_2() -> bytes:
    """An animated PNG whose second frame's compressed pixels are scrambled, its chunk's CRC
    recomputed: only decoding that frame can tell."""
    data, at, frame_chunks = animation("PNG"), 8, []
    while at < len(data):
        (length,) = struct.unpack_from(">I", data, at)
        if data[at + 4 : at + 8] == b"fdAT":
            frame_chunks.append((at, length))
        at += 12 + length
    at, length = frame_chunks[0]
    body = data[at + 8 : at + 12] + bytes(b ^ 0x5A for b in data[at + 12 : at + 8 + length])
    crc = struct.pack(">I", zlib.crc32(b"fdAT" + body))
    return data[: at + 8] + body + crc + data[at + 12 + length :]


@pytest.mark.parametrize("verify", ["full", "header"])
@pytest.mark.parametrize("fmt", ["GIF", "PNG", "WEBP", "TIFF"])
def test_every_multi_frame_format_reports_its_frames(fmt: str, verify: VerifyLevel) -> None:
    facts = inspect(animation(fmt), verify=verify)
    assert (facts.status, facts.format, facts.frames) == ("ok", fmt, 3), facts.error


def test_full_verification_decodes_every_frame_of_an_animated_png() -> None:
    facts = inspect(png_with_a_broken_frame_2(), verify="full")
    assert facts.status == "corrupt"
    assert facts.error is not None and facts.error.startswith("cannot decode PNG frame 2 of 3: ")
    assert inspect(png_with_a_broken_frame_2(), verify="header").status == "ok"


@pytest.mark.parametrize("verify", ["full", "header"])
def test_an_animated_gif_cut_between_frames_is_corrupt(verify: VerifyLevel) -> None:
    facts = inspect(gif_cut_between_frames(), verify=verify)
    assert facts.status == "corrupt"
    assert facts.error is not None
    assert facts.error.startswith("cannot decode GIF: counting its frames: struct.error: ")
    assert (facts.format, facts.width, facts.height) == ("GIF", 24, 16)


@pytest.mark.parametrize("verify", ["full", "header"])
def test_a_tiff_with_an_unknown_compression_on_page_2_is_corrupt(verify: VerifyLevel) -> None:
    data = set_tiff_tag(tiff_pages(3), 1, TIFF_COMPRESSION, 12345)
    facts = inspect(data, verify=verify)
    assert facts.status == "corrupt"
    assert facts.error == "cannot decode TIFF: counting its pages: KeyError: 12345"


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (gif_with_a_bad_code_size_in_frame_3(), "codec configuration error"),
        (gif_with_garbage_in_frame_3(), "broken data stream"),
    ],
    ids=["bad code size", "garbage pixels"],
)
def test_full_verification_decodes_every_frame_of_a_gif(data: bytes, words: str) -> None:
    facts = inspect(data, verify="full")
    assert facts.status == "corrupt"
    assert facts.error is not None and facts.error.startswith("cannot decode GIF frame 3 of 5: ")
    assert words in facts.error
    assert (facts.format, facts.frames) == ("GIF", 5)
    # A header check reads every frame's header, never its pixels.
    assert (inspect(data, verify="header").status, inspect(data, verify="header").frames) == (
        "ok",
        5,
    )


def test_a_gif_cut_in_its_last_frame_is_corrupt_though_its_first_decodes() -> None:
    facts = inspect(gif_cut_in_frame_3(), verify="full")
    assert facts.status == "corrupt"
    assert facts.error is not None
    assert facts.error.startswith("cannot decode GIF frame 3 of 3: image file is truncated")


def test_full_verification_decodes_every_page_of_a_tiff() -> None:
    data = tiff_pages(3)
    broken = set_tiff_tag(data, 1, TIFF_STRIP_OFFSETS, len(data) + 1000)
    facts = inspect(broken, verify="full")
    assert facts.status == "corrupt"
    assert facts.error is not None
    assert facts.error.startswith("cannot decode TIFF page 2 of 3: image file is truncated")
    assert (facts.format, facts.frames, facts.width, facts.height) == ("TIFF", 3, 16, 16)
    assert inspect(broken, verify="header").status == "ok"


def test_every_page_of_a_tiff_is_held_to_the_pixel_limit_before_it_is_decoded() -> None:
    # Pillow checks only the first page's size; a later page could ask for any amount.
    data = set_tiff_tag(tiff_pages(3), 1, TIFF_WIDTH, 2000)
    data = set_tiff_tag(data, 1, TIFF_LENGTH, 1000)
    facts = inspect(data, verify="full", max_pixels=1_000_000)
    assert_bomb(facts)
    assert facts.error is not None
    assert "TIFF page 2 of 3: 2000x1000 = 2,000,000 pixels" in facts.error
    assert "1,000,000" in facts.error


def test_one_crafted_image_does_not_fail_its_group() -> None:
    good = encode(noise(20, 10), "PNG")
    crafted = [gif_cut_between_frames(), set_tiff_tag(tiff_pages(2), 1, TIFF_COMPRESSION, 9)]
    rows = describe_many([good, *crafted, None, good], "full", LIMIT)
    assert [row and row["status"] for row in rows] == ["ok", "corrupt", "corrupt", None, "ok"]


def test_a_failure_of_our_own_code_is_raised_not_called_a_corrupt_file(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The same KeyError that Pillow raises on a bad TIFF is a bug when a line of ours raises
    # it: it must fail the batch, not hide in an item's error.
    def broken_hash(image: Image.Image) -> str:
        raise KeyError("phash")

    monkeypatch.setattr(inspect_module, "perceptual_hash", broken_hash)
    with pytest.raises(KeyError, match="phash"):
        inspect(encode(noise(20, 10), "PNG"), verify="full")


def test_a_cielab_tiff_is_an_image_with_a_hash_not_a_corrupt_file() -> None:
    picture = scene(3)
    facts = inspect(encode(picture.convert("LAB"), "TIFF"))
    assert (facts.status, facts.mode, facts.error) == ("ok", "LAB", None)
    same, other = inspect(encode(picture, "TIFF")), inspect(encode(scene(4), "TIFF"))
    assert phash_distance(facts, same) < phash_distance(facts, other)


def exif_orientation_entry(kind: int, count: int, value: bytes) -> bytes:
    """EXIF holding one orientation entry of any TIFF type, as Pillow will not write it."""
    entry = struct.pack("<HHI", 0x0112, kind, count) + value.ljust(4, b"\x00")
    return b"Exif\x00\x00II*\x00" + struct.pack("<IH", 8, 1) + entry + b"\x00" * 4


@pytest.mark.parametrize("verify", ["full", "header"])
@pytest.mark.parametrize(
    "exif",
    [exif_orientation_entry(2, 2, b"6"), exif_orientation_entry(3, 1, struct.pack("<H", 9))],
    ids=["text", "out of range"],
)
def test_a_malformed_orientation_is_ignored_as_pillow_ignores_it(
    exif: bytes, verify: VerifyLevel
) -> None:
    picture = noise(40, 30)
    facts = inspect(encode(picture, "JPEG", exif=exif), verify=verify)
    # Pillow's exif_transpose does not turn such an image, so its size is as stored.
    assert (facts.status, facts.orientation, facts.width, facts.height) == ("ok", 1, 40, 30)
    assert facts.phash == inspect(encode(picture, "JPEG"), verify=verify).phash
