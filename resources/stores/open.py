"""Open an object store from a URI."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlparse

from resources.errors import ConfigError
from resources.stores.base import ObjectStore
from resources.stores.local import LocalFolderStore

SUPPORTED_SCHEMES = ("file",)


def local_path(uri: str, base: Path | None = None) -> Path:
    """The folder a ``file://`` URI or a plain path names (relative paths against ``base``)."""
    path = Path(unquote(urlparse(uri).path)) if uri.startswith("file://") else Path(uri)
    if not path.is_absolute() and base is not None:
        path = base / path
    return path


def open_store(uri: str, *, base: Path | None = None) -> ObjectStore:
    """Return the store a URI names. Plain paths and ``file://`` URIs are local folders."""
    scheme = urlparse(uri).scheme
    if scheme in ("", "file"):
        return LocalFolderStore(local_path(uri, base))
    raise ConfigError(
        f"unsupported storage URI {uri!r}: scheme {scheme!r} is not supported; "
        f"supported schemes are: {', '.join(SUPPORTED_SCHEMES)} (or a plain local path)"
    )
