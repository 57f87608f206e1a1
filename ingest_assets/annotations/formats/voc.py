"""Pascal VOC annotation files: one XML ``<annotation>`` per image, boxes as pixel corners.

Coordinates are kept as the file gives them: a box ``<xmin>..<xmax>`` becomes
``[xmin, ymin, xmax - xmin, ymax - ymin]``, without the ±1 some tools apply for VOC's 1-based,
inclusive pixels, so that a file read and written back is the same file. The image is named by
``<filename>`` (or, without one, the last part of ``<path>``, which is usually a path on the
annotator's machine); the record's ``item.key`` is that name.

Read per object: ``<name>``, ``<bndbox>``, ``<pose>``, ``<truncated>``, ``<difficult>``,
``<occluded>`` (into ``attributes``) and a ``<score>`` for predictions. Other elements (parts,
``<source>``) are not read. The XML is parsed without entity expansion or external references.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterable
from pathlib import PurePosixPath
from typing import Any

import defusedxml
import defusedxml.ElementTree as SafeET

from ingest_assets.annotations.records import (
    FileImage,
    ItemRef,
    LabelFileError,
    Parsed,
    Record,
    finite_number,
    number_text,
)

__all__ = ["export_voc", "parse_voc"]

CORNERS = ("xmin", "ymin", "xmax", "ymax")
#: Object elements kept as record attributes: text ones, then 0/1 flags.
TEXT_ATTRIBUTES = ("pose",)
FLAG_ATTRIBUTES = ("truncated", "difficult", "occluded")
#: Image elements kept in ``FileImage.extra`` for round trips.
IMAGE_EXTRA = ("folder", "path", "segmented")


# -- parsing --------------------------------------------------------------------------------


def parse_voc(data: bytes, *, file: str) -> Parsed:
    """The image and records of one VOC XML file; ``file`` names it in messages. Boxes are
    pixels as given. The whole file is checked before this returns."""
    root, lines = _parse_xml(data, file)
    if root.tag != "annotation":
        raise LabelFileError(
            file, f"line {lines[root]}", f"the root element is <{root.tag}>, not <annotation>"
        )
    image = _image(root, file)
    records = [
        _record(element, f"object {number} (line {lines[element]})", file, image)
        for number, element in enumerate(root.findall("object"), start=1)
    ]
    return Parsed(records=iter(records), images=[image])


class _LineTreeBuilder(ET.TreeBuilder):
    """A tree builder that notes the line each element starts on, for messages."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: dict[ET.Element, int] = {}
        self.parser: Any = None

    def start(self, tag: str, attrs: dict[str, str]) -> ET.Element:
        element = super().start(tag, attrs)
        # The defused parser runs on expat, which knows the line of the tag being read.
        self.lines[element] = self.parser.parser.CurrentLineNumber
        return element


def _parse_xml(data: bytes, file: str) -> tuple[ET.Element, dict[ET.Element, int]]:
    builder = _LineTreeBuilder()
    parser = SafeET.XMLParser(target=builder)
    builder.parser = parser
    try:
        parser.feed(data)
        root: ET.Element = parser.close()
    except ET.ParseError as exc:
        line, column = exc.position
        reason = str(exc).rsplit(": line", 1)[0]
        raise LabelFileError(
            file, f"line {line}", f"is not well-formed XML: {reason} (column {column})"
        ) from exc
    except defusedxml.DefusedXmlException as exc:
        raise LabelFileError(
            file, "", f"declares entities or external references, which are not read ({exc})"
        ) from exc
    return root, builder.lines


def _image(root: ET.Element, file: str) -> FileImage:
    file_name = _text(root, "filename")
    if file_name is None:
        path = _text(root, "path")
        if path is None:
            raise LabelFileError(file, "<annotation>", "has neither <filename> nor <path>")
        file_name = PurePosixPath(path.replace("\\", "/")).name
    width, height = _size(root.find("size"), file)
    extra: dict[str, Any] = {name: _text(root, name) for name in IMAGE_EXTRA}
    depth = _text(root, "size/depth")
    if depth is not None:
        extra["depth"] = _integer(depth, file, "<size>", "depth")
    return FileImage(
        image_id=None,
        file_name=file_name,
        width=width,
        height=height,
        extra={name: value for name, value in extra.items() if value is not None},
    )


def _size(size: ET.Element | None, file: str) -> tuple[int | None, int | None]:
    """Width and height; ``None`` where ``<size>`` is missing or says 0 (some tools write 0
    for a size they did not read)."""
    if size is None:
        return None, None
    dimensions = []
    for name in ("width", "height"):
        text = _text(size, name)
        if text is None:
            raise LabelFileError(file, "<size>", f"has no <{name}>")
        value = _integer(text, file, "<size>", name)
        if value < 0:
            raise LabelFileError(file, "<size>", f"<{name}> is negative ({value})")
        dimensions.append(value or None)
    return dimensions[0], dimensions[1]


