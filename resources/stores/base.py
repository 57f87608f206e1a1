"""The object-store interface shared by sources and the lake.

Keys are always relative to the store's root (a folder, or a bucket plus prefix), use ``/`` as the
separator, and are data, never paths: :func:`check_key` refuses anything that could leave the root.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime

from resources.errors import (
    InvalidKey,
    ObjectChanged,
    ObjectTooLarge,
    PreconditionFailed,
    StoreError,
)
from resources.stores.retry import Deadline

DEFAULT_PAGE_SIZE = 1000


@dataclass(frozen=True)
class ReadLimits:
    """Bounds on reading one object: at most ``max_bytes`` (a larger object raises
    ObjectTooLarge, and no more than that is ever held), done within ``deadline_seconds`` in all,
    retries included (else DeadlineExceeded). None: no bound."""

    max_bytes: int | None = None
    deadline_seconds: float | None = None

    def deadline(self) -> Deadline | None:
        """The deadline of a read that starts now."""
        return None if self.deadline_seconds is None else Deadline.after(self.deadline_seconds)

    def check_size(self, size: int | None, found: str, what: str, *, store: str, key: str) -> None:
        """Raise ObjectTooLarge if ``size`` is known and over the cap; ``found`` says where the
        size comes from (``"its Content-Length is"``)."""
        if size is not None and self.max_bytes is not None and size > self.max_bytes:
            raise self.too_large(f"{found} {size} bytes", what, store=store, key=key)

    def too_large(self, found: str, what: str, *, store: str, key: str) -> ObjectTooLarge:
        return ObjectTooLarge(
            f"{what}: {found}, more than max_object_bytes ({self.max_bytes} bytes) allows; it "
            "is not read. Raise the source's max_object_bytes to take objects this large",
            store=store,
            key=key,
        )


NO_LIMITS = ReadLimits()


class BoundedBuffer:
    """The bytes of one read as they arrive, refusing any chunk that would take it past the
    cap (ObjectTooLarge) or that arrives past the deadline (DeadlineExceeded). A writable
    stream, so that client libraries can download into it."""

    def __init__(
        self, limits: ReadLimits, deadline: Deadline | None, what: str, *, store: str, key: str
    ) -> None:
        self._limits, self._deadline = limits, deadline
        self._what, self._store, self._key = what, store, key
        self._data = bytearray()

    def write(self, chunk: bytes) -> int:
        cap = self._limits.max_bytes
        if cap is not None and len(self._data) + len(chunk) > cap:
            found = f"it sent more than {cap} bytes"
            raise self._limits.too_large(found, self._what, store=self._store, key=self._key)
        self._data += chunk
        if self._deadline is not None:
            self._deadline.check(self._what, store=self._store, key=self._key)
        return len(chunk)

    def __len__(self) -> int:
        return len(self._data)

    def getvalue(self) -> bytes:
        return bytes(self._data)


def shown_uri(uri: str) -> str:
    """A URI as messages show it: without its query, which may hold a presigned URL's
    signature."""
    before, query, _ = uri.partition("?")
    return f"{before}?..." if query else before


@dataclass(frozen=True)
class ObjectInfo:
    """One object version: its key, size and the provider's change token."""

    key: str
    size: int
    change_token: str
    last_modified: datetime
    content_type: str | None = None
    #: User metadata as a JSON object text (manifest sources carry it per entry).
    metadata: str | None = None


def check_key(key: str, *, store: str = "") -> str:
    """Return ``key`` if it is a safe relative key, else raise :class:`InvalidKey`."""
    if not key:
        raise InvalidKey(f"{store}: an empty object key is not allowed", store=store, key=key)
    if "\x00" in key or "\\" in key:
        raise InvalidKey(
            f"{store}: key {key!r} contains a NUL or backslash character; keys use '/' only",
            store=store,
            key=key,
        )
    if key.startswith("/"):
        raise InvalidKey(
            f"{store}: key {key!r} is absolute; keys are relative to the root", store=store, key=key
        )
    if any(part in ("", ".", "..") for part in key.split("/")):
        raise InvalidKey(
            f"{store}: key {key!r} has an empty, '.' or '..' segment and could name a place "
            "outside the store's root; it is refused",
            store=store,
            key=key,
        )
    return key


