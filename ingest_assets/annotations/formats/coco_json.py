"""Reading a COCO file's JSON in bounded memory: the small top-level values in one pass, the
big array (``annotations``, or a results file's list) streamed item by item in another, and a
syntax error placed by line and column where that can be done cheaply.

Two passes because JSON does not fix the order of keys: the official COCO files put
``categories`` after ``annotations`` and some subsets put ``annotations`` first, yet every
annotation needs the image and category tables to be checked and labelled. The first pass
builds everything but the big array, which it skips without building (and checks that the
whole file is JSON, so that a syntax error is found before any record is given); the second
builds the big array's items one at a time.
"""

from __future__ import annotations

import io
import json
import shutil
import tempfile
import weakref
from collections import deque
from collections.abc import Iterator
from itertools import takewhile
from typing import IO, Any, BinaryIO

import ijson

from ingest_assets.annotations.records import LabelFileError

#: Up to this size, a syntax error is placed exactly (by re-reading the file with ``json``);
#: beyond it, by the range of bytes ijson was reading when it failed.
EXACT_POSITION_BYTES = 32 * 1024 * 1024
#: A file given as a stream that cannot seek is copied aside (in memory up to this size).
SPOOL_BYTES = 32 * 1024 * 1024
_UTF8_BOM = b"\xef\xbb\xbf"
_WHITESPACE = b" \t\r\n"


class JsonSource:
    """A seekable view of the file from its first JSON byte, read again for each pass."""

    def __init__(self, data: bytes | BinaryIO) -> None:
        stream: IO[bytes]
        if isinstance(data, bytes | bytearray | memoryview):
            stream = io.BytesIO(data)
        elif data.seekable():
            stream = data
        else:
            # Read by both passes, so it lives as long as this source (and its records) do.
            stream = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)  # noqa: SIM115
            weakref.finalize(self, stream.close)
            shutil.copyfileobj(data, stream)
            stream.seek(0)
        self._stream = stream
        self._start = stream.tell()
        if stream.read(len(_UTF8_BOM)) == _UTF8_BOM:
            self._start += len(_UTF8_BOM)
        self.reader = _TrackedReader(stream)

    def rewind(self) -> _TrackedReader:
        self._stream.seek(self._start)
        self.reader.restart()
        return self.reader

    def first_byte(self) -> bytes:
        """The first byte that is not whitespace (``b""`` for an empty file)."""
        reader = self.rewind()
        while chunk := reader.read(64 * 1024):
            stripped = chunk.lstrip(_WHITESPACE)
            if stripped:
                return stripped[:1]
        return b""

    def head(self, limit: int) -> bytes | None:
        """The whole file, if it is at most ``limit`` bytes long."""
        self.rewind()
        data = self._stream.read(limit + 1)
        return data if len(data) <= limit else None


class _TrackedReader:
    """Hands the file to ijson and remembers which bytes it handed over last, so that a
    syntax error can be placed even in a file too big to read twice in memory."""

    def __init__(self, stream: IO[bytes]) -> None:
        self._stream = stream
        self.last_start = self.end = 0

    def restart(self) -> None:
        self.last_start = self.end = 0

    def read(self, size: int = -1) -> bytes:
        data = self._stream.read(size)
        self.last_start, self.end = self.end, self.end + len(data)
        return data


def syntax_error(source: JsonSource, file: str, error: ijson.JSONError) -> LabelFileError:
    """The error that says where the file stops being JSON."""
    message = error.args[0] if error.args else "not JSON"
    if isinstance(message, bytes):
        message = message.decode("utf-8", "replace")
    # yajl's message: what is wrong, then the text around it, then an arrow under it.
    lines = [line.strip() for line in str(message).splitlines()]
    problem = f"not valid JSON ({lines[0].rstrip('.')})"
    if len(lines) > 1 and lines[1]:
        problem += f" near {lines[1][:60]!r}"
    where = _chunk(source.reader)  # before the file is read again for the exact position
    data = source.head(EXACT_POSITION_BYTES)
    where = (_exact_position(data) if data is not None else None) or where
    return LabelFileError(file, where, problem + "; fix the file's syntax there")


def _chunk(reader: _TrackedReader) -> str:
    if reader.last_start == reader.end:
        return f"byte {reader.end}"
    return f"bytes {reader.last_start}-{reader.end}"


def _exact_position(data: bytes) -> str | None:
    try:
        json.loads(data)
    except json.JSONDecodeError as exc:
        return f"line {exc.lineno} column {exc.colno}"
    except UnicodeDecodeError as exc:
        return f"byte {exc.start} (not UTF-8)"
    # json accepts what ijson refuses (NaN, Infinity, integers beyond 64 bits).
    return None


def read_top_level(source: JsonSource, file: str, *, skip: str) -> dict[str, Any]:
    """Every value of the file's top-level object but ``skip`` (which, if present, must be an
    array), reading the whole file. Raises LabelFileError for a file that is not JSON, not
    an object at the top, or names a top-level key twice."""
    events = ijson.parse(source.rewind(), use_float=True)
    try:
        return _collect_top_level(events, file, skip)
    except ijson.JSONError as exc:
        raise syntax_error(source, file, exc) from None


def _collect_top_level(events: Iterator[Any], file: str, skip: str) -> dict[str, Any]:
    _prefix, event, _value = next(events)
    if event != "start_map":
        raise LabelFileError(
            file,
            "top level",
            f"is {_kind(event)}; a COCO file is a JSON object with "
            '"images", "annotations" and "categories"',
        )
    values: dict[str, Any] = {}
    key: str | None = None
    builder: ijson.ObjectBuilder | None = None
    for prefix, event, value in events:
        if prefix == "":
            if builder is not None and key is not None:
                values[key], builder = builder.value, None
            if event == "map_key":
                key = _new_key(values, value, file)
            continue
        if builder is None and key == skip:
            if event != "start_array":
                raise LabelFileError(file, f'"{skip}"', f"is {_kind(event)}; it must be a list")
            _skip_array(events, skip)
            values[skip] = None
            continue
        if builder is None:
            builder = ijson.ObjectBuilder()
        builder.event(event, value)
    values.pop(skip, None)
    return values


def _new_key(values: dict[str, Any], key: str, file: str) -> str:
    if key in values:
        raise LabelFileError(file, "top level", f'names "{key}" twice; keep one of them')
    if key == "":
        # Its value's events would carry the top level's own (empty) prefix.
        raise LabelFileError(file, "top level", "has an empty key; remove it")
    return key


def _skip_array(events: Iterator[Any], prefix: str) -> None:
    """Consume the events up to and including the array's end, without a Python step per
    event (the array is most of the file: a million annotations are some 80 million)."""
    end = (prefix, "end_array", None)
    deque(takewhile(end.__ne__, events), maxlen=0)


_KINDS = {
    "start_map": "an object",
    "start_array": "a list",
    "string": "a string",
    "number": "a number",
    "boolean": "true or false",
    "null": "null",
}


def _kind(event: str) -> str:
    return _KINDS.get(event, event)


def stream_items(source: JsonSource, file: str, prefix: str) -> Iterator[Any]:
    """The items of the array at ``prefix`` (``annotations.item``, ``item``), built one at a
    time."""
    items = ijson.items(source.rewind(), prefix, use_float=True)
    try:
        yield from items
    except ijson.JSONError as exc:
        raise syntax_error(source, file, exc) from None
