"""Open the object store a URI names, with the storage options of its source or lake."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlparse

from resources.errors import ConfigError
from resources.stores.base import ObjectStore
from resources.stores.local import LocalFolderStore
from resources.stores.options import StorageOptions, no_options

if TYPE_CHECKING:  # the config models carry StorageOptions, so they import this package
    from resources.config import BucketlakeConfig, SourceConfig

SUPPORTED_SCHEMES = ("file", "s3", "gs")

StoreFactory = Callable[[str, StorageOptions], ObjectStore]
#: Stores for further URI schemes, added with :func:`register_store_scheme`.
_EXTRA_SCHEMES: dict[str, StoreFactory] = {}


def register_store_scheme(scheme: str, factory: StoreFactory) -> None:
    """Serve URIs of ``scheme`` with ``factory(uri, options)``: the seam for stores this
    package does not ship (and for tests that need a store that fails on purpose)."""
    _EXTRA_SCHEMES[scheme] = factory


def unregister_store_scheme(scheme: str) -> None:
    """Stop serving ``scheme`` (undoes :func:`register_store_scheme`)."""
    _EXTRA_SCHEMES.pop(scheme, None)


def local_path(uri: str, base: Path | None = None) -> Path:
    """The folder a ``file://`` URI or a plain path names (relative paths against ``base``)."""
    path = Path(unquote(urlparse(uri).path)) if uri.startswith("file://") else Path(uri)
    if not path.is_absolute() and base is not None:
        path = base / path
    return path


def split_bucket_uri(uri: str) -> tuple[str, str]:
    """``("bucket", "prefix/")`` for ``s3://bucket/prefix``; the prefix ends with ``/`` unless
    empty."""
    parsed = urlparse(uri)
    if not parsed.netloc:
        raise ConfigError(f"{uri!r} names no bucket; write it as {parsed.scheme}://BUCKET/PREFIX")
    prefix = parsed.path.lstrip("/")
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    return parsed.netloc, prefix


def open_store(
    uri: str, options: StorageOptions | None = None, *, base: Path | None = None
) -> ObjectStore:
    """The store a URI names: a folder (plain path or ``file://``), ``s3://`` or ``gs://``."""
    options = options or no_options()
    scheme = urlparse(uri).scheme
    if scheme in _EXTRA_SCHEMES:
        return _EXTRA_SCHEMES[scheme](uri, options)
    if scheme in ("", "file"):
        return LocalFolderStore(local_path(uri, base))
    if scheme == "s3":
        from resources.stores.s3 import S3ObjectStore

        bucket, prefix = split_bucket_uri(uri)
        return S3ObjectStore.from_options(bucket, prefix, options)
    if scheme == "gs":
        from resources.stores.gcs import GCSObjectStore

        bucket, prefix = split_bucket_uri(uri)
        return GCSObjectStore.from_options(bucket, prefix, options)
    raise ConfigError(
        f"unsupported storage URI {uri!r}: scheme {scheme!r} is not supported; "
        f"supported schemes are: {', '.join(SUPPORTED_SCHEMES)} (or a plain local path); "
        "https:// locations are read through a source's 'manifest'"
    )


def open_lake_store(config: BucketlakeConfig) -> ObjectStore:
    return open_store(config.lake_uri, config.lake_options)


def open_source_store(source: SourceConfig) -> ObjectStore:
    """The store of a source whose paths are resolved (``BucketlakeConfig.resolved``)."""
    if source.manifest is not None:
        from resources.stores.manifest import ManifestStore

        return ManifestStore(
            source.manifest, source.storage(), file_roots=source.manifest_file_roots
        )
    assert source.uri is not None
    if urlparse(source.uri).scheme in ("", "file"):
        return LocalFolderStore(local_path(source.uri), follow_symlinks=source.follow_symlinks)
    return open_store(source.uri, source.storage())
