"""Pulseway PSA end to end over real HTTP (SQLite, and PostgreSQL when configured): the
simulator on a loopback port, every request checked against the OpenAPI document
(``pulseway_contract``), the worker syncing through ``sync.connections``.

The article (Pulseway PSA two-way sync): account and asset types chosen on Sync Settings,
two-way on by default, edits pushed to Pulseway, records that predate two-way not pushed
until edited, and a one-time push of everything when switching to Pulseway from another PSA.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from harness import FAST_RETRY, Psa, sync_now
from pulseway_contract import Recorder
from pulseway_sync_helpers import (
    CUSTOMER,
    PATCH_ACCOUNT,
    PATCH_CONTACT,
    PATCH_EMAILS,
    PATCH_PHONES,
    POST_ACCOUNT,
    PUT_ASSET,
    Pulseway,
    category,
    connect_pulseway,
    diff,
    link_for,
    pulseway_worker,
    reference_id,
    reference_name,
    served,
    state,
    synced_ids,
)
from two_way_helpers import pull

from models import (
    Account,
    AssetKind,
    Configuration,
    ConflictOutcome,
    Contact,
    Integration,
    LinkState,
    Location,
    Organization,
    OutboxEntry,
    PushState,
    RecordLink,
    ReferenceKind,
    RunKind,
    RunStatus,
    RunTrigger,
    SyncConflict,
    SyncRun,
    SyncRunIssue,
    SyncState,
)
from models.outbox import json_value
from models.vault import Vault
from simulators.pulseway import DatasetSpec
from simulators.pulseway import reference as ref
from sync import directions as direction_settings
from sync import integrations, jobs, local_edits, push_all, sync_settings
from sync.connections import provider_factory
from sync.push_all import Scope
from sync.runner import Worker
from sync.sync_settings import SettingsChange

ORG, LOC, CONTACT, CONFIG = (
    AssetKind.ORGANIZATION,
    AssetKind.LOCATION,
    AssetKind.CONTACT,
    AssetKind.CONFIGURATION,
)


@pytest.fixture
async def pulseway(pulseway_contract: Recorder) -> AsyncIterator[Pulseway]:
    async with served(DatasetSpec(accounts=8, seed=21), pulseway_contract) as tenant:
        yield tenant


@pytest.fixture
def worker(vault: Vault) -> Worker:
    return pulseway_worker(vault)


async def synced(pulseway: Pulseway, account: Account, vault: Vault, worker: Worker,
                 **options: object) -> Integration:  # fmt: skip
    integration = await connect_pulseway(pulseway, account, vault, **options)
    await worker.run_until_idle()
    return await Integration.get(id=integration.id)


async def last_run(integration: Integration) -> SyncRun:
    run = await SyncRun.filter(integration_id=integration.id).order_by("-queued_at").first()
    assert run is not None
    return run


# --------------------------------------------------------------------------------- full sync


async def test_a_full_sync_brings_accounts_locations_contacts_and_assets(
    pulseway: Pulseway, account: Account, vault: Vault, worker: Worker
) -> None:
    integration = await synced(pulseway, account, vault, worker)
    run = await last_run(integration)
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert integration.two_way_enabled  # on by default for Pulseway (the article)
    store = pulseway.store

    accounts = pulseway.in_scope_accounts()
    assert 0 < len(accounts) < len(store.accounts)  # some accounts are out of scope
    assert await synced_ids(integration, ORG) == accounts
    locations = sorted(i for a in accounts for i in store.accounts[a]["locationIds"])
    assert await synced_ids(integration, LOC) == locations
    contacts = sorted(i for i, c in store.contacts.items() if c["accountId"] in accounts)
    assert await synced_ids(integration, CONTACT) == contacts
    assets = pulseway.in_scope_assets()
    assert 0 < len(assets) < len(store.assets)
    assert await synced_ids(integration, CONFIG) == assets
    assert run.created == len(accounts) + len(locations) + len(contacts) + len(assets)
    # One list of the Customer accounts (a page) served every step: locations came with it
    # (no account read again), and it said whose hardware assets to read.
    calls = pulseway.calls()
    assert calls.get("GET /v2/crm/accounts/summary/{id}", 0) == 0
    # (Plus the permission checks' one-record reads, at setup and as the run starts.)
    assert calls["GET /v2/crm/accounts/summary"] == 1 + 2
    assert calls["GET /v2/servicedesk/hardwareasset/{assetId}"] == len(pulseway.readable_assets())

    for account_id in accounts:
        source = store.accounts[account_id]
        org = await Organization.get(id=(await link_for(integration, ORG, account_id)).local_id)
        assert org.name == source["accountName"]
        assert org.short_name == source["accountCode"]
        assert await reference_name(org.organization_type_id) == "Customer"
        assert await reference_name(org.organization_status_id) == "Active"
        main = store.main_location(account_id)
        primary = await link_for(integration, LOC, main["id"])
        assert org.primary_location_id == primary.local_id
        site = await Location.get(id=primary.local_id)
        address = main["addresses"][0]
        assert (site.name, site.address_1, site.city, site.region, site.postal_code) == (
            main["locationName"],
            address["address1"],
            address["city"],
            address["state"],
            address["zipCode"],
        )
        assert (site.country, site.phone, site.primary) == (
            address["country"],
            address["phone"],
            True,
        )
        assert site.organization_id == org.id  # type: ignore[attr-defined]

    for contact_id in contacts:
        source = store.contacts[contact_id]
        person = await Contact.get(id=(await link_for(integration, CONTACT, contact_id)).local_id)
        assert (person.first_name, person.last_name, person.title) == (
            source["firstName"],
            source["lastName"],
            source["jobTitle"],
        )
        assert person.important == bool(source["poc"])  # point of contact
        assert sorted((e["type"], e["value"], e["primary"]) for e in person.emails) == sorted(
            (ref.lookup_name("EmailType", e["emailTypeId"]), e["emailAddress"], e["isDefault"])
            for e in source["emails"]
        )
        assert sorted((p["type"], p["value"], p["primary"]) for p in person.phones) == sorted(
            (ref.lookup_name("PhoneType", p["phoneTypeId"]), p["phone"], p["isDefault"])
            for p in source["phones"]
        )
        location = await link_for(integration, LOC, source["locationId"])
        assert person.location_id == location.local_id  # type: ignore[attr-defined]

    important = [c for c in contacts if store.contacts[c]["poc"]]
    assert important  # the dataset has points of contact among the synced contacts
    assert any(store.contacts[c]["phones"] for c in contacts)
    assert any(len(store.contacts[c]["emails"]) > 1 for c in contacts)

    for asset_id in assets:
        source = store.assets[asset_id]
        config = await Configuration.get(
            id=(await link_for(integration, CONFIG, asset_id)).local_id
        )
        assert (config.name, config.serial_number, config.mac_address, config.primary_ip) == (
            source["name"],
            source["serialNumber"],
            source["macAddress"],
            source["ipAddress"],
        )
        assert config.operating_system == source["osType"]
        assert await reference_name(config.configuration_type_id) == category(  # type: ignore[attr-defined]
            source["categoryId"]
        )
        assert await reference_name(config.configuration_status_id) == state(  # type: ignore[attr-defined]
            source["stateId"]
        )
        org = await link_for(integration, ORG, source["accountId"])
        assert config.organization_id == org.local_id  # type: ignore[attr-defined]
        location = await link_for(integration, LOC, source["accountLocationId"])
        assert config.location_id == location.local_id  # type: ignore[attr-defined]
        if source["contactId"]:
            owner = await link_for(integration, CONTACT, source["contactId"])
            assert config.contact_id == owner.local_id  # type: ignore[attr-defined]
        else:
            assert config.contact_id is None  # type: ignore[attr-defined]


# ----------------------------------------------------------------------------------- scoping


async def test_only_enabled_types_sync_and_a_scope_change_queues_a_sync_by_itself(
    pulseway: Pulseway, account: Account, vault: Vault, worker: Worker
) -> None:
    integration = await synced(pulseway, account, vault, worker)
    store = pulseway.store
    prospects = sorted(i for i, a in store.accounts.items() if a["accountTypeId"] == 2)
    assert prospects  # the dataset has one: out of scope so far
    assert not set(prospects) & set(await synced_ids(integration, ORG))
    laptops = [
        i for i in await synced_ids(integration, CONFIG) if store.assets[i]["categoryId"] == 2
    ]
    assert laptops
    before = {i: (await link_for(integration, CONFIG, i)).local_id for i in laptops}

    # Sync Settings: Prospect accounts on, laptops off; saving queues the sync.
    result = await sync_settings.update(
        integration,
        SettingsChange(
            states={
                await reference_id(account, ReferenceKind.ORGANIZATION_TYPE, "Prospect"): (
                    SyncState.ENABLED
                ),
                await reference_id(account, ReferenceKind.CONFIGURATION_TYPE, "Laptop"): (
                    SyncState.DISABLED
                ),
            }
        ),
    )
    assert result.run is not None
    assert result.run.status == RunStatus.QUEUED
    await worker.run_until_idle()
    run = await SyncRun.get(id=result.run.id)
    assert run.status == RunStatus.SUCCEEDED, run.error

    synced_orgs = await synced_ids(integration, ORG)
    for prospect in prospects:
        assert prospect in synced_orgs
        org = await Organization.get(id=(await link_for(integration, ORG, prospect)).local_id)
        assert org.name == store.accounts[prospect]["accountName"]
        assert await reference_name(org.organization_type_id) == "Prospect"  # type: ignore[attr-defined]
        for location in store.accounts[prospect]["locationIds"]:
            assert (await link_for(integration, LOC, location)).state == LinkState.SYNCED
    for contact_id in (i for i, c in store.contacts.items() if c["accountId"] in prospects):
        assert (await link_for(integration, CONTACT, contact_id)).state == LinkState.SYNCED
    for laptop in laptops:
        link = await link_for(integration, CONFIG, laptop)
        assert link.state == LinkState.ORPHANED
        assert await Configuration.filter(id=before[laptop]).exists()  # kept, not deleted
    assert run.orphaned >= len(laptops)


async def test_assets_without_a_state_sync_under_no_state_and_push_it_as_none(
    pulseway: Pulseway, account: Account, vault: Vault, worker: Worker
) -> None:
    store = pulseway.store
    stateless, in_use = pulseway.in_scope_assets()[:2]
    store.update("assets", stateless, stateId=None)
    integration = await synced(pulseway, account, vault, worker)
    # Out of scope while "No state" is not chosen (new reference values arrive disabled).
    assert stateless not in await synced_ids(integration, CONFIG)

    no_state = await reference_id(account, ReferenceKind.CONFIGURATION_STATUS, "No state")
    result = await sync_settings.update(
        integration, SettingsChange(states={no_state: SyncState.ENABLED})
    )
    assert result.run is not None
    await worker.run_until_idle()
    assert stateless in await synced_ids(integration, CONFIG)
    config = await Configuration.get(id=(await link_for(integration, CONFIG, stateless)).local_id)
    assert config.configuration_status_id == no_state  # type: ignore[attr-defined]

    # Set locally to "No state", the asset's state is cleared in Pulseway (PUT stateId null).
    link = await link_for(integration, CONFIG, in_use)
    writes = pulseway.writes()
    await local_edits.update(
        CONFIG, account.id, link.local_id, {"configuration_status_id": no_state}
    )
    await worker.run_until_idle()
    assert diff(writes, pulseway.writes()) == {PUT_ASSET: 1}
    assert store.assets[in_use]["stateId"] is None
    assert (await RecordLink.get(id=link.id)).state == LinkState.SYNCED


# ----------------------------------------------------------------------------- polling


async def poll(
    worker: Worker, integration: Integration, kind: RunKind = RunKind.INCREMENTAL
) -> SyncRun:
    """A scheduled run (a poll, or the reconciliation), run to its end."""
    run = await jobs.enqueue(
        await Integration.get(id=integration.id), kind=kind, trigger=RunTrigger.SCHEDULE
    )
    await worker.run_until_idle()
    run = await SyncRun.get(id=run.id)
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.kind == kind
    return run


async def versions(model: type[Configuration]) -> dict[Any, tuple[int, Any]]:
    return {row.id: (row.version, row.updated_at) for row in await model.all()}


async def test_a_poll_brings_ui_edits_of_accounts_and_contacts_with_the_modified_filter(
    pulseway: Pulseway,
    account: Account,
    vault: Vault,
    worker: Worker,
    pulseway_contract: Recorder,
) -> None:
    integration = await synced(pulseway, account, vault, worker)
    store = pulseway.store
    account_id = pulseway.in_scope_accounts()[0]
    contact_id = min(i for i, c in store.contacts.items() if c["accountId"] == account_id)
    store.update("accounts", account_id, accountName="Renamed In Pulseway")
    store.update("contacts", contact_id, lastName="Changed-Here", jobTitle="CFO")
    seen = len(pulseway_contract.recorded())

    run = await poll(worker, integration)

    org = await Organization.get(id=(await link_for(integration, ORG, account_id)).local_id)
    assert org.name == "Renamed In Pulseway"
    person = await Contact.get(id=(await link_for(integration, CONTACT, contact_id)).local_id)
    assert (person.last_name, person.title) == ("Changed-Here", "CFO")
    assert run.updated == 2
    assert run.created == 0
    # Accounts and contacts are listed with Filter.ModifiedOnFrom, never whole; accounts are
    # also listed by type, to know whose hardware assets to read.
    lists = [
        (e.path, dict(e.query))
        for e in pulseway_contract.recorded()[seen:]
        if e.method == "GET" and e.path in ("/v2/crm/accounts/summary", "/v2/crm/contacts/summary")
    ]
    changed = {path for path, query in lists if "Filter.ModifiedOnFrom" in query}
    assert changed == {"/v2/crm/accounts/summary", "/v2/crm/contacts/summary"}
    for path, query in lists:
        if "Filter.ModifiedOnFrom" not in query:
            assert path == "/v2/crm/accounts/summary"
            assert query["Filter.AccountTypeId"] == str(CUSTOMER), query


async def test_a_poll_reads_every_asset_in_scope_but_writes_only_the_changed_one(
    pulseway: Pulseway, account: Account, vault: Vault, worker: Worker
) -> None:
    integration = await synced(pulseway, account, vault, worker)
    store = pulseway.store
    assets = pulseway.in_scope_assets()
    changed, untouched = assets[0], assets[1]
    store.update("assets", changed, serialNumber="SN-REPLACED-1")
    before = await versions(Configuration)
    calls = pulseway.calls()

    run = await poll(worker, integration)

    # Hardware assets have no modified filter: each one that can be in scope is read again
    # (of an enabled category and an account in scope; not the others)...
    read = diff(calls, pulseway.calls()).get("GET /v2/servicedesk/hardwareasset/{assetId}", 0)
    readable = pulseway.readable_assets()
    assert read == len(readable) < len(store.assets)
    # ...and only the changed one is written: the others' content digests match their links.
    assert (run.updated, run.unchanged, run.created) == (1, len(assets) - 1, 0)
    assert run.skipped == len(readable) - len(assets)  # a state not enabled: not ours
    after = await versions(Configuration)
    moved = [i for i in after if after[i] != before[i]]
    local = (await link_for(integration, CONFIG, changed)).local_id
    assert moved == [local]
    assert (await Configuration.get(id=local)).serial_number == "SN-REPLACED-1"
    assert after[local][0] == before[local][0] + 1

    # An edit Pulseway stamps but psasync does not map (the computer name, the login) writes
    # nothing either, though the asset's modifiedOn moved.
    store.update("assets", untouched, computerName="RENAMED-PC", loginName="jdoe")
    before = await versions(Configuration)
    again = await poll(worker, integration)
    assert (again.updated, again.unchanged) == (0, len(assets))
    assert await versions(Configuration) == before


async def test_an_asset_moved_out_of_scope_is_orphaned_by_the_reconciliation(
    pulseway: Pulseway, account: Account, vault: Vault, worker: Worker
) -> None:
    integration = await synced(pulseway, account, vault, worker)
    asset_id = pulseway.in_scope_assets()[0]
    link = await link_for(integration, CONFIG, asset_id)
    printer = next(i for i in ref.lookup_ids("AssetCategory") if category(i) == "Printer")
    pulseway.store.update("assets", asset_id, categoryId=printer)  # not a synced category

    await poll(worker, integration)  # polls read only assets that can be in scope
    run = await poll(worker, integration, RunKind.RECONCILE)
    assert (await RecordLink.get(id=link.id)).state == LinkState.ORPHANED
    assert await Configuration.filter(id=link.local_id).exists()  # kept, not deleted
    assert run.orphaned == 1


# ----------------------------------------------------------------------------- two-way push


async def test_local_edits_are_pushed_to_pulseway_with_its_own_write_methods(
    pulseway: Pulseway, account: Account, vault: Vault, worker: Worker
) -> None:
    integration = await synced(pulseway, account, vault, worker)  # two-way: on by default
    store = pulseway.store
    account_id = pulseway.in_scope_accounts()[0]
    contact_id = min(
        i for i, c in store.contacts.items() if c["accountId"] in pulseway.in_scope_accounts()
    )
    asset_id = pulseway.in_scope_assets()[0]
    org = await link_for(integration, ORG, account_id)
    person = await link_for(integration, CONTACT, contact_id)
    config = await link_for(integration, CONFIG, asset_id)
    contact = await Contact.get(id=person.local_id)
    emails = [
        *contact.emails,
        {"type": "Personal", "value": "second@home.example", "primary": False},
    ]
    phones = [{"type": "Mobile", "value": "+1 555 0101010", "primary": True, "kind": "phone"}]
    writes = pulseway.writes()

    await local_edits.update(ORG, account.id, org.local_id, {"name": "Renamed Here Ltd"})
    await local_edits.update(
        CONTACT,
        account.id,
        person.local_id,
        {"title": "Head of IT", "important": True, "emails": emails, "phones": phones},
    )
    await local_edits.update(CONFIG, account.id, config.local_id, {"serial_number": "SN-LOCAL-9"})
    for link in (org, person, config):
        assert (await RecordLink.get(id=link.id)).push_state == PushState.PENDING
    await worker.run_until_idle()

    assert store.accounts[account_id]["accountName"] == "Renamed Here Ltd"
    pushed = store.contacts[contact_id]
    assert (pushed["jobTitle"], pushed["poc"]) == ("Head of IT", True)
    assert sorted(e["emailAddress"] for e in pushed["emails"]) == sorted(e["value"] for e in emails)
    assert [(p["phone"], p["phoneTypeId"], p["isDefault"]) for p in pushed["phones"]] == [
        ("+1 555 0101010", 2, True)  # Mobile
    ]
    assert store.assets[asset_id]["serialNumber"] == "SN-LOCAL-9"
    # Accounts by JSON Patch, contacts by JSON Patch plus email and phone operations,
    # assets by PUT.
    assert diff(writes, pulseway.writes()) == {
        PATCH_ACCOUNT: 1,
        PATCH_CONTACT: 1,
        PATCH_EMAILS: 1,
        PATCH_PHONES: 1,
        PUT_ASSET: 1,
    }
    for link in (org, person, config):
        assert (await RecordLink.get(id=link.id)).push_state == PushState.NONE
    assert not await OutboxEntry.filter(integration_id=integration.id).exists()

    # The echo: the next poll reads our own writes and changes nothing, writes nothing.
    writes = pulseway.writes()
    run = await poll(worker, integration)
    assert run.updated == 0
    assert pulseway.writes() == writes


async def test_a_push_reads_what_pulseway_holds_first_and_reads_an_asset_once(
    pulseway: Pulseway, account: Account, vault: Vault, worker: Worker
) -> None:
    integration = await synced(pulseway, account, vault, worker)
    store = pulseway.store
    account_id = pulseway.in_scope_accounts()[0]
    asset_id = pulseway.in_scope_assets()[0]
    org = await link_for(integration, ORG, account_id)
    config = await link_for(integration, CONFIG, asset_id)
    await local_edits.update(ORG, account.id, org.local_id, {"name": "Ours Ltd"})
    await local_edits.update(CONFIG, account.id, config.local_id, {"serial_number": "SN-OURS"})
    # Meanwhile a Pulseway user renames the account and describes the asset.
    store.update("accounts", account_id, accountName="Theirs Ltd")
    store.update("assets", asset_id, description="Described in Pulseway")
    calls = pulseway.calls()

    await worker.deliverer.run_due()

    made = diff(calls, pulseway.calls())
    # Each record read once (an asset's read is the one its PUT needs), then written once:
    # the account not at all, since Pulseway's rename wins by default.
    assert made.get("GET /v2/servicedesk/hardwareasset/{assetId}") == 1
    assert made.get(PUT_ASSET) == 1
    assert PATCH_ACCOUNT not in made
    assert store.accounts[account_id]["accountName"] == "Theirs Ltd"
    assert (await Organization.get(id=org.local_id)).name == "Theirs Ltd"
    [conflict] = await SyncConflict.filter(local_id=org.local_id)
    assert (conflict.field, conflict.outcome) == ("name", ConflictOutcome.PSA)
    asset = store.assets[asset_id]
    assert (asset["serialNumber"], asset["description"]) == ("SN-OURS", "Described in Pulseway")
    local = await Configuration.get(id=config.local_id)
    assert (local.serial_number, local.notes) == ("SN-OURS", "Described in Pulseway")
    assert not await OutboxEntry.filter(integration_id=integration.id).exists()


async def test_an_asset_created_without_a_location_takes_the_one_pulseway_gives_it(
    pulseway: Pulseway, account: Account, vault: Vault, worker: Worker
) -> None:
    integration = await synced(pulseway, account, vault, worker)
    account_id = pulseway.in_scope_accounts()[0]
    org = await link_for(integration, ORG, account_id)
    created = await local_edits.create(
        CONFIG,
        account.id,
        {
            "organization_id": org.local_id,
            "name": "Made Here Without A Site",
            "configuration_type_id": await reference_id(
                account, ReferenceKind.CONFIGURATION_TYPE, "Workstation"
            ),
            "configuration_status_id": await reference_id(
                account, ReferenceKind.CONFIGURATION_STATUS, "In Use"
            ),
        },
    )
    await worker.run_until_idle()
    [asset] = [a for a in pulseway.store.assets.values() if a["name"] == created.name]
    main = await link_for(integration, LOC, asset["accountLocationId"])

    # Pulseway put it at the account's main location: so does our record, and nothing tries
    # to take the location away again (Pulseway would refuse: it requires one).
    local = await Configuration.get(id=created.id)
    assert local.location_id == main.local_id  # type: ignore[attr-defined]
    writes = pulseway.writes()
    await poll(worker, integration)
    await worker.run_until_idle()
    assert pulseway.writes() == writes
    assert not await OutboxEntry.filter(integration_id=integration.id).exists()


async def test_records_from_before_two_way_are_pushed_only_once_edited(
    pulseway: Pulseway, account: Account, vault: Vault, worker: Worker
) -> None:
    integration = await synced(pulseway, account, vault, worker, two_way_enabled=False)
    assert not integration.two_way_enabled
    store = pulseway.store
    account_id = pulseway.in_scope_accounts()[0]
    org = await link_for(integration, ORG, account_id)
    # Documented here before two-way was on: an organization Pulseway does not have.
    local_only = await local_edits.create(
        ORG,
        account.id,
        {
            "name": "Documented Here First",
            "organization_type_id": await reference_id(
                account, ReferenceKind.ORGANIZATION_TYPE, "Customer"
            ),
            "organization_status_id": await reference_id(
                account, ReferenceKind.ORGANIZATION_STATUS, "Active"
            ),
        },
    )
    accounts = len(store.accounts)
    writes = pulseway.writes()

    result = await sync_settings.update(integration, SettingsChange(two_way_enabled=True))
    await worker.run_until_idle()
    assert result.integration.two_way_enabled
    assert pulseway.writes() == writes  # turning two-way on pushes nothing by itself
    assert len(store.accounts) == accounts
    assert not await OutboxEntry.exists()

    # Edited (or just saved): now each one goes to Pulseway.
    await local_edits.update(ORG, account.id, org.local_id, {"name": "Edited After Two-Way"})
    await local_edits.update(ORG, account.id, local_only.id, {})
    await worker.run_until_idle()

    assert store.accounts[account_id]["accountName"] == "Edited After Two-Way"
    created = [a for a in store.accounts.values() if a["accountName"] == "Documented Here First"]
    assert len(created) == 1
    assert created[0]["accountTypeId"] == CUSTOMER
    assert len(store.locations_of(created[0]["id"])) == 1  # created with its first location
    link = await RecordLink.get(integration_id=integration.id, local_id=local_only.id)
    assert (link.psa_id, link.state) == (created[0]["id"], LinkState.SYNCED)
    assert diff(writes, pulseway.writes()) == {PATCH_ACCOUNT: 1, POST_ACCOUNT: 1}


# ------------------------------------------------------------------------------- conflicts


async def test_a_field_changed_on_both_sides_goes_by_the_conflict_policy(
    pulseway: Pulseway, account: Account, vault: Vault, worker: Worker
) -> None:
    """The two-way checkbox's preset: Pulseway wins a conflict; the local value is recorded
    in the conflict, and nothing is pushed back."""
    integration = await synced(pulseway, account, vault, worker)
    account_id = pulseway.in_scope_accounts()[0]
    org = await Organization.get(id=(await link_for(integration, ORG, account_id)).local_id)
    base = org.name
    await local_edits.update(ORG, account.id, org.id, {"name": "Ours Ltd"}, actor="ann@msp")
    pulseway.store.update("accounts", account_id, accountName="Theirs Ltd")
    writes = pulseway.writes()

    await pull(worker, integration)  # the pull reads Pulseway before the edit is delivered
    await worker.run_until_idle()

    assert (await Organization.get(id=org.id)).name == "Theirs Ltd"
    assert pulseway.store.accounts[account_id]["accountName"] == "Theirs Ltd"
    assert pulseway.writes() == writes
    [conflict] = await SyncConflict.filter(local_id=org.id, field="name")
    assert (json_value(conflict.base), json_value(conflict.local_value)) == (base, "Ours Ltd")
    assert json_value(conflict.psa_value) == "Theirs Ltd"
    assert (conflict.policy, conflict.outcome) == ("PSA_WINS", ConflictOutcome.PSA)
    assert not await OutboxEntry.exists()


async def test_local_wins_pushes_our_value_over_pulseways(
    pulseway: Pulseway, account: Account, vault: Vault, worker: Worker
) -> None:
    integration = await synced(pulseway, account, vault, worker)
    integration.directions = direction_settings.validated(
        integration.provider,
        integration.directions or {},
        {"default": {"direction": "TWO_WAY", "policy": "LOCAL_WINS"}},
    )
    await integration.save(update_fields=["directions"])
    contact_id = min(
        i
        for i, c in pulseway.store.contacts.items()
        if c["accountId"] in pulseway.in_scope_accounts()
    )
    person = await link_for(integration, CONTACT, contact_id)
    await local_edits.update(CONTACT, account.id, person.local_id, {"title": "Ours"})
    pulseway.store.update("contacts", contact_id, jobTitle="Theirs")
    writes = pulseway.writes()

    await pull(worker, integration)
    await worker.run_until_idle()

    assert (await Contact.get(id=person.local_id)).title == "Ours"
    assert pulseway.store.contacts[contact_id]["jobTitle"] == "Ours"
    assert diff(writes, pulseway.writes()) == {PATCH_CONTACT: 1}
    [conflict] = await SyncConflict.filter(local_id=person.local_id, field="title")
    assert (conflict.policy, conflict.outcome) == ("LOCAL_WINS", ConflictOutcome.LOCAL)


# ------------------------------------------------------------------ push all (switching PSAs)

# The partner documented ConnectWise clients and vendors in psasync; Pulseway PSA already has
# one of those clients. Reference values are the account's, matched by name across PSAs:
# "Vendor" is an account type in Pulseway too, so ConnectWise vendors are syncable there once
# the Pulseway integration enables Vendor; ConnectWise's "Client" is not a Pulseway account
# type (Pulseway calls clients "Customer", another value), so push-all leaves those clients
# out (type_not_syncable) rather than guess a type for them.
SWITCH_ENABLE: dict[ReferenceKind, list[str]] = {
    ReferenceKind.ORGANIZATION_TYPE: ["Customer", "Vendor"],
    ReferenceKind.ORGANIZATION_STATUS: ["Active"],
    ReferenceKind.CONFIGURATION_TYPE: ["Workstation", "Laptop", "Server"],
    ReferenceKind.CONFIGURATION_STATUS: ["In Use", "In Stock"],
}


async def org_issues(run: SyncRun) -> dict[str, list[SyncRunIssue]]:
    found: dict[str, list[SyncRunIssue]] = {}
    for issue in await SyncRunIssue.filter(run_id=run.id, kind=ORG):
        found.setdefault(issue.code, []).append(issue)
    return found


async def test_switching_to_pulseway_pushes_all_syncable_organizations_once(
    pulseway: Pulseway,
    psa: Psa,
    connect: Callable[..., Awaitable[Integration]],
    account: Account,
    vault: Vault,
    worker: Worker,
) -> None:
    connectwise = await connect()
    await worker.run_until_idle()
    companies = {
        link.psa_id: await Organization.get(id=link.local_id)
        for link in await RecordLink.filter(integration_id=connectwise.id, kind=ORG)
    }
    types = {org.id: await reference_name(org.organization_type_id) for org in companies.values()}  # type: ignore[attr-defined]
    vendors = sorted(
        (org for org in companies.values() if types[org.id] == "Vendor"), key=lambda o: o.name
    )
    clients = [org for org in companies.values() if types[org.id] == "Client"]
    assert vendors
    assert clients
    # One of the clients already is a Pulseway account (a Customer, active).
    shared = sorted(clients, key=lambda org: org.name)[0]
    account_id = pulseway.in_scope_accounts()[0]
    pulseway.store.update("accounts", account_id, accountName=shared.name)
    organizations = await Organization.all().count()

    integration = await connect_pulseway(pulseway, account, vault, enable=SWITCH_ENABLE)
    await worker.run_until_idle()
    assert (await last_run(integration)).status == RunStatus.SUCCEEDED
    links = await RecordLink.filter(local_id=shared.id).order_by("integration_id")
    assert sorted(str(link.integration_id) for link in links) == sorted(
        str(i) for i in (connectwise.id, integration.id)
    )
    assert (await link_for(integration, ORG, account_id)).local_id == shared.id
    assert await Organization.filter(name=shared.name).count() == 1
    # The Pulseway sync created the other in-scope accounts; nothing got duplicated.
    pulseway_only = len(pulseway.in_scope_accounts()) - 1
    assert await Organization.all().count() == organizations + pulseway_only
    accounts = len(pulseway.store.accounts)

    # The dry run: the plan, and not one write to Pulseway.
    writes = pulseway.writes()
    plan = await push_all.start(integration, Scope(), dry_run=True)
    await worker.run_until_idle()
    plan = await SyncRun.get(id=plan.id)
    assert plan.status == RunStatus.SUCCEEDED, plan.error
    issues = await org_issues(plan)
    assert sorted(i.local_id for i in issues["would_create"]) == sorted(v.id for v in vendors)
    not_syncable = {i.local_id: i.message for i in issues["type_not_syncable"]}
    assert {c.id for c in clients} - {shared.id} <= set(not_syncable)
    # The message names ConnectWise's type, a value Pulseway has no mapping of.
    assert all("organization type 'Client'" in m for m in not_syncable.values())
    assert pulseway.writes() == writes
    assert len(pulseway.store.accounts) == accounts
    assert not await RecordLink.filter(
        integration_id=integration.id, local_id__in=[v.id for v in vendors]
    ).exists()

    # The real run creates the vendors in Pulseway, each with its first location, and links.
    run = await push_all.start(integration, Scope(), dry_run=False)
    await worker.run_until_idle()
    run = await SyncRun.get(id=run.id)
    assert run.status == RunStatus.SUCCEEDED, run.error
    for vendor in vendors:
        created = [a for a in pulseway.store.accounts.values() if a["accountName"] == vendor.name]
        assert len(created) == 1, vendor.name
        assert created[0]["accountTypeId"] == 3  # Vendor
        assert len(pulseway.store.locations_of(created[0]["id"])) == 1
        link = await RecordLink.get(integration_id=integration.id, local_id=vendor.id)
        assert (link.psa_id, link.state) == (created[0]["id"], LinkState.SYNCED)
    assert len(pulseway.store.accounts) == accounts + len(vendors)
    assert await Organization.all().count() == organizations + pulseway_only

    # Pulseway made each vendor's first location inside the account's POST; the push-all run
    # does not link it (locations cannot be created on their own: the local primary location
    # is reported NOT_PUSHED), and the next sync matches it to the local primary location:
    # linked, not duplicated.
    sites = {v.id: await Location.filter(organization_id=v.id).count() for v in vendors}
    assert (await sync_now(worker, integration)).status == RunStatus.SUCCEEDED
    for vendor in vendors:
        org = await Organization.get(id=vendor.id)
        [created] = [a for a in pulseway.store.accounts.values() if a["accountName"] == org.name]
        [first] = pulseway.store.locations_of(created["id"])
        link = await link_for(integration, LOC, first["id"])
        assert (link.local_id, link.state) == (org.primary_location_id, LinkState.SYNCED)
        assert await Location.filter(organization_id=org.id).count() == sites[org.id]
    assert await Organization.all().count() == organizations + pulseway_only

    # Again: nothing left to create.
    accounts = len(pulseway.store.accounts)
    again = await push_all.start(integration, Scope(), dry_run=False)
    await worker.run_until_idle()
    again = await SyncRun.get(id=again.id)
    assert again.status == RunStatus.SUCCEEDED, again.error
    assert again.created == 0
    assert len(pulseway.store.accounts) == accounts
    assert await Organization.all().count() == organizations + pulseway_only


# ------------------------------------------------------------------------ call budget, 429


class VirtualTime:
    """A wall clock that ``sleep`` moves forward at once: an hour's budget in no time."""

    def __init__(self) -> None:
        self.offset = 0.0

    def clock(self) -> float:
        return time.time() + self.offset

    async def sleep(self, delay: float) -> None:
        self.offset += delay
        await asyncio.sleep(0)


