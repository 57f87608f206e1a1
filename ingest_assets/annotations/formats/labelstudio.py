"""Label Studio's JSON export: a list of tasks, each an image (``data.image``) with its
``annotations`` and ``predictions``, whose ``result`` entries are the regions and choices.

Read: ``rectanglelabels`` (a box), ``polygonlabels`` (a polygon and its extent as the box), both
in percent of the image and so given here as fractions (``units="fraction"``), and ``choices``
(a class of the whole image). A region with several labels gives a record per label. Results
that carry no region or class (``textarea``, ``rating``, ``number``, ``relation`` ...) are not
labels and are left out, counted in ``Parsed.extra["ignored_results"]``; region types that are
not read (``brushlabels``, ``keypointlabels``, ...) and rotated boxes are errors, since dropping
them would lose labels. Cancelled annotations (``was_cancelled``) are skipped.

Items: ``data.image`` is turned into a key by its path. ``s3://bucket/a/b.jpg`` and
``gs://bucket/a/b.jpg`` give ``a/b.jpg``; an ``http(s)`` URL gives its path (decoded, without
the query); Label Studio's local-storage URLs (``/data/local-files/?d=a/b.jpg``) give the
``d`` parameter; uploads (``/data/upload/3/1a2b3c4d-b.jpg``) give the file name without the
8-character prefix Label Studio adds (``b.jpg``); anything else is taken as a key. Each task is
also a ``FileImage`` (its task id, that key, and the ``original_width``/``original_height`` the
results give), and records name it by both.

A prediction's records take each result's ``score``, else the prediction's; a prediction with
neither is an error, since without a score it would read as ground truth.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from ingest_assets.annotations.records import (
    Category,
    FileImage,
    ItemRef,
    Kind,
    LabelFileError,
    Parsed,
    Record,
)

__all__ = ["export_labelstudio", "image_key", "parse_labelstudio"]

RECTANGLE, POLYGON, CHOICES = "rectanglelabels", "polygonlabels", "choices"
READ_TYPES = (CHOICES, POLYGON, RECTANGLE)
#: Region types with no ``labels`` suffix; reading past them would lose regions.
UNREAD_REGIONS = frozenset(
    {"rectangle", "polygon", "ellipse", "keypoint", "brush", "polyline", "taxonomy"}
)
BUCKET_SCHEMES = ("s3", "gs", "gcs", "azure-blob")
#: How far outside 0..100 a percentage may fall before it is an error.
TOLERANCE = 0.1
#: Label Studio names an uploaded file ``<8 hex characters>-<original name>``.
UPLOAD_PREFIX = re.compile(r"^[0-9a-f]{8}-")
#: The control names written on export, as in Label Studio's templates.
FROM_NAMES = {RECTANGLE: "label", POLYGON: "polygon", CHOICES: "choice"}


#: A task's annotations and predictions on export, by (item key, is a prediction, id or model).
_Groups = dict[tuple[str, bool, Any], dict[str, Any]]


@dataclass
class _Task:
    """What the records of one task share."""

    index: int
    task_id: int | None
    key: str
    ignored: Counter[str]
    #: The image's size, as its first result with ``original_width`` gives it.
    size: tuple[int, int] | None = None

    @property
    def where(self) -> str:
        named = f" (id {self.task_id})" if self.task_id is not None else ""
        return f"tasks[{self.index}]{named}"


# -- parsing --------------------------------------------------------------------------------


def parse_labelstudio(data: bytes, *, file: str, image_field: str = "image") -> Parsed:
    """The records of a Label Studio JSON export; ``file`` names it in messages and
    ``image_field`` is the task data field that holds the image (``$image`` in the labeling
    config). The whole file is checked before this returns."""
    tasks = _tasks(data, file)
    records: list[Record] = []
    images: list[FileImage] = []
    ignored: Counter[str] = Counter()
    for index, entry in enumerate(tasks):
        task = _task(entry, index, file, image_field, ignored)
        records.extend(_task_records(entry, task, file))
        images.append(_image(task, entry))
    return Parsed(records=iter(records), images=images, extra={"ignored_results": dict(ignored)})


def image_key(url: str) -> str:
    """The item key a task's image URL or path names (see the module's notes)."""
    scheme, _, rest = url.partition("://")
    if rest and scheme in BUCKET_SCHEMES:
        return rest.partition("/")[2]  # bucket URIs are not percent-encoded
    if not (rest and scheme in ("http", "https")) and not url.startswith("/data/"):
        return url
    parts = urlsplit(url)
    path = unquote(parts.path)
    local_file = parse_qs(parts.query).get("d")
    if path.startswith("/data/local-files") and local_file:
        return local_file[0].lstrip("/")
    if path.startswith("/data/upload/"):
        return UPLOAD_PREFIX.sub("", PurePosixPath(path).name)
    return path.lstrip("/")


def _tasks(data: bytes, file: str) -> list[Any]:
    try:
        tasks = json.loads(data)
    except UnicodeDecodeError as exc:
        raise LabelFileError(file, "", f"is not UTF-8 text ({exc.reason})") from exc
    except json.JSONDecodeError as exc:
        raise LabelFileError(
            file, f"line {exc.lineno}", f"is not valid JSON ({exc.msg}, column {exc.colno})"
        ) from exc
    if not isinstance(tasks, list):
        raise LabelFileError(
            file, "", "is not a Label Studio JSON export: expected a list of tasks at the top"
        )
    return tasks


def _task(entry: Any, index: int, file: str, image_field: str, ignored: Counter[str]) -> _Task:
    task_id = entry.get("id") if isinstance(entry, dict) else None
    task = _Task(index, task_id if isinstance(task_id, int) else None, key="", ignored=ignored)
    data = entry.get("data") if isinstance(entry, dict) else None
    if not isinstance(data, dict):
        raise LabelFileError(file, task.where, "has no 'data' object naming its image")
    url = data.get(image_field)
    if not isinstance(url, str) or not url:
        fields = ", ".join(sorted(data)) or "none"
        raise LabelFileError(
            file,
            task.where,
            f"data has no {image_field!r} field (its fields: {fields}); the image's URL or "
            f"path must be in data.{image_field}, or named with image_field",
        )
    task.key = image_key(url)
    return task


def _image(task: _Task, entry: dict[str, Any]) -> FileImage:
    width, height = task.size or (None, None)
    return FileImage(
        image_id=task.task_id,
        file_name=task.key,
        width=width,
        height=height,
        extra={"data": entry["data"]},
    )


def _task_records(entry: dict[str, Any], task: _Task, file: str) -> list[Record]:
    records: list[Record] = []
    for source in ("annotations", "predictions"):
        groups = entry.get(source, [])
        if not isinstance(groups, list):
            raise LabelFileError(file, f"{task.where} {source}", "must be a list")
        for number, group in enumerate(groups):
            where = f"{task.where} {source}[{number}]"
            if not isinstance(group, dict):
                raise LabelFileError(file, where, "must be an object with a 'result' list")
            if group.get("was_cancelled"):
                continue
            records.extend(_group_records(group, source == "predictions", where, task, file))
    return records


def _group_records(
    group: dict[str, Any], is_prediction: bool, where: str, task: _Task, file: str
) -> list[Record]:
    results = group.get("result", [])
    if not isinstance(results, list):
        raise LabelFileError(file, f"{where}.result", "must be a list")
    attributes = _group_attributes(group, is_prediction)
    records: list[Record] = []
    for number, result in enumerate(results):
        at = f"{where}.result[{number}]"
        if not isinstance(result, dict):
            raise LabelFileError(file, at, "must be an object")
        score = _score(result, group, at, file) if is_prediction else None
        records.extend(_result_records(result, at, file, task, score, attributes))
    return records


def _group_attributes(group: dict[str, Any], is_prediction: bool) -> dict[str, Any]:
    """What tells a task's annotations (their ids) or predictions (their models) apart."""
    if is_prediction:
        model_version = group.get("model_version")
        return {"model_version": model_version} if model_version is not None else {}
    annotation_id = group.get("id")
    return {"annotation_id": annotation_id} if annotation_id is not None else {}


