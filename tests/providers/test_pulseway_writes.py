"""The Pulseway PSA provider's writes against the Pulseway simulator, over real HTTP."""

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
from sync.errors import RecordError
from sync.providers.base import MatchProbe, PsaChange, PsaRecord
from sync.providers.pulseway import mapping
from sync.providers.pulseway.client import PulsewayClient
from sync.providers.pulseway.provider import PulsewayProvider
from sync.providers.urls import build_http_client

Sim = tuple[PulsewaySimulator, str]

EMAILS_PATCH = "PATCH /v2/crm/contacts/{contactId}/emails"
PHONES_PATCH = "PATCH /v2/crm/contacts/{contactId}/phones"
CONTACT_PATCH = "PATCH /v2/crm/contacts/{id}"
ACCOUNT_PATCH = "PATCH /v2/crm/accounts/{id}"


@pytest.fixture
async def simulator(pulseway_contract: Recorder) -> AsyncIterator[Sim]:
    # Budgets out of the way: these tests are about what is written, not pacing.
    sim = PulsewaySimulator(
        generate_dataset(DatasetSpec(accounts=12, seed=3)), calls_per_hour=1_000_000
    )
    async with serve_in_thread(pulseway_contract.wrap(sim.app)) as base_url:
        yield sim, base_url


@pytest.fixture
async def provider(simulator: Sim) -> AsyncIterator[PulsewayProvider]:
    sim, base_url = simulator
    credentials = pulseway_login(sim, base_url)
    async with build_http_client() as http:
        client = PulsewayClient(
            http, credentials, sandbox=True, page_size=5, budget_per_hour=1_000_000
        )
        yield PulsewayProvider(client)


def calls(sim: PulsewaySimulator, endpoint: str) -> int:
    return sim.traffic.by_endpoint.get(endpoint, 0)


def tick(sim: PulsewaySimulator) -> datetime:
    """Move the simulator's clock on, so a write's new stamp differs from the old one."""
    moment: datetime = sim.store.clock.now() + timedelta(hours=1)
    sim.store.clock.set(moment)
    return moment.replace(microsecond=0)


async def fetch_one(provider: PulsewayProvider, kind: AssetKind, psa_id: int) -> PsaRecord:
    (record,) = await provider.fetch(kind, [psa_id])
    return record


def email(value: str, kind: str = "Work", primary: bool = False) -> dict[str, Any]:
    return {"type": kind, "value": value, "primary": primary}


def phone(value: str, kind: str = "Work", primary: bool = False) -> dict[str, Any]:
    return {"type": kind, "value": value, "primary": primary, "kind": "phone"}


def account_change(**values: Any) -> PsaChange:
    return PsaChange(
        values={"name": "Acme Widgets", **values},
        codes={
            ReferenceKind.ORGANIZATION_TYPE: (2,),
            ReferenceKind.ORGANIZATION_STATUS: (mapping.STATUS_ACTIVE,),
        },
    )


# -- creates -------------------------------------------------------------------------------------


async def test_create_organization_with_an_address_makes_its_main_location(
    provider: PulsewayProvider, simulator: Sim
) -> None:
    sim, _ = simulator
    now = tick(sim)
    change = account_change(short_name="ACME", description="Widgets")
    change.address = {
        "name": "Head Office",
        "address_1": "1 Main St",
        "address_2": None,
        "city": "Springfield",
        "region": "IL",
        "postal_code": "62701",
        "country": "United States",
    }

    created = await provider.create_record(AssetKind.ORGANIZATION, change)

    assert created.values == {
        "name": "Acme Widgets",
        "short_name": "ACME",
        "description": "Widgets",
    }
    assert created.codes == {
        ReferenceKind.ORGANIZATION_TYPE: (2,),
        ReferenceKind.ORGANIZATION_STATUS: (mapping.STATUS_ACTIVE,),
    }
    assert created.updated_at == now
    stored = sim.store.accounts[created.psa_id]
    # Required by Pulseway, picked by the provider: the default business type, the API user.
    assert stored["businessTypeId"] == 1
    assert stored["accountManagerId"] == ref.API_USER_ID
    (location_id,) = stored["locationIds"]
    assert created.refs == {"parent": None, "primary_location": location_id}
    assert await fetch_one(provider, AssetKind.ORGANIZATION, created.psa_id) == created

    (location,) = [r async for page in provider.locations(created.psa_id) for r in page]
    assert location.psa_id == location_id
    assert location.values["name"] == "Head Office"
    assert location.values["primary"] is True
    assert (location.values["address_1"], location.values["city"]) == ("1 Main St", "Springfield")
    assert (location.values["region"], location.values["postal_code"]) == ("IL", "62701")
    assert location.values["country"] == "United States"