def read_pinned(
    store: ObjectStore, key: str, if_token: str | None, read: Callable[[], bytes]
) -> bytes:
    """``read()`` for ``store.get(key, if_token=...)``. When the server refuses the pinned read
    (HTTP 412) or answers with another version, a head says why: the object is gone
    (ObjectNotFound), it was rewritten (ObjectChanged), or the server answered so for the very
    version it lists, which is reported as an error rather than taken for a rewrite (the new
    version would never be claimed, since the listing shows none)."""
    try:
        return read()
    except PreconditionFailed as exc:
        if if_token is None:
            raise
        cause = exc
    current = store.head(key).change_token
    if current != if_token:
        raise ObjectChanged.rewritten(store.name, key, if_token) from cause
    raise StoreError(
        f"{store.name}: {key!r}: the server refused a read pinned to version {if_token}, which "
        f"is the version it lists ({cause}); check the server's support for conditional reads",
        store=store.name,
        key=key,
    ) from cause


class ObjectStore(abc.ABC):
    """A flat namespace of objects under one root, listed in lexicographic key order."""

    #: A short human name used in messages, e.g. ``local folder /data/inbox`` or ``s3://bucket/p``.
    name: str

    @abc.abstractmethod
    def list_page(
        self, prefix: str = "", start_after: str = "", page_size: int = DEFAULT_PAGE_SIZE
    ) -> list[ObjectInfo]:
        """Return up to ``page_size`` objects whose key starts with ``prefix`` and sorts after
        ``start_after``, in lexicographic key order. An empty list means the listing is done."""

    def list_objects(
        self, prefix: str = "", start_after: str = "", page_size: int = DEFAULT_PAGE_SIZE
    ) -> Iterator[list[ObjectInfo]]:
        """Yield every page of the listing, resuming after ``start_after``."""
        cursor = start_after
        while True:
            page = self.list_page(prefix, cursor, page_size)
            if not page:
                return
            yield page
            cursor = page[-1].key
            if len(page) < page_size:
                return

    @abc.abstractmethod
    def head(self, key: str) -> ObjectInfo:
        """Return the object's info, or raise ObjectNotFound."""

    @abc.abstractmethod
    def get(self, key: str, *, if_token: str | None = None) -> bytes:
        """Return the object's bytes, or raise ObjectNotFound. With ``if_token`` the bytes are
        those of that version (the change token of a listing or head) or ObjectChanged is
        raised: an object rewritten since it was listed never pairs its old token with new
        bytes."""

    def get_bounded(
        self, key: str, *, if_token: str | None = None, limits: ReadLimits = NO_LIMITS
    ) -> bytes:
        """``get`` within ``limits``: ObjectTooLarge past ``max_bytes``, DeadlineExceeded past
        the deadline; neither is retried. Stores that read over a network stream with the cap
        and override this; this default reads with ``get`` and checks the size after, which
        suits a local file, whose listed size and pinned token bound what is read."""
        data = self.get(key, if_token=if_token)
        limits.check_size(len(data), "it holds", self.uri(key), store=self.name, key=key)
        return data

    @abc.abstractmethod
    def get_range(self, key: str, start: int, length: int) -> bytes:
        """Return at most ``length`` bytes starting at ``start``."""

    @abc.abstractmethod
    def put(
        self, key: str, data: bytes, *, create_only: bool = False, if_token: str | None = None
    ) -> ObjectInfo:
        """Write the object whole (readers never see part of it). With ``create_only`` an
        existing object makes it raise PreconditionFailed and leaves that object untouched.
        With ``if_token`` the object is replaced only while its change token still equals it
        (else PreconditionFailed, also when it is gone): a writer that was paused and
        overtaken cannot overwrite what its successor wrote."""

    @abc.abstractmethod
    def delete(self, key: str, *, if_token: str | None = None) -> None:
        """Delete the object; a missing object is not an error. With ``if_token`` the object is
        deleted only while its change token still equals it (else PreconditionFailed)."""

    def exists(self, key: str) -> bool:
        from resources.errors import ObjectNotFound

        try:
            self.head(key)
        except ObjectNotFound:
            return False
        return True

    @abc.abstractmethod
    def uri(self, key: str) -> str:
        """The object's full URI (``file://``, ``s3://``, ``gs://``, ``https://``)."""

    def passed_over(self) -> list[tuple[str, str]]:
        """Entries the latest listing left out, each with why (a local folder's symbolic links,
        say); most stores list every object they hold."""
        return []

    def close(self) -> None:  # noqa: B027 (a hook: most stores hold nothing to release)
        """Release the store's connections (nothing to do for stores that hold none)."""

    def __enter__(self) -> ObjectStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