def _score(result: dict[str, Any], group: dict[str, Any], at: str, file: str) -> float:
    for owner, value in (
        ("score", result.get("score")),
        ("the prediction's score", group.get("score")),
    ):
        if value is not None:
            number = _number(value, at, file, owner)
            if not 0 <= number <= 1:
                raise LabelFileError(file, at, f"{owner} {number:g} is outside [0, 1]")
            return number
    raise LabelFileError(
        file, at, "a prediction needs a score (the result's or the prediction's); none is given"
    )


def _result_records(
    result: dict[str, Any],
    at: str,
    file: str,
    task: _Task,
    score: float | None,
    attributes: dict[str, Any],
) -> list[Record]:
    kind = result.get("type")
    if isinstance(kind, str) and _carries_no_label(kind):
        task.ignored[kind] += 1
        return []
    if kind not in READ_TYPES:
        raise LabelFileError(
            file,
            at,
            f"type {kind!r} is not supported; supported region and class types are "
            f"{', '.join(READ_TYPES)}",
        )
    value = result.get("value")
    if not isinstance(value, dict):
        raise LabelFileError(file, at, "has no 'value' object")
    _note_size(result, task, at, file)
    labels = _labels(value, kind, at, file)
    if kind == CHOICES:
        return [_record(task, at, label, score, attributes, kind="class") for label in labels]
    _check_rotation(result, value, at, file)
    bbox, polygon = _rectangle(value, at, file) if kind == RECTANGLE else _polygon(value, at, file)
    return [
        _record(task, at, label, score, attributes, bbox=bbox, polygon=polygon) for label in labels
    ]


