"""Include/exclude globs over object keys: ``*`` within one path segment, ``**`` across
segments (``**/`` also matches no folder at all), ``?`` one character; case-insensitive."""

from __future__ import annotations

import re
from collections.abc import Sequence


def glob_to_regex(pattern: str) -> str:
    out = []
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return "".join(out)


class KeyFilter:
    """Keeps keys that match an include pattern and no exclude pattern."""

    def __init__(self, include: Sequence[str], exclude: Sequence[str]) -> None:
        self._include = self._compile(include)
        self._exclude = self._compile(exclude)

    @staticmethod
    def _compile(patterns: Sequence[str]) -> re.Pattern[str] | None:
        if not patterns:
            return None
        return re.compile("|".join(f"(?:{glob_to_regex(p)})" for p in patterns), re.IGNORECASE)

    def __call__(self, key: str) -> bool:
        if self._include is not None and not self._include.fullmatch(key):
            return False
        return not (self._exclude is not None and self._exclude.fullmatch(key))