def _record(element: ET.Element, where: str, file: str, image: FileImage) -> Record:
    label = _text(element, "name")
    if label is None:
        raise LabelFileError(file, where, "has no <name> (or it is empty): name the object's class")
    return Record(
        item=ItemRef(key=image.file_name),
        where=where,
        label=label,
        bbox=_bbox(element.find("bndbox"), where, file),
        score=_score(element, where, file),
        attributes=_attributes(element, where, file),
    )


def _bbox(bndbox: ET.Element | None, where: str, file: str) -> list[float]:
    if bndbox is None:
        raise LabelFileError(file, where, "has no <bndbox>")
    corners = {}
    for name in CORNERS:
        text = _text(bndbox, name)
        if text is None:
            raise LabelFileError(file, where, f"<bndbox> has no <{name}>")
        corners[name] = finite_number(text, file, where, f"<bndbox><{name}>")
    for low, high in (("xmin", "xmax"), ("ymin", "ymax")):
        if corners[high] < corners[low]:
            raise LabelFileError(
                file,
                where,
                f"<bndbox><{high}> {corners[high]:g} is less than <{low}> {corners[low]:g}",
            )
    xmin, ymin, xmax, ymax = (corners[name] for name in CORNERS)
    return [xmin, ymin, xmax - xmin, ymax - ymin]


def _score(element: ET.Element, where: str, file: str) -> float | None:
    text = _text(element, "score")
    if text is None:
        return None
    score = finite_number(text, file, where, "<score>")
    if not 0 <= score <= 1:
        raise LabelFileError(file, where, f"<score> {score:g} is outside [0, 1]")
    return score


def _attributes(element: ET.Element, where: str, file: str) -> dict[str, Any]:
    attributes: dict[str, Any] = {}
    for name in TEXT_ATTRIBUTES:
        text = _text(element, name)
        if text is not None:
            attributes[name] = text
    for name in FLAG_ATTRIBUTES:
        text = _text(element, name)
        if text is None:
            continue
        if text not in ("0", "1"):
            raise LabelFileError(file, where, f"<{name}> must be 0 or 1, not {text!r}")
        attributes[name] = int(text)
    return attributes


def _text(element: ET.Element, path: str) -> str | None:
    """The stripped text of a child element; ``None`` when it is missing or empty."""
    child = element.find(path)
    text = (child.text or "").strip() if child is not None else ""
    return text or None


def _integer(text: str, file: str, where: str, field: str) -> int:
    value = finite_number(text, file, where, f"<{field}>")
    if not value.is_integer():
        raise LabelFileError(file, where, f"<{field}> {text!r} is not a whole number")
    return int(value)


# -- export ---------------------------------------------------------------------------------


def export_voc(image: FileImage, records: Iterable[Record]) -> bytes:
    """The VOC XML of one image and its object records (UTF-8). Boxes in fractions are turned
    into pixels with the image's size; the records' ``pose``, ``truncated``, ``difficult`` and
    ``occluded`` attributes and their scores are written back."""
    root = ET.Element("annotation")
    _add(root, "folder", image.extra.get("folder"))
    _add(root, "filename", image.file_name)
    _add(root, "path", image.extra.get("path"))
    if image.width is not None and image.height is not None:
        size = ET.SubElement(root, "size")
        _add(size, "width", image.width)
        _add(size, "height", image.height)
        _add(size, "depth", image.extra.get("depth"))
    _add(root, "segmented", image.extra.get("segmented"))
    for record in records:
        root.append(_object(record, image))
    ET.indent(root)
    return ET.tostring(root, encoding="unicode").encode() + b"\n"


def _object(record: Record, image: FileImage) -> ET.Element:
    if record.kind != "object" or record.bbox is None:
        raise ValueError(f"{record.where}: VOC objects need a box; this record has none")
    if record.label is None:
        raise ValueError(f"{record.where}: VOC objects are named by class; the record has no label")
    element = ET.Element("object")
    _add(element, "name", record.label)
    for name in (*TEXT_ATTRIBUTES, *FLAG_ATTRIBUTES):
        _add(element, name, record.attributes.get(name))
    _add(element, "score", record.score)
    bndbox = ET.SubElement(element, "bndbox")
    for name, value in zip(CORNERS, _corners(record, image), strict=True):
        _add(bndbox, name, value)
    return element


def _corners(record: Record, image: FileImage) -> list[float]:
    assert record.bbox is not None
    x, y, w, h = record.bbox
    if record.units == "fraction":
        if image.width is None or image.height is None:
            raise ValueError(
                f"{record.where}: the box is in fractions of the image, and {image.file_name!r} "
                "has no size to turn them into pixels"
            )
        x, w = x * image.width, w * image.width
        y, h = y * image.height, h * image.height
    return [x, y, x + w, y + h]


def _add(parent: ET.Element, name: str, value: Any) -> None:
    if value is not None:
        ET.SubElement(parent, name).text = (
            number_text(value) if isinstance(value, float) else str(value)
        )