async def test_create_organization_without_an_address_gets_a_main_location(
    provider: PulsewayProvider, simulator: Sim
) -> None:
    sim, _ = simulator
    change = account_change()
    change.codes[ReferenceKind.ORGANIZATION_STATUS] = (mapping.STATUS_INACTIVE,)

    created = await provider.create_record(AssetKind.ORGANIZATION, change)

    assert created.codes[ReferenceKind.ORGANIZATION_STATUS] == (mapping.STATUS_INACTIVE,)
    stored = sim.store.accounts[created.psa_id]
    assert stored["isActive"] is False
    (location_id,) = stored["locationIds"]
    location = sim.store.locations[location_id]
    assert (location["locationName"], location["isMain"], location["addresses"]) == (
        "Main",
        True,
        [],
    )


async def test_account_manager_falls_back_to_the_first_employee(
    provider: PulsewayProvider, simulator: Sim
) -> None:
    sim, _ = simulator
    del sim.store.employees[ref.API_USER_ID]  # the API user is no employee

    first = await provider.create_record(AssetKind.ORGANIZATION, account_change())
    second = await provider.create_record(AssetKind.ORGANIZATION, account_change(name="Other"))

    assert sim.store.accounts[first.psa_id]["accountManagerId"] == min(sim.store.employees)
    assert sim.store.accounts[second.psa_id]["accountManagerId"] == min(sim.store.employees)
    # Picked once per provider.
    assert calls(sim, "GET /v2/security/userinfo") == 1


async def test_create_contact_with_typed_emails_and_phones(
    provider: PulsewayProvider, simulator: Sim
) -> None:
    sim, _ = simulator
    now = tick(sim)
    account_id = 1
    location_id = sim.store.accounts[account_id]["locationIds"][1]
    change = PsaChange(
        values={
            "first_name": "Ada",
            "last_name": "Lovelace",
            "title": "Engineer",
            "important": True,
            "emails": [email("ada@home.example", "Personal"), email("ada@work.example", "?", True)],
            "phones": [
                phone("+1 555 0100", "Mobile", True),
                {"type": "Facsimile", "value": "+1 555 0199", "primary": False, "kind": "fax"},
            ],
        },
        refs={"location": location_id},
        parent_psa_id=account_id,
    )

    created = await provider.create_record(AssetKind.CONTACT, change)

    assert created.parent_psa_id == account_id
    assert created.refs == {"location": location_id}
    assert created.updated_at == now
    values = created.values
    assert (values["first_name"], values["last_name"], values["title"]) == (
        "Ada",
        "Lovelace",
        "Engineer",
    )
    assert values["important"] is True
    # An unknown type name gets the default type (Work); a fax the Fax type.
    assert values["emails"] == [
        {"type": "Personal", "value": "ada@home.example", "primary": False},
        {"type": "Work", "value": "ada@work.example", "primary": True},
    ]
    assert values["phones"] == [
        {"type": "Mobile", "value": "+1 555 0100", "primary": True, "kind": "phone"},
        {"type": "Fax", "value": "+1 555 0199", "primary": False, "kind": "fax"},
    ]
    assert await fetch_one(provider, AssetKind.CONTACT, created.psa_id) == created


async def test_create_contact_without_location_takes_the_main_one(
    provider: PulsewayProvider, simulator: Sim
) -> None:
    sim, _ = simulator
    change = PsaChange(values={"first_name": "Bo", "last_name": "Li"}, parent_psa_id=2)
    created = await provider.create_record(AssetKind.CONTACT, change)
    main = next(i for i in sim.store.accounts[2]["locationIds"] if sim.store.locations[i]["isMain"])
    assert created.refs == {"location": main}
    assert created.values["emails"] == []
    assert created.values["important"] is False
    assert calls(sim, CONTACT_PATCH) == 0  # nothing the create DTO lacked


