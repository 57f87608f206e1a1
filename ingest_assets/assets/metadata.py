"""Metadata that assets report for a person to read in the UI."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from dagster import MetadataValue


def markdown_table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> MetadataValue:
    def cell(value: Any) -> str:
        text = "" if value is None else str(value)
        return text.replace("|", "\\|").replace("\n", " ")[:80]

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(r.get(c)) for c in columns) + " |" for r in rows]
    return MetadataValue.md("\n".join(lines))
