"""YOLO (Ultralytics) label files: one ``.txt`` per image, one object a line, coordinates as
fractions of the image; the class names come from ``classes.txt`` or ``data.yaml``.

A line is one of::

    class cx cy w h              a box, by its centre
    class cx cy w h conf         a scored box (a prediction)
    class x1 y1 x2 y2 x3 y3 ...  a polygon of at least 3 points
    class x1 y1 ... xn yn conf   a scored polygon (an odd count of numbers after the class)

Each number as written must lie in [0, 1] (as Ultralytics checks); a box may still reach a
little past an edge (``cx + w/2 > 1``), as detectors' boxes do, which is left to the import's
policy for such boxes. Pose labels (a box followed by keypoints) would read as polygons and are
not supported.

Matching images: a label file names its image by path, not by file name. ``labels/train/foo.txt``
labels the image ``images/train/foo.<any extension>``: the last ``labels`` folder of the path
stands for ``images`` (the Ultralytics layout), and a label file outside any ``labels`` folder
labels the image beside it. A record's ``item.key`` and ``attributes["key_stem"]`` are that path
without an extension; it matches the item whose key, less its extension, is the same
(``image_key_stem`` computes that for an item key).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from pathlib import PurePosixPath
from typing import Any

import yaml

from ingest_assets.annotations.records import (
    Category,
    ItemRef,
    LabelFileError,
    Parsed,
    Record,
    finite_number,
    number_text,
)

__all__ = ["export_yolo", "image_key_stem", "label_key_stem", "parse_yolo", "read_classes"]

#: How far outside [0, 1] a written number may fall: files rounded to 6 decimals overshoot an edge
#: by millionths, while a file written in pixels misses by whole numbers.
TOLERANCE = 1e-3

#: The file that lists class names, one a line, in index order.
CLASSES_FILE = "classes.txt"

BOX_FIELDS = ("cx", "cy", "w", "h")


# -- class lists ----------------------------------------------------------------------------


def read_classes(data: bytes, name: str) -> list[str]:
    """The class names, in index order, of ``classes.txt`` (one a line) or of a ``data.yaml``
    (``names:`` as a list, or as a mapping from index to name). ``name`` is the file's name,
    for messages and to tell the two apart."""
    text = _text(data, name, where="")
    names = _yaml_names(text, name) if name.endswith((".yaml", ".yml")) else _text_names(text, name)
    _check_unique(names, name)
    return names


def _text_names(text: str, name: str) -> list[str]:
    lines = [line.strip() for line in text.splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    for number, line in enumerate(lines, start=1):
        if not line:
            raise LabelFileError(
                name,
                f"line {number}",
                "is empty: each line names one class, in index order; remove the empty line",
            )
    return lines


def _yaml_names(text: str, name: str) -> list[str]:
    try:
        config = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else ""
        raise LabelFileError(name, where, f"is not valid YAML ({exc})") from exc
    if not isinstance(config, dict) or "names" not in config:
        raise LabelFileError(name, "", "has no 'names:' entry listing the class names")
    names = config["names"]
    if isinstance(names, list):
        listed = [_class_name(value, name, f"names[{index}]") for index, value in enumerate(names)]
    elif isinstance(names, dict):
        listed = _names_by_index(names, name)
    else:
        raise LabelFileError(name, "names", "must be a list of names or a mapping index: name")
    count = config.get("nc")
    if count is not None and count != len(listed):
        raise LabelFileError(name, "nc", f"is {count!r} but 'names' lists {len(listed)} classes")
    return listed


def _names_by_index(names: dict[Any, Any], name: str) -> list[str]:
    if not all(isinstance(index, int) for index in names):
        raise LabelFileError(name, "names", "a mapping must have integer keys (index: name)")
    missing = sorted(set(range(len(names))) - set(names))
    if missing:
        raise LabelFileError(
            name,
            "names",
            f"must number the classes 0 to {len(names) - 1}; index {missing[0]} is missing",
        )
    return [_class_name(names[index], name, f"names[{index}]") for index in range(len(names))]


def _class_name(value: Any, name: str, where: str) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int | float) or str(value) == "":
        raise LabelFileError(name, where, f"must be a non-empty class name, not {value!r}")
    return str(value)


def _check_unique(names: list[str], name: str) -> None:
    first_index: dict[str, int] = {}
    for index, class_name in enumerate(names):
        if class_name in first_index:
            raise LabelFileError(
                name,
                "",
                f"class {class_name!r} appears twice (indices {first_index[class_name]} and "
                f"{index}); each class needs its own name",
            )
        first_index[class_name] = index


# -- parsing --------------------------------------------------------------------------------


def parse_yolo(label_files: Mapping[str, bytes], *, file: str, classes: list[str]) -> Parsed:
    """The records of a set of YOLO label files (path -> bytes), with ``classes`` (from
    ``read_classes``) naming the class indices; ``file`` names the set in messages. Boxes and
    polygons are fractions of the image (``units="fraction"``); a ``classes.txt`` among the
    files is the class list, not labels, and is skipped. Errors are raised while the records
    are read."""
    categories = [Category(id=index, name=name) for index, name in enumerate(classes)]
    return Parsed(records=_records(label_files, file, classes), categories=categories)


def label_key_stem(label_path: str) -> str:
    """The extension-less key of the image a label file labels: ``labels/a/foo.txt`` ->
    ``images/a/foo``; ``a/foo.txt`` -> ``a/foo``."""
    return _swap_folder(PurePosixPath(label_path).with_suffix(""), "labels", "images")


def image_key_stem(item_key: str) -> str:
    """An item key less its extension, to compare with a record's ``key_stem``."""
    return str(PurePosixPath(item_key).with_suffix(""))


