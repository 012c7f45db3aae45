"""A deterministic Pulseway PSA tenant of any size.

Everything comes from one ``random.Random(spec.seed)``: the same spec gives the same records,
ids and timestamps. Accounts have 1-3 locations (the first is main; each has one address);
contacts have 1-2 e-mails and 0-2 phones; hardware assets spread over every active category and
all states, at one of their account's locations, usually with a contact of that account. ~10% of
accounts are inactive or of a non-client type; ~5% of contacts and assets are inactive. Tickets
(one per account by default) come last, from a random stream of their own.

Rows go straight into the store's dicts (no per-record validation): 200k records take a few
seconds.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from simulators.pulseway import reference as ref
from simulators.pulseway.fields import ASSET
from simulators.pulseway.store import PulsewayStore

_WORDS = [
    "Acme",
    "Apex",
    "Blue",
    "Cedar",
    "Delta",
    "Eagle",
    "Falcon",
    "Granite",
    "Harbor",
    "Iron",
    "Jade",
    "Keystone",
    "Lumen",
    "Maple",
    "Nova",
    "Oak",
    "Pioneer",
    "Quartz",
    "River",
    "Summit",
    "Titan",
    "Union",
    "Vertex",
    "Willow",
    "Zenith",
]
_SUFFIXES = ("Dental", "Legal", "Logistics", "Manufacturing", "Clinic", "Partners", "Holdings")
_FORMS = ("LLC", "Inc.", "Ltd", "Group", "Co.")
_FIRST = [
    "Alex",
    "Sam",
    "Maria",
    "John",
    "Priya",
    "Chen",
    "Fatima",
    "Liam",
    "Olga",
    "Noah",
    "Emma",
    "Diego",
    "Aisha",
    "Ken",
    "Sofia",
]
_LAST = [
    "Smith",
    "Garcia",
    "Müller",
    "Nguyen",
    "Patel",
    "Kim",
    "Rossi",
    "Novak",
    "Silva",
    "Brown",
    "Okafor",
    "Larsen",
    "Costa",
]
_CITIES = (
    ("Austin", "TX", "78701"),
    ("Denver", "CO", "80202"),
    ("Boston", "MA", "02108"),
    ("Seattle", "WA", "98101"),
    ("Miami", "FL", "33130"),
)
_LOCATION_NAMES = ("Main Office", "Warehouse", "Branch", "Data Center", "Remote Office")
_TITLES = ("Office Manager", "CEO", "IT Lead", "Accountant", "Technician", None)
_CATEGORY_PREFIX = {1: "WS", 2: "LT", 3: "SRV", 4: "NET", 5: "PRN", 6: "MOB", 7: "VM"}
_OS = {1: "Windows 11 Pro", 2: "Windows 11 Pro", 3: "Windows Server 2022", 7: "Ubuntu 22.04"}


@dataclass(frozen=True)
class DatasetSpec:
    """How much to generate: `accounts` (each with 1-3 locations), `contacts` and `assets`
    (defaults: 4 and 4 per account). Timestamps fall in the `history_days` before
    `updated_until` (fixed, for determinism)."""

    accounts: int = 50
    contacts: int | None = None
    assets: int | None = None
    seed: int = 0
    updated_until: datetime = datetime(2025, 6, 1, tzinfo=UTC)
    history_days: int = 730
    tickets: int | None = None  # default: one per account

    @property
    def ticket_total(self) -> int:
        return self.accounts if self.tickets is None else self.tickets

    @property
    def totals(self) -> tuple[int, int, int]:
        n = self.accounts
        return (
            n,
            4 * n if self.contacts is None else self.contacts,
            4 * n if self.assets is None else self.assets,
        )


def generate_dataset(
    spec: DatasetSpec | None = None, store: PulsewayStore | None = None
) -> PulsewayStore:
    """Fill `store` (a new one by default) with the records `spec` describes."""
    spec = spec or DatasetSpec()
    store = store if store is not None else PulsewayStore()
    rng = random.Random(spec.seed)
    n_accounts, n_contacts, n_assets = spec.totals
    span = spec.history_days * 86400
    start = spec.updated_until - timedelta(seconds=span)

    def moments() -> tuple[datetime, datetime]:
        created = rng.randrange(span)
        modified = rng.randrange(created, span + 1)
        return start + timedelta(seconds=created), start + timedelta(seconds=modified)

    def audit(created: datetime, modified: datetime, by: int) -> dict[str, Any]:
        return {"createdBy": by, "createdOn": created, "modifiedBy": by, "modifiedOn": modified}

    categories = sorted(i for i in ref.lookup_ids("AssetCategory") if i in _CATEGORY_PREFIX)
    states = sorted(ref.lookup_ids("AssetState"))
    account_ids: list[int] = []
    contacts_of: dict[int, list[int]] = {}
    with store.lock:
        for _ in range(n_accounts):
            account_id = store.next_id("accounts")
            created, modified = moments()
            by = rng.choice((ref.UI_USER_ID, ref.UI_USER_ID, ref.API_USER_ID))
            name = f"{rng.choice(_WORDS)} {rng.choice(_SUFFIXES)} {rng.choice(_FORMS)}"
            roll = rng.random()
            account: dict[str, Any] = {
                "id": account_id,
                "parentId": None,
                "accountCode": f"A{account_id:06d}",
                "accountTypeId": 1 if roll < 0.9 else rng.choice((2, 3, 4, 5)),
                "accountName": name,
                "description": None,
                "website": f"https://www.{name.split()[0].lower()}{account_id}.example",
                "businessTypeId": rng.choice((1, 1, 2, 3, 4)),
                "serviceTypeId": None,
                "currencyId": None,
                "salesTaxItemId": None,
                "classId": None,
                "accountManagerId": rng.choice(ref.ACCOUNT_MANAGERS),
                "isActive": rng.random() >= 0.05,
                "acquiredDate": None,
                "creditLimit": None,
                "netDays": 30.0,
                "routeInvoiceToParent": False,
                "locationIds": [],
                **audit(created, modified, by),
            }
            for index in range(rng.choice((1, 1, 2, 3))):
                location_id = store.next_id("locations")
                city, state, zip_code = rng.choice(_CITIES)
                address = {
                    "id": store.next_id("addresses"),
                    "address1": f"{rng.randrange(1, 9999)} {rng.choice(_WORDS)} St",
                    "address2": None,
                    "city": city,
                    "state": state,
                    "zipCode": zip_code,
                    "countryId": 1,
                    "country": "United States",
                    "phone": f"+1 555 {rng.randrange(1000000):07d}",
                    "fax": None,
                    "latitude": None,
                    "longitude": None,
                    "emailAddress": None,
                    "isMain": True,
                    "isBilling": index == 0,
                    "addressTypeId": None,
                    "addressType": None,
                    **audit(created, created, by),
                }
                store.locations[location_id] = {
                    "id": location_id,
                    "accountId": account_id,
                    "locationName": _LOCATION_NAMES[index] if index else "Main Office",
                    "isMain": index == 0,
                    "isActive": True,
                    "timeZoneId": None,
                    "dateFormatId": None,
                    "timeFormatId": None,
                    "addresses": [address],
                    **audit(created, created, by),
                }
                account["locationIds"].append(location_id)
            store.accounts[account_id] = account
            account_ids.append(account_id)
            contacts_of[account_id] = []
        if not account_ids:
            return store

        for _ in range(n_contacts):
            contact_id = store.next_id("contacts")
            account_id = rng.choice(account_ids)
            account = store.accounts[account_id]
            created, modified = moments()
            created = max(created, account["createdOn"])
            modified = max(modified, created)
            first, last = rng.choice(_FIRST), rng.choice(_LAST)
            domain = account["website"].removeprefix("https://www.")
            emails = [
                {
                    "id": store.next_id("emails"),
                    "emailAddress": f"{first}.{last}{contact_id}@{domain}".lower(),
                    "emailTypeId": 1,
                    "isDefault": True,
                    **audit(created, created, ref.UI_USER_ID),
                }
            ]
            if rng.random() < 0.2:
                emails.append(
                    {
                        "id": store.next_id("emails"),
                        "emailAddress": f"{first}{contact_id}@mail.example".lower(),
                        "emailTypeId": 2,
                        "isDefault": False,
                        **audit(created, created, ref.UI_USER_ID),
                    }
                )
            phones = [
                {
                    "id": store.next_id("phones"),
                    "phone": f"+1 555 {rng.randrange(1000000):07d}",
                    "phoneTypeId": type_id,
                    "isDefault": n == 0,
                    **audit(created, created, ref.UI_USER_ID),
                }
                for n, type_id in enumerate(rng.sample((1, 2, 3), rng.choice((0, 1, 1, 2))))
            ]
            store.contacts[contact_id] = {
                "id": contact_id,
                "accountId": account_id,
                "locationId": rng.choice(account["locationIds"]),
                "firstName": first,
                "middleName": None,
                "lastName": last,
                "jobTitle": rng.choice(_TITLES),
                "poc": rng.random() < 0.1,
                "isActive": rng.random() >= 0.05,
                "receiveInvoices": False,
                "billByContact": False,
                "effectiveDate": None,
                "emails": emails,
                "phones": phones,
                **audit(created, modified, rng.choice((ref.UI_USER_ID, ref.API_USER_ID))),
            }
            contacts_of[account_id].append(contact_id)

        for _ in range(n_assets):
            asset_id = store.next_id("assets")
            account_id = rng.choice(account_ids)
            account = store.accounts[account_id]
            created, modified = moments()
            category = rng.choice(categories)
            people = contacts_of[account_id]
            owner = rng.choice(people) if people and rng.random() < 0.8 else None
            asset: dict[str, Any] = dict.fromkeys(ASSET)
            asset.update(
                {
                    "id": asset_id,
                    "name": f"{_CATEGORY_PREFIX[category]}-{asset_id:06d}",
                    "accountId": account_id,
                    "accountLocationId": rng.choice(account["locationIds"]),
                    "contactId": owner,
                    "categoryId": category,
                    "stateId": rng.choice(states) if rng.random() < 0.9 else None,
                    "serialNumber": f"SN{rng.randrange(16**10):010X}",
                    "isActive": rng.random() >= 0.05,
                    "ipAddress": _ip(rng),
                    "macAddress": ":".join(f"{rng.randrange(256):02X}" for _ in range(6)),
                    "osType": _OS.get(category),
                    "computerName": f"{_CATEGORY_PREFIX[category]}{asset_id}",
                    "dhcpEnabled": rng.random() < 0.7,
                    "winsEnabled": False,
                    **audit(created, modified, rng.choice((ref.UI_USER_ID, ref.API_USER_ID))),
                }
            )
            store.assets[asset_id] = asset
        _tickets(store, spec, account_ids, contacts_of)
    return store


_TICKET_TITLES = (
    "Cannot print",
    "Laptop will not boot",
    "New user setup",
    "Password reset",
    "VPN disconnects",
    "Backup failed",
    "Email not syncing",
    "Slow network",
    "Install software",
    "Firewall alert",
)


def _tickets(
    store: PulsewayStore,
    spec: DatasetSpec,
    account_ids: list[int],
    contacts_of: dict[int, list[int]],
) -> None:
    """Tickets from a random stream of their own (earlier records do not depend on the ticket
    count): ~60% completed; activity spread over the whole history, so there are old open
    tickets and recent closed ones; queues 1-3 (queue 4 is inactive)."""
    rng = random.Random(f"tickets-{spec.seed}")
    span = spec.history_days * 86400
    start = spec.updated_until - timedelta(seconds=span)
    assets_of: dict[int, list[int]] = {}
    for asset in store.assets.values():
        assets_of.setdefault(asset["accountId"], []).append(asset["id"])
    technicians = [i for i, p in ref.EMPLOYEE_PROFILES.items() if p.get("userType") != "API"]
    for _ in range(spec.ticket_total):
        ticket_id = store.next_id("tickets")
        account_id = rng.choice(account_ids)
        account = store.accounts[account_id]
        opened = start + timedelta(seconds=rng.randrange(span))
        active = opened + timedelta(seconds=rng.randrange(0, 30 * 86400))
        active = min(active, spec.updated_until)
        completed = rng.random() < 0.6
        status = rng.choice((4, 5)) if completed else rng.choice((1, 2, 3))
        people = contacts_of.get(account_id) or []
        devices = assets_of.get(account_id) or []
        by = rng.choice((ref.UI_USER_ID, 6, 9))
        store.tickets[ticket_id] = {
            "id": ticket_id,
            "ticketNumber": f"T{opened:%Y%m%d}.{ticket_id:04d}",
            "title": rng.choice(_TICKET_TITLES),
            "details": None,
            "accountId": account_id,
            "locationId": account["locationIds"][0],
            "contactId": rng.choice(people) if people and rng.random() < 0.85 else None,
            "queueId": rng.choice((1, 1, 1, 2, 3)),
            "statusId": status,
            "priorityId": rng.choice((1, 2, 2, 2, 3, 4)),
            "typeId": rng.choice((1, 1, 2, 3)),
            "assigneeId": rng.choice(technicians) if rng.random() < 0.8 else None,
            "hardwareAssetId": rng.choice(devices) if devices and rng.random() < 0.3 else None,
            "openDate": opened,
            "dueDate": None,
            "completedDate": active if completed else None,
            "lastActivityUpdate": active,
            "lastStatusUpdate": active,
            "lastPriorityUpdate": opened,
            "lastQueueUpdate": opened,
            "createdBy": by,
            "createdOn": opened,
            "modifiedBy": by,
            "modifiedOn": active,
        }


def _ip(rng: random.Random) -> str:
    return f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
