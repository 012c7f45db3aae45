"""Plain rows for the read path, converted once and cheaply.

Tortoise's ``values()`` converts every cell through its field (time zone look-ups per
datetime, a parser library for SQLite's text datetimes); on a page of 500 records with their
relations that costs several times the SQL itself. Here the same query is run and each
column gets one converter chosen up front from its field type: SQLite's text becomes
datetimes, booleans and JSON; PostgreSQL's native values pass through. Ids stay as the
driver gives them (text on SQLite, UUIDs on PostgreSQL): parsing tens of thousands of UUIDs
per page only to print them again in global ids was the largest cost of a page, and the
loaders key by their text form.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from functools import cache
from typing import Any

from tortoise import fields
from tortoise.models import Model
from tortoise.queryset import QuerySet

Converter = Callable[[Any], Any]


def as_datetime(value: Any) -> Any:
    """A datetime cell as SQLite (text) or PostgreSQL gives it, as an aware datetime."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if isinstance(value, datetime) and value.tzinfo is None:
        value = value.replace(tzinfo=UTC)  # stored in UTC
    return value


def _bool(value: Any) -> bool:
    return bool(value)


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, (str, bytes)) else value


def _field(model: type[Model], name: str) -> fields.Field[Any] | None:
    head, _, rest = name.partition("__")
    field = model._meta.fields_map.get(head)
    if rest:
        related = getattr(field, "related_model", None)
        return _field(related, rest) if related is not None else None
    return field


@cache
def converters(
    model: type[Model], columns: tuple[str, ...], lazy: frozenset[str] = frozenset()
) -> tuple[tuple[str, Converter], ...]:
    """One converter per column that needs one; ``lazy`` JSON columns stay as text."""
    chosen: list[tuple[str, Converter]] = []
    for column in columns:
        field = _field(model, column)
        if isinstance(field, fields.DatetimeField):
            chosen.append((column, as_datetime))
        elif isinstance(field, fields.BooleanField):
            chosen.append((column, _bool))
        elif isinstance(field, fields.JSONField) and column not in lazy:
            chosen.append((column, _json))
    return tuple(chosen)


async def fetch(
    query: QuerySet[Any], columns: Sequence[str], lazy: frozenset[str] = frozenset()
) -> list[dict[str, Any]]:
    """``await query.values(*columns)``, with lean conversion (``lazy``: JSON left as text,
    for the type to decode if a query asks for it)."""
    values = query.values(*columns)
    values._choose_db_if_not_chosen()
    values._make_query()
    sql, params = values.query.get_parameterized_sql()
    rows: list[dict[str, Any]] = await values._db.execute_query_dict(sql, params)
    convert = converters(query.model, tuple(columns), lazy)  # type: ignore[arg-type]
    for row in rows:
        for column, function in convert:
            value = row[column]
            if value is not None:
                row[column] = function(value)
    return rows
