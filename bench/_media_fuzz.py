"""Mutation fuzzing of image files, shared by ``bench/fuzz_media.py`` (the long pass) and
``tests/ingest_assets/items/test_fuzz_media.py`` (a short seeded pass).

A corpus of small valid files of every format a bucket is likely to hold (JPEG, PNG and APNG,
GIF still and animated, multi-page TIFF in several compressions, WebP still and animated, BMP)
is made with Pillow; each fuzz input is one of them with one to four mutations stacked: bit
flips, byte overwrites, insertions and deletions, truncation, a range spliced in from another
file or repeated from the same one, and header fields (sizes, counts, offsets, tags: found by
walking each format's structure) overwritten with the values that break parsers (0, 0xff,
0x7fffffff, ...). PNG chunks get their CRCs recomputed most of the time, so that mutations
reach past Pillow's checksum check. Input ``i`` of seed ``s`` is the same on every run.
"""

from __future__ import annotations

import io
import random
import struct
import time
import traceback
import warnings
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from ingest_assets.items.inspect import configure_pillow, describe_bytes
from resources.config import VerifyLevel

#: Both levels that parse the file (``none`` never looks at the bytes).
LEVELS: tuple[VerifyLevel, ...] = ("full", "header")

#: Values that sit on the edges parsers get wrong, as unsigned integers of 1, 2 or 4 bytes.
INTERESTING = (
    0, 1, 2, 0x7F, 0x80, 0xFF, 0x100, 0x7FFF, 0x8000, 0xFFFF, 0x10000,
    0x7FFFFFFF, 0x80000000, 0xFFFFFFFE, 0xFFFFFFFF,
)  # fmt: skip


# -- the corpus -------------------------------------------------------------------------------


def _picture(width: int, height: int, seed: int, mode: str = "RGB") -> Image.Image:
    """Smooth colour blobs with a little noise: compresses like a photo, not like noise."""
    rng = np.random.default_rng(seed)
    blobs = rng.integers(0, 256, size=(4, 4, 3), dtype=np.uint8)
    image = Image.fromarray(blobs, "RGB").resize((width, height), Image.Resampling.BICUBIC)
    grain = rng.integers(-12, 13, size=(height, width, 3))
    pixels = np.clip(np.asarray(image, dtype=np.int16) + grain, 0, 255).astype(np.uint8)
    return Image.fromarray(pixels, "RGB").convert(mode)


def _save(images: Image.Image | list[Image.Image], fmt: str, **params: object) -> bytes:
    frames = images if isinstance(images, list) else [images]
    buffer = io.BytesIO()
    if len(frames) > 1:
        params = {**params, "save_all": True, "append_images": frames[1:]}
    frames[0].save(buffer, fmt, **params)
    return buffer.getvalue()


