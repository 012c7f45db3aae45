"""ConnectWiseSoapProvider's writes against the simulator over loopback HTTP, read back through
the simulator's REST face (the same store): a write changes exactly what it was asked to, and
nothing the SOAP record carries untouched (Update* replaces the whole record)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from models.enums import AssetKind, ReferenceKind
from simulators.connectwise import (
    ConnectWiseSimulator,
    ConnectWiseStore,
    DatasetSpec,
    generate_dataset,
    serve_in_thread,
)
from simulators.connectwise.app import ApiCredentials
from simulators.connectwise.soap import IntegratorLogin
from sync.errors import CredentialsError, RecordError
from sync.providers.base import MatchProbe, PsaChange
from sync.providers.connectwise import ConnectWiseCredentials, mapping
from sync.providers.connectwise.soap import ConnectWiseSoapClient, clear_wsdl_cache
from sync.providers.connectwise.soap_provider import ConnectWiseSoapProvider
from sync.providers.urls import build_http_client

LOGIN = IntegratorLogin("soap-login", "soap-secret-123")
REST = ApiCredentials(company_id="acme", public_key="rest-pub", private_key="rest-priv")
ORG, SITE, CONTACT, CONFIG = (
    AssetKind.ORGANIZATION,
    AssetKind.LOCATION,
    AssetKind.CONTACT,
    AssetKind.CONFIGURATION,
)


@dataclass
class Site:
    """The simulator, its store, and a REST client of the same store."""

    url: str
    store: ConnectWiseStore
    rest: httpx.AsyncClient
    actions: list[str]

    async def get(self, path: str) -> Any:
        answer = await self.rest.get(f"{self.url}/v4_6_release/apis/3.0/{path}")
        answer.raise_for_status()
        return answer.json()


def _stamp_free(record: Any) -> Any:
    """A REST record without what every write changes (its ``_info`` stamps)."""
    if isinstance(record, dict):
        return {k: _stamp_free(v) for k, v in record.items() if k != "_info"}
    if isinstance(record, list):
        return [_stamp_free(v) for v in record]
    return record


@pytest.fixture
async def site() -> AsyncIterator[Site]:
    clear_wsdl_cache()
    store = generate_dataset(DatasetSpec(companies=12, seed=5))
    simulator = ConnectWiseSimulator(store, credentials=REST, integrator=LOGIN)
    actions: list[str] = []
    async with serve_in_thread(simulator) as url:
        auth = (f"{REST.company_id}+{REST.public_key}", REST.private_key)
        async with httpx.AsyncClient(auth=auth, headers={"clientId": "tests"}) as rest:
            yield Site(url, store, rest, actions)
    clear_wsdl_cache()


def _credentials(site: Site, password: str = LOGIN.password) -> ConnectWiseCredentials:
    return ConnectWiseCredentials(
        site_url=site.url,
        company_id="acme",
        public_key=None,
        private_key=None,
        client_id="tests",
        integrator_login_id=LOGIN.login_id,
        integrator_password=password,
    )


@pytest.fixture
async def provider(site: Site) -> AsyncIterator[ConnectWiseSoapProvider]:
    async def note(request: httpx.Request) -> None:
        if request.method == "POST":
            action = request.headers.get("SOAPAction", "").strip('"')
            site.actions.append(action.rsplit("/", 1)[-1])

    async with build_http_client() as http:
        http.event_hooks["request"].append(note)
        client = ConnectWiseSoapClient(http, _credentials(site), sandbox=True)
        yield ConnectWiseSoapProvider(client)


def _name_id(name: str) -> int:
    return mapping.synthetic_id(name)


# ------------------------------------------------------------------------------ updates


async def test_a_company_rename_changes_its_name_only_and_keeps_types_and_sites(
    site: Site, provider: ConnectWiseSoapProvider
) -> None:
    company_id = 257  # Client and Vendor, three sites
    before = await site.get(f"company/companies/{company_id}")
    sites_before = await site.get(f"company/companies/{company_id}/sites")
    assert len(before["types"]) == 2
    assert len(sites_before) == 3

    [read] = await provider.read_for_write(ORG, [(company_id, None)])
    site.actions.clear()
    answer = await provider.update_record(
        ORG, company_id, None, PsaChange(values={"name": "Renamed Accounting"})
    )

    after = await site.get(f"company/companies/{company_id}")
    assert _stamp_free(after) == {**_stamp_free(before), "name": "Renamed Accounting"}
    for row in sites_before:  # the sites show their company's new name, and nothing else
        row["company"]["name"] = "Renamed Accounting"
    assert await site.get(f"company/companies/{company_id}/sites") == sites_before
    assert answer.values["name"] == "Renamed Accounting"
    assert answer.codes == read.codes
    assert answer.updated_at is not None
    assert answer.updated_at != read.updated_at
    # What read_for_write read is what the update sent back: no second read.
    assert site.actions == ["UpdateCompany"]


async def test_a_site_edit_changes_that_site_only(
    site: Site, provider: ConnectWiseSoapProvider
) -> None:
    company_id = 251  # four sites
    sites_before = {s["id"]: s for s in await site.get(f"company/companies/{company_id}/sites")}
    company_before = await site.get(f"company/companies/{company_id}")
    primary = company_before["site"]["id"]
    target = next(i for i in sorted(sites_before) if i != primary)

    read = await provider.read_for_write(SITE, [(target, company_id)])
    assert [r.psa_id for r in read] == [target]
    answer = await provider.update_record(
        SITE, target, company_id, PsaChange(values={"city": "Orlando", "address_2": "Suite 9"})
    )

    sites_after = {s["id"]: s for s in await site.get(f"company/companies/{company_id}/sites")}
    assert set(sites_after) == set(sites_before)
    for site_id, before in sites_before.items():
        expected = _stamp_free(before)
        if site_id == target:
            expected = {**expected, "city": "Orlando", "addressLine2": "Suite 9"}
        assert _stamp_free(sites_after[site_id]) == expected, site_id
    assert _stamp_free(await site.get(f"company/companies/{company_id}")) == _stamp_free(
        company_before
    )
    assert (answer.psa_id, answer.parent_psa_id) == (target, company_id)
    assert (answer.values["city"], answer.values["address_2"]) == ("Orlando", "Suite 9")


async def test_a_contact_title_edit_keeps_its_phones_and_emails(
    site: Site, provider: ConnectWiseSoapProvider
) -> None:
    contact_id = 2003  # an email, a direct phone with an extension, and a cell phone
    before = await site.get(f"company/contacts/{contact_id}")
    assert len(before["communicationItems"]) == 3

    # No read_for_write first: the provider reads the record itself.
    answer = await provider.update_record(
        CONTACT, contact_id, 250, PsaChange(values={"title": "Owner"})
    )

    after = await site.get(f"company/contacts/{contact_id}")
    assert _stamp_free(after) == {**_stamp_free(before), "title": "Owner"}
    assert answer.values["title"] == "Owner"
    assert answer.parent_psa_id == 250


async def test_a_contact_email_edit_changes_that_email_only(
    site: Site, provider: ConnectWiseSoapProvider
) -> None:
    contact_id = 2003
    before = await site.get(f"company/contacts/{contact_id}")
    await provider.read_for_write(CONTACT, [(contact_id, 250)])
    emails = [{"type": "Email", "value": "carlos@roofing.example", "primary": True}]
    phones = [{"type": "Direct", "value": "(416) 555-0601", "primary": True, "kind": "phone"}]

    answer = await provider.update_record(
        CONTACT, contact_id, 250, PsaChange(values={"emails": emails, "phones": phones})
    )

    after = await site.get(f"company/contacts/{contact_id}")
    items = _stamp_free(before["communicationItems"])
    items[0]["value"] = "carlos@roofing.example"
    items[0]["domain"] = "@roofing.example"
    assert _stamp_free(after) == {**_stamp_free(before), "communicationItems": items}
    assert answer.values["emails"][0]["value"] == "carlos@roofing.example"


async def test_a_configuration_rename_keeps_notes_dates_and_references(
    site: Site, provider: ConnectWiseSoapProvider
) -> None:
    config_id = 5000
    contact = site.store.find("contacts", "company/id = 252")[0]
    # Nillable elements (status, contact, site, manufacturer ids, dates) and omittable ones
    # (notes, serial, tag, model) all set: none may be blanked by a rename.
    site.store.update(
        "configurations",
        config_id,
        {"notes": "Keep me", "contact": {"id": contact["id"]}, "osInfo": "22H2"},
    )
    before = await site.get(f"company/configurations/{config_id}")
    for name in ("status", "contact", "site", "manufacturer", "purchaseDate", "notes", "tagNumber"):
        assert before.get(name), name

    await provider.read_for_write(CONFIG, [(config_id, 252)])
    answer = await provider.update_record(
        CONFIG, config_id, 252, PsaChange(values={"name": "FS-WS001-RENAMED"})
    )

    after = await site.get(f"company/configurations/{config_id}")
    assert _stamp_free(after) == {**_stamp_free(before), "name": "FS-WS001-RENAMED"}
    assert answer.values["name"] == "FS-WS001-RENAMED"
    assert answer.values["notes"] == "Keep me"


async def test_configuration_values_dates_and_references_are_written(
    site: Site, provider: ConnectWiseSoapProvider
) -> None:
    config_id = 5000
    other_site = site.store.create(
        "sites", {"name": "Annex", "addressLine1": "2 Side St"}, parent_id=252
    )
    change = PsaChange(
        values={
            "serial_number": "SN-NEW",
            "purchased_at": datetime(2023, 1, 2, tzinfo=UTC),
            "manufacturer": "HP",
            "notes": None,
        },
        refs={"location": other_site["id"], "contact": None},
        codes={ReferenceKind.CONFIGURATION_STATUS: (1,)},
    )

    answer = await provider.update_record(CONFIG, config_id, 252, change)

    after = await site.get(f"company/configurations/{config_id}")
    assert after["serialNumber"] == "SN-NEW"
    assert after["purchaseDate"] == "2023-01-02T00:00:00Z"
    assert after["manufacturer"]["name"] == "HP"
    assert "notes" not in after
    assert after["site"]["id"] == other_site["id"]
    assert "contact" not in after
    assert after["status"]["id"] == 1
    assert after["tagNumber"] == "AT00252001"  # untouched
    assert answer.refs == {"location": other_site["id"], "contact": None}


async def test_columns_soap_cannot_write_are_skipped(
    site: Site, provider: ConnectWiseSoapProvider
) -> None:
    before = await site.get("company/contacts/2003")
    site.actions.clear()

    answer = await provider.update_record(CONTACT, 2003, 250, PsaChange(refs={"location": None}))

    assert _stamp_free(await site.get("company/contacts/2003")) == _stamp_free(before)
    assert "AddOrUpdateContact" not in site.actions
    assert answer.psa_id == 2003
    # Unreadable through SOAP: not synced at all (a pull must not clear the local value).
    assert "location_id" not in provider.field_map.columns(CONTACT)
    assert "parent_id" not in provider.field_map.columns(ORG)
    # Read but not writable: flows from ConnectWise only.
    assert "primary_location_id" in provider.field_map.psa_to_local_only[ORG]


# ------------------------------------------------------------------------------ creates


async def test_a_company_is_created_once_with_its_address_type_and_status(
    site: Site, provider: ConnectWiseSoapProvider
) -> None:
    await provider.reference_data()  # SOAP writes types and statuses by name
    change = PsaChange(
        values={"name": "Harbor Point Dental", "short_name": None},  # as the engine sends it
        codes={
            ReferenceKind.ORGANIZATION_TYPE: (_name_id("Client"),),
            ReferenceKind.ORGANIZATION_STATUS: (_name_id("Active"),),
        },
        address={"address_1": "1 Harbor Way", "city": "Tampa", "postal_code": "33602"},
    )
    site.actions.clear()

    created = await provider.create_record(ORG, change)

    assert site.actions.count("AddCompany") == 1
    rest = await site.get(f"company/companies/{created.psa_id}")
    assert rest["name"] == "Harbor Point Dental"
    assert rest["identifier"] == "HarborPointDental"
    assert (rest["addressLine1"], rest["city"], rest["zip"]) == ("1 Harbor Way", "Tampa", "33602")
    assert [t["name"] for t in rest["types"]] == ["Client"]
    assert rest["status"]["name"] == "Active"
    assert created.values["short_name"] == "HarborPointDental"
    assert created.codes[ReferenceKind.ORGANIZATION_STATUS] == (_name_id("Active"),)

    # A second company of the same name gets the next identifier.
    again = await provider.create_record(ORG, change)
    assert again.values["short_name"] == "HarborPointDental2"


async def test_a_contact_and_a_configuration_are_created_under_their_company(
    site: Site, provider: ConnectWiseSoapProvider
) -> None:
    contact = await provider.create_record(
        CONTACT,
        PsaChange(
            values={
                "first_name": "Dana",
                "last_name": "Soap",
                "title": "IT Lead",
                "emails": [{"type": "Email", "value": "dana@example.com", "primary": True}],
                "phones": [
                    {"type": "Direct", "value": "555-0101", "kind": "phone"},
                    {"type": "Fax", "value": "555-0199", "kind": "fax"},
                ],
            },
            parent_psa_id=252,
        ),
    )
    config = await provider.create_record(
        CONFIG,
        PsaChange(
            values={"name": "SOAP-PC-1", "serial_number": "SN-1"},
            codes={
                ReferenceKind.CONFIGURATION_TYPE: (2,),
                ReferenceKind.CONFIGURATION_STATUS: (1,),
            },
            refs={"contact": contact.psa_id},
            parent_psa_id=252,
        ),
    )

    rest_contact = await site.get(f"company/contacts/{contact.psa_id}")
    assert (rest_contact["firstName"], rest_contact["title"]) == ("Dana", "IT Lead")
    assert rest_contact["company"]["id"] == 252
    values = sorted(
        (i["communicationType"], i["value"]) for i in rest_contact["communicationItems"]
    )
    assert values == [("Email", "dana@example.com"), ("Fax", "555-0199"), ("Phone", "555-0101")]
    assert contact.parent_psa_id == 252
    rest_config = await site.get(f"company/configurations/{config.psa_id}")
    assert (rest_config["name"], rest_config["serialNumber"]) == ("SOAP-PC-1", "SN-1")
    assert (rest_config["type"]["id"], rest_config["status"]["id"]) == (2, 1)
    assert rest_config["company"]["id"] == 252
    assert rest_config["contact"]["id"] == contact.psa_id
    assert config.parent_psa_id == 252


async def test_a_site_is_created_through_its_company_and_the_others_stay(
    site: Site, provider: ConnectWiseSoapProvider
) -> None:
    company_id = 257
    sites_before = await site.get(f"company/companies/{company_id}/sites")
    company_before = await site.get(f"company/companies/{company_id}")

    created = await provider.create_record(
        SITE,
        PsaChange(
            values={"name": "Warehouse", "address_1": "7 Dock Rd", "city": "Tampa"},
            parent_psa_id=company_id,
        ),
    )

    sites_after = await site.get(f"company/companies/{company_id}/sites")
    assert [s for s in sites_after if s["id"] != created.psa_id] == sites_before
    new = next(s for s in sites_after if s["id"] == created.psa_id)
    assert (new["name"], new["addressLine1"], new["city"]) == ("Warehouse", "7 Dock Rd", "Tampa")
    assert _stamp_free(await site.get(f"company/companies/{company_id}")) == _stamp_free(
        company_before
    )
    assert (created.values["name"], created.parent_psa_id) == ("Warehouse", company_id)


# ------------------------------------------------------------------------------ deletes


async def test_deletes_remove_the_record_and_a_record_gone_counts_as_deleted(
    site: Site, provider: ConnectWiseSoapProvider
) -> None:
    await provider.delete_record(CONTACT, 2003, 250)
    await provider.delete_record(CONFIG, 5000, 252)
    await provider.delete_record(ORG, 262, None)

    assert site.store.get("contacts", 2003) is None
    assert site.store.get("configurations", 5000) is None
    assert site.store.get("companies", 262)["deletedFlag"] is True  # type: ignore[index]
    await provider.delete_record(CONTACT, 2003, 250)  # already gone: no error
    await provider.delete_record(ORG, 262, None)


async def test_a_site_cannot_be_deleted_through_soap(
    site: Site, provider: ConnectWiseSoapProvider
) -> None:
    sites = await site.get("company/companies/251/sites")
    with pytest.raises(RecordError, match="SOAP API cannot delete a site"):
        await provider.delete_record(SITE, sites[-1]["id"], 251)
    assert await site.get("company/companies/251/sites") == sites
    await provider.delete_record(SITE, 999_999, 251)  # not there: nothing to do


# ------------------------------------------------------------------------------ errors


async def test_a_refused_write_is_a_record_error_with_connectwise_text(
    site: Site, provider: ConnectWiseSoapProvider
) -> None:
    before = await site.get("company/configurations/5000")
    with pytest.raises(RecordError) as refused:
        await provider.update_record(
            CONFIG, 5000, 252, PsaChange(codes={ReferenceKind.CONFIGURATION_TYPE: (987_654,)})
        )
    assert "UpdateConfiguration" in refused.value.message
    assert "987654" in refused.value.message  # the simulator's own words name the type
    assert await site.get("company/configurations/5000") == before


async def test_a_type_soap_cannot_name_is_refused_before_anything_is_sent(
    site: Site, provider: ConnectWiseSoapProvider
) -> None:
    site.actions.clear()
    with pytest.raises(RecordError, match="company type"):
        await provider.create_record(
            ORG,
            PsaChange(
                values={"name": "Nameless"},
                codes={ReferenceKind.ORGANIZATION_TYPE: (_name_id("No Such Type"),)},
                address={"city": "Tampa"},
            ),
        )
    assert "AddCompany" not in site.actions


async def test_a_wrong_password_is_a_credentials_error(site: Site) -> None:
    async with build_http_client() as http:
        client = ConnectWiseSoapClient(http, _credentials(site, "wrong-pass"), sandbox=True)
        provider = ConnectWiseSoapProvider(client)
        with pytest.raises(CredentialsError):
            await provider.update_record(ORG, 257, None, PsaChange(values={"name": "X"}))
    assert site.store.get("companies", 257)["name"] != "X"  # type: ignore[index]


# ------------------------------------------------------------------------------ matching


async def test_find_matches_returns_the_candidates_of_each_kind(
    site: Site, provider: ConnectWiseSoapProvider
) -> None:
    company = site.store.get("companies", 257)
    contact = site.store.get("contacts", 2003)
    assert company is not None
    assert contact is not None

    orgs = await provider.find_matches(ORG, [MatchProbe(name=company["name"].upper())])
    by_identifier = await provider.find_matches(
        ORG, [MatchProbe(name="Another Name", short_name=company["identifier"])]
    )
    people = await provider.find_matches(
        CONTACT, [MatchProbe(first_name=contact["firstName"], parent_psa_id=250)]
    )
    configs = await provider.find_matches(CONFIG, [MatchProbe(name="FS-WS001", parent_psa_id=252)])
    sites = await provider.find_matches(SITE, [MatchProbe(name="Main", parent_psa_id=251)])

    assert [r.psa_id for r in orgs] == [257]
    assert [r.psa_id for r in by_identifier] == [257]
    assert 2003 in [r.psa_id for r in people]
    assert all(r.parent_psa_id == 250 for r in people)
    assert [r.psa_id for r in configs] == [5000]
    assert len(sites) == 4
    assert provider.missing_for_create(CONFIG, PsaChange(values={"name": "x"})) == [
        "type",
        "status",
        "organization",
    ]
    assert await provider.contact_attribute_options() == {
        "email": ["Email"],
        "phone": ["Direct", "Fax"],
    }
