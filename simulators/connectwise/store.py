"""The simulated ConnectWise database: plain in-memory tables, with no HTTP in sight.

Tests use the store directly to act as a person working in ConnectWise's UI::

    store.update("companies", 250, {"name": "Renamed Ltd"})   # bumps _info.lastUpdated
    store.delete("contacts", 2001)
    store.find("configurations", "company/id = 250")

and the Starlette app (`app.py`) serves the same store over ConnectWise's REST API. A record is
a list of values laid out by its `Resource` (see `schema.py`). References are shared canonical
dicts, one per referenced record, so renaming a company renames it inside every contact that
refers to it, as in ConnectWise, where references are joins.

All public methods take `lock`, so a test thread may edit while the server thread reads.

Every successful create, change and delete is reported to the functions in `listeners` as
``(collection, action, record_id, member)`` with `action` one of ConnectWise's callback actions
("added", "updated", "deleted"), still under `lock`: the simulator's callbacks hang off this
(`callbacks.py`), and a store without listeners knows nothing about HTTP. `purge` removes a
record without telling anyone, as a hard delete in ConnectWise's database would.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from simulators.connectwise.errors import FieldError, InvalidObject, NotFound
from simulators.connectwise.patch import (
    PatchError,
    apply_operation,
    check_path,
    parse_operations,
)
from simulators.connectwise.query import ListQuery, build_query
from simulators.connectwise.reference import REFERENCE_LISTS, UI_MEMBER, install
from simulators.connectwise.render import Renderer
from simulators.connectwise.schema import RESOURCES, Resource, Row
from simulators.connectwise.selection import SelectionCache, scan_after, select_ids
from simulators.connectwise.tables import Loader, Table
from simulators.connectwise.timestamps import format_datetime, utc_now
from simulators.connectwise.validation import build_row

_SMALL_TABLE = 1000  # reference lookups by name/identifier scan tables up to this size
_ADDRESS_FIELDS = ("addressLine1", "addressLine2", "city", "state", "zip", "country")

# Called after each write with (collection, action, record_id, member), under the store's lock.
Listener = Callable[[str, str, int, str], None]


class ConnectWiseStore:
    """Companies, sites, contacts, configurations, service tickets and ConnectWise's
    reference lists (members and boards among them)."""

    def __init__(
        self, *, clock: Callable[[], datetime] = utc_now, ui_member: str = UI_MEMBER
    ) -> None:
        self.lock = threading.RLock()
        self.ui_member = ui_member  # `updatedBy` of edits made through the Python API
        self._clock = clock
        self._tables = {name: Table(resource) for name, resource in RESOURCES.items()}
        self._last_stamp = ""
        self._version = 0  # bumped by every write; invalidates cached selections
        self._selections = SelectionCache()
        self._item_ids = 0
        self.listeners: list[Listener] = []
        self._load_reference_lists()

    # ----------------------------------------------------------------------------- lookups

    def table(self, collection: str) -> Table:
        """The table behind `collection` (e.g. "companies"); for the API layer and renderers."""
        try:
            return self._tables[collection]
        except KeyError:
            raise KeyError(f"unknown collection {collection!r}") from None

    def get(self, collection: str, record_id: int) -> dict[str, Any] | None:
        """A record as the API renders it (without hrefs), soft-deleted ones included."""
        with self.lock:
            table = self.table(collection)
            row = table.rows.get(record_id)
            return None if row is None else Renderer(self, None).record(table.resource, row)

    def find(
        self, collection: str, conditions: str = "", *, parent_id: int | None = None
    ) -> list[dict[str, Any]]:
        """Records matching ConnectWise `conditions`, by id; deleted companies only on request."""
        with self.lock:
            table = self.table(collection)
            ids = self.select(collection, build_query(table.resource, conditions), parent_id)
            renderer = Renderer(self, None)
            return [renderer.record(table.resource, table.rows[i]) for i in ids]

    def count(self, collection: str, conditions: str = "", *, parent_id: int | None = None) -> int:
        """How many records `find` would return."""
        with self.lock:
            resource = self.table(collection).resource
            return len(self.select(collection, build_query(resource, conditions), parent_id))

    def live_row(self, collection: str, record_id: int, parent_id: int | None = None) -> Row:
        """The stored row the API may show, or NotFound (soft-deleted records are not found)."""
        with self.lock:
            table = self.table(collection)
            if parent_id is not None:
                self._require_parent(table, parent_id)
            row = table.rows.get(record_id)
            if (
                row is None
                or table.is_deleted(row)
                or (parent_id is not None and table.parent_of.get(record_id) != parent_id)
            ):
                raise NotFound(table.resource.title, record_id)
            return row

    def reference(self, collection: str, record_id: int) -> dict[str, Any]:
        """The canonical reference object to a record (shared by every record pointing at it)."""
        table = self.table(collection)
        ref = table.refs.get(record_id)
        if ref is None:
            ref = {}
            self._fill_reference(table, record_id, table.rows[record_id], ref)
            table.refs[record_id] = ref
        return ref

    # ------------------------------------------------------------------------------ queries

    def select(self, collection: str, query: ListQuery, parent_id: int | None = None) -> list[int]:
        """Ids of every record `query` selects, in its order; cached until the next write.

        Soft-deleted records are left out unless the conditions mention `deletedFlag`. The
        list returned may be shared: do not change it.
        """
        with self.lock:
            key = (collection, parent_id, query.cache_key)
            ids = self._selections.get(key, self._version)
            if ids is None:
                table = self.table(collection)
                ids = select_ids(table, self._candidates(table, parent_id), query)
                self._selections.put(key, self._version, ids)
            return ids

    def scan_after(
        self,
        collection: str,
        query: ListQuery,
        after_id: int,
        limit: int,
        parent_id: int | None = None,
    ) -> tuple[list[Row], bool]:
        """Forward-only paging: up to `limit` matching rows with id > `after_id`, by id, and
        whether another matching row follows."""
        with self.lock:
            table = self.table(collection)
            return scan_after(table, self._candidates(table, parent_id), query, after_id, limit)

    def _candidates(self, table: Table, parent_id: int | None) -> list[int]:
        if table.resource.parent:
            if parent_id is None:
                raise ValueError(f"{table.resource.name} are listed per {table.resource.parent}")
            self._require_parent(table, parent_id)
            return table.children.get(parent_id, [])
        return table.ids

    # ------------------------------------------------------------------------------ writes

    def create(
        self,
        collection: str,
        data: Mapping[str, Any],
        *,
        parent_id: int | None = None,
        updated_by: str | None = None,
        via_api: bool = False,
    ) -> dict[str, Any]:
        """Create a record from its JSON form (POST); returns it as the API would render it.

        `parent_id` is the company of a site. Creating a company also creates its primary site
        "Main" from the company's address, as ConnectWise does.
        """
        with self.lock:
            table = self.table(collection)
            resource = table.resource
            document = dict(data)
            if "typeIds" in document and "types" not in document:  # POST-only alias
                document["types"] = [{"id": i} for i in document.pop("typeIds") or ()]
            if resource.name == "companies" and not any(document.get(f) for f in _ADDRESS_FIELDS):
                raise InvalidObject(resource.noun, [_address_required()])
            if resource.parent:
                if parent_id is None:
                    raise ValueError(f"creating {collection} needs parent_id")
                self._require_parent(table, parent_id)
            row = build_row(resource, document, None, self, via_api=via_api)
            if parent_id is not None and resource.parent:
                parent = self.reference(self._parent_collection(table), parent_id)
                row[resource.index[resource.parent]] = parent
            self._check_unique(table, row, None)
            stamp, member = self._stamp(), updated_by or self.ui_member
            if resource.name == "tickets":
                self._settle_ticket(row, None, stamp, member)
            if resource.name == "callbacks":
                self._assign_callback(row, member)
            record_id = self._insert(table, row, stamp, member)
            if resource.name == "companies":
                self._create_primary_site(row, stamp, member)
            self._version += 1
            self._notify(collection, "added", record_id, member)
            return Renderer(self, None).record(resource, row)

    def replace(
        self,
        collection: str,
        record_id: int,
        data: Mapping[str, Any],
        *,
        parent_id: int | None = None,
        updated_by: str | None = None,
        via_api: bool = False,
    ) -> dict[str, Any]:
        """Replace a record (PUT): fields missing from `data` go back to their defaults."""
        with self.lock:
            current = self.live_row(collection, record_id, parent_id)
            return self._write(collection, current, data, updated_by, via_api)

    def patch(
        self,
        collection: str,
        record_id: int,
        operations: Any,
        *,
        parent_id: int | None = None,
        updated_by: str | None = None,
        via_api: bool = False,
    ) -> dict[str, Any]:
        """Apply a JSON Patch array (PATCH); the result is validated as a whole object."""
        with self.lock:
            table = self.table(collection)
            resource = table.resource
            current = self.live_row(collection, record_id, parent_id)
            document = Renderer(self, None).document(resource, current)
            try:
                steps = parse_operations(operations)
                for op, segments, value in steps:
                    check_path(resource, segments, via_api=via_api)
                    apply_operation(document, op, segments, value)
            except PatchError as error:
                field = error.path.strip("/").split("/")[0]
                raise InvalidObject(
                    resource.noun, [FieldError("InvalidField", str(error), resource.noun, field)]
                ) from None
            return self._write(collection, current, document, updated_by, via_api)

    def update(
        self,
        collection: str,
        record_id: int,
        changes: Mapping[str, Any],
        *,
        updated_by: str | None = None,
    ) -> dict[str, Any]:
        """Change some fields, as a person editing the record in ConnectWise's UI would.

        Unlike the API, the UI may change create-only fields such as company `types`.
        """
        with self.lock:
            table = self.table(collection)
            resource = table.resource
            unknown = [name for name in changes if name not in resource.index]
            if unknown:
                errors = [
                    FieldError("InvalidField", f"{n} is not a field.", resource.noun, n)
                    for n in unknown
                ]
                raise InvalidObject(resource.noun, errors)
            current = self.live_row(collection, record_id)
            document = {**Renderer(self, None).document(resource, current), **changes}
            return self._write(collection, current, document, updated_by, False)

    def delete(
        self,
        collection: str,
        record_id: int,
        *,
        parent_id: int | None = None,
        updated_by: str | None = None,
    ) -> None:
        """Delete a record; companies are only marked deleted (`deletedFlag`), as in ConnectWise."""
        with self.lock:
            table = self.table(collection)
            resource = table.resource
            current = self.live_row(collection, record_id, parent_id)
            member = updated_by or self.ui_member
            if resource.soft_delete:
                row = list(current)
                stamp = self._stamp()
                slots = resource.index
                row[slots["deletedFlag"]] = True
                row[slots["dateDeleted"]] = stamp
                row[slots["deletedBy"]] = member
                self._set_info(resource, row, stamp, member, created=False)
                table.rows[record_id] = row
                table.unindex_unique(record_id, current)
            else:
                table.remove(record_id)
            self._version += 1
            self._notify(collection, "deleted", record_id, member)

    def purge(self, collection: str, record_id: int) -> None:
        """Remove a record outright, soft-deleted or not, and tell no listener: a hard delete
        ConnectWise never sent a callback for (for reconciliation tests)."""
        with self.lock:
            table = self.table(collection)
            if record_id not in table.rows:
                raise NotFound(table.resource.title, record_id)
            table.remove(record_id)
            self._version += 1

    def _write(
        self,
        collection: str,
        current: Row,
        document: Mapping[str, Any],
        updated_by: str | None,
        via_api: bool,
    ) -> dict[str, Any]:
        table = self.table(collection)
        resource = table.resource
        record_id = current[0]
        row = build_row(resource, document, current, self, via_api=via_api)
        self._check_unique(table, row, record_id)
        member = updated_by or self.ui_member
        stamp = self._stamp()
        if resource.name == "tickets":
            self._settle_ticket(row, current, stamp, member)
        self._set_info(resource, row, stamp, member, created=False)
        table.unindex_unique(record_id, current)
        table.rows[record_id] = row
        table.index_unique(record_id, row)
        if record_id in table.refs:  # renames show wherever the record is referenced
            self._fill_reference(table, record_id, row, table.refs[record_id])
        self._version += 1
        self._notify(collection, "updated", record_id, member)
        return Renderer(self, None).record(resource, row)

    def _check_unique(self, table: Table, row: Row, record_id: int | None) -> None:
        slot = table.unique_slot
        if slot is None or not row[slot]:
            return
        owner = table.unique.get(row[slot].casefold())
        if owner is not None and owner != record_id:
            name = table.resource.unique
            message = f"The {name} '{row[slot]}' is already in use."
            raise InvalidObject(
                table.resource.noun,
                [FieldError("ObjectExists", message, table.resource.noun, name)],
            )

    def _create_primary_site(self, company: Row, stamp: str, member: str) -> None:
        """ConnectWise stores a company's address on its primary site, "Main"."""
        sites = self._tables["sites"]
        slots = RESOURCES["companies"].index
        address = {f: company[slots[f]] for f in _ADDRESS_FIELDS if f != "state"}
        state = company[slots["state"]]
        document: dict[str, Any] = {
            **address,
            "name": "Main",
            "phoneNumber": company[slots["phoneNumber"]],
            "faxNumber": company[slots["faxNumber"]],
            "primaryAddressFlag": True,
            "defaultBillingFlag": True,
            "defaultShippingFlag": True,
            "defaultMailingFlag": True,
        }
        # The company's state is free text; the site's is a reference. A state ConnectWise
        # does not list (by identifier or name) leaves the site without one rather than
        # refusing a company whose own fields were all valid.
        for key in ("identifier", "name") if state else ():
            found = self.resolve("states", {key: state})
            if found is not None:
                document["stateReference"] = {"id": found["id"]}
                break
        row = build_row(sites.resource, document, None, self, via_api=False)
        row[sites.resource.index["company"]] = self.reference("companies", company[0])
        site_id = self._insert(sites, row, stamp, member)
        company[slots["site"]] = self.reference("sites", site_id)

    def _settle_ticket(self, row: Row, current: Row | None, stamp: str, member: str) -> None:
        """What ConnectWise derives on a ticket write: the board's default status when none
        is given (a status of another board is refused), `closedFlag` from a new status,
        `closedDate`/`closedBy` when it closes (cleared when it reopens), and `contactName`
        from the contact when not given."""
        slots = RESOURCES["tickets"].index
        statuses = self._tables["ticket_statuses"]
        board_id = row[slots["board"]]["id"]
        status = row[slots["status"]]
        if status is None:
            choices = statuses.children.get(board_id, [])
            status_slots = statuses.resource.index
            default = next(
                (i for i in choices if statuses.rows[i][status_slots["defaultFlag"]]),
                choices[0] if choices else None,
            )
            if default is not None:
                row[slots["status"]] = status = self.reference("ticket_statuses", default)
        elif statuses.parent_of.get(status["id"]) != board_id:
            message = f"The status {status['id']} is not a status of board {board_id}."
            raise InvalidObject("ticket", [FieldError("InvalidField", message, "ticket", "status")])
        # A change of status decides; otherwise the flag as written (a client may close or
        # reopen directly), and a new ticket in a closed status is closed.
        closed = bool(row[slots["closedFlag"]])
        was_closed = current is not None and bool(current[slots["closedFlag"]])
        if status is not None:
            closing = bool(statuses.rows[status["id"]][statuses.resource.index["closedStatus"]])
            if current is None:
                closed = closed or closing
            elif current[slots["status"]] is not status:
                closed = closing
        row[slots["closedFlag"]] = closed
        if closed and not was_closed:
            row[slots["closedDate"]], row[slots["closedBy"]] = stamp, member
        elif not closed:
            row[slots["closedDate"]] = row[slots["closedBy"]] = None
        contact = row[slots["contact"]]
        if contact is not None and not row[slots["contactName"]]:
            row[slots["contactName"]] = contact["name"]

    def attach_configuration(self, ticket_id: int, configuration_id: int) -> None:
        """Link a configuration to a ticket, as a person does on the ticket's Configurations
        tab; the ticket counts as updated (stamp, `updated` callback)."""
        with self.lock:
            ticket = self.live_row("tickets", ticket_id)
            self.live_row("configurations", configuration_id)
            slot = RESOURCES["tickets"].index["configurations"]
            attached = list(ticket[slot] or ())
            if all(ref["id"] != configuration_id for ref in attached):
                attached.append(self.reference("configurations", configuration_id))
            document = Renderer(self, None).document(RESOURCES["tickets"], ticket)
            ticket[slot] = attached
            self._write("tickets", ticket, document, None, False)

    def ticket_configurations(self, ticket_id: int) -> list[int]:
        """Ids of the (still existing) configurations attached to a ticket."""
        with self.lock:
            ticket = self.live_row("tickets", ticket_id)
            configurations = self._tables["configurations"].rows
            slot = RESOURCES["tickets"].index["configurations"]
            return [ref["id"] for ref in ticket[slot] or () if ref["id"] in configurations]

    def _assign_callback(self, row: Row, member: str) -> None:
        """Fields ConnectWise fills in on a new callback entry: its creator and its uuid."""
        slots = RESOURCES["callbacks"].index
        creator = self._scan(self._tables["members"], "identifier", member)
        row[slots["memberId"]] = None if creator is None else creator["id"]
        row[slots["connectWiseID"]] = str(uuid.uuid4())

    def _notify(self, collection: str, action: str, record_id: int, member: str) -> None:
        for listener in self.listeners:
            listener(collection, action, record_id, member)

    def _insert(self, table: Table, row: Row, stamp: str, member: str) -> int:
        record_id = table.next_id
        table.next_id += 1
        row[0] = record_id
        self._set_info(table.resource, row, stamp, member, created=True)
        table.add(record_id, row)
        return record_id

    # ------------------------------------------------------------------ validation helpers
    # (the `References` protocol of validation.py)

    def resolve(self, target: str, value: Mapping[str, Any]) -> dict[str, Any] | None:
        table = self._tables[target]
        record_id = value.get("id")
        if isinstance(record_id, int) and not isinstance(record_id, bool):
            return self.reference(target, record_id) if record_id in table.rows else None
        resource = table.resource
        identifier = value.get("identifier")
        if isinstance(identifier, str) and resource.reference_identifier:
            if resource.unique == "identifier":
                found = table.unique.get(identifier.casefold())
                return None if found is None else self.reference(target, found)
            return self._scan(table, "identifier", identifier)
        name = value.get("name")
        if isinstance(name, str) and len(resource.reference_name) == 1:  # e.g. statuses by name
            return self._scan(table, resource.reference_name[0], name)
        return None

    def _scan(self, table: Table, field: str, value: str) -> dict[str, Any] | None:
        if len(table.rows) > _SMALL_TABLE:
            return None
        slot, wanted = table.resource.index[field], value.casefold()
        for record_id, row in table.rows.items():
            if isinstance(row[slot], str) and row[slot].casefold() == wanted:
                return self.reference(table.resource.name, record_id)
        return None

    def row_of(self, target: str, record_id: int) -> Row | None:
        return self._tables[target].rows.get(record_id)

    def default_reference(self, target: str) -> dict[str, Any] | None:
        table = self._tables[target]
        slot = table.resource.index.get("defaultFlag")
        for record_id, row in table.rows.items():
            if slot is not None and row[slot]:
                return self.reference(target, record_id)
        return None

    def next_item_id(self) -> int:
        self._item_ids += 1
        return self._item_ids

    # ---------------------------------------------------------------------------- loading

    @contextmanager
    def bulk_load(self) -> Iterator[Loader]:
        """Hold the store for a generator inserting many records without validation."""
        with self.lock:
            loader = Loader(self._tables, self.reference, self.next_item_id)
            yield loader
            self._last_stamp = max(self._last_stamp, loader.newest_stamp)
            self._version += 1

    def add_member(
        self, identifier: str, first_name: str, last_name: str, license_class: str
    ) -> int:
        """Register a ConnectWise member (e.g. the API member owning a key pair); idempotent."""
        with self.lock:
            existing = self._scan(self._tables["members"], "identifier", identifier)
            if existing is not None:
                return int(existing["id"])
            with self.bulk_load() as loader:
                member = {
                    "identifier": identifier,
                    "firstName": first_name,
                    "lastName": last_name,
                    "licenseClass": license_class,
                }
                return install(loader, "members", member)

    def _load_reference_lists(self) -> None:
        with self.bulk_load() as loader:
            for collection, records in REFERENCE_LISTS:
                for record in records:
                    install(loader, collection, record)

    # ------------------------------------------------------------------------------ helpers

    def _stamp(self) -> str:
        """Now, for `_info.lastUpdated`: never earlier than a stamp already handed out."""
        stamp = max(format_datetime(self._clock()), self._last_stamp)
        self._last_stamp = stamp
        return stamp

    @staticmethod
    def _set_info(resource: Resource, row: Row, stamp: str, member: str, *, created: bool) -> None:
        slots = resource.index
        row[slots["lastUpdated"]] = stamp
        row[slots["updatedBy"]] = member
        if created and "dateEntered" in slots:  # callback entries have no creation stamps
            row[slots["dateEntered"]] = stamp
            row[slots["enteredBy"]] = member

    def _fill_reference(self, table: Table, record_id: int, row: Row, ref: dict[str, Any]) -> None:
        resource = table.resource
        slots = resource.index
        ref.clear()
        ref["id"] = record_id
        if resource.reference_identifier and row[slots["identifier"]] is not None:
            ref["identifier"] = row[slots["identifier"]]
        ref["name"] = " ".join(row[slots[n]] for n in resource.reference_name if row[slots[n]])

    def _parent_collection(self, table: Table) -> str:
        return table.resource.field(table.resource.parent).target

    def _require_parent(self, table: Table, parent_id: int) -> None:
        parents = self._tables[self._parent_collection(table)]
        row = parents.rows.get(parent_id)
        if row is None or parents.is_deleted(row):
            raise NotFound(parents.resource.title, parent_id)


def _address_required() -> FieldError:
    return FieldError(
        "MissingRequiredField",
        "At least one address field is required -- addressLine1, addressLine2, city, state, zip "
        "and/or country.",
        "company",
        "addressLine1",
    )
