"""Bulk inserts from plain rows, for the sync engine's pages.

``Model.bulk_create`` needs a model instance per row, and Tortoise 1.x instances are costly
to build (``__setattr__`` inspects every attribute; measured ~150 µs a row with the per-field
conversion, 5k rows/s on SQLite). A page of a first sync inserts thousands of rows, so this
feeds the executor's own INSERT statement with rows converted field by field, the way
``bulk_create`` converts them, minus the instances. Use inside the caller's transaction.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from tortoise.fields import Field
from tortoise.fields.data import CharField, UUIDField
from tortoise.models import Model

Converter = Callable[[Any], Any]


def _converter(model: type[Model], field: Field[Any]) -> Converter:
    if type(field).to_db_value is Field.to_db_value and not isinstance(field, CharField):
        # Plain ints, booleans and text: the database driver takes them as they are.
        return lambda value: value
    return lambda value: field.to_db_value(value, model)


def _default(field: Field[Any]) -> Callable[[], Any]:
    default = field.default
    if callable(default):
        return default  # type: ignore[no-any-return]
    return lambda: default


async def insert_rows(model: type[Model], rows: Sequence[Mapping[str, Any]]) -> None:
    """INSERT ``rows`` (field name → value; missing fields take their default)."""
    if not rows:
        return
    db = model._meta.db
    executor = db.executor_class(model, db)
    fields_map = model._meta.fields_map
    plan = [
        (name, _converter(model, fields_map[name]), _default(fields_map[name]))
        for name in executor.regular_columns
    ]
    values = [
        [
            convert(row[name]) if name in row else convert(default())
            for name, convert, default in plan
        ]
        for row in rows
    ]
    await db.execute_many(executor.insert_query, values)


async def update_rows(
    model: type[Model], fields: Sequence[str], rows: Sequence[Mapping[str, Any]]
) -> None:
    """UPDATE ``fields`` of each row, found by its primary key (``bulk_update`` without the
    model instances). Use inside the caller's transaction."""
    if not rows:
        return
    db = model._meta.db
    executor = db.executor_class(model, db)
    sql = executor.get_update_sql(list(fields), None)
    fields_map = model._meta.fields_map
    pk = model._meta.pk_attr
    convert = [_converter(model, fields_map[name]) for name in fields]
    key = _converter(model, fields_map[pk])
    values = [
        [c(row[name]) for name, c in zip(fields, convert, strict=True)] + [key(row[pk])]
        for row in rows
    ]
    await db.execute_many(sql, values)


async def update_instances(
    model: type[Model], instances: Sequence[Model], fields: Sequence[str]
) -> None:
    """``bulk_update`` by primary key, one prepared UPDATE per row. Tortoise's bulk_update
    repeats the id list once per column, which PostgreSQL answers with a full table scan
    (75 ms per page at 200,000 links); each row by its key stays proportional to the page."""
    pk = model._meta.pk_attr
    await update_rows(
        model,
        fields,
        [{name: getattr(i, name) for name in (*fields, pk)} for i in instances],
    )


async def lock_rows(model: type[Model], ids: Sequence[Any]) -> None:
    """Lock these rows until the caller's transaction ends, so what it reads next is what it
    writes over. PostgreSQL: ``SELECT … FOR UPDATE`` in key order (two writers locking
    overlapping rows then queue instead of deadlocking). SQLite needs nothing: a transaction
    there already excludes every other writer of the process, and SQLite mode is one process.
    """
    if not ids:
        return
    db = model._meta.db
    if db.capabilities.dialect != "postgres":
        return
    field = model._meta.fields_map[model._meta.pk_attr]
    keys: list[Any] = sorted(
        {uuid.UUID(str(i)) if isinstance(field, UUIDField) else i for i in ids}, key=str
    )
    table = model._meta.db_table
    column = field.source_field or model._meta.pk_attr
    await db.execute_query(
        f'SELECT 1 FROM "{table}" WHERE "{column}" = ANY($1) ORDER BY "{column}" FOR UPDATE',  # noqa: S608
        [keys],
    )
