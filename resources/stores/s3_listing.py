"""One batch of an S3 listing: from ListObjectsV2 for a bucket without versions, or from
ListObjectVersions (the latest version of each key) for a bucket that keeps them.

Each function takes ``send``, which runs one listing request against the client (with retries
and translated errors), and returns a :data:`Batch`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

#: ``send(action, request)``: the answer of ``request(client)``; ``action`` names it in errors.
Send = Callable[[str, Callable[[Any], dict[str, Any]]], dict[str, Any]]
#: ``(entries, cursor, marker, more)``: the entries in the server's order, the key to resume
#: after, where the server resumes (a continuation token or a version id) and whether more follow.
Batch = tuple[list[dict[str, Any]], str, str | None, bool]


def list_objects(
    send: Send, bucket: str, prefix: str, cursor: str, token: str | None, limit: int
) -> Batch:
    args: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix, "MaxKeys": limit}
    if token:
        args["ContinuationToken"] = token
    elif cursor:
        args["StartAfter"] = cursor
    answer = send("list", lambda c: c.list_objects_v2(**args))
    entries: list[dict[str, Any]] = answer.get("Contents", [])
    token = answer.get("NextContinuationToken")
    more = bool(answer.get("IsTruncated")) and bool(token or entries)
    return entries, entries[-1]["Key"] if entries else cursor, token, more


def list_versions(
    send: Send, bucket: str, prefix: str, cursor: str, version_marker: str | None, limit: int
) -> Batch:
    args: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix, "MaxKeys": limit}
    if cursor:
        args["KeyMarker"] = cursor
    if version_marker:
        args["VersionIdMarker"] = version_marker
    answer = send("list versions", lambda c: c.list_object_versions(**args))
    # Delete markers come in their own list ("DeleteMarkers"), so a deleted key's versions
    # all have IsLatest false and drop out here.
    entries = [v for v in answer.get("Versions", []) if v.get("IsLatest")]
    more = bool(answer.get("IsTruncated"))
    next_key = answer.get("NextKeyMarker") or (entries[-1]["Key"] if entries else cursor)
    return entries, next_key, answer.get("NextVersionIdMarker"), more
