"""Choosing the records of a list request.

Navigable paging needs the whole ordered selection (for ``last`` and ``/count``), so selections
are cached until the next write: paging through 100k records costs one scan, not one per page.
Forward-only paging never needs the whole selection: it bisects to the first id after `pageId`
and examines rows only until the page is full.
"""

from __future__ import annotations

import bisect
from collections import OrderedDict
from collections.abc import Hashable

from simulators.connectwise.conditions import Predicate
from simulators.connectwise.query import ListQuery, order_ids
from simulators.connectwise.schema import Row
from simulators.connectwise.tables import Table

_CACHED_SELECTIONS = 32


def row_test(table: Table, query: ListQuery) -> Predicate | None:
    """The query's predicate, hiding soft-deleted records unless it asks about `deletedFlag`."""
    test = query.test
    slot = table.deleted_slot
    if slot is None or "deletedFlag" in query.mentions:
        return test
    if test is None:
        return lambda row: not row[slot]
    return lambda row: not row[slot] and test(row)


def select_ids(table: Table, candidates: list[int], query: ListQuery) -> list[int]:
    """Ids among `candidates` (ascending) that `query` selects, in the query's order."""
    test = row_test(table, query)
    rows = table.rows
    ids = candidates if test is None else [i for i in candidates if test(rows[i])]
    return order_ids(ids, rows, query.order) if query.order else ids


def scan_after(
    table: Table, candidates: list[int], query: ListQuery, after_id: int, limit: int
) -> tuple[list[Row], bool]:
    """Up to `limit` selected rows with id > `after_id`, and whether another one follows."""
    test = row_test(table, query)
    rows = table.rows
    page: list[Row] = []
    for position in range(bisect.bisect_right(candidates, after_id), len(candidates)):
        row = rows[candidates[position]]
        if test is None or test(row):
            if len(page) == limit:
                return page, True
            page.append(row)
    return page, False


class SelectionCache:
    """The most recently used selections, each valid for the store version it was made at."""

    def __init__(self) -> None:
        self._entries: OrderedDict[Hashable, tuple[int, list[int]]] = OrderedDict()

    def get(self, key: Hashable, version: int) -> list[int] | None:
        entry = self._entries.get(key)
        if entry is None or entry[0] != version:
            return None
        self._entries.move_to_end(key)
        return entry[1]

    def put(self, key: Hashable, version: int, ids: list[int]) -> None:
        self._entries[key] = (version, ids)
        self._entries.move_to_end(key)
        if len(self._entries) > _CACHED_SELECTIONS:
            self._entries.popitem(last=False)
