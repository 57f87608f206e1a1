"""Metadata that assets report for a person to read in the UI: previews, the table's columns and
how long the work took."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import pyarrow as pa
from dagster import MetadataValue, TableColumn, TableSchema


def markdown_table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> MetadataValue:
    def cell(value: Any) -> str:
        text = "" if value is None else str(value)
        return text.replace("|", "\\|").replace("\n", " ")[:80]

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(r.get(c)) for c in columns) + " |" for r in rows]
    return MetadataValue.md("\n".join(lines))


def column_schema(schema: pa.Schema) -> TableSchema:
    """The lake table's columns, as ``dagster/column_schema`` shows them."""
    return TableSchema(columns=[TableColumn(f.name, str(f.type)) for f in schema])


class Timer:
    """Seconds since the asset started, and a rate over them, for the metadata."""

    def __init__(self) -> None:
        self._start = time.monotonic()

    def metadata(self, work: int = 0, unit: str = "rows") -> dict[str, Any]:
        seconds = time.monotonic() - self._start
        out: dict[str, Any] = {"seconds": round(seconds, 3)}
        if work:
            out[f"{unit}_per_second"] = round(work / seconds, 1) if seconds > 0 else None
        return out
