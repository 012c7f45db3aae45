"""The records of one simulated Pulseway PSA tenant, with the rules the API enforces.

Records are plain dicts keyed by camelCase field names (the input DTO's fields plus ``id`` and
the audit fields ``createdBy``/``createdOn``/``modifiedBy``/``modifiedOn``; times are datetimes).
The API handlers and tests share these methods; tests act as a UI user with `update`, `delete`,
`purge` and `add_location` (``modifiedBy`` = `UI_USER_ID` unless told otherwise).

Tickets are opened and changed from Python only (`create_ticket`, `update`, `delete`): the
simulator serves them read-only over the API.

Every write to an account, contact, hardware asset or ticket (API or UI; a location's stamps its
account) calls each of `listeners` with a `Change`, still under `lock`: the simulator's webhooks
hang off this (`webhooks.py`). `purge` tells nobody (a deletion Pulseway never notified).
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

from simulators.pulseway import reference as ref
from simulators.pulseway.wire import invalid, not_found

Record = dict[str, Any]
KINDS = ("accounts", "locations", "contacts", "assets", "tickets")
_TITLES = {
    "accounts": "Account",
    "locations": "Location",
    "contacts": "Contact",
    "assets": "Asset",
    "tickets": "Ticket",
}


class Change(NamedTuple):
    """One write, as store listeners see it: `kind` accounts, contacts or assets; `action`
    created, updated or deleted; `user` the employee who made it; `at` its modifiedOn."""

    kind: str
    action: str
    record_id: int
    user: int
    at: datetime


Listener = Callable[[Change], None]
_NOTIFIED = frozenset({"accounts", "contacts", "assets", "tickets"})


class Clock:
    """The simulator's time: real UTC time (whole seconds) until `set`, then fixed and moved
    only by `set` and `advance`."""

    def __init__(self, start: datetime | None = None) -> None:
        self._fixed = start.astimezone(UTC) if start is not None else None

    def now(self) -> datetime:
        if self._fixed is not None:
            return self._fixed
        return datetime.now(UTC).replace(microsecond=0)

    def set(self, moment: datetime) -> None:
        self._fixed = moment.astimezone(UTC)

    def advance(self, seconds: float = 0.0, **delta: float) -> datetime:
        self._fixed = self.now() + timedelta(seconds=seconds, **delta)
        return self._fixed


class PulsewayStore:
    """Accounts (with locations and their addresses), contacts (with e-mails and phones) and
    hardware assets, plus the tenant's reference lists (see `reference`)."""

    def __init__(self, clock: Clock | None = None, tenant: str = "simulated") -> None:
        self.clock = clock or Clock()
        self.tenant = tenant
        self.lock = threading.RLock()
        self.accounts: dict[int, Record] = {}
        self.locations: dict[int, Record] = {}
        self.contacts: dict[int, Record] = {}
        self.assets: dict[int, Record] = {}
        self.tickets: dict[int, Record] = {}
        self.employees = {**ref.EMPLOYEES, **ref.MORE_EMPLOYEES}
        self.listeners: list[Listener] = []
        self._ids = {name: itertools.count(1) for name in (*KINDS, "addresses", "emails", "phones")}

    # ----------------------------------------------------------------------- reading

    def table(self, kind: str) -> dict[int, Record]:
        if kind not in KINDS:
            raise ValueError(f"unknown kind {kind!r}; one of {KINDS}")
        tables: dict[int, Record] = getattr(self, kind)
        return tables

    def get(self, kind: str, record_id: int) -> Record:
        """The record, or a 'not found' ApiError."""
        record = self.table(kind).get(record_id)
        if record is None:
            raise not_found(_TITLES[kind], record_id)
        return record

    def count(self, kind: str) -> int:
        return len(self.table(kind))

    def locations_of(self, account_id: int) -> list[Record]:
        return [self.locations[i] for i in self.get("accounts", account_id)["locationIds"]]

    def main_location(self, account_id: int) -> Record | None:
        locations = self.locations_of(account_id)
        return next(
            (loc for loc in locations if loc["isMain"]), locations[0] if locations else None
        )

    def next_id(self, counter: str) -> int:
        return next(self._ids[counter])

    # ------------------------------------------------------------------ API writes

    def create_account(
        self, fields: Mapping[str, Any], locations: list[tuple[Record, list[Record]]], user: int
    ) -> Record:
        with self.lock:
            self._check_account(fields, None)
            if not locations:
                raise invalid("locations", "must contain at least one location")
            now = self.clock.now()
            account = {**fields, "id": self.next_id("accounts"), "locationIds": []}
            if account.get("isActive") is None:
                account["isActive"] = True
            _audit(account, user, now, created=True)
            self.accounts[account["id"]] = account
            has_main = any(loc.get("isMain") for loc, _ in locations)
            for index, (location, addresses) in enumerate(locations):
                main = bool(location.get("isMain")) if has_main else index == 0
                self._insert_location(account, location, addresses, user, now, main=main)
            self._changed("accounts", "created", account)
            return account

    def replace_account(self, account_id: int, fields: Mapping[str, Any], user: int) -> Record:
        with self.lock:
            account = self.get("accounts", account_id)
            self._check_account(fields, account_id)
            changes = dict(fields)
            if changes.get("isActive") is None:
                changes["isActive"] = account["isActive"]
            account.update(changes)
            _audit(account, user, self.clock.now())
            self._changed("accounts", "updated", account)
            return account

    def create_contact(
        self,
        fields: Mapping[str, Any],
        emails: list[Record],
        phones: list[Record],
        user: int,
    ) -> Record:
        with self.lock:
            location_id = self._check_contact(fields)
            now = self.clock.now()
            contact: Record = {
                "middleName": None,
                "jobTitle": None,
                "poc": False,
                "isActive": True,
                "receiveInvoices": False,
                "billByContact": False,
                "effectiveDate": None,
                **fields,
                "locationId": location_id,
                "id": self.next_id("contacts"),
                "emails": [],
                "phones": [],
            }
            _audit(contact, user, now, created=True)
            for email in emails:
                self._add_item(contact, "emails", email, user, now)
            for phone in phones:
                self._add_item(contact, "phones", phone, user, now)
            # The default is the list's flagged entry, whatever its position.
            _one_default(contact["emails"])
            _one_default(contact["phones"])
            self.contacts[contact["id"]] = contact
            self._changed("contacts", "created", contact)
            return contact

    def replace_contact(self, contact_id: int, fields: Mapping[str, Any], user: int) -> Record:
        with self.lock:
            contact = self.get("contacts", contact_id)
            merged = {**contact, **{k: v for k, v in fields.items() if v is not None}}
            for name in ("firstName", "lastName"):
                if not (merged.get(name) or "").strip():
                    raise invalid(name)
            location_id = self._check_contact(merged)
            contact.update(fields)
            for name, default in (
                ("accountId", merged["accountId"]),
                ("poc", False),
                ("isActive", True),
                ("receiveInvoices", False),
                ("billByContact", False),
            ):
                if contact.get(name) is None:
                    contact[name] = default
            contact["locationId"] = location_id
            _audit(contact, user, self.clock.now())
            self._changed("contacts", "updated", contact)
            return contact

    def patch_items(
        self, contact_id: int, kind: str, operations: list[Record], user: int
    ) -> tuple[Record, dict[str, int]]:
        """Apply ContactEmail/PhonePatchOperationDto operations (0 add, 1 update, 2 delete)."""
        key = "emailAddress" if kind == "emails" else "phone"
        new_key = "newEmailAddress" if kind == "emails" else "newPhoneNumber"
        given_key = "emailAddress" if kind == "emails" else "phoneNumber"
        type_key = "emailTypeId" if kind == "emails" else "phoneTypeId"
        with self.lock:
            contact = self.get("contacts", contact_id)
            items: list[Record] = [dict(item) for item in contact[kind]]
            counts = {"added": 0, "updated": 0, "deleted": 0}
            now = self.clock.now()
            for n, op in enumerate(operations):
                value = op.get(given_key)
                if not value:
                    raise invalid(f"[{n}].{given_key}")
                existing = next((i for i in items if i[key].lower() == value.lower()), None)
                if op.get("operation") == 0:
                    item = {
                        given_key: value,
                        type_key: op.get("typeId"),
                        "isDefault": op.get("isDefault"),
                    }
                    items.append(self._new_item(kind, item, user, now, f"[{n}]."))
                    counts["added"] += 1
                    continue
                if existing is None:
                    raise invalid(f"[{n}].{given_key}", f"{value!r} is not on contact {contact_id}")
                if op.get("operation") == 1:
                    if op.get(new_key):
                        existing[key] = op[new_key]
                    if op.get("typeId") is not None:
                        self._check_type(kind, op["typeId"], f"[{n}].typeId")
                        existing[type_key] = op["typeId"]
                    if op.get("isDefault") is not None:
                        existing["isDefault"] = op["isDefault"]
                    _audit(existing, user, now)
                    counts["updated"] += 1
                elif op.get("operation") == 2:
                    items.remove(existing)
                    counts["deleted"] += 1
                else:
                    raise invalid(f"[{n}].operation", "must be 0 (add), 1 (update) or 2 (delete)")
            _one_default(items)
            contact[kind] = items
            _audit(contact, user, now)
            self._changed("contacts", "updated", contact)
            return contact, counts

    def create_asset(self, fields: Mapping[str, Any], user: int) -> Record:
        with self.lock:
            self._check_asset(fields)
            asset = {**fields, "id": self.next_id("assets")}
            if asset.get("isActive") is None:
                asset["isActive"] = True
            _audit(asset, user, self.clock.now(), created=True)
            self.assets[asset["id"]] = asset
            self._changed("assets", "created", asset)
            return asset

    def replace_asset(self, asset_id: int, fields: Mapping[str, Any], user: int) -> Record:
        with self.lock:
            asset = self.get("assets", asset_id)
            self._check_asset(fields)
            asset.update(fields)
            if asset.get("isActive") is None:
                asset["isActive"] = True
            _audit(asset, user, self.clock.now())
            self._changed("assets", "updated", asset)
            return asset

    def create_ticket(self, fields: Mapping[str, Any], *, user: int = ref.UI_USER_ID) -> Record:
        """Open a ticket as someone in the UI (or an e-mail parser) would: `title` and
        `accountId` required; queue, status (New), priority (Medium) and type defaulted."""
        with self.lock:
            account = self.get("accounts", fields["accountId"])
            now = self.clock.now()
            ticket: Record = {
                "queueId": 1,
                "statusId": 1,
                "priorityId": 2,
                "typeId": 1,
                "details": None,
                "contactId": None,
                "assigneeId": None,
                "hardwareAssetId": None,
                "locationId": (self.main_location(account["id"]) or {}).get("id"),
                "dueDate": None,
                **fields,
                "id": self.next_id("tickets"),
                "openDate": now,
                "completedDate": None,
            }
            ticket["ticketNumber"] = f"T{now:%Y%m%d}.{ticket['id']:04d}"
            _audit(ticket, user, now, created=True)
            _ticket_stamps(ticket, None, now)
            self.tickets[ticket["id"]] = ticket
            self._changed("tickets", "created", ticket)
            return ticket

    def remove(self, kind: str, record_id: int, *, user: int = ref.API_USER_ID) -> None:
        """Hard-delete a contact or an asset (the API's DELETE; `user` the one deleting)."""
        with self.lock:
            record = self.get(kind, record_id)
            del self.table(kind)[record_id]
            self._changed(kind, "deleted", {**record, "modifiedBy": user}, self.clock.now())

    # ------------------------------------------------------------- acting as a UI user

    def update(
        self, kind: str, record_id: int, *, user: int = ref.UI_USER_ID, **changes: Any
    ) -> Record:
        """Change fields as someone in the Pulseway UI would: no validation, audit stamped.
        A location change also stamps its account."""
        with self.lock:
            record = self.get(kind, record_id)
            before = dict(record)
            record.update(changes)
            now = self.clock.now()
            _audit(record, user, now)
            if kind == "tickets":
                _ticket_stamps(record, before, now)
            if kind == "locations":
                _audit(self.accounts[record["accountId"]], user, now)
                self._changed("accounts", "updated", self.accounts[record["accountId"]])
            else:
                self._changed(kind, "updated", record)
            return record

    def delete(self, kind: str, record_id: int, *, user: int = ref.UI_USER_ID) -> None:
        """Delete as the UI does: contacts, assets and tickets go for good; accounts (which Pulseway
        keeps for their history) and locations are deactivated."""
        if kind in ("accounts", "locations"):
            self.update(kind, record_id, user=user, isActive=False)
        else:
            self.remove(kind, record_id, user=user)

    def purge(self, kind: str, record_id: int) -> None:
        """Remove a record outright without stamping anything; an account takes its locations,
        contacts and assets with it (for reconciliation tests)."""
        with self.lock:
            record = self.get(kind, record_id)
            if kind == "accounts":
                for location_id in record["locationIds"]:
                    self.locations.pop(location_id, None)
                for table in (self.contacts, self.assets, self.tickets):
                    for other in [i for i, r in table.items() if r["accountId"] == record_id]:
                        del table[other]
            elif kind == "locations":
                self.accounts[record["accountId"]]["locationIds"].remove(record_id)
            del self.table(kind)[record_id]

    def add_location(
        self,
        account_id: int,
        location_name: str,
        addresses: Iterable[Record] = (),
        *,
        is_main: bool = False,
        user: int = ref.UI_USER_ID,
    ) -> Record:
        """Add a location to an account (the v2 API has no endpoint for it; the UI does)."""
        with self.lock:
            account = self.get("accounts", account_id)
            now = self.clock.now()
            location = self._insert_location(
                account, {"locationName": location_name}, list(addresses), user, now, main=is_main
            )
            _audit(account, user, now)
            self._changed("accounts", "updated", account)
            return location

    # ---------------------------------------------------------------------- helpers

    def _changed(self, kind: str, action: str, record: Record, at: datetime | None = None) -> None:
        if kind not in _NOTIFIED or not self.listeners:
            return
        change = Change(
            kind, action, record["id"], record["modifiedBy"], at or record["modifiedOn"]
        )
        for listener in self.listeners:
            listener(change)

    def _insert_location(
        self,
        account: Record,
        fields: Mapping[str, Any],
        addresses: list[Record],
        user: int,
        now: datetime,
        *,
        main: bool,
    ) -> Record:
        location: Record = {
            "id": self.next_id("locations"),
            "accountId": account["id"],
            "locationName": fields["locationName"],
            "isMain": main,
            "isActive": True if fields.get("isActive") is None else fields["isActive"],
            "timeZoneId": None,
            "dateFormatId": None,
            "timeFormatId": None,
            "addresses": [],
        }
        _audit(location, user, now, created=True)
        for index, address in enumerate(addresses):
            item = {**address, "id": self.next_id("addresses")}
            item["isMain"] = bool(address.get("isMain")) or index == 0
            item["isBilling"] = bool(address.get("isBilling"))
            _audit(item, user, now, created=True)
            location["addresses"].append(item)
        if main:
            for other in self.locations_of(account["id"]):
                other["isMain"] = False
        self.locations[location["id"]] = location
        account["locationIds"].append(location["id"])
        return location

    def _check_account(self, fields: Mapping[str, Any], account_id: int | None) -> None:
        if fields["accountTypeId"] not in {t["id"] for t in ref.ACCOUNT_TYPES}:
            raise invalid("accountTypeId", f"{fields['accountTypeId']} is not an account type")
        if fields["businessTypeId"] not in ref.lookup_ids("BusinessType"):
            raise invalid("businessTypeId", f"{fields['businessTypeId']} is not a business type")
        if fields["accountManagerId"] not in self.employees:
            raise invalid("accountManagerId", f"{fields['accountManagerId']} is not an employee")
        parent = fields.get("parentId")
        if parent is not None and (parent not in self.accounts or parent == account_id):
            raise invalid("parentId", f"{parent} is not another account")

    def _check_contact(self, fields: Mapping[str, Any]) -> int:
        account_id = fields["accountId"]
        if account_id not in self.accounts:
            raise invalid("accountId", f"account {account_id} does not exist")
        location_id = fields.get("locationId")
        if location_id is None or location_id == 0:
            main = self.main_location(account_id)
            if main is None:
                raise invalid("locationId")
            return int(main["id"])
        if location_id not in self.accounts[account_id]["locationIds"]:
            raise invalid(
                "locationId", f"location {location_id} is not a location of account {account_id}"
            )
        return int(location_id)

    def _check_asset(self, fields: Mapping[str, Any]) -> None:
        account_id = fields["accountId"]
        if account_id not in self.accounts:
            raise invalid("accountId", f"account {account_id} does not exist")
        if fields["accountLocationId"] not in self.accounts[account_id]["locationIds"]:
            raise invalid(
                "accountLocationId",
                f"location {fields['accountLocationId']} is not a location of account {account_id}",
            )
        if fields["categoryId"] not in ref.lookup_ids("AssetCategory"):
            raise invalid("categoryId", f"{fields['categoryId']} is not an asset category")
        state = fields.get("stateId")
        if state is not None and state not in ref.lookup_ids("AssetState"):
            raise invalid("stateId", f"{state} is not an asset state")
        contact_id = fields.get("contactId")
        if contact_id is not None:
            contact = self.contacts.get(contact_id)
            if contact is None or contact["accountId"] != account_id:
                raise invalid(
                    "contactId", f"contact {contact_id} is not a contact of account {account_id}"
                )

    def _check_type(self, kind: str, type_id: Any, field: str) -> None:
        table = "EmailType" if kind == "emails" else "PhoneType"
        if type_id not in ref.lookup_ids(table):
            raise invalid(field, f"{type_id} is not a {table}")

    def _new_item(self, kind: str, given: Record, user: int, now: datetime, prefix: str) -> Record:
        if kind == "emails":
            value, type_key, key = given.get("emailAddress"), "emailTypeId", "emailAddress"
        else:
            value, type_key, key = given.get("phoneNumber"), "phoneTypeId", "phone"
        if not value:
            raise invalid(prefix + ("emailAddress" if kind == "emails" else "phoneNumber"))
        type_id = given.get(type_key) or 1
        self._check_type(kind, type_id, prefix + type_key)
        item = {"id": self.next_id(kind), key: value, type_key: type_id}
        item["isDefault"] = bool(given.get("isDefault"))
        _audit(item, user, now, created=True)
        return item

    def _add_item(
        self, contact: Record, kind: str, given: Record, user: int, now: datetime
    ) -> None:
        prefix = f"{kind}[{len(contact[kind])}]."
        contact[kind].append(self._new_item(kind, given, user, now, prefix))


