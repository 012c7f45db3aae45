"""Build ConnectWise ``conditions`` strings from values, never by pasting text.

The grammar (psa-apis.md 1.3): strings in double or single quotes, bare numbers, ``true``/
``false``, ``null``, datetimes in square brackets (``[2024-01-01T00:00:00Z]``), operators
``= != < <= > >= contains like in not``, ``and``/``or`` with parentheses, references as
``ref/field``.

ConnectWise does not document escapes inside strings. We read backslash as the escape
character (the conventional reading): backslashes are doubled, and the quote character is the
one the value does not contain, so ordinary values (``O'Brien``, ``24" monitor``) need no quote
escape; only a value holding both kinds gets ``\\"``. Field names and operators are checked
against fixed patterns, so a value can never turn into syntax.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from datetime import UTC, date, datetime

__all__ = [
    "CwValue",
    "cw_and",
    "cw_cmp",
    "cw_datetime",
    "cw_eq",
    "cw_field",
    "cw_in",
    "cw_or",
    "cw_quote",
    "cw_value",
]

CwValue = str | int | float | bool | datetime | None

_FIELD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:/[A-Za-z_][A-Za-z0-9_]*)*")
_OPERATORS = frozenset(
    {"=", "!=", "<", "<=", ">", ">=", "contains", "like", "not contains", "not like"}
)


def cw_field(name: str) -> str:
    """Return ``name`` if it is a plain field path (``status/id``, ``_info/lastUpdated``)."""
    if not _FIELD.fullmatch(name):
        raise ValueError(f"not a ConnectWise field name: {name!r}")
    return name


def cw_quote(value: str) -> str:
    """Quote a string literal: ``"Acme"``, ``'24" monitor'``, ``"a\\\\b"``.

    Backslashes are always doubled; the quote character is the one ``value`` does not contain,
    and only a value holding both kinds gets ``\\"`` escapes.
    """
    if "\x00" in value:
        raise ValueError("ConnectWise condition strings cannot contain NUL characters")
    escaped = value.replace("\\", "\\\\")
    if '"' not in value:
        return f'"{escaped}"'
    if "'" not in value:
        return f"'{escaped}'"
    return '"' + escaped.replace('"', '\\"') + '"'


def cw_datetime(value: datetime | date) -> str:
    """A datetime literal in UTC, to the second: ``[2024-01-01T00:00:00Z]``.

    Naive datetimes are refused (whose clock would they be on?). Sub-second parts are dropped,
    which moves a ``lastUpdated >`` cursor back, never forward. A ``date`` means its midnight UTC.
    """
    if not isinstance(value, datetime):
        value = datetime(value.year, value.month, value.day, tzinfo=UTC)
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("cw_datetime needs a timezone-aware datetime")
    return value.astimezone(UTC).strftime("[%Y-%m-%dT%H:%M:%SZ]")


def cw_value(value: CwValue | date) -> str:
    """Any supported Python value as a condition literal."""
    if value is None:
        return "null"
    if isinstance(value, bool):  # before int: bool is an int
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("ConnectWise conditions cannot hold NaN or infinity")
        return repr(value)
    if isinstance(value, datetime | date):
        return cw_datetime(value)
    if isinstance(value, str):
        return cw_quote(value)
    raise TypeError(f"cannot use a {type(value).__name__} in a ConnectWise condition")


def cw_cmp(field: str, operator: str, value: CwValue) -> str:
    """``field operator value``, e.g. ``cw_cmp("lastUpdated", ">", dt)``."""
    op = " ".join(operator.lower().split())
    if op not in _OPERATORS:
        raise ValueError(f"not a ConnectWise operator: {operator!r}")
    return f"{cw_field(field)} {op} {cw_value(value)}"


def cw_eq(field: str, value: CwValue) -> str:
    """``field = value``."""
    return cw_cmp(field, "=", value)


def cw_in(field: str, values: Iterable[CwValue]) -> str:
    """``field in (v1, v2, ...)``; an empty list is refused (it has no valid spelling)."""
    literals = [cw_value(v) for v in values]
    if not literals:
        raise ValueError(f"cw_in({field!r}, ...) needs at least one value")
    return f"{cw_field(field)} in ({', '.join(literals)})"


def cw_and(*parts: str | None) -> str:
    """Join conditions with ``and``; empty parts are skipped and each part is parenthesised."""
    return _join(" and ", parts)


def cw_or(*parts: str | None) -> str:
    """Join conditions with ``or``; empty parts are skipped and each part is parenthesised."""
    return _join(" or ", parts)


def _join(operator: str, parts: Iterable[str | None]) -> str:
    kept = [p for p in parts if p]
    if len(kept) == 1:
        return kept[0]
    # Parentheses keep "a or b" inside an "and" meaning what it said.
    return operator.join(f"({p})" for p in kept)
