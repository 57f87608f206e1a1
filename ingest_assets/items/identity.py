"""Stable item identity (DESIGN §1): derived from (source, key[, frame]), never from the batch."""

from __future__ import annotations

import hashlib


def item_id(source: str, key: str, frame: int | None = None) -> str:
    """A 32-hex-digit id, the same for the same object wherever and whenever it is claimed."""
    text = f"{source}\x00{key}" if frame is None else f"{source}\x00{key}\x00{frame}"
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]
