"""A deterministic, realistic-looking ConnectWise dataset of any size.

Everything comes from one ``random.Random(spec.seed)``: the same spec gives the same records,
ids and timestamps. The mix is what a sync meets in practice:

- companies: mostly Client + Active (in scope), some Prospect/Vendor/Partner/Competitor and some
  Inactive/Not-Approved/Delinquent (out of scope); ~8% with two types; ~4% with a parent company;
  the company's `site` is its primary site "Main", which carries the company's address;
- sites: one primary site per company, extra sites spread over companies;
- contacts: 1-3 communication items (e-mail at the company's domain, phones);
- configurations: a site and usually a contact of the same company; ~1% deliberately reference a
  contact of another company (ConnectWise allows it; the sync must refuse to link those).

The benchmark set (20k companies, 40k sites, 100k contacts, 100k configurations) builds in a few
seconds: rows are inserted through `ConnectWiseStore.bulk_load` without per-record validation.
"""

from __future__ import annotations

import gc
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from simulators.connectwise import vocabulary as words
from simulators.connectwise.reference import MEMBERS, REFERENCE_LISTS
from simulators.connectwise.store import ConnectWiseStore
from simulators.connectwise.tables import Loader

CROSS_COMPANY_CONTACT_RATE = 0.01
T = TypeVar("T")


@dataclass(frozen=True)
class DatasetSpec:
    """How much to generate. Sites, contacts and configurations default to 2, 5 and 5 per
    company; `updated_until` is the newest `_info.lastUpdated` (fixed, for determinism)."""

    companies: int = 50
    sites: int | None = None
    contacts: int | None = None
    configurations: int | None = None
    seed: int = 0
    updated_until: datetime = datetime(2025, 6, 1, tzinfo=UTC)
    history_days: int = 730
    tickets: int | None = None  # default: one per company

    @property
    def ticket_total(self) -> int:
        return self.companies if self.tickets is None else self.tickets

    @property
    def totals(self) -> tuple[int, int, int, int]:
        """(companies, sites, contacts, configurations) with defaults applied."""
        n = self.companies
        return (
            n,
            2 * n if self.sites is None else self.sites,
            5 * n if self.contacts is None else self.contacts,
            5 * n if self.configurations is None else self.configurations,
        )


def generate_dataset(
    spec: DatasetSpec | None = None, store: ConnectWiseStore | None = None
) -> ConnectWiseStore:
    """Fill `store` (a new one by default) with the records `spec` describes."""
    store = store if store is not None else ConnectWiseStore()
    # The cyclic collector would rescan the growing store over and over (half the run time);
    # nothing made here becomes cyclic garbage.
    collecting = gc.isenabled()
    gc.disable()
    try:
        with store.bulk_load() as loader:
            _Generator(spec or DatasetSpec(), loader).run()
    finally:
        if collecting:
            gc.enable()
    return store


@dataclass
class _Company:
    id: int
    ref: dict[str, Any]
    domain: str
    code: str  # short prefix for configuration names
    city: tuple[str, str, str, str, int]
    address: dict[str, Any]  # also the address of its primary site
    site_refs: list[dict[str, Any]]
    contact_refs: list[dict[str, Any]]
    configurations: int = 0
    configuration_refs: list[dict[str, Any]] = field(default_factory=list)


def _company_types(roll: float) -> tuple[int, ...]:
    """Type ids: mostly Client; some Prospect, Vendor, Partner, Competitor; some two types."""
    if roll < 0.72:
        return (1,)
    if roll < 0.82:
        return (2,)
    if roll < 0.86:
        return (3,)
    if roll < 0.89:
        return (4,)
    if roll < 0.92:
        return (5,)
    return (1, 4) if roll < 0.96 else (1, 3)


def _configuration_type(roll: float) -> int:
    """Mostly workstations, then network gear, servers, printers, firewalls and licenses."""
    for type_id, upto in ((2, 0.55), (1, 0.65), (3, 0.78), (4, 0.85), (5, 0.93)):
        if roll < upto:
            return type_id
    return 6


