"""Conflicts a person decides (MANUAL policy), and pushes a person retries.

``resolve`` settles an open conflict: LOCAL keeps our value and pushes it, PSA takes the
PSA's, VALUE sets a third value and pushes it. The link's base for the field becomes the
PSA's value as last seen, so the push's merge sends exactly what was chosen (and nothing
when the PSA's value was chosen); a PSA that changed the field again since is a new
conflict, settled by the policy again.
"""

from __future__ import annotations

import uuid
from enum import StrEnum
from typing import Any

from tortoise.transactions import in_transaction

from models import (
    ASSET_MODELS,
    ChangeSource,
    ConflictOutcome,
    FieldChange,
    Integration,
    OutboxEntry,
    OutboxOperation,
    OutboxStatus,
    PushState,
    RecordLink,
    SyncConflict,
)
from models.outbox import json_text, json_value
from sync import outbox
from sync.context import utcnow


class Choice(StrEnum):
    LOCAL = "LOCAL"
    PSA = "PSA"
    VALUE = "VALUE"


class ConflictError(Exception):
    def __init__(self, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field


async def resolve(
    account_id: uuid.UUID,
    conflict_id: uuid.UUID,
    choice: Choice,
    value: Any = None,
    *,
    actor: str | None = None,
) -> SyncConflict:
    conflict = await SyncConflict.filter(id=conflict_id, integration__account_id=account_id).first()
    if conflict is None:
        raise ConflictError("NOT_FOUND", f"no conflict {conflict_id}", "conflictId")
    if conflict.outcome != ConflictOutcome.OPEN:
        raise ConflictError("NOT_OPEN", "this conflict is already settled", "conflictId")
    model = ASSET_MODELS[conflict.kind]
    asset = await model.filter(id=conflict.local_id).first()
    link = await RecordLink.filter(
        integration_id=conflict.integration_id,  # type: ignore[attr-defined]
        kind=conflict.kind,
        local_id=conflict.local_id,
    ).first()
    if asset is None or link is None:
        raise ConflictError("NOT_FOUND", "the record or its link is gone", "conflictId")
    column = conflict.field
    psa_value = json_value(conflict.psa_value)
    if choice == Choice.PSA:
        chosen = psa_value
    elif choice == Choice.LOCAL:
        chosen = json_value(conflict.local_value)
    else:
        chosen = value
    field = model._meta.fields_map.get(column)
    if field is None:
        raise ConflictError("INVALID", f"{column} is not a field", "value")
    try:
        python_value = field.to_python_value(chosen) if chosen is not None else None
    except Exception as exc:
        raise ConflictError("INVALID", f"not a value for {column}: {exc}", "value") from exc
    old = getattr(asset, column)
    now = utcnow()
    async with in_transaction():
        snapshot = dict(link.snapshot or {})
        snapshot[column] = psa_value
        await RecordLink.filter(id=link.id).update(snapshot=snapshot)
        if python_value != old:
            setattr(asset, column, python_value)
            asset.match_key = asset.compute_match_key()
            asset.version += 1
            await asset.save()
            await FieldChange.create(
                account_id=account_id,
                kind=conflict.kind,
                local_id=conflict.local_id,
                field=column,
                old_value=conflict.local_value,
                new_value=json_text(chosen),
                source=ChangeSource.CONFLICT,
                actor=actor,
                changed_at=now,
            )
        if chosen != psa_value:
            await OutboxEntry.create(
                integration_id=conflict.integration_id,  # type: ignore[attr-defined]
                kind=conflict.kind,
                local_id=conflict.local_id,
                operation=OutboxOperation.UPDATE,
                fields_changed=[column],
                created_by=actor,
            )
            await RecordLink.filter(id=link.id).update(push_state=PushState.PENDING)
        conflict.outcome = ConflictOutcome.RESOLVED
        conflict.resolution = choice.value
        conflict.resolved_value = json_text(chosen)
        conflict.resolved_by = actor
        conflict.resolved_at = now
        await conflict.save()
    outbox.queued.set()
    return conflict


async def retry_push(account_id: uuid.UUID, link_id: uuid.UUID) -> RecordLink:
    """Send a record's refused pushes again (after the user fixed the record)."""
    link = await RecordLink.filter(id=link_id, integration__account_id=account_id).first()
    if link is None:
        raise ConflictError("NOT_FOUND", f"no link {link_id}", "linkId")
    integration_id = link.integration_id  # type: ignore[attr-defined]
    async with in_transaction():
        retried = await OutboxEntry.filter(
            integration_id=integration_id,
            kind=link.kind,
            local_id=link.local_id,
            status=OutboxStatus.FAILED,
        ).update(status=OutboxStatus.PENDING, next_attempt_at=None)
        if not retried:
            raise ConflictError(
                "NOTHING_TO_RETRY", "this record has no refused push to retry", "linkId"
            )
        if link.psa_id is not None:
            await RecordLink.filter(id=link.id).update(push_state=PushState.PENDING)
        await Integration.filter(id=integration_id).update(push_not_before=None)
    outbox.queued.set()
    await link.refresh_from_db()
    return link
