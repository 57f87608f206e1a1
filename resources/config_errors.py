"""How an invalid config is reported: one line a problem, naming the field, what is wrong and
what to do, with the value given shown short and never a secret."""

from __future__ import annotations

import re
import reprlib
from itertools import islice
from typing import TYPE_CHECKING, Any

from resources.stores.options import env_field_for, is_secret_like

if TYPE_CHECKING:
    from pydantic import ValidationError

#: An invalid config's message lists this many problems at most, and is this long at most.
MAX_LISTED_PROBLEMS = 20
MAX_MESSAGE_CHARS = 6000


class _ShortRepr(reprlib.Repr):
    """A short repr for error messages that never shows a secret: the values of secret-like
    keys are hidden, and so is the part of a URL before an '@'."""

    _url_user = re.compile(r"(://)[^@\s]*@")

    def __init__(self) -> None:
        super().__init__()
        self.maxlevel, self.maxdict, self.maxlist, self.maxtuple = 3, 4, 6, 6
        self.maxstring, self.maxother, self.maxlong = 60, 60, 40

    def repr_str(self, x: str, level: int) -> str:
        return super().repr_str(self._url_user.sub(r"\1***@", x), level)

    def repr_dict(self, x: dict[Any, Any], level: int) -> str:
        if not x:
            return "{}"
        if level <= 0:
            return "{...}"
        pieces = [
            f"{self.repr1(key, level - 1)}: "
            + ("<hidden>" if is_secret_like(str(key)) else self.repr1(value, level - 1))
            for key, value in islice(x.items(), self.maxdict)
        ]
        if len(x) > self.maxdict:
            pieces.append("...")
        return "{" + ", ".join(pieces) + "}"


_short_repr = _ShortRepr().repr


def _named_parts(loc: tuple[Any, ...]) -> list[str | int]:
    """The keys and indexes of an error's location, without pydantic's validator tags."""
    return [part for part in loc if isinstance(part, int) or not part.startswith("function-")]


def _field_path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in _named_parts(loc):
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            key = part if len(part) <= 60 else part[:57] + "..."  # an unknown key can be long
            out += f".{key}" if out else key
    return out or "(top level)"


def _problem(err: Any) -> str:
    """What one validation error says: the field, what is wrong and what to do; the value
    given too, unless it may be a secret or is a whole mapping (its own lines show it)."""
    parts = _named_parts(tuple(err["loc"]))
    field = parts[-1] if parts and isinstance(parts[-1], str) else ""
    secret = any(isinstance(part, str) and is_secret_like(part) for part in parts)
    kind, message = err["type"], err["msg"].removeprefix("Value error, ")
    if kind == "extra_forbidden":
        message = (
            "a secret never goes in the config (its value is not shown here): put it in an "
            f"environment variable and name that variable in {env_field_for(field)}"
            if secret
            else "unknown key; remove it or check its spelling"
        )
    elif kind == "string_pattern_mismatch" and field.endswith("_env"):
        message = (
            "must be the NAME of an environment variable (letters, digits and underscores, not "
            "starting with a digit), not its value: put the value in a variable and write the "
            "variable's name here (what was given is not shown)"
        )
    elif kind == "string_pattern_mismatch" and field == "name":
        message += " (letters, digits and underscores only: the name becomes part of Dagster names)"
    hide = secret or kind == "missing" or isinstance(err.get("input"), dict)
    got = "" if hide else f" (got {_short_repr(err.get('input'))})"
    return f"  {_field_path(tuple(err['loc']))}: {message}{got}"


def format_validation_error(origin: str, exc: ValidationError) -> str:
    """The message for an invalid config read from ``origin``: its first problems, one a line,
    cut to ``MAX_MESSAGE_CHARS``."""
    errors = exc.errors(include_url=False, include_context=False)
    lines = [f"{origin} is not a valid Bucketlake config:"]
    lines += [_problem(err) for err in errors[:MAX_LISTED_PROBLEMS]]
    if len(errors) > MAX_LISTED_PROBLEMS:
        lines.append(f"  ... and {len(errors) - MAX_LISTED_PROBLEMS} more problems")
    message = "\n".join(lines)
    if len(message) <= MAX_MESSAGE_CHARS:
        return message
    return message[:MAX_MESSAGE_CHARS] + " ... (cut: fix the problems above first)"