class _Generator:
    def __init__(self, spec: DatasetSpec, loader: Loader) -> None:
        self.spec = spec
        self.load = loader
        self.rng = random.Random(spec.seed)
        self.r = self.rng.random
        until = spec.updated_until
        # Building stamps from shared pieces is much cheaper than formatting datetimes.
        self.days = [
            _day(until - timedelta(days=d)) + "T" for d in range(1, spec.history_days + 366)
        ]
        self.entered = [day + "09:00:00Z" for day in self.days]  # shared strings
        self.minutes = [f"{m // 60:02d}:{m % 60:02d}:" for m in range(1440)]
        self.seconds = [f"{second:02d}Z" for second in range(60)]
        self.updaters = [member["identifier"] for member in MEMBERS[:5]]
        self.companies: list[_Company] = []
        self.identifiers: set[str] = set()
        self.all_contacts: list[tuple[int, dict[str, Any]]] = []  # (company id, reference)
        lookup = self.lookup
        self.types, self.statuses = lookup("company_types"), lookup("company_statuses")
        self.configuration_types = lookup("configuration_types")
        self.configuration_statuses = lookup("configuration_statuses")
        self.contact_types = lookup("contact_types")
        self.communication_types = lookup("communication_types")
        self.countries, self.manufacturers = lookup("countries"), lookup("manufacturers")
        self.states = {ref["identifier"]: ref for ref in lookup("states").values()}
        members = lookup("members")
        self.technicians = [members[member["id"]] for member in MEMBERS[1:]]
        self.dates: dict[int, str] = {}

    def run(self) -> None:
        companies, sites, contacts, configurations = self.spec.totals
        for index in range(companies):
            self.company(index)
        for index in range(min(sites, companies)):
            self.primary_site(self.companies[index])
        for _ in range(sites - min(sites, companies)):
            self.extra_site(self.pick_company())
        for _ in range(contacts):
            self.contact(self.pick_company())
        for _ in range(configurations):
            self.configuration(self.pick_company())
        if self.companies:
            _Tickets(self).run(self.spec.ticket_total)

    # ------------------------------------------------------------------------- helpers

    def lookup(self, collection: str) -> dict[int, dict[str, Any]]:
        """References to a reference list's rows, by id (ids as in `reference.py`)."""
        records = dict(REFERENCE_LISTS)[collection]
        return {r["id"]: self.load.reference(collection, r["id"]) for r in records}

    def pick(self, options: Sequence[T]) -> T:
        return options[int(self.r() * len(options))]

    def pick_company(self) -> _Company:
        return self.companies[int(self.r() * len(self.companies))]

    def info(self) -> dict[str, str]:
        """`_info` values: entered some time before it was last updated."""
        r = self.r
        day = int(r() * self.spec.history_days)
        clock = self.minutes[int(r() * 1440)] + self.seconds[int(r() * 60)]
        return {
            "lastUpdated": self.days[day] + clock,
            "updatedBy": self.updaters[int(r() * 5)],
            "dateEntered": self.entered[day + int(r() * 365)],
            "enteredBy": self.updaters[0],
        }

    def date(self, days_from_anchor: int) -> str:
        """A midnight datetime, shared between records to keep the store small."""
        text = self.dates.get(days_from_anchor)
        if text is None:
            moment = self.spec.updated_until + timedelta(days=days_from_anchor)
            text = self.dates[days_from_anchor] = _day(moment) + "T00:00:00Z"
        return text

    def address(self, city: tuple[str, str, str, str, int]) -> dict[str, Any]:
        name, _, zip_prefix, _, country = city
        r = self.r
        street = (
            f"{int(r() * 9800) + 100} {self.pick(words.STREETS)} {self.pick(words.STREET_SUFFIXES)}"
        )
        postal = (
            f"{zip_prefix} {int(r() * 9)}A{int(r() * 9)}"
            if country == 2
            else f"{zip_prefix}{int(r() * 100):02d}"
        )
        return {
            "addressLine1": street,
            "city": name,
            "zip": postal,
            "country": self.countries[country],
        }

    def phone(self, area: str) -> str:
        return f"({area}) 555-{int(self.r() * 10000):04d}"

    # ------------------------------------------------------------------------- records

    def company(self, index: int) -> None:
        r = self.r
        place, trade = self.pick(words.COMPANY_PLACES), self.pick(words.COMPANY_TRADES)
        name = f"{place} {trade} {self.pick(words.COMPANY_SUFFIXES)}"
        base = "".join(word for word in f"{place} {trade}".title().split() if word.isalpha())[:24]
        identifier = base if base not in self.identifiers else f"{base}{index}"
        self.identifiers.add(identifier)
        city = self.pick(words.CITIES)
        types = [self.types[type_id] for type_id in _company_types(r())]
        roll = r()
        status = self.statuses[1 if roll < 0.83 else 2 if roll < 0.93 else 3 if roll < 0.97 else 4]
        domain = f"{identifier.lower()}.com"
        address = {**self.address(city), "phoneNumber": self.phone(city[3])}
        if r() < 0.3:
            address["faxNumber"] = self.phone(city[3])
        values: dict[str, Any] = {
            "identifier": identifier,
            "name": name[:50],
            "status": status,
            "types": types,
            **address,
            "state": city[1],
            "website": f"www.{domain}",
            "leadFlag": False,
            "unsubscribeFlag": False,
            "isVendorFlag": self.types[3] in types,
            "deletedFlag": False,
            **self.info(),
        }
        if index > 10 and r() < 0.04:
            values["parentCompany"] = self.companies[int(r() * index)].ref
        if r() < 0.05:
            self.load.skip_ids("companies", 1 + int(r() * 3))  # gaps, as in a real database
        company_id = self.load.insert("companies", values)
        code = "".join(word[0] for word in f"{place} {trade}".split()).upper()
        ref = self.load.reference("companies", company_id)
        self.companies.append(_Company(company_id, ref, domain, code, city, address, [], []))

    def primary_site(self, company: _Company) -> None:
        """The "Main" site holds the company's own address (ConnectWise keeps it there)."""
        site_id = self.site(
            company,
            "Main",
            company.address,
            company.city,
            primaryAddressFlag=True,
            defaultBillingFlag=True,
            defaultShippingFlag=True,
            defaultMailingFlag=True,
        )
        self.load.set("companies", company.id, "site", self.load.reference("sites", site_id))

    def extra_site(self, company: _Company) -> None:
        city = company.city if self.r() < 0.6 else self.pick(words.CITIES)
        values = {**self.address(city), "phoneNumber": self.phone(city[3])}
        self.site(company, self.pick(words.SITE_NAMES), values, city, inactiveFlag=self.r() < 0.05)

    def site(
        self,
        company: _Company,
        name: str,
        address: dict[str, Any],
        city: tuple[str, str, str, str, int],
        **flags: bool,
    ) -> int:
        values = {
            "name": name,
            **address,
            "stateReference": self.states.get(city[1]),
            "company": company.ref,
            "primaryAddressFlag": False,
            "defaultShippingFlag": False,
            "defaultBillingFlag": False,
            "defaultMailingFlag": False,
            "inactiveFlag": False,
            **flags,
            **self.info(),
        }
        site_id = self.load.insert("sites", values)
        company.site_refs.append(self.load.reference("sites", site_id))
        return site_id

    def contact(self, company: _Company) -> None:
        r = self.r
        first, last = self.pick(words.FIRST_NAMES), self.pick(words.LAST_NAMES)
        area = company.city[3]
        handle = f"{first}.{last}".lower().replace("'", "")
        items = [self.item(1, f"{handle}@{company.domain}", default=True)]
        if r() < 0.8:
            items.append(self.item(2, self.phone(area), default=True, extension=r() < 0.3))
        if r() < 0.35:
            items.append(self.item(3, self.phone(area)))
        roll = r()
        types = [self.contact_types[4 if roll < 0.6 else 1 + int((roll - 0.6) / 0.4 * 3)]]
        if r() < 0.1:
            types.append(self.contact_types[2 if types[0]["id"] != 2 else 3])
        values = {
            "firstName": first,
            "lastName": last,
            "title": self.pick(words.TITLES),
            "company": company.ref,
            "site": self.site_for(company),
            "types": types,
            "communicationItems": items,
            "inactiveFlag": r() < 0.05,
            "defaultFlag": not company.contact_refs,
            "unsubscribeFlag": False,
            **self.info(),
        }
        contact_id = self.load.insert("contacts", values)
        ref = self.load.reference("contacts", contact_id)
        company.contact_refs.append(ref)
        self.all_contacts.append((company.id, ref))

    def site_for(self, company: _Company) -> dict[str, Any] | None:
        sites = company.site_refs
        if not sites:
            return None
        return sites[0] if len(sites) == 1 or self.r() < 0.7 else self.pick(sites)

    def item(
        self, type_id: int, value: str, *, default: bool = False, extension: bool = False
    ) -> dict[str, Any]:
        communication_type = "Email" if type_id == 1 else "Phone"
        item: dict[str, Any] = {
            "id": self.load.next_item_id(),
            "type": self.communication_types[type_id],
            "value": value,
            "defaultFlag": default,
            "communicationType": communication_type,
        }
        if type_id == 1:
            item["domain"] = "@" + value.rsplit("@", 1)[1]
        if extension:
            item["extension"] = str(100 + int(self.r() * 900))
        return item

    def configuration(self, company: _Company) -> None:
        r = self.r
        type_id = _configuration_type(r())
        code, hardware = words.HARDWARE[type_id]
        manufacturer_id, models, systems = hardware[int(r() * len(hardware))]
        roll = r()
        status_id = 1 if roll < 0.85 else 2 if roll < 0.9 else 3 if roll < 0.95 else 4
        company.configurations += 1
        number = company.configurations
        installed = -int(r() * 1500)
        values: dict[str, Any] = {
            "name": f"{company.code}-{code}{number:03d}",
            "type": self.configuration_types[type_id],
            "status": self.configuration_statuses[status_id],
            "company": company.ref,
            "site": self.site_for(company),
            "contact": self.contact_for(company),
            "serialNumber": f"{self.rng.getrandbits(40):010X}",
            "tagNumber": f"AT{company.id:05d}{number:03d}",
            "modelNumber": models[int(r() * len(models))],
            "manufacturer": self.manufacturers[manufacturer_id],
            "installedBy": self.technicians[int(r() * len(self.technicians))],
            "installationDate": self.date(installed),
            "purchaseDate": self.date(installed - 14),
            "warrantyExpirationDate": self.date(installed + 3 * 365),
            "activeFlag": status_id in (1, 4),
            "billFlag": r() < 0.5,
            **self.info(),
        }
        if type_id != 6:
            subnet, host = company.id % 250, 10 + int(r() * 240)
            values["macAddress"] = self.rng.getrandbits(48).to_bytes(6, "big").hex(":").upper()
            values["ipAddress"] = f"10.{subnet}.{host // 50}.{host}"
            values["defaultGateway"] = f"10.{subnet}.{host // 50}.1"
        if systems:
            values["osType"] = systems[int(r() * len(systems))]
        if r() < 0.1:
            values["notes"] = self.pick(words.CONFIGURATION_NOTES)
        configuration_id = self.load.insert("configurations", values)
        company.configuration_refs.append(self.load.reference("configurations", configuration_id))

    def contact_for(self, company: _Company) -> dict[str, Any] | None:
        roll = self.r()
        if roll < CROSS_COMPANY_CONTACT_RATE and len(self.all_contacts) > len(company.contact_refs):
            while True:  # a contact of another company, deliberately
                owner, ref = self.pick(self.all_contacts)
                if owner != company.id:
                    return ref
        if roll < 0.8 and company.contact_refs:
            return self.pick(company.contact_refs)
        return None


