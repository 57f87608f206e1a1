"""Parsing a manifest, pure: bytes in, entries out (:mod:`resources.stores.manifest` serves the
entries as a read-only object store).

A manifest lists ``image_location`` (required: ``https://``, ``http://``, ``s3://``, ``gs://``,
``file://`` or a local path, relative paths against a local manifest's folder), ``reference_id``
(optional; default: the location's path after the host or bucket) and ``metadata`` (optional JSON
object), as Scale Nucleus ingests dataset items. Formats, by the manifest's extension:

* ``.jsonl`` / ``.ndjson`` / ``.json``: one JSON object per line (a ``.json`` file that holds one
  JSON array of objects is read too);
* ``.csv``: a header row, then one entry per row; ``metadata`` is a column of JSON text.

Sizes come from an optional ``size`` field, else 0.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Literal
from urllib.parse import quote, unquote, urlparse

from resources.errors import InvalidKey, StoreError
from resources.stores.base import check_key

ManifestFormat = Literal["jsonl", "csv"]
FORMATS_BY_EXTENSION: dict[str, ManifestFormat] = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
    ".csv": "csv",
}
LOCATION_SCHEMES = ("https", "http", "s3", "gs", "file")


class InvalidManifest(StoreError):
    """The manifest cannot be read as entries; the message names the file, record and field."""


@dataclass(frozen=True)
class ManifestEntry:
    """One image the manifest lists. ``location`` is a URI (a local path is made ``file://``)."""

    reference_id: str
    location: str
    #: Canonical JSON text of the entry's metadata, or None when it has none.
    metadata: str | None
    size: int
    #: Where the entry is in the manifest, for messages (``line 3``, ``row 2 (line 3)``).
    where: str

    @property
    def change_token(self) -> str:
        identity = json.dumps([self.location, self.metadata], separators=(",", ":"))
        return hashlib.sha256(identity.encode("utf-8")).hexdigest()[:16]


def manifest_format(manifest: str) -> ManifestFormat:
    """The format the manifest's extension names, or InvalidManifest listing the supported ones."""
    path = urlparse(manifest).path if "://" in manifest else manifest
    suffix = PurePosixPath(path).suffix.lower()
    if suffix not in FORMATS_BY_EXTENSION:
        raise InvalidManifest(
            f"manifest {manifest}: unsupported extension {suffix or '(none)'!r}; supported "
            f"extensions are: {', '.join(FORMATS_BY_EXTENSION)}",
            store=f"manifest {manifest}",
        )
    return FORMATS_BY_EXTENSION[suffix]


def parse_manifest(data: bytes, manifest: str, *, base: Path | None = None) -> list[ManifestEntry]:
    """The manifest's entries in file order, one per ``reference_id``. ``base`` is the folder
    relative local paths are resolved against (None: relative paths are refused)."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise _invalid(manifest, f"byte {exc.start}", None, "not UTF-8 text") from exc
    if manifest_format(manifest) == "csv":
        records = _csv_records(text, manifest)
    elif text.lstrip().startswith("["):
        records = _json_array_records(text, manifest)
    else:
        records = _jsonl_records(text, manifest)
    entries: dict[str, ManifestEntry] = {}
    for where, record in records:
        entry = _entry(record, where, manifest, base)
        earlier = entries.get(entry.reference_id)
        if earlier is None:
            entries[entry.reference_id] = entry
        elif (earlier.location, earlier.metadata) != (entry.location, entry.metadata):
            raise _invalid(
                manifest,
                where,
                "reference_id",
                f"{entry.reference_id!r} is already used by {earlier.where} with a different "
                f"image_location or metadata ({earlier.location} vs {entry.location}); "
                "reference ids must be unique",
            )
    return list(entries.values())


def _jsonl_records(text: str, manifest: str) -> Iterator[tuple[str, dict[str, Any]]]:
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"line {number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise _invalid(manifest, where, None, f"not valid JSON: {exc}") from exc
        if not isinstance(record, dict):
            raise _invalid(manifest, where, None, "not a JSON object")
        yield where, record


def _json_array_records(text: str, manifest: str) -> Iterator[tuple[str, dict[str, Any]]]:
    try:
        records = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _invalid(manifest, f"line {exc.lineno}", None, f"not valid JSON: {exc}") from exc
    if not isinstance(records, list):
        raise _invalid(manifest, "line 1", None, "neither JSON lines nor a JSON array")
    for number, record in enumerate(records, start=1):
        if not isinstance(record, dict):
            raise _invalid(manifest, f"record {number}", None, "not a JSON object")
        yield f"record {number}", record


def _csv_records(text: str, manifest: str) -> Iterator[tuple[str, dict[str, Any]]]:
    reader = csv.DictReader(io.StringIO(text, newline=""))
    columns = reader.fieldnames or []
    if "image_location" not in columns:
        raise _invalid(
            manifest,
            "line 1 (header)",
            "image_location",
            f"the header has no image_location column (columns: {', '.join(columns) or 'none'})",
        )
    for number, row in enumerate(reader, start=1):
        where = f"row {number} (line {reader.line_num})"
        if None in row:
            raise _invalid(manifest, where, None, "more values than the header has columns")
        record: dict[str, Any] = {k: v for k, v in row.items() if v not in (None, "")}
        if "metadata" in record:
            try:
                record["metadata"] = json.loads(record["metadata"])
            except json.JSONDecodeError as exc:
                raise _invalid(manifest, where, "metadata", f"not valid JSON: {exc}") from exc
        if "size" in record:
            text_size = str(record["size"]).strip()
            record["size"] = int(text_size) if text_size.isdigit() else text_size
        yield where, record


def _entry(record: dict[str, Any], where: str, manifest: str, base: Path | None) -> ManifestEntry:
    location = record.get("image_location")
    if location is None or location == "":
        raise _invalid(
            manifest, where, "image_location", "missing; every entry needs the URI of its image"
        )
    if not isinstance(location, str):
        raise _invalid(manifest, where, "image_location", f"must be a string, not {location!r}")
    location, default_id = _normalise_location(location.strip(), where, manifest, base)

    reference_id = record.get("reference_id")
    if reference_id is None or reference_id == "":
        reference_id = default_id
    elif not isinstance(reference_id, str):
        raise _invalid(manifest, where, "reference_id", f"must be a string, not {reference_id!r}")
    try:
        check_key(reference_id, store=f"manifest {manifest}")
    except InvalidKey as exc:
        raise _invalid(manifest, where, "reference_id", f"not a usable key: {exc}") from exc

    metadata = record.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        raise _invalid(manifest, where, "metadata", f"must be a JSON object, not {metadata!r}")
    size = record.get("size", 0)
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise _invalid(manifest, where, "size", f"must be a whole number of bytes, not {size!r}")
    return ManifestEntry(
        reference_id=reference_id,
        location=location,
        metadata=_canonical_json(metadata) if metadata is not None else None,
        size=size,
        where=where,
    )


def _normalise_location(
    location: str, where: str, manifest: str, base: Path | None
) -> tuple[str, str]:
    """``(fetchable URI, default reference id)`` for a location as written."""
    if "://" not in location:  # a local path
        local = PurePosixPath(location)
        if not local.is_absolute():
            if base is None:
                raise _invalid(
                    manifest,
                    where,
                    "image_location",
                    f"{location!r} is a relative path, which only a manifest on the local disk "
                    "can use; write a full URI",
                )
            return "file://" + quote(str(base / local)), str(local)
        return "file://" + quote(str(local)), str(local).lstrip("/")
    parsed = urlparse(location)
    if parsed.scheme not in LOCATION_SCHEMES:
        raise _invalid(
            manifest,
            where,
            "image_location",
            f"unsupported scheme {parsed.scheme!r} in {location!r}; supported schemes are: "
            f"{', '.join(LOCATION_SCHEMES)} (or a local path)",
        )
    if parsed.scheme == "file" and parsed.netloc not in ("", "localhost"):
        raise _invalid(
            manifest, where, "image_location", f"{location!r} names a remote host in a file:// URI"
        )
    if parsed.scheme != "file" and not parsed.netloc:
        raise _invalid(manifest, where, "image_location", f"{location!r} names no host or bucket")
    path = unquote(parsed.path) if parsed.scheme in ("file", "http", "https") else parsed.path
    return location, path.lstrip("/")


def _canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _invalid(manifest: str, where: str, field: str | None, problem: str) -> InvalidManifest:
    subject = f"field {field!r}: " if field else ""
    return InvalidManifest(
        f"manifest {manifest}, {where}: {subject}{problem}", store=f"manifest {manifest}"
    )
