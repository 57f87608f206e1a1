"""A short seeded pass of the media fuzzer (``bench/_media_fuzz.py``): mutated JPEG, PNG, GIF,
TIFF, WebP and BMP files through ``describe_bytes`` at both levels that parse the file, with
Pillow set up as in an item worker. A bad file is a result, never an exception: nothing may
escape. The long pass is ``bench/fuzz_media.py`` (bench/README.md)."""

from __future__ import annotations

import collections

import pytest

from bench._media_fuzz import (
    LEVELS,
    as_in_a_worker,
    check_input,
    fuzz_input,
    seed_corpus,
)

#: A seed whose 2,000 inputs include files of both kinds that used to fail a batch (a TIFF
#: page with an unknown compression: KeyError; a GIF cut between frames: struct.error).
SEED = 6
INPUTS = 2000
#: Low, so that a mutated size field costs at most a few megabytes of decoding here; the
#: long pass runs with Pillow's default limit.
MAX_PIXELS = 1_000_000


@pytest.fixture(scope="module")
def corpus() -> dict[str, bytes]:
    return seed_corpus()


def test_every_file_of_the_seed_corpus_is_a_good_image(corpus: dict[str, bytes]) -> None:
    # Mutations must start from files that inspection accepts, or they test nothing.
    formats = {name.split("-")[0] for name in corpus}
    assert formats == {"jpeg", "png", "gif", "tiff", "webp", "bmp"}
    with as_in_a_worker(MAX_PIXELS):
        for name, data in corpus.items():
            checked = check_input(data, MAX_PIXELS)
            assert checked.statuses == dict.fromkeys(LEVELS, "ok"), (name, checked.errors)


def test_no_exception_escapes_the_inspection_of_mutated_files(corpus: dict[str, bytes]) -> None:
    escapes, statuses = [], collections.Counter[tuple[str, str]]()
    with as_in_a_worker(MAX_PIXELS):
        for index in range(INPUTS):
            item = fuzz_input(SEED, index, corpus)
            checked = check_input(item.data, MAX_PIXELS)
            escapes += [(index, item.base, e.verify, e.error) for e in checked.escapes]
            statuses.update((item.base.split("-")[0], s) for s in checked.statuses.values())
    assert escapes == []
    # The pass reaches past the headers of every format: some inputs of each still read,
    # some of each are caught as corrupt.
    for fmt in ("jpeg", "png", "gif", "tiff", "webp", "bmp"):
        assert statuses[fmt, "ok"] > 0 and statuses[fmt, "corrupt"] > 0, (fmt, statuses)


def test_an_input_is_the_same_for_the_same_seed_and_index(corpus: dict[str, bytes]) -> None:
    assert fuzz_input(SEED, 7, corpus) == fuzz_input(SEED, 7, corpus)
    assert fuzz_input(SEED, 7, corpus).data != fuzz_input(SEED + 1, 7, corpus).data