async def test_create_configuration_goes_to_the_accounts_main_location(
    provider: PulsewayProvider, simulator: Sim
) -> None:
    sim, _ = simulator
    now = tick(sim)
    account_id = 3
    change = PsaChange(
        values={
            "name": "PC-NEW",
            "serial_number": "SN-1",
            "primary_ip": "10.0.0.5",
            "operating_system": "Windows 11",
            "purchased_at": datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC),
        },
        codes={ReferenceKind.CONFIGURATION_TYPE: (3,), ReferenceKind.CONFIGURATION_STATUS: (2,)},
        parent_psa_id=account_id,
    )

    created = await provider.create_record(AssetKind.CONFIGURATION, change)

    main = next(
        i for i in sim.store.accounts[account_id]["locationIds"] if sim.store.locations[i]["isMain"]
    )
    assert created.refs == {"location": main, "contact": None}
    assert created.parent_psa_id == account_id
    assert created.codes == {
        ReferenceKind.CONFIGURATION_TYPE: (3,),
        ReferenceKind.CONFIGURATION_STATUS: (2,),
    }
    assert created.values["name"] == "PC-NEW"
    assert created.values["serial_number"] == "SN-1"
    assert created.values["primary_ip"] == "10.0.0.5"
    assert created.values["operating_system"] == "Windows 11"
    assert created.values["purchased_at"] == datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)
    assert created.updated_at == now
    assert await fetch_one(provider, AssetKind.CONFIGURATION, created.psa_id) == created


async def test_locations_cannot_be_created_updated_or_deleted(
    provider: PulsewayProvider,
) -> None:
    change = PsaChange(values={"name": "Annex"}, parent_psa_id=1)
    with pytest.raises(RecordError, match="only inside"):
        await provider.create_record(AssetKind.LOCATION, change)
    with pytest.raises(RecordError, match="cannot change a location"):
        await provider.update_record(AssetKind.LOCATION, 1, 1, change)
    with pytest.raises(RecordError, match="cannot delete a location"):
        await provider.delete_record(AssetKind.LOCATION, 1, 1)


async def test_pulseway_refusals_raise_record_errors_with_its_message(
    provider: PulsewayProvider, pulseway_contract: Recorder
) -> None:
    unknown_account = PsaChange(values={"first_name": "A", "last_name": "B"}, parent_psa_id=99999)
    with pytest.raises(RecordError, match="account 99999 does not exist"):
        await provider.create_record(AssetKind.CONTACT, unknown_account)
    # Sent without what the document requires, on purpose (the engine checks first:
    # sync/providers/requirements.py), to see Pulseway's refusal become a RecordError.
    no_category = PsaChange(values={"name": "PC"}, parent_psa_id=1)
    with pytest.raises(RecordError, match="categoryId is required"):
        await provider.create_record(AssetKind.CONFIGURATION, no_category)
    no_name = PsaChange(codes={ReferenceKind.ORGANIZATION_TYPE: (1,)})
    with pytest.raises(RecordError, match="accountName is required"):
        await provider.create_record(AssetKind.ORGANIZATION, no_name)
    assert sorted(pulseway_contract.take_problems()) == [
        "POST /v2/crm/accounts: request: 'accountName' is a required property",
        "POST /v2/servicedesk/hardwareasset: request: 'categoryId' is a required property",
    ]
    with pytest.raises(RecordError, match="not found"):
        await provider.update_record(AssetKind.ORGANIZATION, 99999, None, account_change())


# -- updates -------------------------------------------------------------------------------------


async def test_update_organization_changes_only_the_given_fields(
    provider: PulsewayProvider, simulator: Sim
) -> None:
    sim, _ = simulator
    account_id = 1
    before = dict(sim.store.accounts[account_id])
    now = tick(sim)

    updated = await provider.update_record(
        AssetKind.ORGANIZATION,
        account_id,
        None,
        PsaChange(
            values={"name": "Delta Renamed"},
            codes={ReferenceKind.ORGANIZATION_STATUS: (mapping.STATUS_INACTIVE,)},
        ),
    )

    assert updated.values["name"] == "Delta Renamed"
    assert updated.values["short_name"] == before["accountCode"]
    assert updated.codes[ReferenceKind.ORGANIZATION_STATUS] == (mapping.STATUS_INACTIVE,)
    assert updated.updated_at == now
    after = sim.store.accounts[account_id]
    changed = {k for k in before if before[k] != after[k]}
    assert changed == {"accountName", "isActive", "modifiedOn"}
    assert calls(sim, ACCOUNT_PATCH) == 1
    assert await fetch_one(provider, AssetKind.ORGANIZATION, account_id) == updated


async def test_update_with_nothing_to_write_is_a_value_error(provider: PulsewayProvider) -> None:
    with pytest.raises(ValueError, match="something to change"):
        await provider.update_record(AssetKind.CONTACT, 1, 5, PsaChange())
    with pytest.raises(ValueError, match="nothing Pulseway PSA can change"):
        await provider.update_record(
            AssetKind.CONFIGURATION, 1, 8, PsaChange(values={"manufacturer": "Dell"})
        )


