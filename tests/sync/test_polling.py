"""Reconciliation polling: incremental syncs by bookmark, the full id reconciliation, and a
scheduler that queues each due run exactly once."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from harness import Psa

from models import (
    AssetKind,
    Configuration,
    Contact,
    Integration,
    LinkState,
    Organization,
    RecordLink,
    RunKind,
    RunStatus,
    RunTrigger,
    SyncRun,
)
from models.vault import Vault
from sync import jobs
from sync.connections import provider_factory
from sync.context import utcnow
from sync.incremental import bookmark_of
from sync.runner import Worker

Connect = Callable[..., Awaitable[Integration]]


async def _synced(connect: Connect, worker: Worker, **options: object) -> Integration:
    integration = await connect(**options)
    await worker.run_until_idle()
    return await Integration.get(id=integration.id)


async def _run(worker: Worker, integration: Integration, kind: RunKind) -> SyncRun:
    run = await jobs.enqueue(integration, kind=kind, trigger=RunTrigger.SCHEDULE)
    await worker.run_until_idle()
    return await SyncRun.get(id=run.id)


async def _linked(kind: AssetKind, psa_id: int) -> RecordLink:
    return await RecordLink.get(kind=kind, psa_id=psa_id)


async def test_a_full_sync_leaves_bookmarks_the_first_poll_starts_from(
    psa: Psa, connect: Connect, worker: Worker
) -> None:
    before = utcnow()
    integration = await _synced(connect, worker)
    for kind in (AssetKind.ORGANIZATION, AssetKind.CONTACT, AssetKind.CONFIGURATION):
        mark = bookmark_of(integration, kind)
        assert mark is not None
        assert mark <= before
    assert integration.next_poll_at is not None
    assert integration.next_poll_at > before
    assert integration.next_reconcile_at is not None


async def test_an_incremental_sync_reads_only_what_changed_and_moves_the_bookmark(
    psa: Psa, connect: Connect, worker: Worker
) -> None:
    integration = await _synced(connect, worker)
    synced = await RecordLink.filter(kind=AssetKind.ORGANIZATION).order_by("psa_id").first()
    assert synced is not None
    company = synced.psa_id
    contact = _first(psa, "contacts", lambda row: row["company"]["id"] == company)
    psa.store.update("companies", company, {"name": "Renamed In ConnectWise"})
    psa.store.update("contacts", contact, {"lastName": "Changed-Here"})
    requests = psa.simulator.traffic.requests

    run = await _run(worker, integration, RunKind.INCREMENTAL)

    assert run.status == RunStatus.SUCCEEDED
    assert run.kind == RunKind.INCREMENTAL
    organization = await Organization.get(
        id=(await _linked(AssetKind.ORGANIZATION, company)).local_id
    )
    assert organization.name == "Renamed In ConnectWise"
    person = await Contact.get(id=(await _linked(AssetKind.CONTACT, contact)).local_id)
    assert person.last_name == "Changed-Here"
    # One list call per kind (and one for deleted companies), the sites of the one changed
    # company, nothing else: no reference lists, no counts, no pages of unchanged records.
    assert psa.simulator.traffic.requests - requests <= 5
    assert run.updated == 2
    moved = await Integration.get(id=integration.id)
    stamp = _stamp_of(psa, "companies", company)
    assert bookmark_of(moved, AssetKind.ORGANIZATION) == stamp

    # Nothing changed since: the next poll writes no record. (The two records fall in the
    # overlap and are listed again; a stamp read in the second it was made is not trusted,
    # so the company may get one more look, sites included.)
    requests = psa.simulator.traffic.requests
    again = await _run(worker, moved, RunKind.INCREMENTAL)
    assert again.updated == 0
    assert again.created == 0
    assert psa.simulator.traffic.requests - requests <= 5


async def test_an_incremental_sync_without_bookmarks_is_a_full_sync(
    psa: Psa, connect: Connect, worker: Worker
) -> None:
    integration = await _synced(connect, worker)
    await Integration.filter(id=integration.id).update(bookmarks={})
    integration = await Integration.get(id=integration.id)
    run = await _run(worker, integration, RunKind.INCREMENTAL)
    assert run.status == RunStatus.SUCCEEDED
    assert run.phase == "relations"  # the full sync's last phase ran
    assert bookmark_of(await Integration.get(id=integration.id), AssetKind.CONTACT) is not None


async def test_a_record_moved_out_of_scope_is_orphaned_by_the_poll(
    psa: Psa, connect: Connect, worker: Worker
) -> None:
    integration = await _synced(connect, worker)
    configuration = await RecordLink.filter(
        kind=AssetKind.CONFIGURATION, state=LinkState.SYNCED
    ).first()
    assert configuration is not None
    psa.store.update("configurations", configuration.psa_id, {"status": {"name": "Inactive"}})
    await _run(worker, integration, RunKind.INCREMENTAL)
    assert (await RecordLink.get(id=configuration.id)).state == LinkState.ORPHANED
    assert await Configuration.filter(id=configuration.local_id).exists()  # kept, not deleted


async def test_reconciliation_orphans_records_deleted_without_a_notice(
    psa: Psa, connect: Connect, worker: Worker
) -> None:
    integration = await _synced(connect, worker)
    contact = await RecordLink.filter(kind=AssetKind.CONTACT, state=LinkState.SYNCED).first()
    configuration = await RecordLink.filter(
        kind=AssetKind.CONFIGURATION, state=LinkState.SYNCED
    ).first()
    assert contact is not None
    assert configuration is not None
    psa.store.purge("contacts", contact.psa_id)
    psa.store.purge("configurations", configuration.psa_id)

    # A poll cannot see a hard delete...
    await _run(worker, integration, RunKind.INCREMENTAL)
    assert (await RecordLink.get(id=contact.id)).state == LinkState.SYNCED

    # ...the reconciliation's id comparison does.
    run = await _run(worker, await Integration.get(id=integration.id), RunKind.RECONCILE)
    assert run.status == RunStatus.SUCCEEDED
    assert run.kind == RunKind.RECONCILE
    assert (await RecordLink.get(id=contact.id)).state == LinkState.ORPHANED
    assert (await RecordLink.get(id=configuration.id)).state == LinkState.ORPHANED
    assert run.orphaned == 2
    synced = await RecordLink.filter(state=LinkState.SYNCED).count()
    assert synced > 0  # everything else stays linked


async def test_the_scheduler_queues_polls_and_reconciliations_when_due(
    psa: Psa, connect: Connect, worker: Worker, vault: Vault
) -> None:
    integration = await _synced(connect, worker, sync_interval_seconds=600)

    def at(minutes: float) -> Worker:
        when = utcnow() + timedelta(minutes=minutes)
        return Worker(provider_factory(vault), clock=lambda: when)

    await at(5).schedule_due()
    assert await SyncRun.filter(integration_id=integration.id).count() == 1
    await at(11).schedule_due()
    queued = await SyncRun.filter(integration_id=integration.id, status=RunStatus.QUEUED)
    assert [(r.kind, r.trigger) for r in queued] == [(RunKind.INCREMENTAL, RunTrigger.SCHEDULE)]

    await worker.run_until_idle()
    await at(24 * 60 + 1).schedule_due()  # a day on: the reconciliation is due too
    kinds = await SyncRun.filter(
        integration_id=integration.id, status=RunStatus.QUEUED
    ).values_list("kind", flat=True)
    assert sorted(kinds) == [RunKind.INCREMENTAL, RunKind.RECONCILE]


async def test_several_schedulers_queue_each_due_run_once(
    psa: Psa, connect: Connect, worker: Worker, vault: Vault
) -> None:
    integration = await _synced(connect, worker, sync_interval_seconds=600)
    when = utcnow() + timedelta(minutes=11)
    schedulers = [
        Worker(provider_factory(vault), worker_id=f"process-{i}", clock=lambda: when)
        for i in range(6)
    ]
    await asyncio.gather(*(s.schedule_due() for s in schedulers))
    queued = await SyncRun.filter(integration_id=integration.id, status=RunStatus.QUEUED)
    assert len(queued) == 1


async def test_a_full_sync_asked_for_takes_over_a_queued_poll(
    psa: Psa, connect: Connect, worker: Worker
) -> None:
    integration = await _synced(connect, worker)
    poll = await jobs.enqueue(integration, kind=RunKind.INCREMENTAL)
    manual = await jobs.manual_sync(integration)
    assert manual.id == poll.id
    assert manual.kind == RunKind.MANUAL
    # A poll asked for while a full sync waits is covered by it.
    assert (await jobs.enqueue(integration, kind=RunKind.INCREMENTAL)).id == poll.id
    # The full sync compares every id range too: it covers a reconciliation.
    assert (await jobs.enqueue(integration, kind=RunKind.RECONCILE)).id == poll.id


def _first(psa: Psa, collection: str, where: Callable[[dict[str, object]], bool]) -> int:
    """The lowest id of a record of ``collection`` psasync syncs that matches ``where``."""
    for record_id in sorted(psa.store.table(collection).rows):
        row = psa.store.get(collection, record_id)
        if row is not None and where(row):
            return record_id
    raise AssertionError(f"no {collection} record matches")


def _stamp_of(psa: Psa, collection: str, record_id: int) -> datetime:
    row = psa.store.get(collection, record_id)
    assert row is not None
    return datetime.fromisoformat(row["_info"]["lastUpdated"])


async def test_a_company_deleted_in_connectwise_is_orphaned_by_the_next_poll(
    psa: Psa, connect: Connect, worker: Worker
) -> None:
    integration = await _synced(connect, worker)
    link = await RecordLink.filter(kind=AssetKind.ORGANIZATION).order_by("-psa_id").first()
    assert link is not None
    psa.store.delete("companies", link.psa_id)  # soft: deletedFlag, stamped
    requests = psa.simulator.traffic.requests

    run = await _run(worker, integration, RunKind.INCREMENTAL)

    assert (await RecordLink.get(id=link.id)).state == LinkState.ORPHANED
    assert await Organization.filter(id=link.local_id).exists()
    assert run.orphaned == 1
    # Changed and deleted companies, contacts, configurations: two calls for companies.
    assert psa.simulator.traffic.requests - requests == 4
