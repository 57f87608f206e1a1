"""Reading an import's file (or, for YOLO, the folder of label files beside its class list)
from wherever it lives: a local folder, S3 or GCS."""

from __future__ import annotations

from pathlib import PurePosixPath

from ingest_assets.annotations.importing import ImportSpec
from ingest_assets.annotations.reading import YOLO_CLASS_FILES, LabelFiles
from resources.errors import ConfigError, ObjectNotFound
from resources.stores.open import open_store


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


def read_label_file(spec: ImportSpec) -> LabelFiles:
    """The import's bytes. For ``yolo`` the URI names the class list (``classes.txt`` or
    ``data.yaml``); the label files are every ``.txt`` under its folder."""
    folder, name = _split(spec.uri)
    with open_store(folder) as store:
        try:
            if spec.format != "yolo":
                return LabelFiles(spec.uri, {name: store.get(name)})
            if name not in YOLO_CLASS_FILES:
                raise ConfigError(
                    f"{spec.uri}: a YOLO import names its class list (classes.txt or data.yaml); "
                    "the label files are the .txt files beside it and below"
                )
            files = {name: store.get(name)}
            for page in store.list_objects():
                for info in page:
                    if info.key.endswith(".txt") and info.key != name:
                        files[info.key] = store.get(info.key)
            return LabelFiles(spec.uri, files)
        except ObjectNotFound:
            raise ConfigError(f"{spec.uri}: no such file to import") from None
