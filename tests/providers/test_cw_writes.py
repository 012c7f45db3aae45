"""The ConnectWise provider's write side against the simulator over HTTP.

Each test asserts what lands in the simulator's store, and what went over the wire (a recording
transport keeps every API request: method, path, conditions, body).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from harness import FAST_RETRY, Psa

from models.enums import AssetKind, ReferenceKind
from sync.connections import connectwise_provider
from sync.errors import RecordError
from sync.providers.base import MatchProbe, PsaChange, PsaProvider, PsaRecord
from sync.providers.connectwise import mapping, writes
from sync.providers.connectwise import provider as provider_module

ORG, SITE, CONTACT, CONFIG = (
    AssetKind.ORGANIZATION,
    AssetKind.LOCATION,
    AssetKind.CONTACT,
    AssetKind.CONFIGURATION,
)
CLIENT, PARTNER = 1, 4  # company types
ACTIVE = 1  # company and configuration status
MANAGED_SERVER = 1  # configuration type


@dataclass
class Sent:
    method: str
    path: str  # below apis/3.0/
    conditions: str | None
    body: Any
    query_length: int  # of the URL's query string as sent


class Recorder(httpx.AsyncBaseTransport):
    """A real HTTP transport that keeps what each API request sent."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.sent: list[Sent] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if "/apis/3.0/" in path:
            body = json.loads(request.content) if request.content else None
            self.sent.append(
                Sent(
                    request.method,
                    path.split("/apis/3.0/", 1)[1],
                    request.url.params.get("conditions"),
                    body,
                    len(request.url.query),
                )
            )
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


@pytest.fixture
def wire() -> Recorder:
    return Recorder()


@pytest.fixture
async def cw(psa: Psa, wire: Recorder) -> AsyncIterator[PsaProvider]:
    provider = connectwise_provider(
        psa.credentials(), sandbox=True, retry=FAST_RETRY, transport=wire
    )
    await provider.check_connection()  # discovery done: tests count only their own requests
    wire.sent.clear()
    try:
        yield provider
    finally:
        await provider.aclose()


def requests(psa: Psa) -> int:
    return psa.simulator.traffic.requests