@pytest.fixture
async def tiny(pulseway_contract: Recorder) -> AsyncIterator[Pulseway]:
    spec = DatasetSpec(accounts=3, contacts=3, assets=8, seed=4)
    async with served(spec, pulseway_contract) as tenant:
        yield tenant


async def assert_fully_synced(pulseway: Pulseway, integration: Integration) -> None:
    accounts = pulseway.in_scope_accounts()
    assert accounts
    assert await synced_ids(integration, ORG) == accounts
    contacts = sorted(i for i, c in pulseway.store.contacts.items() if c["accountId"] in accounts)
    assert await synced_ids(integration, CONTACT) == contacts
    assert await synced_ids(integration, CONFIG) == pulseway.in_scope_assets()
    for account_id in accounts:
        org = await Organization.get(id=(await link_for(integration, ORG, account_id)).local_id)
        assert org.name == pulseway.store.accounts[account_id]["accountName"]


async def test_a_small_call_budget_paces_the_sync_and_says_so(
    tiny: Pulseway, account: Account, vault: Vault
) -> None:
    virtual = VirtualTime()
    # 120 calls an hour: a burst of 2 per endpoint, then one every 30 s (virtual seconds).
    paced = pulseway_worker(vault, calls_per_hour=120, clock=virtual.clock, sleep=virtual.sleep)
    integration = await connect_pulseway(tiny, account, vault)
    await paced.run_until_idle()

    run = await last_run(integration)
    assert run.status == RunStatus.SUCCEEDED, run.error
    await assert_fully_synced(tiny, integration)
    assert run.budget_wait_seconds > 0
    # The waits really went through sleep (measured on the clock: real time adds a little).
    assert run.budget_wait_seconds == pytest.approx(virtual.offset, abs=1.0)
    [issue] = await SyncRunIssue.filter(run_id=run.id, code="psa_call_budget")
    assert "call budget set the pace" in issue.message
    endpoints = issue.detail["endpoints"]
    assert endpoints
    assert all(k.startswith(("GET ", "POST ")) for k in endpoints)
    assert any(k in issue.message for k in endpoints)
    assert tiny.simulator.traffic.over_budget == 0  # paced under the limit, never refused


