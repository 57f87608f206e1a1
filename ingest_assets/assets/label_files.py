"""Reading an import's file (or, for YOLO, the folder of label files beside its class list)
from wherever it lives: a local folder, S3 or GCS."""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import PurePosixPath
from typing import BinaryIO, cast

from ingest_assets.annotations.importing import ImportSpec
from ingest_assets.annotations.reading import YOLO_CLASS_FILES, LabelFiles
from resources.errors import ConfigError, ObjectNotFound, TransientStoreError
from resources.stores.base import ObjectStore
from resources.stores.open import open_store
from resources.stores.options import StorageOptions

#: Formats whose files are parsed from a stream (the rest are small, and read whole).
STREAMED = ("coco", "coco-results")
RANGE_BYTES = 16 * 2**20


def _split(uri: str) -> tuple[str, str]:
    """(folder URI, file name) of a file's URI or path."""
    path = (
        PurePosixPath(uri.removeprefix("file://"))
        if "://" not in uri or uri.startswith("file://")
        else None
    )
    if path is not None:
        return str(path.parent), path.name
    folder, _, name = uri.rstrip("/").rpartition("/")
    return folder, name


def read_label_file(spec: ImportSpec, options: StorageOptions | None = None) -> LabelFiles:
    """The import's bytes, read with ``options`` (the storage settings of the source the file
    is in: endpoint, credentials). A COCO file is copied to a temporary file in ranges and
    parsed from there, so that its size costs disk, not memory. For ``yolo`` the URI names
    the class list (``classes.txt`` or ``data.yaml``); the label files are every ``.txt``
    under its folder."""
    folder, name = _split(spec.uri)
    read = LabelFiles(spec.uri)
    with open_store(folder, options) as store:
        try:
            if spec.format in STREAMED:
                read.add(name, *_spooled(store, name, spec.uri))
                return read
            if spec.format != "yolo":
                read.add(name, store.get(name))
                return read
            if name not in YOLO_CLASS_FILES:
                raise ConfigError(
                    f"{spec.uri}: a YOLO import names its class list (classes.txt or data.yaml); "
                    "the label files are the .txt files beside it and below"
                )
            read.add(name, store.get(name))
            for page in store.list_objects():
                for info in page:
                    if info.key.endswith(".txt") and info.key != name:
                        read.add(info.key, store.get(info.key))
            return read
        except ObjectNotFound:
            raise ConfigError(f"{spec.uri}: no such file to import") from None


def _spooled(store: ObjectStore, name: str, uri: str) -> tuple[BinaryIO, bytes]:
    """The object copied into a temporary file (read back from its start) and its SHA-256;
    TransientStoreError if it was rewritten while it was copied."""
    info = store.head(name)
    out = tempfile.TemporaryFile()  # noqa: SIM115 (the caller reads it, then it is collected)
    digest = hashlib.sha256()
    try:
        while (done := out.tell()) < info.size:
            chunk = store.get_range(name, done, min(RANGE_BYTES, info.size - done))
            if not chunk:
                break
            out.write(chunk)
            digest.update(chunk)
        if out.tell() != info.size or store.head(name).change_token != info.change_token:
            raise TransientStoreError(
                f"{uri} changed while it was read; it is read again when the run is retried"
            )
    except BaseException:
        out.close()
        raise
    out.seek(0)
    return cast(BinaryIO, out), digest.digest()
