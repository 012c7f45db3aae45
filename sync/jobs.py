"""Queueing sync runs, and the integration status that follows them."""

from __future__ import annotations

from models import Integration, IntegrationStatus, RunKind, RunStatus, RunTrigger, SyncRun

MANUAL_PRIORITY = 10  # "use the manual sync option to prioritize the sync" (ConnectWise seed)


async def enqueue(
    integration: Integration,
    *,
    kind: RunKind = RunKind.FULL,
    trigger: RunTrigger = RunTrigger.SCHEDULE,
    dry_run: bool = False,
    priority: int = 0,
) -> SyncRun:
    """Queue a run; a queued real run of the same integration is reused (and prioritised)."""
    if not dry_run:
        waiting = (
            await SyncRun.filter(
                integration_id=integration.id, status=RunStatus.QUEUED, dry_run=False
            )
            .exclude(kind=RunKind.PUSH_ALL)
            .first()
        )
        if waiting is not None:
            if priority > waiting.priority:
                waiting.priority = priority
                await waiting.save(update_fields=["priority"])
            return waiting
    run = await SyncRun.create(
        integration_id=integration.id,
        kind=kind,
        trigger=trigger,
        dry_run=dry_run,
        priority=priority,
        status=RunStatus.QUEUED,
    )
    if not dry_run:
        await Integration.filter(
            id=integration.id,
            status__in=[
                IntegrationStatus.NOT_SYNCED,
                IntegrationStatus.OK,
                IntegrationStatus.ERROR,
            ],
        ).update(status=IntegrationStatus.QUEUED)
    return run


async def manual_sync(integration: Integration, *, dry_run: bool = False) -> SyncRun:
    return await enqueue(
        integration,
        kind=RunKind.MANUAL,
        trigger=RunTrigger.MANUAL,
        dry_run=dry_run,
        priority=MANUAL_PRIORITY,
    )