class _Tickets:
    """Service tickets over the generated companies, from a random stream of their own (so
    the records generated before them do not change with the ticket count).

    `lastUpdated` spreads over the whole history: ~60% of tickets are closed (a closed status,
    `closedDate` = last update); open ones include some untouched for months, the old open
    tickets a "last 90 days" feed must still show or skip on purpose. ~30% have one or two of
    their company's configurations attached.
    """

    _SUMMARIES = (
        "Cannot print to {thing}",
        "{thing} offline",
        "New user setup",
        "Password reset request",
        "VPN drops every few minutes",
        "Replace failing drive in {thing}",
        "Outlook keeps asking for password",
        "Slow network at the front desk",
        "Backup job failed overnight",
        "Install software on {thing}",
        "Firewall firmware update",
        "Email bouncing for one mailbox",
    )

    def __init__(self, generator: _Generator) -> None:
        self.g = generator
        self.rng = random.Random(f"tickets-{generator.spec.seed}")
        statuses = generator.lookup("ticket_statuses")
        types = generator.lookup("ticket_types")
        self.priorities = list(generator.lookup("priorities").values())
        self.boards = [(board_id, generator.lookup("boards")[board_id]) for board_id in (1, 2, 3)]
        self.statuses = {b: [statuses[10 * b + n] for n in range(1, 6)] for b, _ in self.boards}
        self.types = {b: [types[10 * b + n] for n in range(1, 4)] for b, _ in self.boards}
        self.owners = generator.technicians

    def run(self, count: int) -> None:
        for _ in range(count):
            self.ticket()

    def ticket(self) -> None:
        g, rng = self.g, self.rng
        r = rng.random
        company = g.companies[int(r() * len(g.companies))]
        board_id, board = self.boards[0 if r() < 0.6 else 1 if r() < 0.6 else 2]
        closed = r() < 0.6
        status = self.statuses[board_id][3 + int(r() * 2) if closed else int(r() * 3)]
        day = int(r() * g.spec.history_days)
        clock = g.minutes[int(r() * 1440)] + g.seconds[int(r() * 60)]
        updated = g.days[day] + clock
        entered = g.days[day + 1 + int(r() * 30)] + g.minutes[480 + int(r() * 600)] + "00Z"
        summary = self._SUMMARIES[int(r() * len(self._SUMMARIES))]
        devices = company.configuration_refs
        thing = devices[int(r() * len(devices))]["name"] if devices else "the printer"
        contact = (
            company.contact_refs[int(r() * len(company.contact_refs))]
            if (company.contact_refs and r() < 0.85)
            else None
        )
        member = self.owners[int(r() * len(self.owners))]["identifier"]
        values: dict[str, Any] = {
            "summary": summary.format(thing=thing)[:100],
            "recordType": "ServiceTicket",
            "board": board,
            "status": status,
            "type": self.types[board_id][int(r() * 3)],
            "priority": self.priorities[min(3, int(r() * 5))],
            "company": company.ref,
            "site": company.site_refs[0] if company.site_refs else None,
            "contact": contact,
            "contactName": None if contact is None else contact["name"],
            "owner": self.owners[int(r() * len(self.owners))] if r() < 0.8 else None,
            "severity": "Medium",
            "impact": "Medium",
            "closedFlag": closed,
            "closedDate": updated if closed else None,
            "closedBy": member if closed else None,
            "customerUpdatedFlag": False,
            "lastUpdated": updated,
            "updatedBy": member,
            "dateEntered": entered,
            "enteredBy": g.updaters[0],
        }
        if devices and r() < 0.3:
            picked = {id(d): d for d in (devices[int(r() * len(devices))] for _ in range(2))}
            values["configurations"] = list(picked.values())
        g.load.insert("tickets", values)


def _day(moment: datetime) -> str:
    # Not strftime("%Y-%m-%d"): glibc writes year 999 as "999", which is not ISO 8601.
    return f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}"
