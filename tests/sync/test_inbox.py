"""Processing stored webhook deliveries: a notice is a hint to re-fetch, never data.

The deliveries are written as the receiver writes them; the runner processes them against
the real simulator (tests/webhooks covers the receiver and the whole path end to end).
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from harness import Psa

from models import (
    AssetKind,
    DeliveryStatus,
    Integration,
    IntegrationStatus,
    LinkState,
    Organization,
    RecordLink,
    RunStatus,
    SyncRun,
    WebhookDelivery,
)
from models.vault import Vault
from sync import integrations
from sync.connections import provider_factory
from sync.context import utcnow
from sync.inbox import MAX_ATTEMPTS, prune_settled, replay
from sync.providers.http import RetryPolicy
from sync.runner import Worker

Connect = Callable[..., Awaitable[Integration]]
_NO_RETRY = RetryPolicy(max_attempts=1, base_delay=0.001, max_delay=0.001, max_retry_after=0.001)
_ids = itertools.count(1)


async def _deliver(
    integration: Integration,
    kind: AssetKind | None,
    psa_id: int,
    action: str = "updated",
    *,
    member: str | None = "someone",
    stamp: int | None = None,
) -> WebhookDelivery:
    return await WebhookDelivery.create(
        integration_id=integration.id,
        dedupe_key=f"message-{next(_ids)}-{uuid.uuid4()}",
        received_at=utcnow(),
        kind=kind,
        psa_id=psa_id,
        action=action,
        member=member,
        stamp=stamp,
        payload="{}",
    )


async def _synced(connect: Connect, worker: Worker) -> Integration:
    integration = await connect()
    await worker.run_until_idle()
    return await Integration.get(id=integration.id)


async def _organization_link(psa: Psa) -> RecordLink:
    link = await RecordLink.filter(kind=AssetKind.ORGANIZATION).order_by("psa_id").first()
    assert link is not None
    return link


async def _status(delivery: WebhookDelivery) -> tuple[DeliveryStatus, str | None]:
    row = await WebhookDelivery.get(id=delivery.id)
    return DeliveryStatus(row.status), row.reason


async def test_a_notice_makes_the_runner_fetch_the_record_and_sync_it(
    psa: Psa, connect: Connect, worker: Worker
) -> None:
    integration = await _synced(connect, worker)
    link = await _organization_link(psa)
    psa.store.update("companies", link.psa_id, {"name": "Changed Through The UI"})
    delivery = await _deliver(integration, AssetKind.ORGANIZATION, link.psa_id)

    await worker.run_until_idle()

    assert (await Organization.get(id=link.local_id)).name == "Changed Through The UI"
    assert await _status(delivery) == (DeliveryStatus.PROCESSED, "updated")


async def test_a_burst_of_notices_for_a_few_records_costs_one_fetch_per_record(
    psa: Psa, connect: Connect, worker: Worker
) -> None:
    integration = await _synced(connect, worker)
    links = await RecordLink.filter(kind=AssetKind.ORGANIZATION).order_by("psa_id").limit(10)
    for round_ in range(20):
        for link in links:
            await _deliver(integration, AssetKind.ORGANIZATION, link.psa_id, member=f"u{round_}")
    requests = psa.simulator.traffic.requests
    fetches = worker.inbox.fetches

    await worker.run_until_idle()

    assert worker.inbox.fetches - fetches == 1  # one batched re-fetch of the ten records
    assert psa.simulator.traffic.requests - requests == 1
    statuses = await WebhookDelivery.all().values_list("status", flat=True)
    assert len(statuses) == 200
    assert set(statuses) == {DeliveryStatus.PROCESSED}


async def test_the_echo_of_our_own_write_is_ignored_without_asking_the_psa(
    psa: Psa, connect: Connect, worker: Worker
) -> None:
    integration = await _synced(connect, worker)
    link = await _organization_link(psa)
    assert link.psa_stamp is not None
    await Integration.filter(id=integration.id).update(psa_member="psasync")
    integration = await Integration.get(id=integration.id)
    await RecordLink.filter(id=link.id).update(stamp_trusted=True)
    echo = await _deliver(
        integration, AssetKind.ORGANIZATION, link.psa_id, member="psasync", stamp=link.psa_stamp
    )
    late = await _deliver(
        integration,
        AssetKind.ORGANIZATION,
        link.psa_id,
        member="someone",
        stamp=link.psa_stamp - 60,
    )
    requests = psa.simulator.traffic.requests

    await worker.run_until_idle()

    assert psa.simulator.traffic.requests == requests
    status, reason = await _status(echo)
    assert status == DeliveryStatus.IGNORED
    assert reason is not None
    assert "echo" in reason
    status, reason = await _status(late)
    assert status == DeliveryStatus.IGNORED
    assert reason is not None
    assert reason.startswith("stale")


async def test_a_deleted_record_is_orphaned_and_kept(
    psa: Psa, connect: Connect, worker: Worker
) -> None:
    integration = await _synced(connect, worker)
    contact = await RecordLink.filter(kind=AssetKind.CONTACT, state=LinkState.SYNCED).first()
    assert contact is not None
    psa.store.delete("contacts", contact.psa_id)
    delivery = await _deliver(integration, AssetKind.CONTACT, contact.psa_id, "deleted")

    await worker.run_until_idle()

    assert (await RecordLink.get(id=contact.id)).state == LinkState.ORPHANED
    status, reason = await _status(delivery)
    assert status == DeliveryStatus.PROCESSED
    assert reason is not None
    assert "gone from the PSA" in reason


async def test_notices_psasync_cannot_act_on_are_ignored_with_why(
    psa: Psa, connect: Connect, worker: Worker
) -> None:
    integration = await _synced(connect, worker)
    ticket = await _deliver(integration, None, 77)
    link = await RecordLink.filter(kind=AssetKind.CONFIGURATION).first()
    assert link is not None
    psa.store.update("configurations", link.psa_id, {"status": {"name": "Inactive"}})
    moved = await _deliver(integration, AssetKind.CONFIGURATION, link.psa_id)

    await worker.run_until_idle()

    assert await _status(ticket) == (DeliveryStatus.IGNORED, "not an asset psasync syncs")
    status, reason = await _status(moved)
    assert status == DeliveryStatus.IGNORED
    assert reason == "out of scope: configuration_status_not_synced"
    assert (await RecordLink.get(id=link.id)).state == LinkState.ORPHANED


async def test_deliveries_of_a_paused_integration_wait_for_it_to_resume(
    psa: Psa, connect: Connect, worker: Worker
) -> None:
    integration = await _synced(connect, worker)
    link = await _organization_link(psa)
    psa.store.update("companies", link.psa_id, {"name": "Renamed While Paused"})
    await integrations.pause(integration)
    delivery = await _deliver(integration, AssetKind.ORGANIZATION, link.psa_id)

    await worker.run_until_idle()
    assert await _status(delivery) == (DeliveryStatus.PENDING, None)

    await integrations.resume(await Integration.get(id=integration.id))
    await worker.run_until_idle()
    assert await _status(delivery) == (DeliveryStatus.PROCESSED, "updated")
    assert (await Organization.get(id=link.local_id)).name == "Renamed While Paused"


async def test_a_failed_fetch_is_retried_with_back_off_then_left_for_replay(
    psa: Psa, connect: Connect, worker: Worker, vault: Vault
) -> None:
    integration = await _synced(connect, worker)
    link = await _organization_link(psa)
    delivery = await _deliver(integration, AssetKind.ORGANIZATION, link.psa_id)
    psa.simulator.faults.outage_status = 503
    now = utcnow()
    clock: dict[str, Any] = {"now": now}
    failing = Worker(
        provider_factory(vault, retry=_NO_RETRY), schedule=False, clock=lambda: clock["now"]
    )

    await failing.run_until_idle()
    row = await WebhookDelivery.get(id=delivery.id)
    assert row.status == DeliveryStatus.FAILED
    assert row.reason is not None
    assert "503" in row.reason or "unavailable" in row.reason.lower()
    assert row.not_before is not None
    assert row.not_before > now

    # Not retried before its time; retried after.
    await failing.run_until_idle()
    assert (await WebhookDelivery.get(id=delivery.id)).attempts == 1
    for _ in range(MAX_ATTEMPTS):
        clock["now"] = clock["now"] + timedelta(hours=2)
        await failing.run_until_idle()
    row = await WebhookDelivery.get(id=delivery.id)
    assert row.attempts == MAX_ATTEMPTS
    assert row.status == DeliveryStatus.FAILED  # given up: waits for a replay

    psa.simulator.faults.outage_status = 0
    assert await replay(delivery.id)
    await failing.run_until_idle()
    assert (await WebhookDelivery.get(id=delivery.id)).status == DeliveryStatus.PROCESSED
    assert not await replay(delivery.id)  # only failed deliveries replay


async def test_deliveries_wait_while_a_run_syncs_the_integration(
    psa: Psa, connect: Connect, worker: Worker
) -> None:
    integration = await connect()  # its first full sync is queued, not run
    await Integration.filter(id=integration.id).update(status=IntegrationStatus.SYNCING)
    run = await SyncRun.get(integration_id=integration.id)
    await SyncRun.filter(id=run.id).update(status=RunStatus.RUNNING)
    delivery = await _deliver(integration, AssetKind.ORGANIZATION, 1)
    assert await worker.inbox.run_due() == 0
    assert (await WebhookDelivery.get(id=delivery.id)).status == DeliveryStatus.PENDING


async def test_settled_deliveries_are_pruned_after_their_keeping_time(
    psa: Psa, connect: Connect, worker: Worker
) -> None:
    integration = await connect()
    now = utcnow()
    old = now - timedelta(days=8)
    kept = {
        "recent processed": (DeliveryStatus.PROCESSED, now - timedelta(days=1)),
        "old failed": (DeliveryStatus.FAILED, old),
        "old pending": (DeliveryStatus.PENDING, old),
    }
    gone = {
        "old processed": (DeliveryStatus.PROCESSED, old),
        "old ignored": (DeliveryStatus.IGNORED, old),
        "very old failed": (DeliveryStatus.FAILED, now - timedelta(days=31)),
    }
    for name, (status, received) in {**kept, **gone}.items():
        delivery = await _deliver(integration, AssetKind.ORGANIZATION, 1, member=name)
        await WebhookDelivery.filter(id=delivery.id).update(status=status, received_at=received)

    assert await prune_settled(now) == len(gone)

    left = await WebhookDelivery.all().values_list("member", flat=True)
    assert sorted(left) == sorted(kept)


async def test_a_notice_for_a_record_the_database_cannot_store_is_ignored_with_the_reason(
    psa: Psa, connect: Connect, worker: Worker
) -> None:
    integration = await _synced(connect, worker)
    link = await _organization_link(psa)
    before = await Organization.get(id=link.local_id)
    assert link.psa_id is not None
    psa.store.update("companies", link.psa_id, {"name": "Nul\x00Co"})
    bad = await _deliver(integration, AssetKind.ORGANIZATION, link.psa_id)

    await worker.run_until_idle()

    status, reason = await _status(bad)
    assert status == DeliveryStatus.IGNORED
    assert reason == "not stored: its name holds a NUL character"
    assert (await Organization.get(id=link.local_id)).name == before.name
