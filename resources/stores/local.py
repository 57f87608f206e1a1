"""A local folder as an object store (sources under ``file://`` and the embedded lake)."""

from __future__ import annotations

import bisect
import contextlib
import errno
import fcntl
import functools
import itertools
import mimetypes
import os
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO
from urllib.parse import quote

from resources.errors import (
    AccessDenied,
    ObjectChanged,
    ObjectNotFound,
    PreconditionFailed,
    StoreError,
    TransientStoreError,
)
from resources.stores.base import DEFAULT_PAGE_SIZE, ObjectInfo, ObjectStore, check_key

#: Files this store writes while a put is in flight; never listed, never read as objects.
TEMP_PREFIX = ".tmp-bucketlake-"
#: How often a write makes its folders again when concurrent deletes keep removing them.
_FOLDER_RACE_RETRIES = 50
#: How long a conditional write waits for its folder's lock (held for microseconds normally).
FOLDER_LOCK_WAIT_S = 30.0


def _token(st: os.stat_result) -> str:
    return f"{st.st_size}-{st.st_mtime_ns}"


def _info(key: str, st: os.stat_result) -> ObjectInfo:
    return ObjectInfo(
        key=key,
        size=st.st_size,
        change_token=_token(st),
        last_modified=datetime.fromtimestamp(st.st_mtime_ns / 1e9, tz=UTC),
        content_type=_content_type(_last_suffixes(key)),
    )


def _last_suffixes(key: str) -> str:
    """The last two suffixes of a key's name (``.jpg``, ``.tar.gz``; "" for none)."""
    name = key[key.rfind("/") + 1 :]
    last = name.rfind(".")
    if last <= 0:
        return ""
    before = name.rfind(".", 0, last)
    return name[before if before > 0 else last :]


@functools.lru_cache(maxsize=1024)
def _content_type(suffixes: str) -> str | None:
    """The type of a name ending in these suffixes, guessed once per suffixes."""
    return mimetypes.guess_type("name" + suffixes)[0]


def _name(item: tuple[str, os.DirEntry[str], bool]) -> str:
    return item[0]


def _first_after(
    named: list[tuple[str, os.DirEntry[str], bool]], rel: str, start_after: str
) -> int:
    """The first of a folder's sorted names (a folder's with its ``/``) that can hold a key
    after ``start_after``: the folder on the cursor's path, or the first name after it."""
    if not start_after.startswith(rel):
        return 0  # the whole folder sorts after the cursor
    rest = start_after[len(rel) :]
    slash = rest.find("/")
    if slash >= 0:
        return bisect.bisect_left(named, rest[: slash + 1], key=_name)
    return bisect.bisect_right(named, rest, key=_name)


