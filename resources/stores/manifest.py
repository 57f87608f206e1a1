"""A manifest file as a read-only object store: each entry names one image somewhere else.

What a manifest lists, its formats and how it is parsed: :mod:`resources.stores.manifest_parse`.

An entry's key is its ``reference_id``. Its change token is a hash of its location and metadata, so
an entry whose location or metadata changes is claimed again; its ``last_modified`` is the
manifest's own, so batching waits run from when the manifest last changed. Sizes come from an
optional ``size`` field, else 0 until the object is fetched (``head`` gives the real size).

A manifest is data too, so a ``file://`` (or plain or relative path) entry is read only if it
lies, symbolic links resolved, under one of the folders the source allows
(``manifest_file_roots``; by default the manifest's own folder for a manifest on the local disk,
and none for a remote one): ``file:///etc/passwd`` or ``../../etc/passwd`` in a manifest, or a
link that leads out, is refused with AccessDenied, and the file is never opened.
"""

from __future__ import annotations

import bisect
import mimetypes
import os
import threading
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from urllib.parse import urlparse

from resources.errors import AccessDenied, ObjectChanged, ObjectNotFound, StoreError
from resources.stores.base import (
    DEFAULT_PAGE_SIZE,
    NO_LIMITS,
    ObjectInfo,
    ObjectStore,
    ReadLimits,
    shown_uri,
)
from resources.stores.http import HttpStore
from resources.stores.manifest_parse import ManifestEntry, manifest_format, parse_manifest
from resources.stores.options import StorageOptions, no_options
from resources.stores.retry import DEFAULT_RETRY, RetryPolicy


# -- the store -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Listing:
    entries: dict[str, ManifestEntry]
    keys: list[str]  # sorted
    last_modified: datetime