def _records(label_files: Mapping[str, bytes], file: str, classes: list[str]) -> Iterator[Record]:
    for path in sorted(label_files):
        if PurePosixPath(path).name == CLASSES_FILE:
            continue
        key_stem = label_key_stem(path)
        text = _text(label_files[path], file, where=path)
        for number, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                yield _record(line, f"{path} line {number}", file, classes, key_stem)


def _record(line: str, where: str, file: str, classes: list[str], key_stem: str) -> Record:
    class_text, *number_texts = line.split()
    class_index = _class_index(class_text, where, file, classes)
    numbers = [
        finite_number(text, file, where, _field_name(index, len(number_texts)) + ":")
        for index, text in enumerate(number_texts)
    ]
    bbox, polygon, score = _shape(numbers, where, file)
    _check_score(score, where, file)
    return Record(
        item=ItemRef(key=key_stem),
        where=where,
        label=classes[class_index],
        category_id=class_index,
        bbox=bbox,
        units="fraction",
        segmentation=[polygon] if polygon is not None else None,
        score=score,
        attributes={"key_stem": key_stem},
    )


def _class_index(text: str, where: str, file: str, classes: list[str]) -> int:
    if not text.isdigit():
        raise LabelFileError(file, where, f"class: {text!r} is not a class index (0, 1, 2, ...)")
    index = int(text)
    if index >= len(classes):
        raise LabelFileError(
            file,
            where,
            f"class: index {index} is beyond the class list ({len(classes)} classes, "
            f"0 to {len(classes) - 1}); add the class to classes.txt or fix the index",
        )
    return index


def _field_name(index: int, count: int) -> str:
    if count in (4, 5):
        return (*BOX_FIELDS, "conf")[index]
    if count % 2 == 1 and index == count - 1:
        return "conf"
    return f"{'xy'[index % 2]}{index // 2 + 1}"


def _shape(
    numbers: list[float], where: str, file: str
) -> tuple[list[float], list[float] | None, float | None]:
    """``(bbox, polygon, score)`` of a line's numbers after the class."""
    if len(numbers) in (4, 5):
        cx, cy, w, h = numbers[:4]
        _check_box(cx, cy, w, h, where, file)
        return [cx - w / 2, cy - h / 2, w, h], None, numbers[4] if len(numbers) == 5 else None
    if len(numbers) < 6:
        raise LabelFileError(
            file,
            where,
            f"has {len(numbers)} numbers after the class; expected 4 (cx cy w h), 5 (a box and "
            "its confidence) or a polygon of at least 3 points (6 or more numbers)",
        )
    score = numbers[-1] if len(numbers) % 2 else None
    polygon = numbers[:-1] if score is not None else numbers
    for index, value in enumerate(polygon):
        _check_fraction(value, _field_name(index, len(polygon)), where, file)
    xs, ys = polygon[0::2], polygon[1::2]
    return [min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)], polygon, score


def _check_box(cx: float, cy: float, w: float, h: float, where: str, file: str) -> None:
    for field, size in (("w", w), ("h", h)):
        if size < 0:
            raise LabelFileError(file, where, f"{field}: {size} is negative; sizes are >= 0")
    for field, value in zip(BOX_FIELDS, (cx, cy, w, h), strict=True):
        _check_fraction(value, field, where, file)


def _check_fraction(value: float, field: str, where: str, file: str) -> None:
    if not -TOLERANCE <= value <= 1 + TOLERANCE:
        raise LabelFileError(
            file,
            where,
            f"{field}: {value:g} is outside [0, 1]; YOLO coordinates are fractions of the "
            "image (divide pixels by the image's width or height)",
        )


