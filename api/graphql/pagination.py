"""Relay-style connections over keyset pages: ``first``/``after``, bounded, with ``totalCount``.

A cursor holds the last row's sort value and id, so the next page is one indexed range query
(``(sort, id) > (value, id)``) however deep it is; ``totalCount`` is a separate COUNT, run
only when asked for.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Any, Generic, TypeVar

import strawberry
from tortoise.expressions import Q
from tortoise.queryset import QuerySet

from api.graphql.permissions import PublicError
from api.graphql.rows import fetch

MAX_PAGE = 500
DEFAULT_PAGE = 50

T = TypeVar("T")


@strawberry.enum
class SortDirection(Enum):
    ASC = "ASC"
    DESC = "DESC"


@strawberry.type
class PageInfo:
    has_next_page: bool
    end_cursor: str | None


@strawberry.type
class Edge(Generic[T]):
    node: T
    sort_value: strawberry.Private[Any]
    row_id: strawberry.Private[Any]

    @strawberry.field(description="Pass as `after` to get the page that follows this item.")
    def cursor(self) -> str:  # encoded only when asked for: most clients use endCursor
        return encode_cursor(self.sort_value, self.row_id)


@strawberry.type
class Connection(Generic[T]):
    edges: list[Edge[T]]
    page_info: PageInfo
    _count: strawberry.Private[Callable[[], Awaitable[int]]]

    @strawberry.field(description="All items matching the filters (one extra COUNT query).")
    async def total_count(self) -> int:
        return await self._count()

    @strawberry.field(description="The page's items, without cursors.")
    def nodes(self) -> list[T]:
        return [edge.node for edge in self.edges]


def page_size(first: int | None) -> int:
    size = DEFAULT_PAGE if first is None else first
    if not 0 <= size <= MAX_PAGE:
        raise PublicError(f"first must be between 0 and {MAX_PAGE}", "BAD_USER_INPUT")
    return size


def encode_cursor(value: Any, row_id: Any) -> str:
    if isinstance(value, datetime):
        value = {"t": value.isoformat()}
    # Ids are UUIDs, or integers for sequence-keyed tables (the outbox).
    key = row_id if isinstance(row_id, int) else str(row_id)
    raw = json.dumps([value, key], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[Any, uuid.UUID | int]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        value, row_id = json.loads(base64.urlsafe_b64decode(padded.encode()))
        if isinstance(value, dict):
            value = datetime.fromisoformat(value["t"])
        if isinstance(row_id, int) and not isinstance(row_id, bool):
            return value, row_id
        return value, uuid.UUID(row_id)
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise PublicError("after is not a cursor this API gave out", "BAD_USER_INPUT") from exc


@dataclass(frozen=True)
class Ordering:
    column: str  # a column (or annotation) that is never NULL
    direction: SortDirection = SortDirection.ASC


async def keyset_page(
    query: QuerySet[Any],
    ordering: Ordering,
    first: int | None,
    after: str | None,
    columns: Sequence[str],
    build: Callable[[dict[str, Any]], T],
    lazy: frozenset[str] = frozenset(),
) -> Connection[T]:
    """One page of ``query`` as plain rows (``values``), turned into types by ``build``."""
    size = page_size(first)
    column, asc = ordering.column, ordering.direction == SortDirection.ASC
    counted = query
    if after:
        value, row_id = decode_cursor(after)
        op = "gt" if asc else "lt"
        # The first term is redundant but gives the planner an index range to start from:
        # without it PostgreSQL reads every row before the cursor, page after page.
        query = query.filter(**{f"{column}__{op}e": value}).filter(
            Q(**{f"{column}__{op}": value}) | Q(**{column: value, f"id__{op}": row_id})
        )
    order = (column, "id") if asc else (f"-{column}", "-id")
    wanted = list(dict.fromkeys([*columns, column]))
    rows = await fetch(query.order_by(*order).limit(size + 1), wanted, lazy)
    more = len(rows) > size
    rows = rows[:size]
    edges = [Edge(node=build(row), sort_value=row[column], row_id=row["id"]) for row in rows]

    async def count() -> int:
        return await counted.count()

    return Connection(
        edges=edges,
        page_info=PageInfo(has_next_page=more, end_cursor=edges[-1].cursor() if edges else None),
        _count=count,
    )
