"""One import: what it reads (:class:`ImportSpec`, kept in the lake beside the tables), and its
records tied to items as table chunks, with a tally of what was matched, left unmatched,
found outside its image or rejected. Free of Dagster: the asset and the CLI drive it."""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import pyarrow as pa

from ingest_assets.annotations.matching import (
    Item,
    ItemIndex,
    Unmatched,
    clipped,
    in_pixels,
    outside,
    resolve,
)
from ingest_assets.annotations.records import FORMATS, Parsed
from ingest_assets.annotations.table import (
    ANNOTATIONS_SCHEMA,
    PREDICTIONS_SCHEMA,
    RowBuffer,
    row,
)
from resources.errors import ConfigError, LakeError, ObjectNotFound
from resources.stores.base import ObjectStore

IMPORTS = "_imports"
#: Bump when an import's rows would come out differently for the same file.
IMPORTS_CODE_VERSION = "imports-2"
BoxRule = Literal["keep", "clip", "reject"]
#: How many unmatched or rejected records an import's metadata names (all are counted).
EXAMPLES = 20


@dataclass(frozen=True)
class ImportSpec:
    """One label or prediction file to import: a partition of the ``imports`` set."""

    key: str
    uri: str  # the file (a local path, file://, s3:// or gs://)
    format: str
    model: str | None = None  # predictions name their model version; annotations none
    version: str | None = None
    boxes: BoxRule = "keep"  # boxes reaching outside their image: keep, clip or reject
    #: The configured source whose storage settings (endpoint, credentials) read the file;
    #: None reads it with the environment's.
    source: str | None = None
    #: A COCO instances file: link its images that no item answers to as items of their own
    #: (``linking``), their relative file names resolved against ``images`` (by default the
    #: file's folder).
    link: bool = False
    images: str | None = None

    def __post_init__(self) -> None:
        if self.format not in FORMATS:
            raise ConfigError(
                f"import {self.uri}: format {self.format!r} is not one of {', '.join(FORMATS)}"
            )
        if (self.model is None) != (self.version is None):
            raise ConfigError(
                f"import {self.uri}: predictions name both their model and its version "
                "(--model M --version V); annotations name neither"
            )
        if self.boxes not in ("keep", "clip", "reject"):
            raise ConfigError(f"import {self.uri}: boxes must be keep, clip or reject")
        if (self.link or self.images) and self.format != "coco":
            raise ConfigError(
                f"import {self.uri}: only a COCO instances file (--format coco) defines images "
                "to link as items; other formats name items that are already ingested"
            )
        if self.images and not self.link:
            raise ConfigError(f"import {self.uri}: an image root is given only to link images")

    @property
    def predictions(self) -> bool:
        return self.model is not None

    @property
    def origin(self) -> str:
        return f"import:{self.uri}"

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True).encode()


def import_key(uri: str) -> str:
    """The partition key of a file's import: its name and a digest of its full URI, so the
    same file always imports into the same partition (a new version replaces the old rows)."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", uri.rstrip("/").rsplit("/", 1)[-1]).strip("-.")
    return f"{name[:60] or 'import'}-{hashlib.sha256(uri.encode()).hexdigest()[:8]}"


def spec_key(key: str) -> str:
    return f"{IMPORTS}/{key}.json"


#: What a file's import is: imported again under another format or model version, its rows
#: would replace the rows of the first (another model version's predictions lost), so that
#: is refused. Its other settings (box rule, linking, the source that reads it) may change.
IDENTITY = ("format", "model", "version")


def save_spec(lake: ObjectStore, spec: ImportSpec) -> None:
    """Keep what the import reads, for its runs. A file imported again as another format or
    model version is refused (import a copy); other settings replace the earlier ones."""
    known = known_spec(lake, spec.key)
    if known is not None:
        before, now = asdict(known), asdict(spec)
        changed = [name for name in IDENTITY if before[name] != now[name]]
        if changed:
            said = ", ".join(f"{name} {before[name]!r} (now {now[name]!r})" for name in changed)
            raise ConfigError(
                f"{spec.uri} was imported before with {said}; its rows would replace those of "
                "the first import: import a copy of the file under another name"
            )
    if known != spec:
        lake.put(spec_key(spec.key), spec.to_json())


def known_spec(lake: ObjectStore, key: str) -> ImportSpec | None:
    """The import's spec, if it was started before."""
    try:
        return load_spec(lake, key)
    except LakeError:
        return None


