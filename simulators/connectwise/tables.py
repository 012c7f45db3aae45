"""Where records live: one `Table` per resource, and a `Loader` for bulk inserts."""

from __future__ import annotations

import bisect
from collections.abc import Callable, Mapping
from typing import Any

from simulators.connectwise.schema import Kind, Resource, Row


class Table:
    """One resource's records and the indexes the API needs to stay fast."""

    def __init__(self, resource: Resource) -> None:
        self.resource = resource
        self.rows: dict[int, Row] = {}
        self.ids: list[int] = []  # ascending; soft-deleted records included
        self.refs: dict[int, dict[str, Any]] = {}  # canonical references, built on first use
        self.next_id = resource.first_id
        self.children: dict[int, list[int]] = {}  # parent id -> ascending ids (sites)
        self.parent_of: dict[int, int] = {}  # kept after deletes, for hrefs of dangling refs
        self.unique: dict[str, int] = {}  # casefolded unique value -> id of a live record
        slots = resource.index
        self.deleted_slot = slots["deletedFlag"] if resource.soft_delete else None
        self.parent_slot = slots[resource.parent] if resource.parent else None
        self.unique_slot = slots[resource.unique] if resource.unique else None

    def is_deleted(self, row: Row) -> bool:
        return self.deleted_slot is not None and bool(row[self.deleted_slot])

    def add(self, record_id: int, row: Row) -> None:
        """Index a new row; ids are allocated in ascending order, so appending keeps order."""
        self.rows[record_id] = row
        self.ids.append(record_id)
        if self.parent_slot is not None:
            parent = row[self.parent_slot]["id"]
            self.children.setdefault(parent, []).append(record_id)
            self.parent_of[record_id] = parent
        self.index_unique(record_id, row)

    def remove(self, record_id: int) -> None:
        row = self.rows.pop(record_id)
        del self.ids[bisect.bisect_left(self.ids, record_id)]
        if self.parent_slot is not None:
            siblings = self.children[self.parent_of[record_id]]
            del siblings[bisect.bisect_left(siblings, record_id)]
        self.unindex_unique(record_id, row)

    def index_unique(self, record_id: int, row: Row) -> None:
        if self.unique_slot is not None and row[self.unique_slot] and not self.is_deleted(row):
            self.unique[row[self.unique_slot].casefold()] = record_id

    def unindex_unique(self, record_id: int, row: Row) -> None:
        if self.unique_slot is not None and row[self.unique_slot]:
            key = row[self.unique_slot].casefold()
            if self.unique.get(key) == record_id:
                del self.unique[key]


class Loader:
    """Inserts records as given, for dataset generators: no validation, no clock.

    Values must already be in stored form: references from `reference`, datetimes as canonical
    strings, and `_info` fields (`lastUpdated`, `updatedBy`, ...) supplied by the caller.
    """

    def __init__(
        self,
        tables: Mapping[str, Table],
        reference: Callable[[str, int], dict[str, Any]],
        next_item_id: Callable[[], int],
    ) -> None:
        self._tables = tables
        self._reference = reference
        self._next_item_id = next_item_id
        self.newest_stamp = ""  # the latest `lastUpdated` loaded
        self._lists = {
            name: tuple(
                i
                for i, f in enumerate(t.resource.fields)
                if f.kind in (Kind.REFERENCES, Kind.ITEMS) and not f.omit_empty
            )
            for name, t in self._tables.items()
        }
        self._names = {
            name: tuple(f.name for f in t.resource.fields) for name, t in self._tables.items()
        }

    def insert(
        self, collection: str, values: Mapping[str, Any], *, record_id: int | None = None
    ) -> int:
        """Store `values` as a new record and return its id (the next free one by default)."""
        table = self._tables[collection]
        if record_id is None:
            record_id = table.next_id
        elif table.ids and record_id <= table.ids[-1]:
            raise ValueError(
                f"{collection} ids must increase; {record_id} is not above {table.ids[-1]}"
            )
        table.next_id = record_id + 1
        row = list(map(values.get, self._names[collection]))
        row[0] = record_id
        for slot in self._lists[collection]:
            if row[slot] is None:
                row[slot] = []
        table.add(record_id, row)
        stamp = row[table.resource.index["lastUpdated"]]
        if stamp is not None and stamp > self.newest_stamp:
            self.newest_stamp = stamp
        return record_id

    def skip_ids(self, collection: str, count: int) -> None:
        """Leave a gap in the ids, as deleted records do in a real database."""
        self._tables[collection].next_id += count

    def reference(self, collection: str, record_id: int) -> dict[str, Any]:
        """The canonical reference to a loaded record."""
        return self._reference(collection, record_id)

    def next_item_id(self) -> int:
        """An id for a communication item."""
        return self._next_item_id()

    def set(self, collection: str, record_id: int, field: str, value: Any) -> None:
        """Set one stored value in place (e.g. a company's primary site, loaded after it)."""
        table = self._tables[collection]
        table.rows[record_id][table.resource.index[field]] = value
