"""Delivering local edits to ConnectWise under two-way sync: outages, refusals, pauses, stale
reads, field history and deletes, end to end over HTTP (SQLite, and PostgreSQL when
configured)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from harness import Psa, sync_now
from two_way_helpers import (
    a_synced_configuration,
    a_synced_organization,
    link_of,
    psa_field,
    pull,
    two_way_integration,
)

from models import (
    Account,
    AssetKind,
    ChangeSource,
    Configuration,
    FieldChange,
    Integration,
    Organization,
    OutboxEntry,
    OutboxOperation,
    OutboxStatus,
    PushState,
    RecordLink,
    SyncConflict,
)
from models.outbox import json_value
from sync import local_edits
from sync.conflicts import retry_push
from sync.context import utcnow
from sync.integrations import pause, resume
from sync.runner import Worker

Connect = Callable[..., Awaitable[Integration]]
ORG = AssetKind.ORGANIZATION
CONFIG = AssetKind.CONFIGURATION


async def two_organizations(
    psa: Psa, integration: Integration
) -> tuple[tuple[Organization, int], tuple[Organization, int]]:
    links = (
        await RecordLink.filter(integration_id=integration.id, kind="organization")
        .exclude(psa_id=None)
        .order_by("psa_id")
        .limit(2)
    )
    assert len(links) == 2
    pairs = []
    for link in links:
        assert link.psa_id is not None
        pairs.append((await Organization.get(id=link.local_id), link.psa_id))
    return pairs[0], pairs[1]


# -------------------------------------------------------------------------------- outages


async def edits_during_an_outage(
    psa: Psa, integration: Integration, account: Account, worker: Worker
) -> tuple[int, int, int]:
    """Two organizations and a configuration edited (one of them twice) while ConnectWise
    fails every request; returns their PSA ids."""
    (first, first_id), (second, second_id) = await two_organizations(psa, integration)
    config, config_id = await a_synced_configuration(integration)
    await local_edits.update(ORG, account.id, first.id, {"name": "Outage One"})
    await worker.run_until_idle()  # tried, and failed
    await local_edits.update(ORG, account.id, first.id, {"name": "Outage One, Again"})
    await local_edits.update(ORG, account.id, second.id, {"name": "Outage Two"})
    await local_edits.update(CONFIG, account.id, config.id, {"serial_number": "SN-OUTAGE"})
    await worker.run_until_idle()
    await worker.run_until_idle()
    return first_id, second_id, config_id


async def assert_queued_and_visible(integration: Integration, records: int) -> None:
    """Every edit still queued (none failed, none dropped), its record shown as pending."""
    entries = await OutboxEntry.filter(integration_id=integration.id)
    assert len(entries) == 4
    assert {e.status for e in entries} == {OutboxStatus.PENDING}
    links = await RecordLink.filter(
        integration_id=integration.id, local_id__in=list({e.local_id for e in entries})
    )
    assert len(links) == records
    assert {link.push_state for link in links} == {PushState.PENDING}


async def assert_landed_once(psa: Psa, ids: tuple[int, int, int], writes: int) -> None:
    first_id, second_id, config_id = ids
    assert psa.simulator.traffic.writes == writes + 3  # one write per record
    assert psa_field(psa, "companies", first_id, "name") == "Outage One, Again"
    assert psa_field(psa, "companies", second_id, "name") == "Outage Two"
    assert psa_field(psa, "configurations", config_id, "serialNumber") == "SN-OUTAGE"
    assert not await OutboxEntry.exists()
    assert {link.push_state for link in await RecordLink.all()} == {PushState.NONE}


async def test_edits_made_while_connectwise_is_down_wait_and_all_land_once_it_is_back(
    psa: Psa, connect: Connect, worker: Worker, account: Account
) -> None:
    integration = await two_way_integration(connect, worker)
    worker.deliverer.base_delay = 0  # no back-off to wait out in a test
    writes = psa.simulator.traffic.writes
    psa.simulator.faults.outage_status = 503

    ids = await edits_during_an_outage(psa, integration, account, worker)

    assert psa.simulator.traffic.writes == writes
    assert psa.simulator.traffic.server_errors > 0
    await assert_queued_and_visible(integration, records=3)
    entries = await OutboxEntry.filter(integration_id=integration.id)
    assert all("503" in (e.last_error or "") for e in entries)  # each tried, and why not

    psa.simulator.faults.clear()
    await worker.run_until_idle()

    await assert_landed_once(psa, ids, writes)
    assert (await Organization.filter(name="Outage One, Again").count()) == 1
    run = await pull(worker, integration)  # ConnectWise and we agree now
    await worker.run_until_idle()
    assert run.updated == 0
    assert psa.simulator.traffic.writes == writes + 3


async def test_a_rate_limited_connectwise_is_waited_out_as_retry_after_says(
    psa: Psa, connect: Connect, worker: Worker, account: Account
) -> None:
    integration = await two_way_integration(connect, worker)
    worker.deliverer.base_delay = 0
    writes = psa.simulator.traffic.writes
    psa.simulator.faults.outage_status = 429
    psa.simulator.faults.retry_after_seconds = 600

    before = utcnow()
    ids = await edits_during_an_outage(psa, integration, account, worker)

    assert psa.simulator.traffic.writes == writes
    assert psa.simulator.traffic.rate_limited > 0
    await assert_queued_and_visible(integration, records=3)
    [tried] = await OutboxEntry.filter(integration_id=integration.id, attempts__gt=0)
    assert "429" in (tried.last_error or "")  # the first edit was tried; the rest wait
    waiting = await Integration.get(id=integration.id)
    assert waiting.push_not_before is not None
    assert waiting.push_not_before >= before + timedelta(seconds=600)

    psa.simulator.faults.clear()
    await worker.run_until_idle()  # ConnectWise asked for ten minutes: nothing goes yet
    assert psa.simulator.traffic.writes == writes
    assert await OutboxEntry.filter(integration_id=integration.id).count() == 4

    worker.deliverer.clock = lambda: utcnow() + timedelta(seconds=601)  # ten minutes on
    await worker.run_until_idle()

    await assert_landed_once(psa, ids, writes)


# ------------------------------------------------------------------------ refusals


async def test_a_push_connectwise_refuses_is_kept_with_its_message_until_fixed_and_retried(
    psa: Psa, connect: Connect, worker: Worker, account: Account
) -> None:
    integration = await two_way_integration(connect, worker)
    (org, psa_id), (_other, other_id) = await two_organizations(psa, integration)
    taken = psa_field(psa, "companies", other_id, "identifier")
    original = psa_field(psa, "companies", psa_id, "identifier")
    writes = psa.simulator.traffic.writes

    await local_edits.update(ORG, account.id, org.id, {"short_name": taken})
    await worker.run_until_idle()

    assert psa.simulator.traffic.writes == writes
    assert psa_field(psa, "companies", psa_id, "identifier") == original
    [entry] = await OutboxEntry.filter(local_id=org.id)
    assert entry.status == OutboxStatus.FAILED
    link = await link_of(integration, org.id)
    assert link.push_state == PushState.FAILED
    assert link.last_error is not None
    assert f"The identifier '{taken}' is already in use." in link.last_error
    assert entry.last_error == link.last_error

    # A later edit of the same record waits behind the refused one.
    await local_edits.update(ORG, account.id, org.id, {"name": "Waits Its Turn"})
    await worker.run_until_idle()
    assert psa.simulator.traffic.writes == writes
    assert psa_field(psa, "companies", psa_id, "name") != "Waits Its Turn"
    link = await link_of(integration, org.id)
    assert link.push_state == PushState.FAILED  # still shows what went wrong
    assert link.last_error is not None

    await local_edits.update(ORG, account.id, org.id, {"short_name": "FIXEDID"})
    await retry_push(account.id, link.id)
    await worker.run_until_idle()

    assert psa.simulator.traffic.writes == writes + 1
    assert psa_field(psa, "companies", psa_id, "identifier") == "FIXEDID"
    assert psa_field(psa, "companies", psa_id, "name") == "Waits Its Turn"
    link = await link_of(integration, org.id)
    assert link.push_state == PushState.NONE
    assert link.last_error is None
    assert not await OutboxEntry.filter(local_id=org.id).exists()


async def test_a_pull_keeps_showing_a_refused_push_until_it_is_retried(
    psa: Psa, connect: Connect, worker: Worker, account: Account
) -> None:
    integration = await two_way_integration(connect, worker)
    (org, psa_id), (_other, other_id) = await two_organizations(psa, integration)
    taken = psa_field(psa, "companies", other_id, "identifier")
    await local_edits.update(ORG, account.id, org.id, {"short_name": taken})
    await worker.run_until_idle()
    refused = await link_of(integration, org.id)
    assert refused.push_state == PushState.FAILED
    psa.store.update("companies", psa_id, {"name": "Renamed In ConnectWise"})
    writes = psa.simulator.traffic.writes

    await pull(worker, integration)
    await worker.run_until_idle()

    assert (await Organization.get(id=org.id)).name == "Renamed In ConnectWise"
    link = await link_of(integration, org.id)
    assert (link.push_state, link.last_error) == (PushState.FAILED, refused.last_error)
    assert psa.simulator.traffic.writes == writes
    assert await OutboxEntry.filter(local_id=org.id, status=OutboxStatus.FAILED).exists()


# ------------------------------------------------------------------ pause and catch-up


async def test_edits_made_while_paused_are_held_then_delivered_on_resume_and_kept(
    psa: Psa, connect: Connect, worker: Worker, account: Account
) -> None:
    integration = await two_way_integration(connect, worker)
    (first, first_id), (second, second_id) = await two_organizations(psa, integration)
    writes = psa.simulator.traffic.writes

    integration = await pause(integration)
    for name in ("Paused A1", "Paused A2", "Paused A3"):
        await local_edits.update(ORG, account.id, first.id, {"name": name})
    for name in ("Paused B1", "Paused B2"):
        await local_edits.update(ORG, account.id, second.id, {"name": name})
    psa.store.update("companies", first_id, {"identifier": "WHILEPAUSED"})  # theirs, meanwhile
    await worker.run_until_idle()

    assert psa.simulator.traffic.writes == writes
    assert await OutboxEntry.filter(integration_id=integration.id).count() == 5
    assert psa_field(psa, "companies", first_id, "name") != "Paused A3"

    integration = await resume(integration)
    run = await sync_now(worker, integration)  # catches up first, then pulls

    assert psa.simulator.traffic.writes == writes + 2  # one write per record
    assert psa_field(psa, "companies", first_id, "name") == "Paused A3"
    assert psa_field(psa, "companies", second_id, "name") == "Paused B2"
    assert psa_field(psa, "companies", first_id, "identifier") == "WHILEPAUSED"
    local = await Organization.get(id=first.id)
    assert (local.name, local.short_name) == ("Paused A3", "WHILEPAUSED")  # ours not undone
    assert (await Organization.get(id=second.id)).name == "Paused B2"
    assert run.status == "SUCCEEDED"
    assert not await SyncConflict.exists()
    assert not await OutboxEntry.exists()


# ------------------------------------------------------------------------- stale reads


async def test_a_psa_record_older_than_what_we_last_saw_is_ignored_by_a_pull(
    psa: Psa, connect: Connect, worker: Worker, account: Account
) -> None:
    integration = await two_way_integration(connect, worker)
    org, psa_id = await a_synced_organization(psa, integration)
    seen = int((datetime.now(UTC) + timedelta(hours=1)).timestamp())
    await RecordLink.filter(integration_id=integration.id, local_id=org.id).update(psa_stamp=seen)
    psa.store.update("companies", psa_id, {"name": "Stale In ConnectWise"})

    await pull(worker, integration)
    await worker.run_until_idle()

    assert (await Organization.get(id=org.id)).name == org.name
    link = await link_of(integration, org.id)
    assert link.psa_stamp == seen
    assert link.snapshot["name"] == org.name

    # A change stamped after what we saw is taken.
    psa.store._clock = lambda: datetime.now(UTC) + timedelta(hours=2)
    psa.store.update("companies", psa_id, {"name": "Fresh In ConnectWise"})
    await pull(worker, integration)
    assert (await Organization.get(id=org.id)).name == "Fresh In ConnectWise"


# ------------------------------------------------------------------------ field history


async def test_field_history_records_the_user_edit_its_push_and_a_pulled_change(
    psa: Psa, connect: Connect, worker: Worker, account: Account
) -> None:
    integration = await two_way_integration(connect, worker)
    org, psa_id = await a_synced_organization(psa, integration)
    before = org.name

    await local_edits.update(ORG, account.id, org.id, {"name": "Typed Here"}, actor="ann@msp")
    await worker.run_until_idle()
    psa.store.update("companies", psa_id, {"identifier": "FROMCW"})
    await pull(worker, integration)

    rows = await FieldChange.filter(local_id=org.id).order_by("id")
    user = [r for r in rows if r.source == ChangeSource.USER]
    pushed = [r for r in rows if r.source == ChangeSource.PUSH]
    pulled = [r for r in rows if r.source == ChangeSource.PSA]
    assert [(r.field, r.actor, r.integration_id) for r in user] == [("name", "ann@msp", None)]
    assert (json_value(user[0].old_value), json_value(user[0].new_value)) == (
        before,
        "Typed Here",
    )
    assert [(r.field, r.actor, r.integration_id) for r in pushed] == [
        ("name", integration.name, integration.id)
    ]
    assert json_value(pushed[0].new_value) == "Typed Here"
    assert [(r.field, r.actor, r.integration_id) for r in pulled] == [
        ("short_name", integration.name, integration.id)
    ]
    assert json_value(pulled[0].new_value) == "FROMCW"
    assert [r.source for r in rows] == [ChangeSource.USER, ChangeSource.PUSH, ChangeSource.PSA]


# ----------------------------------------------------------------------------- deletes


async def test_deleting_a_record_with_a_pending_push_drops_the_push(
    psa: Psa, connect: Connect, worker: Worker, account: Account
) -> None:
    integration = await two_way_integration(connect, worker)
    config, psa_id = await a_synced_configuration(integration)
    original = psa_field(psa, "configurations", psa_id, "name")
    await local_edits.update(CONFIG, account.id, config.id, {"name": "Never Sent"})
    assert await OutboxEntry.filter(local_id=config.id).exists()
    writes = psa.simulator.traffic.writes

    await local_edits.delete(CONFIG, account.id, config.id)
    assert not await OutboxEntry.exists()  # dropped with the record
    await worker.run_until_idle()

    assert psa.simulator.traffic.writes == writes
    assert psa_field(psa, "configurations", psa_id, "name") == original
    assert not await Configuration.filter(id=config.id).exists()


async def test_deleting_a_record_with_a_pending_push_sends_only_the_delete_when_it_propagates(
    psa: Psa, connect: Connect, worker: Worker, account: Account
) -> None:
    integration = await two_way_integration(connect, worker)
    integration.propagate_deletes = True
    await integration.save(update_fields=["propagate_deletes"])
    config, psa_id = await a_synced_configuration(integration)
    await local_edits.update(CONFIG, account.id, config.id, {"name": "Never Sent"})
    writes = psa.simulator.traffic.writes

    await local_edits.delete(CONFIG, account.id, config.id)
    entries = await OutboxEntry.filter(local_id=config.id)
    assert [e.operation for e in entries] == [OutboxOperation.DELETE]
    await worker.run_until_idle()

    assert psa.simulator.traffic.writes == writes + 1  # the DELETE, no PATCH before it
    assert psa.store.get("configurations", psa_id) is None
    assert not await OutboxEntry.exists()
