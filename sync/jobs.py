"""Queueing sync runs, and the integration status that follows them."""

from __future__ import annotations

from models import Integration, IntegrationStatus, RunKind, RunStatus, RunTrigger, SyncRun

MANUAL_PRIORITY = 10  # "use the manual sync option to prioritize the sync" (ConnectWise seed)


_FULL = frozenset({RunKind.FULL, RunKind.MANUAL})


async def enqueue(
    integration: Integration,
    *,
    kind: RunKind = RunKind.FULL,
    trigger: RunTrigger = RunTrigger.SCHEDULE,
    dry_run: bool = False,
    priority: int = 0,
) -> SyncRun:
    """Queue a run; a queued real run of the same integration that covers it is reused (and
    prioritised). A full sync covers every other kind but push-all: a queued poll or
    reconciliation becomes the full sync asked for instead of running beside it."""
    if not dry_run:
        waiting = (
            await SyncRun.filter(
                integration_id=integration.id, status=RunStatus.QUEUED, dry_run=False
            )
            .exclude(kind=RunKind.PUSH_ALL)
            .first()
        )
        if waiting is not None and (waiting.kind in _FULL or waiting.kind == kind or kind in _FULL):
            fields = []
            if priority > waiting.priority:
                waiting.priority = priority
                fields.append("priority")
            if kind in _FULL and waiting.kind not in _FULL:
                waiting.kind, waiting.trigger = kind, trigger
                fields += ["kind", "trigger"]
            if fields:
                await waiting.save(update_fields=fields)
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
