"""``bucketlake export --format F OUT``: the current items and their imported annotations
written into the folder OUT, in the layout the format's importer reads back:

- ``coco``: ``OUT/annotations.json``
- ``yolo``: ``OUT/classes.txt`` and a label file per item, at its key with ``.txt`` for the
  extension and its last ``images`` folder named ``labels`` (``images/a/b.jpg`` ->
  ``labels/a/b.txt``); import it again with ``bucketlake import OUT/classes.txt``
- ``voc``: ``OUT/Annotations/<key less its extension>.xml``, one per item
- ``csv``: ``OUT/labels.csv``
- ``labelstudio``: ``OUT/tasks.json``

OUT must be missing or an empty folder: files of an earlier export left beside the new ones
would be read back as part of it. Everything is made before anything is written, so an export
that fails writes nothing."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path, PurePosixPath

from ingest_assets.annotations.exporting import Export, ExportError, ExportFormat, export_lake
from resources.lake.tables import Lake


def run_export(
    lake: Lake,
    fmt: ExportFormat,
    out: Path,
    *,
    splits: Sequence[str] = (),
    sources: Sequence[str] = (),
) -> Export:
    """Export into ``out`` (created); raises ExportError naming what stopped it."""
    _check_out(out)
    export = export_lake(lake, fmt, splits=splits, sources=sources)
    targets = {path: _inside(out, path) for path in export.files}
    for path, data in export.files.items():
        targets[path].parent.mkdir(parents=True, exist_ok=True)
        targets[path].write_bytes(data)
    return export


def summary(export: Export, out: Path) -> str:
    """One line: what was written where, and what the format could not hold."""
    line = (
        f"exported {export.items} items, {export.annotations} annotations as {export.format} "
        f"to {out}"
    )
    if export.left_out:
        line += "; left out: " + ", ".join(f"{n} {what}" for what, n in export.left_out.items())
    return line


def _check_out(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise ExportError(f"{out} is a file; name a folder to export into")
    if out.is_dir() and any(out.iterdir()):
        raise ExportError(
            f"{out} is not empty; export into a new or empty folder (files of an earlier "
            "export left beside the new ones would be read back with them)"
        )


def _inside(out: Path, relative: str) -> Path:
    """``out / relative``, refusing a path (from an item's key) that would leave ``out``."""
    path = PurePosixPath(relative)
    if path.is_absolute() or ".." in path.parts:
        raise ExportError(f"the export file {relative!r} would be outside {out}; rename its item")
    return out.joinpath(*path.parts)