def _exif(orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return exif.tobytes()


def _frames(count: int, mode: str, size: tuple[int, int] = (40, 28)) -> list[Image.Image]:
    return [_picture(*size, seed=seed, mode=mode) for seed in range(count)]


def seed_corpus() -> dict[str, bytes]:
    """The valid files every input starts from, by name (``format-variant``)."""
    rgb = _picture(48, 32, seed=1)
    return {
        "jpeg-baseline": _save(rgb, "JPEG", quality=85),
        "jpeg-progressive": _save(rgb, "JPEG", quality=75, progressive=True),
        "jpeg-grey-rotated": _save(rgb.convert("L"), "JPEG", exif=_exif(6)),
        "jpeg-cmyk": _save(rgb.convert("CMYK"), "JPEG"),
        "png-rgb": _save(rgb, "PNG"),
        "png-rgba-interlaced": _save(rgb.convert("RGBA"), "PNG", interlace=1),
        "png-palette": _save(rgb.convert("P"), "PNG"),
        "png-grey16-rotated": _save(rgb.convert("I;16"), "PNG", exif=_exif(8)),
        "png-animated": _save(_frames(3, "RGBA"), "PNG", duration=80),
        "gif-still": _save(rgb.convert("P"), "GIF"),
        "gif-animated": _save(_frames(4, "P"), "GIF", duration=100, loop=0, disposal=2),
        "tiff-raw-pages": _save([rgb, rgb.convert("L"), _picture(20, 30, 2)], "TIFF"),
        "tiff-lzw-pages": _save(_frames(3, "RGB"), "TIFF", compression="tiff_lzw"),
        "tiff-deflate-pages": _save(_frames(2, "RGBA"), "TIFF", compression="tiff_adobe_deflate"),
        "tiff-packbits": _save(rgb.convert("L"), "TIFF", compression="packbits"),
        "tiff-jpeg": _save(rgb, "TIFF", compression="jpeg"),
        "tiff-group4": _save(rgb.convert("1"), "TIFF", compression="group4"),
        "webp-lossy": _save(rgb, "WEBP", quality=80),
        "webp-lossless": _save(rgb.convert("RGBA"), "WEBP", lossless=True),
        "webp-animated": _save(_frames(3, "RGB"), "WEBP", duration=90),
        "bmp-rgb": _save(rgb, "BMP"),
        "bmp-palette": _save(rgb.convert("P"), "BMP"),
        "bmp-1bit": _save(rgb.convert("1"), "BMP"),
    }


# -- where the header fields are --------------------------------------------------------------


def _png_fields(data: bytes) -> list[int]:
    offsets, at = [], 8
    while at + 8 <= len(data):
        (length,) = struct.unpack_from(">I", data, at)
        offsets += [at, at + 4, *range(at + 8, at + 8 + min(length, 26))]
        at += 12 + length
    return offsets


def _tiff_fields(data: bytes) -> list[int]:
    order = "<" if data[:2] == b"II" else ">"
    offsets, seen = [4], set()
    (ifd,) = struct.unpack_from(order + "I", data, 4)
    while ifd > 0 and ifd + 2 <= len(data) and ifd not in seen:
        seen.add(ifd)
        (count,) = struct.unpack_from(order + "H", data, ifd)
        entries = [ifd + 2 + 12 * i for i in range(count) if ifd + 14 + 12 * i <= len(data)]
        offsets += [ifd] + [e + part for e in entries for part in (0, 2, 4, 8)]
        end = ifd + 2 + 12 * count
        if end + 4 > len(data):
            break
        offsets.append(end)
        (ifd,) = struct.unpack_from(order + "I", data, end)
    return offsets


def _jpeg_fields(data: bytes) -> list[int]:
    offsets, at = [], 2
    while at + 4 <= len(data) and data[at] == 0xFF:
        (length,) = struct.unpack_from(">H", data, at + 2)
        offsets += [at + 1, *range(at + 2, at + 2 + min(length, 12))]
        if data[at + 1] == 0xDA:  # start of scan: entropy-coded data follows
            break
        at += 2 + length
    return offsets


def _riff_fields(data: bytes) -> list[int]:
    offsets, at = [4], 12
    while at + 8 <= len(data):
        (length,) = struct.unpack_from("<I", data, at + 4)
        offsets += [at, at + 4, *range(at + 8, at + 8 + min(length, 24))]
        at += 8 + length + (length & 1)
    return offsets


def _gif_skip_blocks(data: bytes, at: int) -> int:
    """Past a run of data sub-blocks (each a length byte and that many bytes, then 0)."""
    while at < len(data) and data[at]:
        at += 1 + data[at]
    return at + 1


def _gif_fields(data: bytes) -> list[int]:
    """The screen descriptor, and each extension's and frame's header: the frame's
    descriptor (position, size, flags) and its LZW code size."""
    offsets = list(range(6, 13))
    at = 13 + (3 << ((data[10] & 7) + 1) if data[10] & 0x80 else 0)
    while at < len(data) and data[at] != 0x3B:
        if data[at] == 0x21:  # extension: label, then sub-blocks
            offsets += range(at, min(at + 8, len(data)))
            at = _gif_skip_blocks(data, at + 2)
        elif data[at] == 0x2C and at + 10 <= len(data):  # a frame
            flags = data[at + 9]
            pixels = at + 10 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0)
            offsets += [*range(at, at + 10), pixels, pixels + 1]
            at = _gif_skip_blocks(data, pixels + 1)
        else:
            break
    return offsets


