"""What the PSA's security role denies psasync's API user, by area: checked at setup and at
every run, a push's 403 recorded as a write denial, a lifted denial cleared at the next
check; only a denied core read is a failure. End to end over HTTP to the ConnectWise
simulator (SQLite, and PostgreSQL when configured)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
from harness import ALL_SCOPE, Psa, sync_now
from two_way_helpers import a_synced_organization, link_of, psa_field, two_way_integration

from models import (
    Account,
    AssetKind,
    Configuration,
    Contact,
    Integration,
    Organization,
    OutboxEntry,
    OutboxStatus,
    PushState,
    ReferenceKind,
    ReferenceMapping,
    RunKind,
    RunStatus,
    RunTrigger,
    SyncRun,
    SyncState,
)
from models.vault import Vault
from sync import jobs, local_edits, permissions, reference, sync_settings
from sync.conflicts import retry_push
from sync.integrations import IntegrationError, add_connectwise, update_credentials
from sync.providers.base import AreaAccess
from sync.runner import Worker
from sync.sync_settings import SettingsChange

Connect = Callable[..., Awaitable[Integration]]


async def report(integration: Integration) -> list[AreaAccess]:
    row = await Integration.get(id=integration.id)
    return permissions.report_of(row.permissions)


def denied(entries: list[AreaAccess]) -> set[tuple[str, str]]:
    return {(e.area, e.access) for e in entries if not e.allowed}


async def test_setup_with_configurations_denied_creates_the_integration_and_warns(
    psa: Psa, connect: Connect
) -> None:
    psa.simulator.denials.deny("configurations", "read")

    integration = await connect()

    entries = await report(integration)
    assert denied(entries) == {("configurations", "read")}
    allowed = {e.area for e in entries if e.allowed}
    assert {"companies", "sites", "contacts", "members", "boards", "tickets"} <= allowed
    [refused] = [e for e in entries if not e.allowed]
    assert "security role" in (refused.message or "")


async def test_setup_with_companies_denied_is_refused_naming_the_area(
    psa: Psa, account: Account, vault: Vault
) -> None:
    psa.simulator.denials.deny("companies", "read")

    with pytest.raises(IntegrationError) as refused:
        await add_connectwise(account, psa.credentials(), vault, sandbox=True)

    assert refused.value.code == "PSA_ACCESS_DENIED"
    assert refused.value.area == "companies"
    assert "companies" in refused.value.message
    assert not await Integration.exists()


async def test_a_run_skips_a_denied_area_and_the_next_run_after_lifting_syncs_it(
    psa: Psa, connect: Connect, worker: Worker
) -> None:
    psa.simulator.denials.deny("configurations", "read")
    integration = await connect()

    await worker.run_until_idle()  # the setup's full sync

    run = await sync_now(worker, integration)
    assert run.status == RunStatus.SUCCEEDED
    assert await Organization.exists()
    assert not await Configuration.exists()  # not read, and nothing failed for it
    assert denied(await report(integration)) == {("configurations", "read")}

    psa.simulator.denials.clear()
    run = await sync_now(worker, integration)

    assert run.status == RunStatus.SUCCEEDED
    assert denied(await report(integration)) == set()
    # The types are listed now, new ones disabled as always, until the user picks them.
    kind = ReferenceKind.CONFIGURATION_TYPE
    assert await ReferenceMapping.filter(integration_id=integration.id, kind=kind).exists()
    await reference.set_sync_state(integration, kind, ALL_SCOPE[kind], SyncState.ENABLED)
    await reference.set_sync_state(
        integration, ReferenceKind.CONFIGURATION_STATUS, ["Active"], SyncState.ENABLED
    )
    run = await sync_now(worker, integration)
    assert run.status == RunStatus.SUCCEEDED
    assert await Configuration.exists()


async def test_a_poll_checks_only_denied_areas_and_reads_a_lifted_one_in_full(
    psa: Psa, connect: Connect, worker: Worker
) -> None:
    psa.simulator.denials.deny("contacts", "read")
    integration = await connect()
    await worker.run_until_idle()  # the setup's full sync: no contacts
    assert not await Contact.exists()

    psa.simulator.denials.clear()
    run = await jobs.enqueue(integration, kind=RunKind.INCREMENTAL, trigger=RunTrigger.SCHEDULE)
    await worker.run_until_idle()

    assert (await SyncRun.get(id=run.id)).status == RunStatus.SUCCEEDED
    assert denied(await report(integration)) == set()
    assert await Contact.exists()  # what changed while denied is read too


async def test_a_run_fails_naming_companies_when_their_read_is_denied_later(
    psa: Psa, connect: Connect, worker: Worker
) -> None:
    integration = await connect()
    await worker.run_until_idle()
    psa.simulator.denials.deny("companies", "read")

    run = await sync_now(worker, integration)

    assert run.status == RunStatus.FAILED
    assert run.error is not None
    assert "companies" in run.error
    assert ("companies", "read") in denied(await report(integration))


async def test_a_push_refused_with_403_fails_visibly_is_recorded_and_clears_once_allowed(
    psa: Psa, connect: Connect, worker: Worker, account: Account
) -> None:
    integration = await two_way_integration(connect, worker)
    org, psa_id = await a_synced_organization(psa, integration)
    psa.simulator.denials.deny("companies", "write")
    requests = psa.simulator.traffic.requests

    await local_edits.update(AssetKind.ORGANIZATION, account.id, org.id, {"name": "Denied Co"})
    await worker.run_until_idle()
    await worker.run_until_idle()  # nothing is retried as if ConnectWise were down

    [entry] = await OutboxEntry.filter(local_id=org.id)
    assert entry.status == OutboxStatus.FAILED
    assert entry.last_error is not None
    assert "security role" in entry.last_error
    link = await link_of(integration, org.id)
    assert link.push_state == PushState.FAILED
    assert ("companies", "write") in denied(await report(integration))
    assert psa_field(psa, "companies", psa_id, "name") != "Denied Co"
    sent = psa.simulator.traffic.requests - requests
    assert sent <= 3  # one read, one refused write (and no back-off retries)

    psa.simulator.denials.clear()
    await retry_push(account.id, link.id)
    await worker.run_until_idle()

    assert psa_field(psa, "companies", psa_id, "name") == "Denied Co"
    assert not await OutboxEntry.filter(local_id=org.id).exists()
    assert ("companies", "write") not in denied(await report(integration))


async def test_new_credentials_check_the_reads_again(
    psa: Psa, connect: Connect, vault: Vault
) -> None:
    psa.simulator.denials.deny("contacts", "read")
    integration = await connect()
    assert denied(await report(integration)) == {("contacts", "read")}

    psa.simulator.denials.clear()
    await update_credentials(
        integration,
        integration.provider,
        {"client_id": "rotated"},
        vault,
    )

    assert denied(await report(integration)) == set()


async def test_saving_settings_keeps_what_a_run_recorded_meanwhile(
    psa: Psa, connect: Connect, worker: Worker
) -> None:
    """The settings form holds a copy of the integration read before a run moved its
    bookmarks and recorded a denial: saving it changes only the settings."""
    integration = await connect()
    await worker.run_until_idle()
    form_copy = await Integration.get(id=integration.id)
    psa.simulator.denials.deny("contacts", "read")
    await sync_now(worker, integration)  # records the denial, moves the bookmarks
    moved = await Integration.get(id=integration.id)
    assert denied(permissions.report_of(moved.permissions)) == {("contacts", "read")}

    await sync_settings.update(form_copy, SettingsChange(sync_interval_seconds=3600))

    saved = await Integration.get(id=integration.id)
    assert saved.sync_interval_seconds == 3600
    assert saved.bookmarks == moved.bookmarks
    assert saved.permissions == moved.permissions
    assert saved.status == moved.status