def load_spec(lake: ObjectStore, key: str) -> ImportSpec:
    try:
        data = lake.get(spec_key(key))
    except ObjectNotFound:
        raise LakeError(
            f"import {key!r} is not known to the lake; start it with `bucketlake import PATH` "
            "or from a source's `annotations`/`predictions` globs"
        ) from None
    return ImportSpec(**json.loads(data))


@dataclass
class Tally:
    """What an import did with its records."""

    records: int = 0
    imported: int = 0
    labels: Counter[str] = field(default_factory=Counter)
    unmatched: int = 0
    rejected: int = 0
    outside: int = 0  # boxes reaching outside their image (kept, clipped or rejected)
    examples_unmatched: list[Unmatched] = field(default_factory=list)
    examples_rejected: list[Unmatched] = field(default_factory=list)

    def miss(self, found: Unmatched, rejected: bool = False) -> None:
        if rejected:
            self.rejected += 1
            if len(self.examples_rejected) < EXAMPLES:
                self.examples_rejected.append(found)
        else:
            self.unmatched += 1
            if len(self.examples_unmatched) < EXAMPLES:
                self.examples_unmatched.append(found)

    def summary(self) -> dict[str, Any]:
        return {
            "records": self.records,
            "imported": self.imported,
            "unmatched": self.unmatched,
            "rejected": self.rejected,
            "outside_image": self.outside,
            "labels": dict(self.labels.most_common()),
        }


def import_chunks(
    parsed: Parsed,
    index: ItemIndex,
    spec: ImportSpec,
    tally: Tally,
    *,
    tied: Mapping[int, Item] | None = None,
    chunk_rows: int = 50_000,
    skip: int = 0,
) -> Iterator[tuple[pa.Table, int]]:
    """The import's rows in tables of about ``chunk_rows``, each with the number of records
    read so far (a checkpoint's input end); the first ``skip`` records were written before
    and are only counted. ``tied``: the item each image id of the file names, where that is
    known already (a COCO file's images, tied or linked); other records are matched through
    ``index``."""
    images = {image.image_id: image for image in parsed.images if image.image_id is not None}
    tied = tied or {}
    model = (spec.model, spec.version) if spec.model and spec.version else None
    rows = RowBuffer(PREDICTIONS_SCHEMA if spec.predictions else ANNOTATIONS_SCHEMA)
    for n, record in enumerate(parsed.records):
        tally.records += 1
        image_id = record.item.image_id
        item: Item | None
        if image_id is not None and image_id in tied:
            item, why = tied[image_id], ""
        else:
            item, why = resolve(record, index, images)
        if item is None:
            tally.miss(Unmatched(record.where, record.item.describe(), why))
            continue
        placed = in_pixels(record, item)
        if placed is None:
            reason = "its item has no size (its bytes could not be read) to place fractions in"
            tally.miss(Unmatched(record.where, record.item.describe(), reason), rejected=True)
            continue
        if outside(placed, item):
            tally.outside += 1
            if spec.boxes == "reject":
                reason = f"box {placed.bbox} reaches outside the {item.width}x{item.height} image"
                tally.miss(Unmatched(record.where, record.item.describe(), reason), rejected=True)
                continue
            if spec.boxes == "clip":
                placed = clipped(placed, item)
        tally.imported += 1
        tally.labels[placed.label or "(none)"] += 1
        if n < skip:
            continue
        rows.add(row(placed, item, import_key=spec.key, origin=spec.origin, model=model))
        if rows.count >= chunk_rows:
            yield rows.take(), n + 1
    if rows.count or tally.records == 0:
        yield rows.take(), max(tally.records, skip)