def field_offsets(data: bytes) -> list[int]:
    """Offsets of header fields (sizes, counts, offsets, tags), found by walking the file's
    structure; the first 64 bytes when the format is not recognised."""
    walkers: list[tuple[bytes, Callable[[bytes], list[int]]]] = [
        (b"\x89PNG", _png_fields),
        (b"II*\x00", _tiff_fields),
        (b"MM\x00*", _tiff_fields),
        (b"\xff\xd8", _jpeg_fields),
        (b"RIFF", _riff_fields),
        (b"GIF8", _gif_fields),
    ]
    for magic, walk in walkers:
        if data.startswith(magic):
            try:
                offsets = [o for o in walk(data) if o < len(data)]
            except (struct.error, IndexError):  # a field cut short by an earlier mutation
                offsets = []
            if offsets:
                return offsets
    return list(range(min(64, len(data))))


# -- mutators ---------------------------------------------------------------------------------

Mutator = Callable[[random.Random, bytes, list[bytes]], bytes]


def flip_bits(rng: random.Random, data: bytes, others: list[bytes]) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        at = rng.randrange(len(out))
        out[at] ^= 1 << rng.randrange(8)
    return bytes(out)


def overwrite_bytes(rng: random.Random, data: bytes, others: list[bytes]) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        out[rng.randrange(len(out))] = rng.choice((0, 0xFF, 0x7F, 0x80, rng.randrange(256)))
    return bytes(out)


def insert_bytes(rng: random.Random, data: bytes, others: list[bytes]) -> bytes:
    at, count = rng.randrange(len(data) + 1), rng.choice((1, 2, 4, 16, 64, 500))
    filler = bytes([rng.randrange(256)]) * count if rng.random() < 0.5 else rng.randbytes(count)
    return data[:at] + filler + data[at:]


def delete_bytes(rng: random.Random, data: bytes, others: list[bytes]) -> bytes:
    at = rng.randrange(len(data))
    return data[:at] + data[at + rng.choice((1, 2, 4, 16, 64, 500)) :]


def truncate(rng: random.Random, data: bytes, others: list[bytes]) -> bytes:
    """The file cut short: anywhere, in its first 256 bytes, or just past a header field
    (between two frames, inside a frame's or a page's header)."""
    where = rng.random()
    if where < 0.4:
        end = rng.choice(field_offsets(data)) + rng.randrange(4)
    elif where < 0.6:
        end = rng.randrange(min(256, len(data)))
    else:
        end = rng.randrange(len(data))
    return data[:end]


def splice(rng: random.Random, data: bytes, others: list[bytes]) -> bytes:
    """A range of another file of the corpus, written over or inserted into this one."""
    donor = rng.choice(others)
    start = rng.randrange(len(donor))
    piece = donor[start : start + rng.randint(1, 256)]
    at = rng.randrange(len(data) + 1)
    end = at + len(piece) if rng.random() < 0.5 else at
    return data[:at] + piece + data[end:]


def repeat_range(rng: random.Random, data: bytes, others: list[bytes]) -> bytes:
    """A range of the file repeated in place: a chunk, a frame or an IFD seen twice."""
    start = rng.randrange(len(data))
    piece = data[start : start + rng.randint(1, 512)]
    return data[: start + len(piece)] + piece * rng.randint(1, 3) + data[start + len(piece) :]


def overwrite_field(rng: random.Random, data: bytes, others: list[bytes]) -> bytes:
    """A header field (as :func:`field_offsets` finds them) set to an interesting value."""
    at = rng.choice(field_offsets(data))
    width = rng.choice((1, 2, 4))
    value = rng.choice(INTERESTING) & ((1 << (8 * width)) - 1)
    if rng.random() < 0.25:
        value = rng.randrange(1 << (8 * width))
    field_bytes = value.to_bytes(width, "little" if rng.random() < 0.5 else "big")
    return data[:at] + field_bytes + data[at + width :]