def stamp(raw: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(raw["_info"]["lastUpdated"])


def configuration_to_move(psa: Psa) -> tuple[dict[str, Any], int, int]:
    """A configuration, and a site and a contact of its company it does not point at yet."""
    for config in psa.store.find("configurations"):
        company = config["company"]["id"]
        sites = [s["id"] for s in psa.store.find("sites", parent_id=company)]
        contacts = [c["id"] for c in psa.store.find("contacts", f"company/id = {company}")]
        current_site = (config.get("site") or {}).get("id")
        current_contact = (config.get("contact") or {}).get("id")
        other_sites = [s for s in sites if s != current_site]
        other_contacts = [c for c in contacts if c != current_contact]
        if other_sites and other_contacts:
            return config, other_sites[0], other_contacts[0]
    raise AssertionError("the dataset has no configuration to move")


def contact_with_phones(psa: Psa) -> dict[str, Any]:
    for contact in psa.store.find("contacts"):
        kinds = {item["communicationType"] for item in contact["communicationItems"]}
        if {"Email", "Phone"} <= kinds:
            return contact
    raise AssertionError("the dataset has no contact with an e-mail and a phone")


# -- updates ------------------------------------------------------------------------------------


async def test_update_sends_one_patch_with_only_the_changed_fields(
    cw: PsaProvider, psa: Psa, wire: Recorder
) -> None:
    config = psa.store.find("configurations")[0]
    before = requests(psa)

    record = await cw.update_record(
        CONFIG,
        config["id"],
        config["company"]["id"],
        PsaChange(values={"name": "Renamed server", "serial_number": "SN-NEW-1"}),
    )

    assert requests(psa) - before == 1
    assert [(s.method, s.path) for s in wire.sent] == [
        ("PATCH", f"company/configurations/{config['id']}")
    ]
    assert wire.sent[0].body == [
        {"op": "replace", "path": "name", "value": "Renamed server"},
        {"op": "replace", "path": "serialNumber", "value": "SN-NEW-1"},
    ]
    stored = psa.store.get("configurations", config["id"])
    assert stored is not None
    assert (stored["name"], stored["serialNumber"]) == ("Renamed server", "SN-NEW-1")
    assert stored["tagNumber"] == config["tagNumber"]  # untouched fields stay
    assert stored["type"] == config["type"]
    assert record.psa_id == config["id"]
    assert record.values["name"] == "Renamed server"
    assert record.updated_at == stamp(stored)
    assert record.updated_at is not None
    assert record.updated_at > stamp(config)


async def test_update_moves_a_configuration_to_another_site_and_contact(
    cw: PsaProvider, psa: Psa
) -> None:
    config, site, contact = configuration_to_move(psa)

    record = await cw.update_record(
        CONFIG,
        config["id"],
        None,
        PsaChange(refs={"location": site, "contact": contact}),
    )

    stored = psa.store.get("configurations", config["id"])
    assert stored is not None
    assert stored["site"]["id"] == site
    assert stored["contact"]["id"] == contact
    assert record.refs == {"location": site, "contact": contact}


async def test_update_clears_values_and_references(
    cw: PsaProvider, psa: Psa, wire: Recorder
) -> None:
    config = next(
        c for c in psa.store.find("configurations") if c.get("site") and c.get("serialNumber")
    )

    record = await cw.update_record(
        CONFIG,
        config["id"],
        None,
        PsaChange(values={"serial_number": None}, refs={"location": None}),
    )

    assert wire.sent[0].body == [
        {"op": "replace", "path": "serialNumber", "value": None},
        {"op": "replace", "path": "site", "value": None},
    ]
    stored = psa.store.get("configurations", config["id"])
    assert stored is not None
    assert stored.get("serialNumber") is None
    assert stored.get("site") is None
    assert record.values["serial_number"] is None
    assert record.refs["location"] is None


async def test_update_changes_type_and_status_by_code(cw: PsaProvider, psa: Psa) -> None:
    config = next(c for c in psa.store.find("configurations") if c["type"]["id"] != 4)

    record = await cw.update_record(
        CONFIG,
        config["id"],
        None,
        PsaChange(
            codes={
                ReferenceKind.CONFIGURATION_TYPE: (4,),
                ReferenceKind.CONFIGURATION_STATUS: (2,),
            }
        ),
    )

    stored = psa.store.get("configurations", config["id"])
    assert stored is not None
    assert (stored["type"]["name"], stored["status"]["name"]) == ("Firewall", "Inactive")
    assert record.codes[ReferenceKind.CONFIGURATION_TYPE] == (4,)


async def test_contact_email_change_keeps_its_phones(
    cw: PsaProvider, psa: Psa, wire: Recorder
) -> None:
    contact = contact_with_phones(psa)
    current = mapping.CONTACT.to_record(contact)
    emails = [{**current.values["emails"][0], "value": "new.address@example.com"}]

    record = await cw.update_record(
        CONTACT,
        contact["id"],
        None,
        PsaChange(values={"emails": emails, "phones": current.values["phones"]}),
    )

    assert [op["path"] for op in wire.sent[0].body] == ["communicationItems"]
    stored = psa.store.get("contacts", contact["id"])
    assert stored is not None

    def phones(items: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
        return [
            (i["type"]["name"], i["value"], i.get("extension"), i["defaultFlag"])
            for i in items
            if i["communicationType"] != "Email"
        ]

    assert phones(stored["communicationItems"]) == phones(contact["communicationItems"])
    assert [
        (i["type"]["name"], i["value"], i["defaultFlag"])
        for i in stored["communicationItems"]
        if i["communicationType"] == "Email"
    ] == [("Email", "new.address@example.com", True)]
    assert record.values["emails"] == emails
    assert record.values["phones"] == current.values["phones"]


async def test_contact_phones_by_type_name_and_kind(cw: PsaProvider, psa: Psa) -> None:
    contact = contact_with_phones(psa)
    phones = [
        {"type": "Cell", "value": "555-0100", "primary": True, "kind": "phone"},
        {"type": "Fax", "value": "555-0199", "primary": False, "kind": "fax"},
        {
            "type": "Direct",
            "value": "555-0111",
            "primary": False,
            "kind": "phone",
            "extension": "12",
        },
    ]

    record = await cw.update_record(
        CONTACT, contact["id"], None, PsaChange(values={"emails": [], "phones": phones})
    )

    stored = psa.store.get("contacts", contact["id"])
    assert stored is not None
    assert [
        (i["type"]["name"], i["communicationType"], i["value"], i.get("extension"))
        for i in stored["communicationItems"]
    ] == [
        ("Cell", "Phone", "555-0100", None),
        ("Fax", "Fax", "555-0199", None),
        ("Direct", "Phone", "555-0111", "12"),
    ]
    assert record.values["emails"] == []
    assert record.values["phones"] == phones


async def test_contact_update_with_emails_but_no_phones_is_refused_before_sending(
    cw: PsaProvider, psa: Psa
) -> None:
    contact = contact_with_phones(psa)
    before = requests(psa)

    with pytest.raises(ValueError, match="emails and phones"):
        await cw.update_record(
            CONTACT, contact["id"], None, PsaChange(values={"emails": [{"value": "a@b.c"}]})
        )

    assert requests(psa) == before


async def test_company_types_are_never_patched(cw: PsaProvider, psa: Psa, wire: Recorder) -> None:
    company = psa.store.find("companies")[0]

    await cw.update_record(
        ORG,
        company["id"],
        None,
        PsaChange(
            values={"name": "Renamed Company"},
            codes={ReferenceKind.ORGANIZATION_TYPE: (PARTNER,)},
        ),
    )

    assert wire.sent[0].body == [{"op": "replace", "path": "name", "value": "Renamed Company"}]
    stored = psa.store.get("companies", company["id"])
    assert stored is not None
    assert stored["name"] == "Renamed Company"
    assert stored["types"] == company["types"]


async def test_update_with_nothing_to_send_makes_no_request(cw: PsaProvider, psa: Psa) -> None:
    company = psa.store.find("companies")[0]
    before = requests(psa)

    with pytest.raises(ValueError, match="something to change"):
        await cw.update_record(ORG, company["id"], None, PsaChange())
    with pytest.raises(ValueError, match="create-only"):
        await cw.update_record(
            ORG, company["id"], None, PsaChange(codes={ReferenceKind.ORGANIZATION_TYPE: (2,)})
        )

    assert requests(psa) == before


async def test_site_update_is_addressed_under_its_company(
    cw: PsaProvider, psa: Psa, wire: Recorder
) -> None:
    company = psa.store.find("companies")[0]
    site = psa.store.find("sites", parent_id=company["id"])[0]

    record = await cw.update_record(
        SITE,
        site["id"],
        company["id"],
        PsaChange(values={"city": "Tampa", "region": "FL", "address_2": "Suite 9"}),
    )

    assert wire.sent[0].path == f"company/companies/{company['id']}/sites/{site['id']}"
    stored = psa.store.get("sites", site["id"])
    assert stored is not None
    assert (stored["city"], stored["stateReference"]["name"], stored["addressLine2"]) == (
        "Tampa",
        "Florida",
        "Suite 9",
    )
    assert record.parent_psa_id == company["id"]
    assert record.values["region"] == "FL"


async def test_a_site_cannot_move_to_another_company(cw: PsaProvider, psa: Psa) -> None:
    first, second = psa.store.find("companies")[:2]
    site = psa.store.find("sites", parent_id=first["id"])[0]

    with pytest.raises(RecordError, match="cannot move"):
        await cw.update_record(SITE, site["id"], first["id"], PsaChange(parent_psa_id=second["id"]))


async def test_refused_update_raises_record_error_with_connectwise_errors(
    cw: PsaProvider, psa: Psa
) -> None:
    config = psa.store.find("configurations")[0]

    with pytest.raises(RecordError) as caught:
        await cw.update_record(CONFIG, config["id"], None, PsaChange(values={"name": "x" * 101}))

    assert caught.value.status_code == 400
    assert ("InvalidField", "name") in [(e["code"], e["field"]) for e in caught.value.errors]


# -- creates ------------------------------------------------------------------------------------


ADDRESS = {
    "address_1": "1 Harbour Road",
    "address_2": None,
    "city": "Tampa",
    "region": "FL",
    "postal_code": "33602",
    "country": "United States",
}


def new_company(name: str, **values: Any) -> PsaChange:
    return PsaChange(
        values={"name": name, "short_name": None, **values},
        codes={
            ReferenceKind.ORGANIZATION_TYPE: (CLIENT, PARTNER),
            ReferenceKind.ORGANIZATION_STATUS: (ACTIVE,),
        },
        address=dict(ADDRESS),
    )


async def test_create_company_with_its_address_and_a_derived_identifier(
    cw: PsaProvider, psa: Psa, wire: Recorder
) -> None:
    record = await cw.create_record(ORG, new_company("Bayside Dental, P.A."))

    assert [s.method for s in wire.sent] == ["POST"]
    stored = psa.store.get("companies", record.psa_id)
    assert stored is not None
    assert stored["identifier"] == "BaysideDentalPA"
    assert (stored["addressLine1"], stored["city"], stored["state"], stored["zip"]) == (
        "1 Harbour Road",
        "Tampa",
        "FL",
        "33602",
    )
    assert stored["country"]["name"] == "United States"
    assert sorted(t["id"] for t in stored["types"]) == [CLIENT, PARTNER]
    assert stored["status"]["id"] == ACTIVE
    # ConnectWise builds the primary site from the address.
    main = psa.store.get("sites", stored["site"]["id"])
    assert main is not None
    assert (main["addressLine1"], main["stateReference"]["identifier"]) == ("1 Harbour Road", "FL")
    assert record.values["short_name"] == "BaysideDentalPA"
    assert record.refs["primary_location"] == main["id"]
    assert record.codes[ReferenceKind.ORGANIZATION_TYPE] == (CLIENT, PARTNER)
    assert record.updated_at == stamp(stored)


async def test_derived_identifiers_stay_within_30_characters_and_unique(
    cw: PsaProvider, psa: Psa
) -> None:
    name = "Northwestern Regional Community Health Cooperative"

    first = await cw.create_record(ORG, new_company(name))
    second = await cw.create_record(ORG, new_company(name))

    assert first.values["short_name"] == "NorthwesternRegionalCommunityH"
    assert second.values["short_name"] == "NorthwesternRegionalCommunity2"
    for record in (first, second):
        stored = psa.store.get("companies", record.psa_id)
        assert stored is not None
        assert len(stored["identifier"]) <= 30


async def test_derived_identifier_taken_by_an_existing_company_is_renumbered(
    cw: PsaProvider, psa: Psa, wire: Recorder
) -> None:
    existing = psa.store.find("companies")[0]  # "Horizon Financial PLLC", HorizonFinancial
    psa.store.create(
        "companies", {"identifier": "HorizonFinancial2", "name": "Another", "city": "Albany"}
    )

    record = await cw.create_record(ORG, new_company("Horizon Financial"))

    assert existing["identifier"] == "HorizonFinancial"
    assert record.values["short_name"] == "HorizonFinancial3"
    # Refused once, one look-up of the identifiers in use, then created.
    assert [s.method for s in wire.sent] == ["POST", "GET", "POST"]


async def test_a_given_short_name_that_is_taken_is_refused_not_renumbered(
    cw: PsaProvider, psa: Psa
) -> None:
    existing = psa.store.find("companies")[0]

    with pytest.raises(RecordError) as caught:
        await cw.create_record(ORG, new_company("Someone Else", short_name=existing["identifier"]))

    assert [(e["code"], e["field"]) for e in caught.value.errors] == [
        ("ObjectExists", "identifier")
    ]


async def test_create_site_under_its_company(cw: PsaProvider, psa: Psa, wire: Recorder) -> None:
    company = psa.store.find("companies")[0]

    record = await cw.create_record(
        SITE,
        PsaChange(
            values={"name": "Warehouse", **ADDRESS, "region": "Ontario", "primary": False},
            parent_psa_id=company["id"],
        ),
    )

    assert (wire.sent[0].method, wire.sent[0].path) == (
        "POST",
        f"company/companies/{company['id']}/sites",
    )
    stored = psa.store.get("sites", record.psa_id)
    assert stored is not None
    assert stored["company"]["id"] == company["id"]
    assert (stored["name"], stored["stateReference"]["identifier"]) == ("Warehouse", "ON")
    assert record.parent_psa_id == company["id"]


async def test_create_contact_with_emails_and_phones(cw: PsaProvider, psa: Psa) -> None:
    company = psa.store.find("companies")[0]
    site = psa.store.find("sites", parent_id=company["id"])[0]

    record = await cw.create_record(
        CONTACT,
        PsaChange(
            values={
                "first_name": "Ada",
                "last_name": "Byron",
                "title": "CTO",
                "emails": [{"type": "Email", "value": "ada@example.com", "primary": True}],
                "phones": [{"type": "Cell", "value": "555-0101", "primary": True, "kind": "phone"}],
            },
            refs={"location": site["id"]},
            codes={ReferenceKind.CONTACT_TYPE: (2,)},
            parent_psa_id=company["id"],
        ),
    )

    stored = psa.store.get("contacts", record.psa_id)
    assert stored is not None
    assert (stored["firstName"], stored["lastName"], stored["title"]) == ("Ada", "Byron", "CTO")
    assert stored["company"]["id"] == company["id"]
    assert stored["site"]["id"] == site["id"]
    assert [t["id"] for t in stored["types"]] == [2]
    assert [
        (i["communicationType"], i["type"]["name"], i["value"])
        for i in stored["communicationItems"]
    ] == [("Email", "Email", "ada@example.com"), ("Phone", "Cell", "555-0101")]
    assert record.parent_psa_id == company["id"]


async def test_create_configuration(cw: PsaProvider, psa: Psa) -> None:
    company = psa.store.find("companies")[0]

    record = await cw.create_record(
        CONFIG,
        PsaChange(
            values={
                "name": "NEW-SRV01",
                "serial_number": "SN123",
                "manufacturer": "Dell",
                "installed_at": datetime(2025, 2, 3, 4, 5, 6, tzinfo=UTC),
                "installed_by": "Somebody",  # flows from ConnectWise only: not sent
                "notes": None,
            },
            codes={
                ReferenceKind.CONFIGURATION_TYPE: (MANAGED_SERVER,),
                ReferenceKind.CONFIGURATION_STATUS: (ACTIVE,),
            },
            parent_psa_id=company["id"],
        ),
    )

    stored = psa.store.get("configurations", record.psa_id)
    assert stored is not None
    assert stored["company"]["id"] == company["id"]
    assert (stored["type"]["id"], stored["status"]["id"]) == (MANAGED_SERVER, ACTIVE)
    assert stored["manufacturer"]["name"] == "Dell"
    assert stored["installationDate"] == "2025-02-03T04:05:06Z"
    assert stored.get("installedBy") is None
    assert record.values["name"] == "NEW-SRV01"
    assert record.parent_psa_id == company["id"]


async def test_create_refused_by_connectwise_raises_its_field_error(
    cw: PsaProvider, psa: Psa
) -> None:
    company = psa.store.find("companies")[0]
    before = psa.store.count("configurations")

    with pytest.raises(RecordError) as caught:
        await cw.create_record(
            CONFIG, PsaChange(values={"name": "No type"}, parent_psa_id=company["id"])
        )

    assert caught.value.status_code == 400
    assert caught.value.errors == [
        {
            "code": "MissingRequiredField",
            "message": "The type field is required.",
            "resource": "configuration",
            "field": "type",
        }
    ]
    assert psa.store.count("configurations") == before


# -- what a create needs ----------------------------------------------------------------------


def test_missing_for_create_names_what_connectwise_requires() -> None:
    provider_words = writes.missing_for_create
    address_words = (
        "an address (ConnectWise keeps a company's address on it: give the organization a "
        "primary location with an address)"
    )

    assert provider_words(ORG, PsaChange(values={"name": " "})) == [
        "name",
        address_words,
        "type",
        "status",
    ]
    assert provider_words(ORG, new_company("Acme")) == []
    assert provider_words(ORG, PsaChange(values={"name": "A"}, address={"city": None})) == [
        address_words,
        "type",
        "status",
    ]
    assert provider_words(SITE, PsaChange(values={"name": "Main"})) == ["organization"]
    assert provider_words(CONTACT, PsaChange(values={"last_name": "Byron"})) == [
        "first name",
        "organization",
    ]
    assert provider_words(
        CONFIG,
        PsaChange(
            values={"name": "SRV"},
            codes={ReferenceKind.CONFIGURATION_TYPE: ()},
            parent_psa_id=250,
        ),
    ) == ["type", "status"]


async def test_provider_missing_for_create_uses_the_table(cw: PsaProvider) -> None:
    assert cw.missing_for_create(CONFIG, PsaChange()) == [
        "name",
        "type",
        "status",
        "organization",
    ]


def test_field_map_declares_required_and_psa_only_columns() -> None:
    fields = mapping.FIELD_MAP
    assert "organization_type_id" in fields.psa_to_local_only[ORG]
    assert {"phone", "fax"} <= fields.psa_to_local_only[SITE]
    assert "emails" not in fields.psa_to_local_only[CONTACT]
    assert fields.required_for_create[CONFIG] == {
        "name",
        "configuration_type_id",
        "configuration_status_id",
        "organization_id",
    }
    for kind, columns in fields.required_for_create.items():
        assert columns <= fields.columns(kind), kind


# -- matches -------------------------------------------------------------------------------------


async def test_find_matches_organizations_by_name(
    cw: PsaProvider, psa: Psa, wire: Recorder
) -> None:
    companies = psa.store.find("companies")[:3]
    probes = [MatchProbe(name=c["name"].upper()) for c in companies]
    probes.append(MatchProbe(name="No Such Company"))

    found = await cw.find_matches(ORG, probes)

    assert sorted(r.psa_id for r in found) == sorted(c["id"] for c in companies)
    assert len(wire.sent) == 1
    assert wire.sent[0].conditions is not None
    assert "deletedFlag = false" in wire.sent[0].conditions


async def test_find_matches_organizations_by_identifier_where_the_probe_knows_it(
    cw: PsaProvider, psa: Psa, wire: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(provider_module, "PAGE_SIZE", 10)  # lookups, not the PSA read whole
    renamed, named = psa.store.find("companies")[:2]
    probes = [
        MatchProbe(name="Renamed Since", short_name=renamed["identifier"].lower()),
        MatchProbe(name=named["name"]),
    ]

    found = await cw.find_matches(ORG, probes)

    assert sorted(r.psa_id for r in found) == sorted([renamed["id"], named["id"]])
    sent = [s.conditions or "" for s in wire.sent if not s.path.endswith("/count")]
    assert len(sent) == 2
    assert "identifier in" in sent[0]
    assert "Renamed Since" not in " ".join(sent)


async def test_find_matches_leaves_deleted_companies_out(cw: PsaProvider, psa: Psa) -> None:
    company = psa.store.find("companies")[0]
    psa.store.delete("companies", company["id"])

    assert await cw.find_matches(ORG, [MatchProbe(name=company["name"])]) == []


async def test_find_matches_makes_one_request_per_batch_of_100(
    cw: PsaProvider, psa: Psa, wire: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As if the PSA held more companies than two name lookups would cover.
    monkeypatch.setattr(provider_module, "PAGE_SIZE", 10)
    names = [c["name"] for c in psa.store.find("companies")]
    probes = [MatchProbe(name=n) for n in names]
    probes += [MatchProbe(name=f"N{i}") for i in range(130 - len(names))]
    before = requests(psa)

    found = await cw.find_matches(ORG, probes)

    assert requests(psa) - before == 3  # the count, then two batches of names
    assert [s.path.endswith("/count") for s in wire.sent] == [True, False, False]
    assert len(found) == len(names)


async def test_find_matches_reads_a_small_psa_whole_instead_of_many_lookups(
    cw: PsaProvider, psa: Psa, wire: Recorder
) -> None:
    names = [c["name"] for c in psa.store.find("companies")]
    probes = [MatchProbe(name=f"Documented {i:04}") for i in range(400)]
    probes += [MatchProbe(name=n) for n in names[:2]]
    before = requests(psa)

    found = await cw.find_matches(ORG, probes)

    assert requests(psa) - before == 2  # how many companies, then all of them in one page
    assert {r.psa_id for r in found} >= {c["id"] for c in psa.store.find("companies")[:2]}


async def test_find_matches_keeps_each_url_short(cw: PsaProvider, psa: Psa, wire: Recorder) -> None:
    probes = [MatchProbe(name=f"{'Long company name ' * 2}{i:03}") for i in range(60)]

    await cw.find_matches(ORG, probes)

    assert len(wire.sent) > 1
    for sent in wire.sent:
        assert sent.query_length <= 2000


async def test_no_probes_no_request(cw: PsaProvider, wire: Recorder) -> None:
    assert await cw.find_matches(ORG, [MatchProbe(name=None)]) == []
    assert await cw.find_matches(CONTACT, []) == []
    assert wire.sent == []


async def test_find_matches_contacts_by_company_and_name(
    cw: PsaProvider, psa: Psa, wire: Recorder
) -> None:
    first, second = psa.store.find("contacts")[:2]
    probes = [
        MatchProbe(
            first_name=first["firstName"],
            last_name=first.get("lastName"),
            parent_psa_id=first["company"]["id"],
        ),
        MatchProbe(last_name=second["lastName"], parent_psa_id=second["company"]["id"]),
        MatchProbe(first_name=first["firstName"], parent_psa_id=999_999),
    ]

    found = await cw.find_matches(CONTACT, probes)

    ids = {r.psa_id for r in found}
    assert {first["id"], second["id"]} <= ids
    for record in found:  # a superset, but within the probes' companies
        assert record.parent_psa_id in {first["company"]["id"], second["company"]["id"]}
    assert len(wire.sent) == 1
    assert all(isinstance(r, PsaRecord) for r in found)


async def test_find_matches_configurations_by_company_and_name(
    cw: PsaProvider, psa: Psa, wire: Recorder
) -> None:
    configs = psa.store.find("configurations")[:5]
    probes = [
        MatchProbe(name=c["name"], parent_psa_id=c["company"]["id"], type_psa_id=c["type"]["id"])
        for c in configs
    ]

    found = await cw.find_matches(CONFIG, probes)

    assert {c["id"] for c in configs} <= {r.psa_id for r in found}
    wanted = {(c["company"]["id"], c["name"].casefold()) for c in configs}
    companies = {company for company, _ in wanted}
    names = {name for _, name in wanted}
    for record in found:
        assert record.parent_psa_id in companies
        assert record.values["name"].casefold() in names
    assert len(wire.sent) == 1


async def test_find_matches_locations_lists_each_company_once(
    cw: PsaProvider, psa: Psa, wire: Recorder
) -> None:
    companies = psa.store.find("companies")[:2]
    probes = [MatchProbe(name="Main", parent_psa_id=c["id"]) for c in companies for _ in (1, 2)]

    found = await cw.find_matches(SITE, probes)

    expected = [s["id"] for c in companies for s in psa.store.find("sites", parent_id=c["id"])]
    assert sorted(r.psa_id for r in found) == sorted(expected)
    assert len(wire.sent) == 2
    assert {r.parent_psa_id for r in found} == {c["id"] for c in companies}


# -- deletes -------------------------------------------------------------------------------------


async def test_delete_and_delete_again(cw: PsaProvider, psa: Psa) -> None:
    config = psa.store.find("configurations")[0]

    await cw.delete_record(CONFIG, config["id"], config["company"]["id"])
    assert psa.store.get("configurations", config["id"]) is None

    await cw.delete_record(CONFIG, config["id"], config["company"]["id"])  # already gone


async def test_delete_site_and_company(cw: PsaProvider, psa: Psa) -> None:
    company = psa.store.find("companies")[0]
    site = psa.store.find("sites", parent_id=company["id"])[0]

    await cw.delete_record(SITE, site["id"], company["id"])
    await cw.delete_record(ORG, company["id"], None)

    assert psa.store.get("sites", site["id"]) is None
    stored = psa.store.get("companies", company["id"])
    assert stored is not None
    assert stored["deletedFlag"] is True
    await cw.delete_record(ORG, company["id"], None)  # soft-deleted: gone for the API
    await cw.delete_record(SITE, site["id"], company["id"])


async def test_delete_of_a_site_of_a_missing_company_is_fine(cw: PsaProvider) -> None:
    await cw.delete_record(SITE, 1, 999_999)


# -- contact attribute options ---------------------------------------------------------------


async def test_contact_attribute_options_come_from_communication_types(
    cw: PsaProvider, wire: Recorder
) -> None:
    options = await cw.contact_attribute_options()

    assert options == {"email": ["Email"], "phone": ["Direct", "Cell", "Fax"]}
    assert [s.path for s in wire.sent] == ["company/communicationTypes"]


# -- pure helpers ---------------------------------------------------------------------------------


def test_derive_identifier() -> None:
    assert writes.derive_identifier("Café Müller & Söhne GmbH") == "CafeMullerSohneGmbH"
    assert writes.derive_identifier("株式会社") == "Company"
    assert writes.derive_identifier("Acme", ["ACME", "acme2"]) == "Acme3"
    long = "A" * 40
    assert writes.derive_identifier(long, ["A" * 30]) == "A" * 29 + "2"
    assert writes.derive_identifier(
        long, ["A" * 30] + [f"{'A' * 29}{i}" for i in range(2, 10)]
    ) == ("A" * 28 + "10")


def test_unmapped_columns_are_refused() -> None:
    with pytest.raises(ValueError, match="hostname"):
        writes.patch_operations(CONFIG, PsaChange(values={"hostname": "x"}))


async def test_company_in_a_state_connectwise_does_not_list(cw: PsaProvider, psa: Psa) -> None:
    change = new_company("Munich Motors")
    assert change.address is not None
    change.address.update(region="Bavaria", country="United States")

    record = await cw.create_record(ORG, change)

    stored = psa.store.get("companies", record.psa_id)
    assert stored is not None
    assert stored["state"] == "Bavaria"
    main = psa.store.get("sites", stored["site"]["id"])
    assert main is not None
    assert main.get("stateReference") is None
    assert main["city"] == "Tampa"