async def test_update_contact_scalars_leaves_the_rest(
    provider: PulsewayProvider, simulator: Sim
) -> None:
    sim, _ = simulator
    contact_id = 1
    before = {k: v for k, v in sim.store.contacts[contact_id].items()}
    now = tick(sim)

    updated = await provider.update_record(
        AssetKind.CONTACT,
        contact_id,
        before["accountId"],
        PsaChange(values={"title": "CTO", "important": True}),
    )

    assert (updated.values["title"], updated.values["important"]) == ("CTO", True)
    assert updated.values["first_name"] == before["firstName"]
    assert updated.updated_at == now
    after = sim.store.contacts[contact_id]
    assert {k for k in before if before[k] != after[k]} == {"jobTitle", "poc", "modifiedOn"}
    assert calls(sim, EMAILS_PATCH) == calls(sim, PHONES_PATCH) == 0


async def test_update_contact_emails_sends_only_the_changes(
    provider: PulsewayProvider, simulator: Sim
) -> None:
    sim, _ = simulator
    created = await provider.create_record(
        AssetKind.CONTACT,
        PsaChange(
            values={
                "first_name": "Ada",
                "last_name": "Lovelace",
                "emails": [
                    email("keep@example.com", "Work", True),
                    email("retype@example.com", "Work"),
                    email("drop@example.com", "Other"),
                ],
                "phones": [phone("+1 555 0100", "Mobile", True)],
            },
            parent_psa_id=1,
        ),
    )
    contact_id = created.psa_id
    stored = {e["emailAddress"]: dict(e) for e in sim.store.contacts[contact_id]["emails"]}
    tick(sim)

    wanted = [
        email("keep@example.com", "Work", True),
        email("retype@example.com", "Personal"),
        email("new@example.com", "Other"),
    ]
    updated = await provider.update_record(
        AssetKind.CONTACT,
        contact_id,
        1,
        PsaChange(values={"emails": wanted, "phones": created.values["phones"]}),
    )

    assert updated.values["emails"] == wanted
    assert updated.values["phones"] == created.values["phones"]
    # One emails PATCH; the unchanged phone list sends nothing, nor do the scalars.
    assert calls(sim, EMAILS_PATCH) == 1
    assert calls(sim, PHONES_PATCH) == calls(sim, CONTACT_PATCH) == 0
    now = {e["emailAddress"]: e for e in sim.store.contacts[contact_id]["emails"]}
    assert now["keep@example.com"] == stored["keep@example.com"]  # untouched, same stamp
    assert now["retype@example.com"]["id"] == stored["retype@example.com"]["id"]
    assert now["retype@example.com"]["emailTypeId"] == 2
    assert "drop@example.com" not in now

    # The same lists again: nothing to send.
    again = await provider.update_record(
        AssetKind.CONTACT, contact_id, 1, PsaChange(values={"emails": wanted})
    )
    assert again.values["emails"] == wanted
    assert calls(sim, EMAILS_PATCH) == 1


async def test_update_contact_moves_it_to_another_account(
    provider: PulsewayProvider, simulator: Sim
) -> None:
    sim, _ = simulator
    contact_id = next(i for i, c in sorted(sim.store.contacts.items()) if c["accountId"] != 2)
    updated = await provider.update_record(
        AssetKind.CONTACT, contact_id, None, PsaChange(parent_psa_id=2)
    )
    assert updated.parent_psa_id == 2
    assert updated.refs["location"] in sim.store.accounts[2]["locationIds"]


async def test_update_configuration_puts_the_whole_asset_keeping_unmapped_fields(
    provider: PulsewayProvider, simulator: Sim
) -> None:
    sim, _ = simulator
    asset_id = 1
    sim.store.update(
        "assets", asset_id, subnetMask="255.255.255.0", dnsServers="10.0.0.1", brandId=7
    )
    before = dict(sim.store.assets[asset_id])
    now = tick(sim)

    updated = await provider.update_record(
        AssetKind.CONFIGURATION,
        asset_id,
        before["accountId"],
        PsaChange(
            values={"name": "LT-RENAMED", "notes": "moved desks"},
            codes={ReferenceKind.CONFIGURATION_STATUS: (3,)},
        ),
    )

    assert updated.values["name"] == "LT-RENAMED"
    assert updated.values["notes"] == "moved desks"
    assert updated.codes[ReferenceKind.CONFIGURATION_STATUS] == (3,)
    assert updated.updated_at == now
    after = sim.store.assets[asset_id]
    for name in ("subnetMask", "dnsServers", "brandId", "serialNumber", "macAddress", "osType"):
        assert after[name] == before[name], name
    assert (after["contactId"], after["accountLocationId"]) == (
        before["contactId"],
        before["accountLocationId"],
    )
    assert calls(sim, "PUT /v2/servicedesk/hardwareasset/{assetId}") == 1