MUTATORS: dict[str, Mutator] = {
    "flip_bits": flip_bits,
    "overwrite_bytes": overwrite_bytes,
    "insert_bytes": insert_bytes,
    "delete_bytes": delete_bytes,
    "truncate": truncate,
    "splice": splice,
    "repeat_range": repeat_range,
    "overwrite_field": overwrite_field,
}


def fix_png_crcs(data: bytes) -> bytes:
    """The PNG with every whole chunk's CRC recomputed (what a careful forger does)."""
    out, at = bytearray(data), 8
    while at + 12 <= len(out):
        (length,) = struct.unpack_from(">I", out, at)
        end = at + 8 + length
        if end + 4 > len(out):
            break
        struct.pack_into(">I", out, end, zlib.crc32(out[at + 4 : end]))
        at = end + 4
    return bytes(out)


# -- inputs and checks ------------------------------------------------------------------------


@dataclass(frozen=True)
class FuzzInput:
    index: int
    base: str  # the corpus file it started from
    mutations: tuple[str, ...]
    data: bytes


def fuzz_input(seed: int, index: int, corpus: dict[str, bytes]) -> FuzzInput:
    """Input ``index`` of ``seed``: a corpus file with one to four mutations."""
    rng = random.Random(f"{seed}/{index}")
    base = rng.choice(sorted(corpus))
    others = [corpus[name] for name in sorted(corpus) if name != base]
    data, applied = corpus[base], []
    for _ in range(rng.choice((1, 1, 2, 3, 4))):
        if not data:
            break
        name = rng.choice(sorted(MUTATORS))
        data = MUTATORS[name](rng, data, others)
        applied.append(name)
    if data.startswith(b"\x89PNG") and rng.random() < 0.7:
        data = fix_png_crcs(data)
    return FuzzInput(index, base, tuple(applied), data)


def fuzz_inputs(seed: int, corpus: dict[str, bytes], start: int = 0) -> Iterator[FuzzInput]:
    index = start
    while True:
        yield fuzz_input(seed, index, corpus)
        index += 1


@dataclass
class Escape:
    """An exception that came out of inspection: a finding."""

    verify: VerifyLevel
    error: str  # type and message
    traceback: str


@dataclass
class Checked:
    statuses: dict[str, str] = field(default_factory=dict)  # verify level -> status
    errors: dict[str, str] = field(default_factory=dict)  # verify level -> a corrupt's reason
    cpu_seconds: dict[str, float] = field(default_factory=dict)  # this thread's CPU
    wall_seconds: dict[str, float] = field(default_factory=dict)
    escapes: list[Escape] = field(default_factory=list)


def check_input(data: bytes, max_pixels: int) -> Checked:
    """``data`` through the inspection entry point at both levels that parse the file;
    anything raised is an :class:`Escape`, not an error of this function."""
    checked = Checked()
    for verify in LEVELS:
        wall, cpu = time.perf_counter(), time.thread_time()
        try:
            row = describe_bytes(data, verify=verify, max_pixels=max_pixels)
            checked.statuses[verify] = str(row["status"])
            if row["error"] is not None:
                checked.errors[verify] = str(row["error"])
        except Exception as exc:  # the harness's purpose: whatever escapes is a finding
            error = f"{type(exc).__module__}.{type(exc).__qualname__}: {exc}"
            checked.escapes.append(Escape(verify, error, traceback.format_exc()))
        checked.cpu_seconds[verify] = time.thread_time() - cpu
        checked.wall_seconds[verify] = time.perf_counter() - wall
    return checked


@contextmanager
def as_in_a_worker(max_pixels: int) -> Iterator[None]:
    """Pillow set up as an item worker has it: ``configure_pillow`` with the limit, and its
    other warnings left as warnings (here silenced, as they would only be printed), so that
    inspection takes the paths it takes in production, also under pytest's ``-W error``."""
    saved = Image.MAX_IMAGE_PIXELS
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        configure_pillow(max_pixels)
        try:
            yield
        finally:
            Image.MAX_IMAGE_PIXELS = saved