class ManifestStore(ObjectStore):
    """The entries of a manifest, as a read-only store keyed by ``reference_id``.

    The manifest is read once per store and again at the start of each listing pass
    (``list_page`` with an empty ``start_after``). Entries are fetched from their own locations:
    ``http(s)://`` through :class:`HttpStore` (honouring ``allow_private_addresses``), the other
    schemes through the store :func:`~resources.stores.open.open_store` gives for them.
    """

    def __init__(
        self,
        manifest_uri: str,
        options: StorageOptions | None = None,
        *,
        retry: RetryPolicy = DEFAULT_RETRY,
        file_roots: list[str] | None = None,
    ) -> None:
        """``file_roots``: the folders local entries may lie under (the source's
        ``manifest_file_roots``); None: the manifest's own folder if it is on the local disk,
        else none."""
        self.manifest_uri = manifest_uri
        self.name = f"manifest {manifest_uri}"
        self._options = options or no_options()
        self._retry = retry
        manifest_format(manifest_uri)  # an unsupported extension fails before any I/O
        self._file_roots = _real_roots(manifest_uri, file_roots)
        self._roots_given = file_roots is not None
        self._listing_lock = threading.Lock()  # one reader of the manifest at a time
        self._stores_lock = threading.Lock()
        self._listing: _Listing | None = None
        self._http_store: HttpStore | None = None
        self._stores: dict[str, ObjectStore] = {}

    def close(self) -> None:
        if self._http_store is not None:
            self._http_store.close()
        with self._stores_lock:
            for store in self._stores.values():
                store.close()

    # -- the manifest ----------------------------------------------------------------------
    def _read_listing(self) -> _Listing:
        scheme = urlparse(self.manifest_uri).scheme if "://" in self.manifest_uri else ""
        base: Path | None = None
        if scheme in ("http", "https"):
            info = self._http().head_url(self.manifest_uri)
            data = self._http().get_url(self.manifest_uri)
        else:
            store, name = self._manifest_file()
            try:
                info = store.head(name)
                data = store.get(name)
            except ObjectNotFound as exc:
                raise ObjectNotFound(
                    f"{self.name}: the manifest file does not exist ({exc})", store=self.name
                ) from exc
            if scheme in ("", "file"):
                from resources.stores.open import local_path

                base = local_path(self.manifest_uri).absolute().parent
        entries = {e.reference_id: e for e in parse_manifest(data, self.manifest_uri, base=base)}
        return _Listing(entries, sorted(entries), info.last_modified)

    def _current(self, *, reread: bool = False) -> _Listing:
        with self._listing_lock:
            if self._listing is None or reread:
                self._listing = self._read_listing()
            return self._listing

    def _entry(self, key: str) -> ManifestEntry:
        entry = self._current().entries.get(key)
        if entry is None:
            raise ObjectNotFound(f"{self.name}: no entry {key!r}", store=self.name, key=key)
        return entry

    # -- where entries live ----------------------------------------------------------------
    def _http(self) -> HttpStore:
        with self._stores_lock:
            if self._http_store is None:
                self._http_store = HttpStore(
                    allow_private_addresses=self._options.allow_private_addresses,
                    retry=self._retry,
                )
            return self._http_store

    def _manifest_file(self) -> tuple[ObjectStore, str]:
        """The store holding the manifest itself (which the config names: no roots apply)."""
        from resources.stores.open import local_path

        scheme = urlparse(self.manifest_uri).scheme if "://" in self.manifest_uri else ""
        if scheme in ("s3", "gs"):
            return self._store_for(self.manifest_uri)
        path = local_path(self.manifest_uri)
        return self._store_at(str(path.parent)), path.name

    def _store_for(self, location: str) -> tuple[ObjectStore, str]:
        """The store holding an entry's non-HTTP location, and the location's key in it: one
        store per bucket for ``s3://``/``gs://``, per folder for local files (which must lie
        under the file roots, links resolved)."""
        scheme = urlparse(location).scheme if "://" in location else ""
        if scheme in ("s3", "gs"):
            parsed = urlparse(location)
            return self._store_at(f"{scheme}://{parsed.netloc}"), parsed.path.lstrip("/")
        real = self._allowed_file(location)
        return self._store_at(os.path.dirname(real)), os.path.basename(real)

    def _allowed_file(self, location: str) -> str:
        """The real path of a local entry (links resolved), or AccessDenied if it lies outside
        every file root. The real path is what is read, so a link swapped in afterwards is not
        followed (local folders do not follow links)."""
        from resources.stores.open import local_path

        path = os.path.normpath(local_path(location))
        real = os.path.realpath(path)
        if any(_is_under(real, root) for root in self._file_roots):
            return real
        resolved = "" if real == path else f" (it resolves to {real})"
        raise AccessDenied(
            f"{self.name}: {shown_uri(location)}{resolved} lies outside the folders local files "
            f"may be read from ({self._roots_in_words()}); it is not read. To take it, add its "
            "folder to the source's manifest_file_roots",
            store=self.name,
            key=location,
        )

    def _roots_in_words(self) -> str:
        if self._roots_given:
            return f"manifest_file_roots: {', '.join(self._file_roots) or 'none'}"
        if self._file_roots:
            return f"manifest_file_roots not set: the manifest's own folder, {self._file_roots[0]}"
        return "manifest_file_roots not set: none, for a manifest that is not on the local disk"

    def _store_at(self, root: str) -> ObjectStore:
        from resources.stores.open import open_store

        with self._stores_lock:
            store = self._stores.get(root)
            if store is None:
                store = self._stores[root] = open_store(root, self._options)
        return store

    # -- reading ---------------------------------------------------------------------------
    def list_page(
        self, prefix: str = "", start_after: str = "", page_size: int = DEFAULT_PAGE_SIZE
    ) -> list[ObjectInfo]:
        listing = self._current(reread=start_after == "")
        start = bisect.bisect_right(listing.keys, start_after) if start_after else 0
        start = max(start, bisect.bisect_left(listing.keys, prefix))
        page: list[ObjectInfo] = []
        for key in listing.keys[start:]:
            if not key.startswith(prefix) or len(page) >= page_size:
                break
            page.append(self._info(listing.entries[key], listing.last_modified))
        return page

    def _info(
        self,
        entry: ManifestEntry,
        last_modified: datetime,
        size: int | None = None,
        content_type: str | None = None,
    ) -> ObjectInfo:
        return ObjectInfo(
            key=entry.reference_id,
            size=entry.size if size is None else size,
            change_token=entry.change_token,
            last_modified=last_modified,
            content_type=content_type or mimetypes.guess_type(urlparse(entry.location).path)[0],
            metadata=entry.metadata,
        )

    def head(self, key: str) -> ObjectInfo:
        """The entry as listed, with the size and content type of the object it names (which
        must exist). The change token stays the entry's, so a head and a listing agree."""
        entry = self._entry(key)
        if _is_http(entry.location):
            found = self._http().head_url(entry.location)
        else:
            store, name = self._store_for(entry.location)
            found = store.head(name)
        return self._info(entry, self._current().last_modified, found.size, found.content_type)

    def get(self, key: str, *, if_token: str | None = None) -> bytes:
        return self.get_bounded(key, if_token=if_token)

    def get_bounded(
        self, key: str, *, if_token: str | None = None, limits: ReadLimits = NO_LIMITS
    ) -> bytes:
        """The bytes at the entry's location, read within ``limits`` by the store that holds
        it. ``if_token`` is the entry's token: it names the manifest entry (location and
        metadata), so an entry changed in the manifest since it was listed raises
        ObjectChanged; the object the entry points at is not pinned."""
        entry = self._entry(key)
        if if_token is not None and entry.change_token != if_token:
            raise ObjectChanged.rewritten(self.name, key, if_token)
        if _is_http(entry.location):
            return self._http().get_url(entry.location, limits)
        store, name = self._store_for(entry.location)
        return store.get_bounded(name, limits=limits)

    def get_range(self, key: str, start: int, length: int) -> bytes:
        entry = self._entry(key)
        if _is_http(entry.location):
            return self._http().get_url_range(entry.location, start, length)
        store, name = self._store_for(entry.location)
        return store.get_range(name, start, length)

    def uri(self, key: str) -> str:
        return self._entry(key).location

    # -- read-only -------------------------------------------------------------------------
    def put(
        self, key: str, data: bytes, *, create_only: bool = False, if_token: str | None = None
    ) -> ObjectInfo:
        raise self._read_only("write", key)

    def delete(self, key: str, *, if_token: str | None = None) -> None:
        raise self._read_only("delete", key)

    def _read_only(self, action: str, key: str) -> StoreError:
        return StoreError(
            f"{self.name}: cannot {action} {key!r}: a manifest source is read-only; change the "
            "manifest file or the objects it lists instead",
            store=self.name,
            key=key,
        )


def _is_under(real: str, root: str) -> bool:
    return real == root or real.startswith(root.rstrip(os.sep) + os.sep)


def _is_http(location: str) -> bool:
    return location.startswith(("http://", "https://"))


def _real_roots(manifest_uri: str, roots: list[str] | None) -> list[str]:
    """The folders local entries may lie under, links resolved: ``roots`` (paths or
    ``file://`` URIs), or by default the folder of a local manifest (none for a remote one)."""
    from resources.stores.open import local_path

    if roots is None:
        remote = "://" in manifest_uri and urlparse(manifest_uri).scheme != "file"
        roots = [] if remote else [str(local_path(manifest_uri).absolute().parent)]
    return [os.path.realpath(local_path(root)) for root in roots]