class LocalFolderStore(ObjectStore):
    """Objects are the regular files under ``root``; keys are their relative POSIX paths.

    Listing walks the tree in the order an S3 listing would give (keys compared as strings,
    a folder sorting as its name plus ``/``), so ``start_after`` cursors work as they do on S3.
    """

    def __init__(self, root: str | os.PathLike[str], *, follow_symlinks: bool = False) -> None:
        self.root = Path(root).absolute()
        self.name = f"local folder {self.root}"
        self.follow_symlinks = follow_symlinks
        self._real_root = os.path.realpath(self.root)
        self._passed_over: list[tuple[str, str]] = []

    def passed_over(self) -> list[tuple[str, str]]:
        return list(self._passed_over)

    # -- symbolic links ----------------------------------------------------------------------
    def _inside(self, real: str) -> bool:
        """Whether a resolved path lies in the root (resolved again once, if the root itself
        was made or moved since)."""
        for _ in range(2):
            if real == self._real_root or real.startswith(self._real_root.rstrip(os.sep) + os.sep):
                return True
            fresh = os.path.realpath(self.root)
            if fresh == self._real_root:
                return False
            self._real_root = fresh
        return False

    def _refuse_link(self, path: str) -> str | None:
        """Why the symbolic link at ``path`` is not taken as an object, or None if it is: links
        are taken only with ``follow_symlinks``, and then only links to a file in the root."""
        if not self.follow_symlinks:
            return "a symbolic link (set follow_symlinks: true to take links within the source)"
        real = os.path.realpath(path)
        if not self._inside(real):
            return "a symbolic link that leads out of the source's folder"
        if not os.path.isfile(real):
            return "a symbolic link to no file (a folder, a loop of links, or nothing)"
        return None

    # -- paths -----------------------------------------------------------------------------
    def _path(self, key: str) -> Path:
        return self.root / check_key(key, store=self.name)

    def uri(self, key: str) -> str:
        return "file://" + quote(str(self._path(key)))

    # -- listing ---------------------------------------------------------------------------
    def list_page(
        self, prefix: str = "", start_after: str = "", page_size: int = DEFAULT_PAGE_SIZE
    ) -> list[ObjectInfo]:
        return next(self.list_objects(prefix, start_after, page_size), [])

    def list_objects(
        self, prefix: str = "", start_after: str = "", page_size: int = DEFAULT_PAGE_SIZE
    ) -> Iterator[list[ObjectInfo]]:
        """Every page from one walk of the tree: each folder is read and sorted once for the
        whole listing (paging with ``list_page`` reads the folders on the way to each page's
        cursor again). A file deleted meanwhile is left out; one added to a folder already
        read shows in the next listing."""
        self._passed_over = []
        if not self.root.is_dir():
            return
        walk = self._walk(self.root, "", prefix, start_after)
        while page := list(itertools.islice(walk, max(page_size, 0))):
            yield page

    def _walk(self, folder: Path, rel: str, prefix: str, start_after: str) -> Iterator[ObjectInfo]:
        """The files under ``folder`` in key order; one generator for the whole tree (a stack
        of the folders being read), so each file is handed on once, not once per level."""
        stack = [self._folder(folder, rel, prefix, start_after)]
        while stack:
            for key, entry, is_dir in stack[-1]:
                if is_dir:
                    stack.append(self._folder(Path(entry.path), key, prefix, start_after))
                    break
                try:
                    yield _info(key, entry.stat())
                except FileNotFoundError:
                    continue  # deleted while listing
                except OSError as exc:  # e.g. a link changed into a loop since it was read
                    self._passed_over.append((key, f"cannot be read: {exc.strerror}"))
            else:
                stack.pop()

    def _folder(
        self, folder: Path, rel: str, prefix: str, start_after: str
    ) -> Iterator[tuple[str, os.DirEntry[str], bool]]:
        """One folder's (key, entry, is folder), sorted as their keys list, leaving out what
        ``prefix`` and ``start_after`` rule out (a folder's key ends in ``/``)."""
        try:
            entries = list(os.scandir(folder))
        except FileNotFoundError:
            return iter(())
        except PermissionError as exc:
            raise AccessDenied(
                f"{self.name}: cannot list {folder}: {exc}", store=self.name
            ) from exc
        named: list[tuple[str, os.DirEntry[str], bool]] = []
        for entry in entries:
            if entry.name.startswith(TEMP_PREFIX):
                continue
            if entry.is_symlink():
                refused = self._refuse_link(entry.path)
                if refused is None:
                    named.append((entry.name, entry, False))
                elif (rel + entry.name).startswith(prefix):
                    self._passed_over.append((rel + entry.name, refused))
                continue
            if entry.is_dir(follow_symlinks=False):
                named.append((entry.name + "/", entry, True))
            elif entry.is_file():
                named.append((entry.name, entry, False))
        named.sort(key=_name)
        kept: list[tuple[str, os.DirEntry[str], bool]] = []
        for name, entry, is_dir in named[_first_after(named, rel, start_after) :]:
            key = rel + name
            if is_dir:
                if not (key.startswith(prefix) or prefix.startswith(key)):
                    continue
                if key < start_after and not start_after.startswith(key):
                    continue  # every key below sorts before the cursor
            elif not (key.startswith(prefix) and key > start_after):
                continue
            kept.append((key, entry, is_dir))
        return iter(kept)

    # -- objects ---------------------------------------------------------------------------
    def head(self, key: str) -> ObjectInfo:
        path = self._path(key)
        try:
            st = path.stat()
        except (FileNotFoundError, NotADirectoryError) as exc:  # a file stands where a folder would
            raise ObjectNotFound(
                f"{self.name}: no object {key!r}", store=self.name, key=key
            ) from exc
        if not path.is_file():
            raise ObjectNotFound(f"{self.name}: {key!r} is not a file", store=self.name, key=key)
        return _info(key, st)

    @contextlib.contextmanager
    def _open(self, key: str) -> Iterator[BinaryIO]:
        path = self._path(key)
        flags = os.O_RDONLY | (0 if self.follow_symlinks else os.O_NOFOLLOW)
        try:
            handle = os.fdopen(os.open(path, flags), "rb")
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as exc:
            raise ObjectNotFound(
                f"{self.name}: no object {key!r}", store=self.name, key=key
            ) from exc
        except OSError as exc:
            if exc.errno != errno.ELOOP:
                raise
            raise AccessDenied(
                f"{self.name}: {key!r} is {self._refuse_link(str(path)) or 'a loop of links'}",
                store=self.name,
                key=key,
            ) from exc
        except PermissionError as exc:
            raise AccessDenied(
                f"{self.name}: permission denied reading {key!r}; check the file's permissions",
                store=self.name,
                key=key,
            ) from exc
        with handle:
            self._stay_inside(key, handle.fileno())
            yield handle

    def _stay_inside(self, key: str, fd: int) -> None:
        """Refuse a file opened through a folder that is a link out of the root (a key's
        folders may be links, or be swapped for links after the listing)."""
        try:
            real = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            real = os.path.realpath(self._path(key))
        if not self._inside(real):
            raise AccessDenied(
                f"{self.name}: {key!r} leads out of the folder through a symbolic link; it is "
                "not read",
                store=self.name,
                key=key,
            )

    def _read(self, key: str, start: int = 0, length: int | None = None) -> bytes:
        with self._open(key) as handle:
            if start:
                handle.seek(start)
            return handle.read() if length is None else handle.read(length)

    def get(self, key: str, *, if_token: str | None = None) -> bytes:
        if if_token is None:
            return self._read(key)
        with self._open(key) as handle:
            before = os.fstat(handle.fileno())
            data = handle.read() if _token(before) == if_token else None
            after = os.fstat(handle.fileno())
        # Rewritten before the read, or in place during it (the change time moves even where
        # the modification time is too coarse to).
        if data is None or (after.st_ctime_ns, _token(after)) != (before.st_ctime_ns, if_token):
            raise ObjectChanged.rewritten(self.name, key, if_token)
        return data

    def get_range(self, key: str, start: int, length: int) -> bytes:
        return self._read(key, start, length)

    def put(
        self, key: str, data: bytes, *, create_only: bool = False, if_token: str | None = None
    ) -> ObjectInfo:
        path = self._path(key)
        tmp = path.parent / f"{TEMP_PREFIX}{uuid.uuid4().hex}"
        try:
            handle = self._create_in_folder(key, tmp)
        except OSError as exc:  # e.g. a file stands where a folder of the key would be
            error = AccessDenied if isinstance(exc, PermissionError) else StoreError
            raise error(
                f"{self.name}: cannot write {key!r}: {exc}", store=self.name, key=key
            ) from exc
        try:
            with handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            if create_only:
                try:
                    os.link(tmp, path)  # atomic, and fails if the key exists
                except FileExistsError as exc:
                    raise PreconditionFailed(
                        f"{self.name}: {key!r} already exists (create-only write refused)",
                        store=self.name,
                        key=key,
                    ) from exc
            elif if_token is not None:
                # Compare and replace under the folder's lock, as a conditional delete does.
                with self._folder_lock(path.parent):
                    self._require_token(key, if_token, "write")
                    os.replace(tmp, path)
                    return _info(key, path.stat())
            else:
                os.replace(tmp, path)
        except PermissionError as exc:
            raise AccessDenied(
                f"{self.name}: permission denied writing {key!r}", store=self.name, key=key
            ) from exc
        except OSError as exc:
            if isinstance(exc, StoreError):
                raise
            raise StoreError(
                f"{self.name}: cannot write {key!r}: {exc}", store=self.name, key=key
            ) from exc
        finally:
            tmp.unlink(missing_ok=True)
        return _info(key, path.stat())

    def _create_in_folder(self, key: str, tmp: Path) -> BinaryIO:
        """Open ``tmp`` for writing, making its folders. A delete elsewhere removes folders it
        leaves empty, so a folder just made may vanish before the file is in it: make it again
        (a file in a folder keeps it, so once open the write is safe)."""
        for _ in range(_FOLDER_RACE_RETRIES):
            try:
                tmp.parent.mkdir(parents=True, exist_ok=True)
                return open(tmp, "wb")
            except FileExistsError as exc:
                if os.path.lexists(exc.filename or tmp.parent):
                    raise  # a file stands where a folder of the key would be
            except FileNotFoundError:
                pass
        raise StoreError(
            f"{self.name}: cannot write {key!r}: its folders kept being removed meanwhile",
            store=self.name,
            key=key,
        )

    def delete(self, key: str, *, if_token: str | None = None) -> None:
        path = self._path(key)
        with self._folder_lock(path.parent) if if_token is not None else contextlib.nullcontext():
            if if_token is not None:
                self._require_token(key, if_token, "delete")
            with contextlib.suppress(FileNotFoundError, NotADirectoryError):
                path.unlink()  # missing, or a file stands where a folder of the key would be
            self._remove_empty_folders(path.parent)

    def _require_token(self, key: str, token: str, action: str) -> None:
        try:
            current = self.head(key).change_token
        except ObjectNotFound:
            raise PreconditionFailed(
                f"{self.name}: {key!r} is gone; conditional {action} refused",
                store=self.name,
                key=key,
            ) from None
        if current != token:
            raise PreconditionFailed(
                f"{self.name}: {key!r} changed ({current} != {token}); {action} refused",
                store=self.name,
                key=key,
            )

    def _wait_for_lock(self, fd: int, folder: Path) -> None:
        deadline = time.monotonic() + FOLDER_LOCK_WAIT_S
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise TransientStoreError(
                        f"{self.name}: {folder} stayed locked for {FOLDER_LOCK_WAIT_S:.0f}s by "
                        "another writer, which seems stopped (paused or frozen) inside a "
                        "conditional write; resume or end that process",
                        store=self.name,
                    ) from None
                time.sleep(0.002)

    def _remove_empty_folders(self, folder: Path) -> None:
        """Object stores have no folders: one left empty by a delete goes too (not the root)."""
        while folder != self.root and self.root in folder.parents:
            try:
                folder.rmdir()
            except OSError:
                return  # not empty (or already gone)
            folder = folder.parent

    @contextlib.contextmanager
    def _folder_lock(self, folder: Path) -> Iterator[None]:
        """Hold an exclusive lock on ``folder`` against other threads and processes. A file
        system has no compare-and-delete: without it, two conditional deletes that both saw
        the old token could remove the object one of them created in between. A process
        stopped while it holds the lock (SIGSTOP, a frozen container) would block the folder's
        conditional writes for good, so the wait is bounded: then a transient error says so."""
        try:
            fd: int | None = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        except (FileNotFoundError, NotADirectoryError):
            fd = None  # no folder, so no object: the token check refuses
        try:
            if fd is not None:
                self._wait_for_lock(fd, folder)
            yield
        finally:
            if fd is not None:
                os.close(fd)  # releases the lock
