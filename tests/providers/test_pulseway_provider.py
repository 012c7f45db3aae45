"""The Pulseway PSA provider (read side) against the Pulseway simulator, over real HTTP.

Writes are in ``test_pulseway_writes.py``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from harness import pulseway_login
from pulseway_contract import Recorder

from models.enums import AssetKind, ReferenceKind
from simulators.pulseway import DatasetSpec, PulsewaySimulator, generate_dataset
from simulators.pulseway import reference as ref
from simulators.pulseway.server import serve_in_thread
from sync.providers.base import ProviderScope, PsaChange, PsaRecord
from sync.providers.pulseway import mapping
from sync.providers.pulseway import provider as provider_module
from sync.providers.pulseway.client import PulsewayClient
from sync.providers.pulseway.provider import PulsewayProvider
from sync.providers.urls import build_http_client

Sim = tuple[PulsewaySimulator, str]


@pytest.fixture
async def simulator(pulseway_contract: Recorder) -> AsyncIterator[Sim]:
    # Budgets out of the way: these tests are about mapping and order, not pacing.
    sim = PulsewaySimulator(
        generate_dataset(DatasetSpec(accounts=12, seed=3)), calls_per_hour=1_000_000
    )
    async with serve_in_thread(pulseway_contract.wrap(sim.app)) as base_url:
        yield sim, base_url


@pytest.fixture
async def provider(
    simulator: Sim, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[PulsewayProvider]:
    sim, base_url = simulator
    credentials = pulseway_login(sim, base_url)
    # Small pages both ways: several Pulseway pages and several yielded pages per list.
    monkeypatch.setattr(provider_module, "PAGE_SIZE", 7)
    async with build_http_client() as http:
        client = PulsewayClient(
            http, credentials, sandbox=True, page_size=5, budget_per_hour=1_000_000
        )
        yield PulsewayProvider(client)


def everything() -> ProviderScope:
    return ProviderScope(
        {
            ReferenceKind.ORGANIZATION_TYPE: frozenset(r["id"] for r in ref.ACCOUNT_TYPES),
            ReferenceKind.ORGANIZATION_STATUS: frozenset(
                {mapping.STATUS_ACTIVE, mapping.STATUS_INACTIVE}
            ),
            ReferenceKind.CONFIGURATION_TYPE: frozenset(ref.lookup_ids("AssetCategory")),
            ReferenceKind.CONFIGURATION_STATUS: frozenset(ref.lookup_ids("AssetState")),
        }
    )


async def pages_of(source: AsyncIterator[list[Any]]) -> list[list[Any]]:
    return [page async for page in source]


def flat(pages: list[list[PsaRecord]]) -> list[PsaRecord]:
    return [record for page in pages for record in page]


def assert_ascending(pages: list[list[PsaRecord]]) -> None:
    ids = [r.psa_id for r in flat(pages)]
    assert ids == sorted(set(ids))
    assert all(pages), "no empty pages"


def utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


# -- reference data ------------------------------------------------------------------------------


async def test_reference_data_lists_types_statuses_and_categories(
    provider: PulsewayProvider,
) -> None:
    await provider.check_connection()
    data = await provider.reference_data()

    names = {kind: [(r.psa_id, r.name) for r in refs] for kind, refs in data.items()}
    assert names[ReferenceKind.ORGANIZATION_TYPE] == [
        (r["id"], r["name"]) for r in ref.ACCOUNT_TYPES
    ]
    assert names[ReferenceKind.ORGANIZATION_STATUS] == [(1, "Active"), (2, "Inactive")]
    categories = ref.LOOKUP_TABLES["AssetCategory"]
    assert names[ReferenceKind.CONFIGURATION_TYPE] == [(r["id"], r["name"]) for r in categories]
    states = ref.LOOKUP_TABLES["AssetState"]
    # An asset without a state has the synthetic "No state" (so it can be chosen too).
    assert names[ReferenceKind.CONFIGURATION_STATUS] == [
        *((r["id"], r["name"]) for r in states),
        (mapping.NO_STATE, "No state"),
    ]
    assert names[ReferenceKind.CONTACT_TYPE] == []
    # Registered through the admin API; the simulator lists ticket events only: no kinds.
    assert provider.subscriptions is not None
    await provider.subscriptions.list()
    assert provider.subscriptions.kinds == frozenset()
    assert provider.display_name == "Pulseway PSA"
    assert await provider.estimate_total(everything(), contacts=True) is None


async def test_contact_attribute_options_are_pulseways_email_and_phone_types(
    provider: PulsewayProvider,
) -> None:
    options = await provider.contact_attribute_options()
    assert options == {
        "email": [r["name"] for r in ref.LOOKUP_TABLES["EmailType"]],
        "phone": [r["name"] for r in ref.LOOKUP_TABLES["PhoneType"]],
    }


# -- organizations -------------------------------------------------------------------------------


async def test_organizations_map_accounts(provider: PulsewayProvider, simulator: Sim) -> None:
    sim, _ = simulator
    store = sim.store
    parent_id, child_id = sorted(store.accounts)[:2]
    store.update("accounts", child_id, parentId=parent_id, description="Head office client")
    store.delete("accounts", parent_id)  # deactivated

    pages = await pages_of(provider.organizations(everything()))

    assert_ascending(pages)
    assert len(pages) > 1
    records = {r.psa_id: r for r in flat(pages)}
    assert sorted(records) == sorted(store.accounts)
    for account_id, account in store.accounts.items():
        record = records[account_id]
        main = store.main_location(account_id)
        assert main is not None
        assert record.values["name"] == account["accountName"]
        assert record.values["short_name"] == account["accountCode"]
        assert record.refs["primary_location"] == main["id"]
        assert record.codes[ReferenceKind.ORGANIZATION_TYPE] == (account["accountTypeId"],)
        status = mapping.STATUS_ACTIVE if account["isActive"] else mapping.STATUS_INACTIVE
        assert record.codes[ReferenceKind.ORGANIZATION_STATUS] == (status,)
        assert record.updated_at == utc(account["modifiedOn"])
        assert record.updated_by == str(account["modifiedBy"])
        assert record.parent_psa_id is None
    child = records[child_id]
    assert child.refs["parent"] == parent_id
    assert child.values["description"] == "Head office client"
    assert records[parent_id].codes[ReferenceKind.ORGANIZATION_STATUS] == (mapping.STATUS_INACTIVE,)
    assert records[sorted(store.accounts)[2]].refs["parent"] is None


async def test_organizations_are_scoped_at_the_source_and_resume_after_an_id(
    provider: PulsewayProvider, simulator: Sim
) -> None:
    sim, _ = simulator
    store = sim.store
    scope = ProviderScope(
        {
            ReferenceKind.ORGANIZATION_TYPE: frozenset({1}),
            ReferenceKind.ORGANIZATION_STATUS: frozenset({mapping.STATUS_ACTIVE}),
        }
    )
    expected = sorted(
        i for i, a in store.accounts.items() if a["accountTypeId"] == 1 and a["isActive"]
    )
    assert expected

    listed = [r.psa_id for r in flat(await pages_of(provider.organizations(scope)))]
    assert listed == expected
    after = expected[len(expected) // 2]
    resumed = [r.psa_id for r in flat(await pages_of(provider.organizations(scope, after=after)))]
    assert resumed == [i for i in expected if i > after]

    ids = [
        i
        for page in await pages_of(provider.record_ids(AssetKind.ORGANIZATION, scope))
        for i in page
    ]
    assert ids == expected
    nothing = ProviderScope({ReferenceKind.ORGANIZATION_TYPE: frozenset({1})})
    assert await pages_of(provider.organizations(nothing)) == []


async def test_organizations_since_lists_only_changed_accounts_whatever_the_scope(
    provider: PulsewayProvider, simulator: Sim
) -> None:
    sim, _ = simulator
    store = sim.store
    first, second = sorted(store.accounts)[3:5]
    store.clock.set(store.clock.now() + timedelta(days=1))
    since = store.clock.now()
    store.update("accounts", second, accountName="Renamed Second")
    store.update("accounts", first, accountTypeId=3)  # out of the scope below

    scope = ProviderScope({ReferenceKind.ORGANIZATION_TYPE: frozenset({1})})
    changed = flat(await pages_of(provider.organizations(scope, since=since)))

    assert [r.psa_id for r in changed] == [first, second]
    assert changed[1].values["name"] == "Renamed Second"
    assert changed[0].codes[ReferenceKind.ORGANIZATION_TYPE] == (3,)


# -- locations -----------------------------------------------------------------------------------


async def test_locations_map_account_locations_with_their_main_address(
    provider: PulsewayProvider, simulator: Sim
) -> None:
    sim, _ = simulator
    store = sim.store
    account_id = next(i for i, a in sorted(store.accounts.items()) if len(a["locationIds"]) > 1)

    pages = await pages_of(provider.locations(account_id))

    assert_ascending(pages)
    records = flat(pages)
    assert [r.psa_id for r in records] == sorted(store.accounts[account_id]["locationIds"])
    for record in records:
        location = store.locations[record.psa_id]
        address = next(
            (a for a in location["addresses"] if a.get("isMain")), location["addresses"][0]
        )
        assert record.parent_psa_id == account_id
        assert record.values["name"] == location["locationName"]
        assert record.values["primary"] == bool(location["isMain"])
        assert record.values["address_1"] == address.get("address1")
        assert record.values["city"] == address.get("city")
        assert record.values["region"] == address.get("state")
        assert record.values["postal_code"] == address.get("zipCode")
        assert record.values["country"] == address.get("country")
        assert record.values["phone"] == mapping.text(address.get("phone"))
        assert record.refs == {}
    assert sum(r.values["primary"] for r in records) == 1

    store.clock.set(store.clock.now() + timedelta(days=1))
    since = store.clock.now()
    moved = records[-1].psa_id
    store.update("locations", moved, locationName="Warehouse")
    changed = flat(await pages_of(provider.locations(account_id, since=since)))
    assert [(r.psa_id, r.values["name"]) for r in changed] == [(moved, "Warehouse")]


async def test_locations_after_the_account_list_come_from_it_not_another_read(
    provider: PulsewayProvider, simulator: Sim
) -> None:
    sim, _ = simulator
    account_id = next(i for i, a in sorted(sim.store.accounts.items()) if len(a["locationIds"]) > 1)
    read_alone = flat(await pages_of(provider.locations(account_id)))
    by_id = "GET /v2/crm/accounts/summary/{id}"
    reads = sim.traffic.by_endpoint[by_id]

    listed = flat(await pages_of(provider.organizations(everything())))
    assert account_id in [r.psa_id for r in listed]
    from_list = flat(await pages_of(provider.locations(account_id)))

    assert from_list == read_alone
    assert sim.traffic.by_endpoint[by_id] == reads
    # Used once: asked again, the account is read (a later change is not missed).
    sim.store.update("locations", from_list[0].psa_id, locationName="Renamed Site")
    again = flat(await pages_of(provider.locations(account_id)))
    assert again[0].values["name"] == "Renamed Site"
    assert sim.traffic.by_endpoint[by_id] == reads + 1


# -- contacts ------------------------------------------------------------------------------------


async def test_contacts_map_names_refs_emails_and_phones(
    provider: PulsewayProvider, simulator: Sim
) -> None:
    sim, _ = simulator
    store = sim.store
    pages = await pages_of(provider.contacts())

    assert_ascending(pages)
    records = {r.psa_id: r for r in flat(pages)}
    assert sorted(records) == sorted(store.contacts)
    for contact_id, contact in store.contacts.items():
        record = records[contact_id]
        assert record.values["first_name"] == contact["firstName"]
        assert record.values["last_name"] == contact["lastName"]
        assert record.values["title"] == mapping.text(contact.get("jobTitle"))
        assert record.values["important"] == bool(contact.get("poc"))
        assert record.parent_psa_id == contact["accountId"]
        assert record.refs == {"location": contact["locationId"]}
        assert record.values["emails"] == [
            {
                "type": ref.lookup_name("EmailType", e["emailTypeId"]),
                "value": e["emailAddress"],
                "primary": bool(e["isDefault"]),
            }
            for e in contact["emails"]
        ]
        assert record.values["phones"] == [
            {
                "type": ref.lookup_name("PhoneType", p["phoneTypeId"]),
                "value": p["phone"],
                "primary": bool(p["isDefault"]),
                "kind": "fax" if p["phoneTypeId"] == 4 else "phone",
            }
            for p in contact["phones"]
        ]
        assert record.updated_at == utc(contact["modifiedOn"])
    ids = [
        i
        for page in await pages_of(provider.record_ids(AssetKind.CONTACT, everything()))
        for i in page
    ]
    assert ids == sorted(store.contacts)


async def test_contacts_since_and_after(provider: PulsewayProvider, simulator: Sim) -> None:
    sim, _ = simulator
    store = sim.store
    ids = sorted(store.contacts)
    store.clock.set(store.clock.now() + timedelta(days=1))
    since = store.clock.now()
    store.update("contacts", ids[5], jobTitle="CTO")
    store.update("contacts", ids[1], lastName="Changed")

    changed = flat(await pages_of(provider.contacts(since=since)))
    assert [(r.psa_id, r.values["title"], r.values["last_name"]) for r in changed] == [
        (ids[1], mapping.text(store.contacts[ids[1]].get("jobTitle")), "Changed"),
        (ids[5], "CTO", store.contacts[ids[5]]["lastName"]),
    ]
    resumed = [r.psa_id for r in flat(await pages_of(provider.contacts(after=ids[10])))]
    assert resumed == ids[11:]


# -- configurations ------------------------------------------------------------------------------


async def test_configurations_map_hardware_assets(
    provider: PulsewayProvider, simulator: Sim
) -> None:
    sim, _ = simulator
    store = sim.store
    some = min(store.assets)
    store.update(
        "assets",
        some,
        osInfo="Windows 11 Pro 23H2",
        modelNumber="OptiPlex 7010",
        description="Front desk",
        assetTag="TAG-1",
        macAddress="00:11:22:33:44:55",
    )

    pages = await pages_of(provider.configurations(everything()))

    assert_ascending(pages)
    assert len(pages) > 1
    records = {r.psa_id: r for r in flat(pages)}
    assert sorted(records) == sorted(store.assets)
    for asset_id, asset in store.assets.items():
        record = records[asset_id]
        assert record.values["name"] == asset["name"]
        assert record.values["serial_number"] == mapping.text(asset.get("serialNumber"))
        assert record.values["primary_ip"] == mapping.text(asset.get("ipAddress"))
        assert record.codes[ReferenceKind.CONFIGURATION_TYPE] == (asset["categoryId"],)
        state = asset.get("stateId")
        assert record.codes[ReferenceKind.CONFIGURATION_STATUS] == (
            (mapping.NO_STATE,) if state is None else (state,)
        )
        assert record.parent_psa_id == asset["accountId"]
        assert record.refs["location"] == asset["accountLocationId"]
        assert record.refs["contact"] == (asset.get("contactId") or None)
        assert record.updated_at == utc(asset["modifiedOn"])
        assert record.updated_by == str(asset["modifiedBy"])
    spot = records[some]
    assert spot.values["operating_system"] == "Windows 11 Pro 23H2"
    assert spot.values["model"] == "OptiPlex 7010"
    assert spot.values["notes"] == "Front desk"
    assert spot.values["asset_tag"] == "TAG-1"
    assert spot.values["mac_address"] == "00:11:22:33:44:55"


async def test_configurations_are_only_those_that_can_be_in_scope_since_or_not(
    provider: PulsewayProvider, simulator: Sim
) -> None:
    sim, _ = simulator
    store = sim.store
    scope = ProviderScope(
        {
            ReferenceKind.ORGANIZATION_TYPE: frozenset({1}),
            ReferenceKind.ORGANIZATION_STATUS: frozenset({mapping.STATUS_ACTIVE}),
            ReferenceKind.CONFIGURATION_TYPE: frozenset({1, 3}),
        }
    )
    accounts = {i for i, a in store.accounts.items() if a["accountTypeId"] == 1 and a["isActive"]}
    expected = sorted(
        i
        for i, a in store.assets.items()
        if a["categoryId"] in (1, 3) and a["accountId"] in accounts
    )
    other_accounts = [
        i for i, a in store.assets.items() if a["categoryId"] in (1, 3) and i not in expected
    ]
    assert len(expected) > 4
    assert other_accounts  # assets of an enabled category whose account is out of scope

    reads = sim.traffic.by_endpoint.get("GET /v2/servicedesk/hardwareasset/{assetId}", 0)
    listed = [r.psa_id for r in flat(await pages_of(provider.configurations(scope)))]
    assert listed == expected
    # Only those were read (one call each): none of another category or account.
    read = sim.traffic.by_endpoint["GET /v2/servicedesk/hardwareasset/{assetId}"] - reads
    assert read == len(expected)
    ids = [
        i
        for page in await pages_of(provider.record_ids(AssetKind.CONFIGURATION, scope))
        for i in page
    ]
    assert ids == expected  # the reconciliation lists the same ids
    after = expected[3]
    resumed = [r.psa_id for r in flat(await pages_of(provider.configurations(scope, after=after)))]
    assert resumed == expected[4:]

    store.clock.set(store.clock.now() + timedelta(days=1))
    since = store.clock.now()
    outside = next(i for i, a in sorted(store.assets.items()) if a["categoryId"] not in (1, 3))
    store.update("assets", expected[2], name="Renamed PC")
    store.update("assets", outside, name="Out Of Scope Now")
    # No modified filter in Pulseway: the same assets again, changed or not (the engine skips
    # unchanged content); one of another category is not read.
    listed_since = flat(await pages_of(provider.configurations(scope, since=since)))
    assert [r.psa_id for r in listed_since] == expected
    names = {r.psa_id: r.values["name"] for r in listed_since}
    assert names[expected[2]] == "Renamed PC"


# -- fetch and deletes ---------------------------------------------------------------------------


async def test_fetch_returns_existing_records_and_omits_deleted_ones(
    provider: PulsewayProvider, simulator: Sim
) -> None:
    sim, _ = simulator
    store = sim.store
    accounts, contacts, assets = (
        sorted(store.accounts),
        sorted(store.contacts),
        sorted(store.assets),
    )
    store.delete("contacts", contacts[1])
    store.delete("assets", assets[2])
    store.delete("accounts", accounts[0])  # deactivated: still there

    orgs = await provider.fetch(AssetKind.ORGANIZATION, [accounts[2], accounts[0], 999999])
    assert [r.psa_id for r in orgs] == [accounts[0], accounts[2]]
    assert orgs[0].codes[ReferenceKind.ORGANIZATION_STATUS] == (mapping.STATUS_INACTIVE,)
    assert orgs[1].values["name"] == store.accounts[accounts[2]]["accountName"]

    people = await provider.fetch(AssetKind.CONTACT, [contacts[3], contacts[1], contacts[0]])
    assert [r.psa_id for r in people] == [contacts[0], contacts[3]]
    listed = {r.psa_id: r for r in flat(await pages_of(provider.contacts()))}
    assert people[1] == listed[contacts[3]]

    things = await provider.fetch(AssetKind.CONFIGURATION, assets[:4])
    assert [r.psa_id for r in things] == [assets[0], assets[1], assets[3]]
    assert await provider.fetch(AssetKind.CONFIGURATION, []) == []

    with pytest.raises(ValueError, match="through their account"):
        await provider.fetch(AssetKind.LOCATION, [1])

    ids = [
        i
        for page in await pages_of(provider.record_ids(AssetKind.CONTACT, everything()))
        for i in page
    ]
    assert contacts[1] not in ids
    for kind in AssetKind:
        assert await pages_of(provider.deleted_since(kind, datetime(2000, 1, 1, tzinfo=UTC))) == []


async def test_record_ids_match_the_lists(provider: PulsewayProvider) -> None:
    scope = everything()
    for kind, listing in (
        (AssetKind.ORGANIZATION, provider.organizations(scope)),
        (AssetKind.CONTACT, provider.contacts()),
        (AssetKind.CONFIGURATION, provider.configurations(scope)),
    ):
        id_pages = await pages_of(provider.record_ids(kind, scope))
        assert all(id_pages)
        ids = [i for page in id_pages for i in page]
        assert ids == sorted(set(ids))
        assert ids == [r.psa_id for r in flat(await pages_of(listing))]
    with pytest.raises(ValueError, match="per account"):
        provider.record_ids(AssetKind.LOCATION, scope)


# -- field map and writes ------------------------------------------------------------------------


def test_field_map_columns() -> None:
    fm = mapping.FIELD_MAP
    assert fm.columns(AssetKind.ORGANIZATION) == {
        "name",
        "short_name",
        "description",
        "parent_id",
        "primary_location_id",
        "organization_type_id",
        "organization_status_id",
    }
    assert fm.psa_to_local_only[AssetKind.ORGANIZATION] == {"primary_location_id"}
    assert fm.psa_to_local_only[AssetKind.LOCATION] == fm.columns(AssetKind.LOCATION)
    assert {"phone", "fax", "organization_id"} <= fm.columns(AssetKind.LOCATION)
    assert fm.columns(AssetKind.CONTACT) == {
        "first_name",
        "last_name",
        "title",
        "important",
        "emails",
        "phones",
        "location_id",
        "organization_id",
    }
    assert fm.psa_to_local_only[AssetKind.CONTACT] == set()
    assert fm.psa_to_local_only[AssetKind.CONFIGURATION] == {"manufacturer"}
    assert {"configuration_type_id", "configuration_status_id", "contact_id", "location_id"} <= (
        fm.columns(AssetKind.CONFIGURATION)
    )


def test_timestamps_accept_dotnet_precision_and_naive_values() -> None:
    assert mapping.stamp("2025-01-02T03:04:05.1234567") == datetime(
        2025, 1, 2, 3, 4, 5, 123456, tzinfo=UTC
    )
    assert mapping.stamp("2025-01-02T03:04:05Z") == datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert mapping.stamp("not a date") is None
    assert mapping.stamp(None) is None


def test_requirements_for_create_are_known(provider: PulsewayProvider) -> None:
    missing = provider.missing_for_create(
        AssetKind.CONTACT, PsaChange(values={"first_name": "Ada"})
    )
    assert missing == ["last name", "organization"]
    # An asset without a location goes to its account's main location.
    complete = PsaChange(
        values={"name": "PC-1"},
        codes={ReferenceKind.CONFIGURATION_TYPE: (1,)},
        parent_psa_id=3,
    )
    assert provider.missing_for_create(AssetKind.CONFIGURATION, complete) == []
    # An account needs a name and a type; its location is made for it.
    assert provider.missing_for_create(AssetKind.ORGANIZATION, PsaChange()) == ["name", "type"]
    # Locations cannot be created in v2: the reason, so the engine skips them.
    (reason,) = provider.missing_for_create(
        AssetKind.LOCATION, PsaChange(values={"name": "HQ"}, parent_psa_id=3)
    )
    assert "only inside" in reason
