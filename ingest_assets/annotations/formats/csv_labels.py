"""Classification labels as CSV: a header, then one image label a row::

    key,label,score
    cars/0001.jpg,car,0.93

``key`` names the item by its key (``reference_id`` may stand in for it, or sit beside it);
``score`` is optional and makes the row a prediction. A row per label: an image with two labels
has two rows. Any other column is kept in the record's ``attributes`` (empty cells are left
out). Column names are matched without regard to case or surrounding spaces.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

from ingest_assets.annotations.records import ItemRef, LabelFileError, Parsed, Record

if TYPE_CHECKING:
    from _csv import Reader

__all__ = ["export_csv_labels", "parse_csv_labels"]

ITEM_COLUMNS = ("key", "reference_id")
LABEL_COLUMN = "label"
SCORE_COLUMN = "score"
EXPECTED_HEADER = "key,label[,score] (or reference_id in place of key)"


def parse_csv_labels(data: bytes, *, file: str) -> Parsed:
    """The class records of a labels CSV; ``file`` names it in messages, rows by line number.
    The header is checked before this returns, the rows while the records are read."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise LabelFileError(file, "", f"is not UTF-8 text ({exc.reason})") from exc
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    header = _header(reader, file)
    return Parsed(records=_records(reader, header, file))


def _header(reader: Reader, file: str) -> list[str]:
    row = _next_row(reader, file)
    if row is None:
        raise LabelFileError(
            file, "", f"is empty; the first line must be a header: {EXPECTED_HEADER}"
        )
    header = [name.strip().lower() for name in row]
    where = f"line {reader.line_num}"
    if not any(column in header for column in ITEM_COLUMNS) or LABEL_COLUMN not in header:
        raise LabelFileError(
            file,
            where,
            f"the header ({','.join(row)}) lacks a key or label column; the first line must "
            f"be a header: {EXPECTED_HEADER}",
        )
    for index, name in enumerate(header):
        if not name:
            raise LabelFileError(file, where, f"header column {index + 1} has no name")
        if header.index(name) != index:
            raise LabelFileError(file, where, f"the header names column {name!r} twice")
    return header


def _next_row(reader: Reader, file: str) -> list[str] | None:
    """The next row that is not blank; ``None`` at the end of the file."""
    try:
        for row in reader:
            if any(cell.strip() for cell in row):
                return list(row)
    except csv.Error as exc:
        raise LabelFileError(file, f"line {reader.line_num}", f"is not valid CSV ({exc})") from exc
    return None


def _records(reader: Reader, header: list[str], file: str) -> Iterator[Record]:
    while (row := _next_row(reader, file)) is not None:
        where = f"line {reader.line_num}"
        if len(row) != len(header):
            raise LabelFileError(
                file,
                where,
                f"has {len(row)} fields but the header has {len(header)} ({','.join(header)})",
            )
        yield _record(dict(zip(header, (cell.strip() for cell in row), strict=True)), where, file)


def _record(cells: dict[str, str], where: str, file: str) -> Record:
    key, reference_id = (cells.get(column) or None for column in ITEM_COLUMNS)
    if key is None and reference_id is None:
        columns = [column for column in ITEM_COLUMNS if column in cells]
        verb = "are" if len(columns) > 1 else "is"
        raise LabelFileError(file, where, f"{' and '.join(columns)} {verb} empty; name the image")
    label = cells[LABEL_COLUMN]
    if not label:
        raise LabelFileError(file, where, "label is empty; give the image's class")
    attributes = {
        name: value
        for name, value in cells.items()
        if name not in (*ITEM_COLUMNS, LABEL_COLUMN, SCORE_COLUMN) and value
    }
    return Record(
        item=ItemRef(key=key, reference_id=reference_id),
        where=where,
        kind="class",
        label=label,
        score=_score(cells.get(SCORE_COLUMN, ""), where, file),
        attributes=attributes,
    )


def _score(text: str, where: str, file: str) -> float | None:
    if not text:
        return None
    try:
        score = float(text)
    except ValueError:
        raise LabelFileError(file, where, f"score {text!r} is not a number") from None
    if not (math.isfinite(score) and 0 <= score <= 1):
        raise LabelFileError(file, where, f"score {text} is outside [0, 1]")
    return score


def export_csv_labels(records: Iterable[Record]) -> bytes:
    """A labels CSV of class records: ``key`` and/or ``reference_id``, ``label``, ``score``
    where any record has one, then the records' attributes as columns (sorted by name)."""
    rows = list(records)
    for record in rows:
        _check_exportable(record)
    item_columns = [
        name for name in ITEM_COLUMNS if any(getattr(r.item, name) is not None for r in rows)
    ]
    columns = [
        *(item_columns or ITEM_COLUMNS[:1]),
        LABEL_COLUMN,
        *([SCORE_COLUMN] if any(r.score is not None for r in rows) else []),
        *sorted({name for r in rows for name in r.attributes}),
    ]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    for record in rows:
        writer.writerow([_cell(record, name) for name in columns])
    return out.getvalue().encode()


def _check_exportable(record: Record) -> None:
    if record.kind != "class":
        raise ValueError(
            f"{record.where}: an {record.kind!r} record has a place in the image, which a "
            "labels CSV cannot hold; export objects as COCO, YOLO, VOC or Label Studio"
        )
    if record.label is None:
        raise ValueError(f"{record.where}: the record has no label to write")
    if record.item.key is None and record.item.reference_id is None:
        raise ValueError(
            f"{record.where}: the record names its item by neither key nor reference_id"
        )


def _cell(record: Record, column: str) -> str:
    if column in ITEM_COLUMNS:
        value = getattr(record.item, column)
    elif column == LABEL_COLUMN:
        value = record.label
    elif column == SCORE_COLUMN:
        value = record.score
    else:
        value = record.attributes.get(column)
    return "" if value is None else str(value)