def _audit(record: Record, user: int, now: datetime, *, created: bool = False) -> None:
    if created:
        record["createdBy"] = user
        record["createdOn"] = now
    record["modifiedBy"] = user
    record["modifiedOn"] = now


def _ticket_stamps(ticket: Record, before: Record | None, now: datetime) -> None:
    """What a ticket change stamps: `lastActivityUpdate` (every change; the simulator's
    reading of "modified" for Filter.LastActivityUpdateFrom), `lastStatusUpdate`,
    `lastPriorityUpdate`, `lastQueueUpdate` when those change, and `completedDate` while the
    status is a completed one."""
    ticket["lastActivityUpdate"] = now
    for key, stamp in (
        ("statusId", "lastStatusUpdate"),
        ("priorityId", "lastPriorityUpdate"),
        ("queueId", "lastQueueUpdate"),
    ):
        if before is None or before.get(key) != ticket.get(key):
            ticket[stamp] = now
    status = ref.row_of(ref.TICKET_STATUSES, ticket.get("statusId"))
    if status is not None and status["isCompleted"]:
        if ticket.get("completedDate") is None:
            ticket["completedDate"] = now
    else:
        ticket["completedDate"] = None


def _one_default(items: list[Record]) -> None:
    """Exactly one default item (the first flagged one, else the first)."""
    if not items:
        return
    chosen = next((i for i in items if i.get("isDefault")), items[0])
    for item in items:
        item["isDefault"] = item is chosen