def _carries_no_label(kind: str) -> bool:
    """Whether a result type is neither a region nor a class (a comment, a rating ...)."""
    return kind not in READ_TYPES and not kind.endswith("labels") and kind not in UNREAD_REGIONS


def _record(
    task: _Task,
    at: str,
    label: str,
    score: float | None,
    attributes: dict[str, Any],
    *,
    kind: Kind = "object",
    bbox: list[float] | None = None,
    polygon: list[float] | None = None,
) -> Record:
    return Record(
        item=ItemRef(key=task.key, image_id=task.task_id),
        where=at,
        kind=kind,
        label=label,
        bbox=bbox,
        units="fraction",
        segmentation=[polygon] if polygon is not None else None,
        score=score,
        attributes=dict(attributes),
    )


def _labels(value: dict[str, Any], kind: str, at: str, file: str) -> list[str]:
    labels = value.get(kind)
    if not isinstance(labels, list) or not labels:
        raise LabelFileError(file, at, f"value.{kind} must be a non-empty list of labels")
    for label in labels:
        if not isinstance(label, str) or not label:
            raise LabelFileError(file, at, f"value.{kind}: {label!r} is not a label name")
    return labels


def _note_size(result: dict[str, Any], task: _Task, at: str, file: str) -> None:
    width, height = result.get("original_width"), result.get("original_height")
    if width is None or height is None:
        return
    for name, size in (("original_width", width), ("original_height", height)):
        if isinstance(size, bool) or not isinstance(size, int) or size <= 0:
            raise LabelFileError(file, at, f"{name} {size!r} is not a positive whole number")
    task.size = task.size or (width, height)


def _check_rotation(result: dict[str, Any], value: dict[str, Any], at: str, file: str) -> None:
    for name, angle in (
        ("value.rotation", value.get("rotation")),
        ("image_rotation", result.get("image_rotation")),
    ):
        if angle is not None and _number(angle, at, file, name) % 360 != 0:
            raise LabelFileError(
                file,
                at,
                f"{name} is {angle}: a rotated region has no upright box; draw it unrotated "
                "or as a polygon",
            )


def _rectangle(value: dict[str, Any], at: str, file: str) -> tuple[list[float], None]:
    x, y, w, h = (
        _fraction(value.get(name), f"value.{name}", at, file)
        for name in ("x", "y", "width", "height")
    )
    for name, size in (("width", w), ("height", h)):
        if size < 0:
            raise LabelFileError(file, at, f"value.{name} {size * 100:g} is negative")
    return [x, y, w, h], None


def _polygon(value: dict[str, Any], at: str, file: str) -> tuple[list[float], list[float]]:
    points = value.get("points")
    if not isinstance(points, list) or len(points) < 3:
        count = len(points) if isinstance(points, list) else 0
        raise LabelFileError(
            file, at, f"value.points has {count} points; a polygon needs 3 or more"
        )
    polygon: list[float] = []
    for number, point in enumerate(points):
        if not isinstance(point, list) or len(point) != 2:
            raise LabelFileError(file, at, f"value.points[{number}] is not an [x, y] pair")
        for axis, coordinate in zip("xy", point, strict=True):
            polygon.append(_fraction(coordinate, f"value.points[{number}] {axis}", at, file))
    xs, ys = polygon[0::2], polygon[1::2]
    return [min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)], polygon


def _fraction(percent: Any, name: str, at: str, file: str) -> float:
    number = _number(percent, at, file, name)
    if not -TOLERANCE <= number <= 100 + TOLERANCE:
        raise LabelFileError(
            file, at, f"{name} {number:g} is outside 0..100 (percent of the image)"
        )
    return number / 100