# -- deletes -------------------------------------------------------------------------------------


async def test_delete_contact_and_asset_and_an_already_deleted_one(
    provider: PulsewayProvider, simulator: Sim
) -> None:
    sim, _ = simulator
    await provider.delete_record(AssetKind.CONTACT, 1, None)
    await provider.delete_record(AssetKind.CONFIGURATION, 1, None)
    assert 1 not in sim.store.contacts
    assert 1 not in sim.store.assets
    # Already gone: deleted all the same.
    await provider.delete_record(AssetKind.CONTACT, 1, None)
    await provider.delete_record(AssetKind.CONFIGURATION, 1, None)


async def test_delete_organization_deactivates_the_account(
    provider: PulsewayProvider, simulator: Sim
) -> None:
    sim, _ = simulator
    await provider.delete_record(AssetKind.ORGANIZATION, 2, None)
    assert sim.store.accounts[2]["isActive"] is False
    record = await fetch_one(provider, AssetKind.ORGANIZATION, 2)
    assert record.codes[ReferenceKind.ORGANIZATION_STATUS] == (mapping.STATUS_INACTIVE,)
    await provider.delete_record(AssetKind.ORGANIZATION, 99999, None)  # unknown: nothing to do


# -- matching ------------------------------------------------------------------------------------


async def test_find_matches_organizations_by_name(
    provider: PulsewayProvider, simulator: Sim
) -> None:
    sim, _ = simulator
    names = [sim.store.accounts[i]["accountName"] for i in (1, 4)]
    found = await provider.find_matches(
        AssetKind.ORGANIZATION,
        [MatchProbe(name=names[0].upper()), MatchProbe(name=names[1]), MatchProbe(name=None)],
    )
    ids = [r.psa_id for r in found]
    assert {1, 4} <= set(ids)
    assert ids == sorted(set(ids))
    assert await provider.find_matches(AssetKind.ORGANIZATION, [MatchProbe(name="Nope Ltd")]) == []


async def test_find_matches_many_organization_names_read_a_short_list_whole(
    provider: PulsewayProvider, simulator: Sim
) -> None:
    sim, _ = simulator
    probes = [MatchProbe(name=a["accountName"]) for a in sim.store.accounts.values()]
    probes += [MatchProbe(name=f"Unknown {n}") for n in range(20)]
    found = await provider.find_matches(AssetKind.ORGANIZATION, probes)
    assert [r.psa_id for r in found] == sorted(sim.store.accounts)
    assert calls(sim, "GET /v2/crm/accounts/summary") == -(-len(sim.store.accounts) // 5)


async def test_find_matches_contacts_locations_and_configurations_per_account(
    provider: PulsewayProvider, simulator: Sim
) -> None:
    sim, _ = simulator
    store = sim.store
    contact = store.contacts[1]
    account_id = contact["accountId"]
    people = await provider.find_matches(
        AssetKind.CONTACT,
        [
            MatchProbe(first_name=contact["firstName"], parent_psa_id=account_id),
            MatchProbe(first_name="X", parent_psa_id=None),
        ],
    )
    assert [r.psa_id for r in people] == sorted(
        i for i, c in store.contacts.items() if c["accountId"] == account_id
    )

    places = await provider.find_matches(
        AssetKind.LOCATION, [MatchProbe(name="Main Office", parent_psa_id=1)]
    )
    assert [r.psa_id for r in places] == sorted(store.accounts[1]["locationIds"])
    assert all(r.parent_psa_id == 1 for r in places)

    asset = store.assets[1]
    things = await provider.find_matches(
        AssetKind.CONFIGURATION,
        [
            MatchProbe(name=asset["name"].lower(), parent_psa_id=asset["accountId"]),
            MatchProbe(name="no such asset", parent_psa_id=asset["accountId"]),
        ],
    )
    assert [r.psa_id for r in things] == [1]
    assert things[0].values["name"] == asset["name"]
    assert await provider.find_matches(AssetKind.CONTACT, []) == []
