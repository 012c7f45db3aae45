"""What text the database stores exactly, on both backends alike.

PostgreSQL refuses a NUL character in text (SQLite keeps it), neither can encode a lone
surrogate (JSON allows ``"\\ud800"``), and PostgreSQL refuses a value longer than its
``VARCHAR(n)`` (SQLite keeps it). A value that breaks one of these would fail a whole page or
mutation on one backend and pass on the other, so psasync refuses it everywhere, and never
"cleans" it into a different value: a cleaned PSA value differs from the PSA's and would be
diffed (or pushed back) on every run.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from tortoise.fields import CharField
from tortoise.models import Model

__all__ = ["NUL", "SURROGATE", "column_limits", "first_unstorable", "text_fault", "unstorable"]

NUL: Final = "nul"
SURROGATE: Final = "surrogate"


def text_fault(text: str) -> str | None:
    """``NUL`` or ``SURROGATE`` when no backend can store ``text`` exactly, else None: the one
    rule the API, the webhook receiver and the sync engine each word for their own users."""
    if "\x00" in text:
        return NUL
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return SURROGATE
    return None


def unstorable(text: str, max_length: int | None = None) -> str | None:
    """Why ``text`` cannot be stored as it is, or None when it can."""
    fault = text_fault(text)
    if fault == NUL:
        return "holds a NUL character"
    if fault == SURROGATE:
        return "holds a lone surrogate (not a valid Unicode character)"
    if max_length is not None and len(text) > max_length:
        return f"is longer than {max_length} characters"
    return None


def column_limits(model: type[Model]) -> dict[str, int]:
    """``max_length`` of each of ``model``'s text columns that has one."""
    return {
        name: field.max_length
        for name, field in model._meta.fields_map.items()
        if isinstance(field, CharField)
    }


def first_unstorable(
    values: Mapping[str, Any], limits: Mapping[str, int] | None = None
) -> tuple[str, str] | None:
    """The first value among ``values`` (nested lists and objects too) that cannot be
    stored, as (path, reason); None when every one can. ``limits``: column → max length."""
    for key, value in values.items():
        found = _walk(value, key, (limits or {}).get(key))
        if found is not None:
            return found
    return None


def _walk(value: Any, path: str, limit: int | None) -> tuple[str, str] | None:
    if isinstance(value, str):
        reason = unstorable(value, limit)
        return (path, reason) if reason is not None else None
    if isinstance(value, Mapping):
        for key, item in value.items():
            if isinstance(key, str) and (reason := unstorable(key)) is not None:
                return f"{path}.{key!r}", reason
            if (found := _walk(item, f"{path}.{key}", None)) is not None:
                return found
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            if (found := _walk(item, f"{path}[{index}]", None)) is not None:
                return found
    return None