def _number(value: Any, at: str, file: str, name: str) -> float:
    if value is None:
        raise LabelFileError(file, at, f"{name} is missing")
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise LabelFileError(file, at, f"{name} {value!r} is not a number")
    return float(value)


# -- export ---------------------------------------------------------------------------------


def export_labelstudio(
    items: list[tuple[str, int, int]],
    categories: list[Category],
    records: Iterable[Record],
) -> bytes:
    """A Label Studio JSON export of ``items`` (key, width, height), a task each with the key
    as ``data.image``. Records without a score become annotations (grouped by their
    ``annotation_id`` attribute), scored ones predictions (grouped by ``model_version``).
    Boxes become ``rectanglelabels``, polygons ``polygonlabels`` (one per polygon), class
    records ``choices``; labels come from the record, else its category."""
    names = {category.id: category.name for category in categories}
    tasks = {
        key: {"id": number, "data": {"image": key}, "annotations": [], "predictions": []}
        for number, (key, _, _) in enumerate(items, start=1)
    }
    sizes = {key: (width, height) for key, width, height in items}
    groups: _Groups = {}
    for record in records:
        key = _export_key(record, sizes)
        group = _export_group(record, key, tasks[key], groups)
        for result in _results(record, _export_label(record, names), sizes[key]):
            group["result"].append({"id": f"r{len(group['result']) + 1}", **result})
    return json.dumps(list(tasks.values()), indent=2).encode()


def _export_key(record: Record, sizes: Mapping[str, tuple[int, int]]) -> str:
    key = record.item.key
    if key is None or key not in sizes:
        raise ValueError(
            f"{record.where}: {record.item.describe()} is not among the items to export; "
            "give each record the key of one of the items"
        )
    return key


def _export_label(record: Record, names: Mapping[int, str]) -> str:
    label = record.label
    if label is None and record.category_id is not None:
        label = names.get(record.category_id)
    if label is None:
        raise ValueError(f"{record.where}: the record has no label and no known category")
    return label


def _export_group(
    record: Record, key: str, task: dict[str, Any], groups: _Groups
) -> dict[str, Any]:
    """The annotation or prediction of ``task`` the record belongs to, made on first use."""
    is_prediction = record.score is not None
    tag = record.attributes.get("model_version" if is_prediction else "annotation_id")
    found = groups.get((key, is_prediction, tag))
    if found is None:
        found = {"result": []}
        if not is_prediction:
            found["id"] = tag if tag is not None else len(groups) + 1
        elif tag is not None:
            found["model_version"] = tag
        task["predictions" if is_prediction else "annotations"].append(found)
        groups[key, is_prediction, tag] = found
    return found


def _results(record: Record, label: str, size: tuple[int, int]) -> list[dict[str, Any]]:
    width, height = size
    scale = (100.0, 100.0) if record.units == "fraction" else (100 / width, 100 / height)
    if record.kind == "class":
        return [_result(CHOICES, {CHOICES: [label]}, record, size)]
    if isinstance(record.segmentation, list) and record.segmentation:
        return [
            _result(POLYGON, {"points": _points(polygon, scale), POLYGON: [label]}, record, size)
            for polygon in record.segmentation
        ]
    if record.bbox is None:
        raise ValueError(f"{record.where}: the record has neither a box nor a polygon")
    x, y, w, h = record.bbox
    value = {
        "x": _rounded(x * scale[0]),
        "y": _rounded(y * scale[1]),
        "width": _rounded(w * scale[0]),
        "height": _rounded(h * scale[1]),
        "rotation": 0,
        RECTANGLE: [label],
    }
    return [_result(RECTANGLE, value, record, size)]


def _points(polygon: list[float], scale: tuple[float, float]) -> list[list[float]]:
    return [
        [_rounded(polygon[i] * scale[0]), _rounded(polygon[i + 1] * scale[1])]
        for i in range(0, len(polygon), 2)
    ]


def _rounded(percent: float) -> float:
    """A percentage without float noise (``7.0``, not ``7.000000000000001``)."""
    return round(percent, 10) + 0.0


def _result(
    kind: str, value: dict[str, Any], record: Record, size: tuple[int, int]
) -> dict[str, Any]:
    result: dict[str, Any] = {
        "type": kind,
        "from_name": FROM_NAMES[kind],
        "to_name": "image",
        "original_width": size[0],
        "original_height": size[1],
        "value": value,
    }
    if record.score is not None:
        result["score"] = record.score
    return result