def _check_score(score: float | None, where: str, file: str) -> None:
    if score is not None and not 0 <= score <= 1:
        raise LabelFileError(file, where, f"conf: {score:g} is outside [0, 1]")


def _text(data: bytes, file: str, where: str) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise LabelFileError(file, where, f"is not UTF-8 text ({exc.reason})") from exc


# -- export ---------------------------------------------------------------------------------


def export_yolo(
    items: list[tuple[str, int, int]],
    categories: list[Category],
    records: Iterable[Record],
) -> dict[str, bytes]:
    """YOLO label files for ``items`` (key, width, height), each a path -> bytes, plus
    ``classes.txt`` naming ``categories`` in their order (a category's index is its class).
    Every item gets a file, empty when it has no objects. Pixel boxes become fractions of the
    item's size; a polygon segmentation is written instead of its box, one line per polygon
    (YOLO has one polygon a line); an RLE mask is written as its box."""
    sizes = _item_sizes(items)
    lines: dict[str, list[str]] = {stem: [] for stem in sizes}
    class_of = _ClassIndex(categories)
    for record in records:
        stem = _record_stem(record, sizes)
        lines[stem].extend(_lines(record, class_of, sizes[stem]))
    files = {
        _label_path(key): "".join(f"{line}\n" for line in lines[image_key_stem(key)]).encode()
        for key, _, _ in items
    }
    files[CLASSES_FILE] = "".join(f"{category.name}\n" for category in categories).encode()
    return files


class _ClassIndex:
    """The class index of a record: its category's place among the categories exported,
    found by the record's category id, else by its label."""

    def __init__(self, categories: list[Category]) -> None:
        self.by_id = {category.id: index for index, category in enumerate(categories)}
        self.by_name = {category.name: index for index, category in enumerate(categories)}

    def of(self, record: Record) -> int:
        if record.category_id is not None and record.category_id in self.by_id:
            return self.by_id[record.category_id]
        if record.label is not None and record.label in self.by_name:
            return self.by_name[record.label]
        raise ValueError(
            f"{record.where}: category {record.category_id!r} / label {record.label!r} is not "
            "among the categories to export"
        )


def _item_sizes(items: list[tuple[str, int, int]]) -> dict[str, tuple[int, int]]:
    sizes: dict[str, tuple[int, int]] = {}
    for key, width, height in items:
        stem = image_key_stem(key)
        if stem in sizes:
            raise ValueError(
                f"items {key!r} and another differ only in their extension; YOLO names an "
                f"image's labels by its path less the extension ({stem!r}), so one must go"
            )
        sizes[stem] = (width, height)
    return sizes


def _record_stem(record: Record, sizes: Mapping[str, tuple[int, int]]) -> str:
    """The item a record belongs to: its ``key_stem`` (a record read from YOLO), else its
    key less the extension."""
    key_stem = record.attributes.get("key_stem")
    if key_stem is None and record.item.key is not None:
        key_stem = image_key_stem(record.item.key)
    if key_stem not in sizes:
        raise ValueError(
            f"{record.where}: {record.item.describe()} is not among the items to export; "
            "give each record the key of one of the items"
        )
    return str(key_stem)


def _lines(record: Record, class_of: _ClassIndex, size: tuple[int, int]) -> list[str]:
    if record.kind != "object":
        raise ValueError(
            f"{record.where}: a {record.kind!r} record labels a whole image, which YOLO "
            "detection files cannot hold; export classification labels as CSV"
        )
    cls = class_of.of(record)
    scale = (1.0, 1.0) if record.units == "fraction" else (1 / size[0], 1 / size[1])
    conf = [] if record.score is None else [record.score]
    if isinstance(record.segmentation, list) and record.segmentation:
        return [
            _line(cls, [value * scale[index % 2] for index, value in enumerate(polygon)] + conf)
            for polygon in record.segmentation
        ]
    if record.bbox is None:
        raise ValueError(f"{record.where}: the record has neither a box nor a polygon")
    x, y, w, h = record.bbox
    sx, sy = scale
    return [_line(cls, [(x + w / 2) * sx, (y + h / 2) * sy, w * sx, h * sy, *conf])]


def _line(cls: int, numbers: list[float]) -> str:
    return " ".join([str(cls), *(number_text(value) for value in numbers)])


def _label_path(item_key: str) -> str:
    return _swap_folder(PurePosixPath(item_key).with_suffix(".txt"), "images", "labels")


def _swap_folder(path: PurePosixPath, old: str, new: str) -> str:
    """``path`` with its last folder named ``old`` renamed ``new`` (the file name is kept)."""
    parts = list(path.parts)
    for index in range(len(parts) - 2, -1, -1):
        if parts[index] == old:
            parts[index] = new
            break
    return str(PurePosixPath(*parts))
