"""The checks on a COCO entry's fields, shared by instances and results files. Each returns
the value as given, or raises LabelFileError naming the file, the entry and the field."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, NoReturn

from ingest_assets.annotations.records import Category, FileImage, LabelFileError

_NUMBER_TYPES = frozenset({int, float})


class Entry:
    """One entry of a COCO file being checked: where it is, for the messages."""

    def __init__(self, file: str, where: str, value: Any, what: str = "entry") -> None:
        self.file, self.where = file, where
        if not isinstance(value, dict):
            self.fail(f"is {shown(value)}; each {what} must be a JSON object")
        self.value: dict[str, Any] = value

    def fail(self, problem: str) -> NoReturn:
        raise LabelFileError(self.file, self.where, problem)

    def integer(self, name: str, *, required: bool = True) -> int | None:
        value = self.value.get(name)
        if value is None and not required:
            return None
        if type(value) is not int:
            self.fail(f"{name} is {shown(value)}; it must be an integer")
        return int(value)

    def required_integer(self, name: str) -> int:
        value = self.integer(name)
        assert value is not None  # integer() raises for a missing required field
        return value

    def number(self, name: str) -> float | None:
        value = self.value.get(name)
        if value is not None and type(value) not in _NUMBER_TYPES:
            self.fail(f"{name} is {shown(value)}; it must be a number")
        return value

    def text(self, name: str, *, required: bool = True) -> str | None:
        value = self.value.get(name)
        if value is None and not required:
            return None
        if not isinstance(value, str):
            self.fail(f"{name} is {shown(value)}; it must be a string")
        return value


def shown(value: Any) -> str:
    """A value as a message shows it: short, and "missing" for an absent field."""
    if value is None:
        return "missing"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def all_numbers(values: Any) -> bool:
    # map(type) and set() run in C: a polygon holds hundreds of numbers, a file millions.
    return isinstance(values, list) and not set(map(type, values)) - _NUMBER_TYPES


def some_ids(ids: Iterable[int]) -> str:
    ordered = sorted(ids)
    shown = ", ".join(map(str, ordered[:8]))
    return f"{shown}, ... ({len(ordered)} in all)" if len(ordered) > 8 else shown or "none"


def known_image(entry: Entry, images: Mapping[int, FileImage] | None) -> FileImage | None:
    image_id = entry.required_integer("image_id")
    if images is None:
        return None
    image = images.get(image_id)
    if image is None:
        entry.fail(f"image_id {image_id} is not one of the images ({some_ids(images)})")
    return image


def known_category(entry: Entry, categories: Mapping[int, Category] | None) -> Category | None:
    category_id = entry.required_integer("category_id")
    if categories is None:
        return None
    category = categories.get(category_id)
    if category is None:
        entry.fail(
            f"category_id {category_id} is not one of the categories ({some_ids(categories)})"
        )
    return category


def bbox(entry: Entry) -> list[float] | None:
    value = entry.value.get("bbox")
    if value is None:
        return None
    if not all_numbers(value) or len(value) != 4:
        entry.fail(f"bbox is {shown(value)}; a COCO box is 4 numbers [x, y, width, height]")
    for axis, size in (("width", value[2]), ("height", value[3])):
        if size < 0:
            entry.fail(f"bbox {value} has a negative {axis} ({size}); width and height are >= 0")
    return list(value)


def segmentation(entry: Entry, image: FileImage | None) -> Any:
    """Polygons ``[[x1, y1, ...], ...]`` or an RLE ``{"size": [h, w], "counts": ...}``."""
    value = entry.value.get("segmentation")
    if value is None:
        return None
    if isinstance(value, dict):
        _check_rle(entry, value, image)
    elif isinstance(value, list):
        for n, polygon in enumerate(value):
            _check_polygon(entry, f"segmentation[{n}]", polygon)
    else:
        entry.fail(
            f"segmentation is {shown(value)}; it must be a list of polygons or an RLE object "
            '{"size": [height, width], "counts": ...}'
        )
    return value


def _check_polygon(entry: Entry, name: str, polygon: Any) -> None:
    if not all_numbers(polygon):
        entry.fail(f"{name} is {shown(polygon)}; a polygon is a list of numbers x1, y1, x2, ...")
    if len(polygon) < 6:
        entry.fail(
            f"{name} has {len(polygon) // 2} points ({len(polygon)} numbers); a polygon needs "
            "at least 3 points (6 numbers)"
        )
    if len(polygon) % 2:
        entry.fail(f"{name} has an odd count of numbers ({len(polygon)}); it lists x, y pairs")


def _check_rle(entry: Entry, rle: dict[str, Any], image: FileImage | None) -> None:
    size, counts = rle.get("size"), rle.get("counts")
    if not (isinstance(size, list) and len(size) == 2 and all(type(v) is int for v in size)):
        entry.fail(f"segmentation size is {shown(size)}; an RLE's size is [height, width]")
    height, width = size
    if image is not None and _size_differs(image, height, width):
        entry.fail(
            f"segmentation size [{height}, {width}] differs from image {image.image_id}'s "
            f"[height, width] [{image.height}, {image.width}]; the mask must cover its image"
        )
    if isinstance(counts, str):
        return
    if not (isinstance(counts, list) and not set(map(type, counts)) - {int}):
        entry.fail(
            f"segmentation counts is {shown(counts)}; an RLE's counts is a string (compressed) "
            "or a list of run lengths"
        )
    if sum(counts) != height * width:
        entry.fail(
            f"segmentation counts add up to {sum(counts)} pixels, not the {height}x{width} = "
            f"{height * width} of its size"
        )


def _size_differs(image: FileImage, height: int, width: int) -> bool:
    """Whether the image's size (where its table gives one) is not ``height`` x ``width``."""
    if image.height is None or image.width is None:
        return False
    return (image.height, image.width) != (height, width)


def keypoints(entry: Entry, category: Category | None) -> list[float] | None:
    value = entry.value.get("keypoints")
    if value is None:
        return None
    if not all_numbers(value) or len(value) % 3:
        entry.fail(f"keypoints is {shown(value)}; keypoints are x, y, visibility triples")
    if category is not None and category.keypoints:
        expected = 3 * len(category.keypoints)
        if len(value) != expected:
            entry.fail(
                f"keypoints has {len(value)} numbers; category {category.name!r} names "
                f"{len(category.keypoints)} keypoints, so {expected} are expected"
            )
    return list(value)


def iscrowd(entry: Entry) -> int:
    value = entry.value.get("iscrowd", 0)
    if value not in (0, 1) or type(value) is not int:
        entry.fail(f"iscrowd is {shown(value)}; it must be 0 or 1")
    return int(value)


def score(entry: Entry) -> Any:
    value: Any = entry.value.get("score")
    if type(value) not in _NUMBER_TYPES:
        entry.fail(f"score is {shown(value)}; a result's score is a number from 0 to 1")
    if not 0 <= value <= 1:
        entry.fail(f"score {value} is outside [0, 1]; scores are confidences from 0 to 1")
    return value