async def test_a_paused_and_resumed_sync_is_judged_paced_over_its_whole_time(
    tiny: Pulseway, account: Account, vault: Vault
) -> None:
    virtual = VirtualTime()
    integration = await connect_pulseway(tiny, account, vault)
    paused: list[float] = []

    async def sleep(delay: float) -> None:
        await virtual.sleep(delay)
        if not paused:  # the sync waits for the budget: the user pauses it there
            paused.append(delay)
            await integrations.pause(integration)

    def now() -> datetime:
        return datetime.fromtimestamp(virtual.clock(), UTC)

    options = {"retry": FAST_RETRY, "calls_per_hour": 120, "clock": virtual.clock}
    paced = Worker(
        provider_factory(vault, sleep=sleep, **options),  # type: ignore[arg-type]
        schedule=False,
        retry_delay=timedelta(0),
        clock=now,
    )
    await paced.run_until_idle()
    assert (await last_run(integration)).status == RunStatus.QUEUED
    await integrations.resume(integration)
    await paced.run_until_idle()

    run = await last_run(integration)
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.attempts == 2
    [issue] = await SyncRunIssue.filter(run_id=run.id, code="psa_call_budget")
    waited, elapsed = issue.detail["waited_seconds"], issue.detail["elapsed_seconds"]
    assert waited == pytest.approx(run.budget_wait_seconds, abs=0.01)  # both attempts'
    assert elapsed == pytest.approx(run.active_seconds, abs=0.01)
    assert 0 < waited <= elapsed
    assert sum(issue.detail["endpoints"].values()) == pytest.approx(waited, abs=0.01)
    assert f"{waited:.0f} s of {elapsed:.0f} s were spent waiting" in issue.message


async def test_a_429_with_retry_after_is_retried_and_the_sync_succeeds(
    tiny: Pulseway, account: Account, vault: Vault, worker: Worker
) -> None:
    integration = await connect_pulseway(tiny, account, vault)
    tiny.simulator.faults.configure({"rate_limit_every": 4, "retry_after_seconds": 1})
    await worker.run_until_idle()

    run = await last_run(integration)
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert tiny.simulator.traffic.rate_limited > 0
    await assert_fully_synced(tiny, integration)
