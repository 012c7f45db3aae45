"""Queueing local changes for the PSAs: outbox entries written in the edit's transaction.

Under two-way sync an edit is durable the moment it is saved: the same transaction that
changes the record writes one outbox entry per integration that should hear of it, and
marks the record's link ``PENDING``. The deliverer (``sync.push``) sends them later, so a
PSA outage or a crash loses nothing and the user never waits for the PSA.

Which integrations hear of an edit:

    linked record, a pushable field changed   → UPDATE (merged with what the PSA holds
                                                then, and pushed: ``sync.push``)
    record with no PSA record yet             → CREATE (match first, then create or link)
    linked record deleted, propagateDeletes   → DELETE (the PSA address travels with it)

Orphaned links push nothing (the PSA record is gone or out of scope).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterable
from typing import Any

from models import (
    AssetKind,
    Integration,
    LinkState,
    OutboxEntry,
    OutboxOperation,
    PushState,
    RecordLink,
)
from sync.connections import table_of
from sync.directions import any_push, integration_directions, pushes

# Set whenever an entry is queued, so an in-process deliverer starts at once instead of at
# its next poll (other processes poll).
queued = asyncio.Event()


def pushing(integration: Integration, kind: AssetKind) -> bool:
    """Whether this integration pushes records of ``kind`` at all."""
    if kind == AssetKind.CONTACT and not integration.contacts_enabled:
        return False
    return any_push(integration_directions(integration), table_of(integration))


async def pushing_integrations(account_id: uuid.UUID, kind: AssetKind) -> list[Integration]:
    return [
        integration
        for integration in await Integration.filter(account_id=account_id)
        if pushing(integration, kind)
    ]


async def record_edit(
    kind: AssetKind,
    account_id: uuid.UUID,
    local_ids: Iterable[uuid.UUID],
    changed: Iterable[str],
    *,
    actor: str | None = None,
    created: bool = False,
) -> int:
    """Queue the pushes a saved edit calls for; call inside the edit's transaction.

    ``changed``: the columns that changed (for a create, every column given). Returns how
    many entries were queued.
    """
    ids = list(local_ids)
    integrations = await pushing_integrations(account_id, kind)
    if not integrations or not ids:
        return 0
    columns = set(changed)
    links = await RecordLink.filter(
        integration_id__in=[i.id for i in integrations], kind=kind, local_id__in=ids
    ).values("id", "integration_id", "local_id", "psa_id", "state")
    by_key = {(str(row["integration_id"]), str(row["local_id"])): row for row in links}
    entries: list[OutboxEntry] = []
    pending: list[Any] = []
    for integration in integrations:
        directions = integration_directions(integration)
        pushable = {c for c in columns if pushes(directions, kind, c)}
        for local_id in ids:
            link = by_key.get((str(integration.id), str(local_id)))
            if link is None or link["psa_id"] is None:
                operation = OutboxOperation.CREATE
            elif link["state"] != LinkState.SYNCED or not (pushable or created):
                continue
            else:
                operation = OutboxOperation.UPDATE
                pending.append(link["id"])
            entries.append(
                OutboxEntry(
                    integration_id=integration.id,
                    kind=kind,
                    local_id=local_id,
                    operation=operation,
                    fields_changed=sorted(pushable),
                    created_by=actor,
                )
            )
    if entries:
        await OutboxEntry.bulk_create(entries)
    if pending:
        # A refused push keeps showing FAILED: the new entry waits behind it until retryPush.
        await (
            RecordLink.filter(id__in=pending)
            .exclude(push_state=PushState.FAILED)
            .update(push_state=PushState.PENDING)
        )
    if entries:
        queued.set()
    return len(entries)


async def record_delete(
    kind: AssetKind, account_id: uuid.UUID, local_id: uuid.UUID, *, actor: str | None = None
) -> list[str]:
    """Before a linked record is deleted locally: queue PSA deletes where ``propagateDeletes``
    is on. Returns the names of integrations whose PSA record is left alone (for the log)."""
    rows = await RecordLink.filter(
        kind=kind, local_id=local_id, psa_id__isnull=False, state=LinkState.SYNCED
    ).values("integration_id", "psa_id", "psa_parent_id")
    if not rows:
        return []
    integrations = {
        str(i.id): i for i in await Integration.filter(id__in=[r["integration_id"] for r in rows])
    }
    kept: list[str] = []
    entries = []
    for row in rows:
        integration = integrations[str(row["integration_id"])]
        if not (integration.propagate_deletes and pushing(integration, kind)):
            kept.append(integration.name)
            continue
        entries.append(
            OutboxEntry(
                integration_id=integration.id,
                kind=kind,
                local_id=local_id,
                operation=OutboxOperation.DELETE,
                payload={"psa_id": row["psa_id"], "psa_parent_id": row["psa_parent_id"]},
                created_by=actor,
            )
        )
    if entries:
        await OutboxEntry.bulk_create(entries)
        queued.set()
    return kept
