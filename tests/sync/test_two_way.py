"""Two-way sync end to end: local edits pushed to the ConnectWise simulator over HTTP,
echoes, pre-existing records, creates, deletes (SQLite, and PostgreSQL when configured)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from harness import Psa
from two_way_helpers import a_synced_organization, pull, two_way

from models import (
    Account,
    AssetKind,
    Configuration,
    FieldChange,
    Integration,
    LinkState,
    Location,
    Organization,
    OutboxEntry,
    PushState,
    RecordLink,
    ReferenceValue,
)
from sync import local_edits
from sync.runner import Worker

Connect = Callable[..., Awaitable[Integration]]


async def synced(connect: Connect, worker: Worker) -> Integration:
    integration = await connect()
    await worker.run_until_idle()
    return await two_way(worker, integration)


async def test_an_edit_under_two_way_is_queued_then_pushed_as_one_write(
    psa: Psa, connect: Connect, worker: Worker, account: Account
) -> None:
    integration = await synced(connect, worker)
    org, psa_id = await a_synced_organization(psa, integration)

    await local_edits.update(
        AssetKind.ORGANIZATION, account.id, org.id, {"name": "Renamed Holdings"}, actor="ann@msp"
    )
    link = await RecordLink.get(integration_id=integration.id, kind="organization", psa_id=psa_id)
    assert link.push_state == PushState.PENDING
    assert await OutboxEntry.filter(integration_id=integration.id).count() == 1

    writes = psa.simulator.traffic.writes
    await worker.run_until_idle()

    company = psa.store.get("companies", psa_id)
    assert company is not None
    assert company["name"] == "Renamed Holdings"
    assert psa.simulator.traffic.writes == writes + 1
    link = await RecordLink.get(id=link.id)
    assert link.push_state == PushState.NONE
    assert link.snapshot["name"] == "Renamed Holdings"
    assert not await OutboxEntry.filter(integration_id=integration.id).exists()


async def test_the_echo_of_a_push_changes_nothing_and_never_ping_pongs(
    psa: Psa, connect: Connect, worker: Worker, account: Account
) -> None:
    integration = await synced(connect, worker)
    org, _psa_id = await a_synced_organization(psa, integration)
    await local_edits.update(AssetKind.ORGANIZATION, account.id, org.id, {"name": "Echo Ltd"})
    await worker.run_until_idle()
    version = (await Organization.get(id=org.id)).version
    writes = psa.simulator.traffic.writes

    for _ in range(2):  # the pull sees our own write, twice over
        run = await pull(worker, integration)
        await worker.run_until_idle()
        assert run.updated == 0

    assert (await Organization.get(id=org.id)).version == version
    assert psa.simulator.traffic.writes == writes
    assert not await OutboxEntry.exists()


async def test_consecutive_edits_of_one_record_coalesce_into_one_patch(
    psa: Psa, connect: Connect, worker: Worker, account: Account
) -> None:
    integration = await synced(connect, worker)
    org, psa_id = await a_synced_organization(psa, integration)
    for name in ("First", "Second", "Third"):
        await local_edits.update(AssetKind.ORGANIZATION, account.id, org.id, {"name": name})
    writes = psa.simulator.traffic.writes
    await worker.run_until_idle()
    assert psa.simulator.traffic.writes == writes + 1
    company = psa.store.get("companies", psa_id)
    assert company is not None
    assert company["name"] == "Third"


async def test_an_edit_undone_before_delivery_sends_nothing(
    psa: Psa, connect: Connect, worker: Worker, account: Account
) -> None:
    integration = await synced(connect, worker)
    org, _psa_id = await a_synced_organization(psa, integration)
    original = org.name
    await local_edits.update(AssetKind.ORGANIZATION, account.id, org.id, {"name": "Oops"})
    await local_edits.update(AssetKind.ORGANIZATION, account.id, org.id, {"name": original})
    writes = psa.simulator.traffic.writes
    await worker.run_until_idle()
    assert psa.simulator.traffic.writes == writes
    link = await RecordLink.get(integration_id=integration.id, local_id=org.id)
    assert link.push_state == PushState.NONE


async def test_a_psa_change_is_pulled_into_the_local_record(
    psa: Psa, connect: Connect, worker: Worker
) -> None:
    integration = await synced(connect, worker)
    org, psa_id = await a_synced_organization(psa, integration)
    psa.store.update("companies", psa_id, {"name": "Changed In ConnectWise"})
    writes = psa.simulator.traffic.writes
    await pull(worker, integration)
    await worker.run_until_idle()
    assert (await Organization.get(id=org.id)).name == "Changed In ConnectWise"
    assert psa.simulator.traffic.writes == writes  # nothing pushed back
    history = await FieldChange.filter(local_id=org.id, field="name").first()
    assert history is not None
    assert history.source == "PSA"
    assert history.actor == integration.name


async def test_records_that_existed_before_are_not_pushed_until_saved(
    psa: Psa, connect: Connect, worker: Worker, account: Account
) -> None:
    local = await local_edits.create(
        AssetKind.ORGANIZATION, account.id, {"name": "Only In Psasync"}
    )
    integration = await connect()
    await worker.run_until_idle()
    integration = await two_way(worker, integration)
    assert not await RecordLink.filter(local_id=local.id).exists()
    assert not psa.store.find("companies", 'name = "Only In Psasync"')

    client = await ReferenceValue.get(
        account_id=account.id, kind="organization_type", name="Client"
    )
    active = await ReferenceValue.get(
        account_id=account.id, kind="organization_status", name="Active"
    )
    location = await local_edits.create(
        AssetKind.LOCATION,
        account.id,
        {"organization_id": local.id, "name": "HQ", "address_1": "1 Main St", "city": "Tampa"},
    )
    await local_edits.update(
        AssetKind.ORGANIZATION,
        account.id,
        local.id,
        {
            "organization_type_id": client.id,
            "organization_status_id": active.id,
            "primary_location_id": location.id,
        },
    )
    await worker.run_until_idle()

    found = psa.store.find("companies", 'name = "Only In Psasync"')
    assert len(found) == 1
    assert found[0]["addressLine1"] == "1 Main St"
    link = await RecordLink.get(integration_id=integration.id, local_id=local.id)
    assert link.state == LinkState.SYNCED
    assert link.psa_id == found[0]["id"]

    await worker.run_until_idle()  # saving again creates nothing new
    await local_edits.update(AssetKind.ORGANIZATION, account.id, local.id, {})
    await worker.run_until_idle()
    assert len(psa.store.find("companies", 'name = "Only In Psasync"')) == 1


async def test_a_configuration_without_a_type_stays_not_pushed_with_the_reason(
    psa: Psa, connect: Connect, worker: Worker, account: Account
) -> None:
    integration = await synced(connect, worker)
    org, _psa_id = await a_synced_organization(psa, integration)
    config = await local_edits.create(
        AssetKind.CONFIGURATION, account.id, {"organization_id": org.id, "name": "NAS-01"}
    )
    await worker.run_until_idle()
    link = await RecordLink.get(integration_id=integration.id, local_id=config.id)
    assert link.state == LinkState.NOT_PUSHED
    assert link.psa_id is None
    assert link.last_error is not None
    assert "type" in link.last_error
    assert not psa.store.find("configurations", 'name = "NAS-01"')

    server = await ReferenceValue.get(
        account_id=account.id, kind="configuration_type", name="Managed Server"
    )
    active = await ReferenceValue.get(
        account_id=account.id, kind="configuration_status", name="Active"
    )
    await local_edits.update(
        AssetKind.CONFIGURATION,
        account.id,
        config.id,
        {"configuration_type_id": server.id, "configuration_status_id": active.id},
    )
    await worker.run_until_idle()
    created = psa.store.find("configurations", 'name = "NAS-01"')
    assert len(created) == 1
    link = await RecordLink.get(integration_id=integration.id, local_id=config.id)
    assert link.state == LinkState.SYNCED
    assert link.psa_id == created[0]["id"]
    assert (await Configuration.get(id=config.id)).name == "NAS-01"


async def test_deleting_a_linked_record_leaves_the_psa_record_unless_deletes_propagate(
    psa: Psa, connect: Connect, worker: Worker, account: Account
) -> None:
    integration = await synced(connect, worker)
    org, psa_id = await a_synced_organization(psa, integration)
    configs = await Configuration.filter(organization_id=org.id)
    linked_ids = {
        link.psa_id
        for link in await RecordLink.filter(
            integration_id=integration.id, local_id__in=[c.id for c in configs]
        )
    }
    assert linked_ids
    for config in configs:
        await local_edits.delete(AssetKind.CONFIGURATION, account.id, config.id)
    await worker.run_until_idle()
    for config in configs:
        assert not await RecordLink.filter(local_id=config.id).exists()
    kept = [
        c
        for c in psa.store.find("configurations", f"company/id = {psa_id}")
        if c["id"] in linked_ids
    ]
    assert len(kept) == len(linked_ids)  # ConnectWise still has them

    integration.propagate_deletes = True
    await integration.save(update_fields=["propagate_deletes"])
    target = kept[0]
    await pull(worker, integration)  # links the kept records' copies back
    link = await RecordLink.get(
        integration_id=integration.id, kind="configuration", psa_id=target["id"]
    )
    await local_edits.delete(AssetKind.CONFIGURATION, account.id, link.local_id)
    await worker.run_until_idle()
    assert psa.store.get("configurations", target["id"]) is None


async def test_an_organization_gets_created_once_it_has_an_address_and_its_site_links_up(
    psa: Psa, connect: Connect, worker: Worker, account: Account
) -> None:
    integration = await synced(connect, worker)
    client = await ReferenceValue.get(
        account_id=account.id, kind="organization_type", name="Client"
    )
    active = await ReferenceValue.get(
        account_id=account.id, kind="organization_status", name="Active"
    )
    org = await local_edits.create(
        AssetKind.ORGANIZATION,
        account.id,
        {
            "name": "Fresh Start",
            "organization_type_id": client.id,
            "organization_status_id": active.id,
        },
    )
    await worker.run_until_idle()
    link = await RecordLink.get(integration_id=integration.id, local_id=org.id)
    assert link.state == LinkState.NOT_PUSHED
    assert link.last_error is not None
    assert "address" in link.last_error

    site = await local_edits.create(
        AssetKind.LOCATION,
        account.id,
        {
            "organization_id": org.id,
            "name": "Head Office",
            "address_1": "5 Bay Rd",
            "city": "Tampa",
        },
    )
    await local_edits.update(
        AssetKind.ORGANIZATION, account.id, org.id, {"primary_location_id": site.id}
    )
    await worker.run_until_idle()
    company = psa.store.find("companies", 'name = "Fresh Start"')
    assert len(company) == 1
    await pull(worker, integration)  # ConnectWise made the company's "Main" site from it

    site_link = await RecordLink.get(integration_id=integration.id, local_id=site.id)
    assert site_link.state == LinkState.SYNCED
    assert site_link.psa_parent_id == company[0]["id"]
    assert await Location.filter(organization_id=org.id).count() == 1
