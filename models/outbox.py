"""Two-way sync's own tables: the outbox of pushes, conflicts, and field history.

Field values (a conflict's sides, a history entry's old and new value) are stored as JSON
text written by ``json_text``: Tortoise's JSONField reads a plain string as JSON to parse,
so a name like ``VIP`` could not be stored as the string it is.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from tortoise import fields
from tortoise.models import Model

from models.enums import (
    AssetKind,
    ChangeSource,
    ConflictOutcome,
    OutboxOperation,
    OutboxStatus,
)

if TYPE_CHECKING:
    from models.accounts import Account
    from models.integrations import Integration


def json_text(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def json_value(text: str | None) -> Any:
    return None if text is None else json.loads(text)


class OutboxEntry(Model):
    """A local change waiting to be pushed to one PSA, written in the edit's transaction.

    The entry says *that* a record changed, not the values: delivery pushes a fresh diff of
    the record against its link's base snapshot, so consecutive edits of one record coalesce
    into one write of the fields that still differ. The id is a sequence: entries of a
    record are delivered in id order. A DELETE keeps the PSA address in ``payload`` because
    the local record and its link are gone by then.
    """

    id = fields.BigIntField(primary_key=True)
    integration: fields.ForeignKeyRelation[Integration] = fields.ForeignKeyField(
        "models.Integration", related_name="outbox", on_delete=fields.CASCADE
    )
    kind = fields.CharEnumField(AssetKind, max_length=16)
    local_id = fields.UUIDField()
    operation = fields.CharEnumField(OutboxOperation, max_length=8)
    status = fields.CharEnumField(OutboxStatus, max_length=8, default=OutboxStatus.PENDING)
    fields_changed: Any = fields.JSONField(default=list)
    payload: Any = fields.JSONField(default=dict)
    attempts = fields.IntField(default=0)
    next_attempt_at = fields.DatetimeField(null=True)
    last_error = fields.TextField(null=True)
    created_by = fields.CharField(max_length=254, null=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "outbox_entry"
        indexes = (("status", "next_attempt_at"),)


class SyncConflict(Model):
    """A field changed on both sides since the last sync, and how it was settled."""

    id = fields.UUIDField(primary_key=True)
    integration: fields.ForeignKeyRelation[Integration] = fields.ForeignKeyField(
        "models.Integration", related_name="conflicts", on_delete=fields.CASCADE
    )
    kind = fields.CharEnumField(AssetKind, max_length=16)
    local_id = fields.UUIDField()
    psa_id = fields.BigIntField(null=True)
    field = fields.CharField(max_length=64)
    base = fields.TextField(null=True)  # JSON text (see json_value)
    local_value = fields.TextField(null=True)  # JSON text (see json_value)
    psa_value = fields.TextField(null=True)  # JSON text (see json_value)
    policy = fields.CharField(max_length=32)
    outcome = fields.CharEnumField(ConflictOutcome, max_length=8)
    # For a resolved MANUAL conflict: LOCAL, PSA or VALUE, and the value chosen.
    resolution = fields.CharField(max_length=8, null=True)
    resolved_value = fields.TextField(null=True)  # JSON text (see json_value)
    resolved_by = fields.CharField(max_length=254, null=True)
    resolved_at = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "sync_conflict"
        indexes = (("integration_id", "outcome"), ("kind", "local_id"))


class FieldChange(Model):
    """One change of a synced field: old and new value, and who or what set it."""

    id = fields.BigIntField(primary_key=True)
    account: fields.ForeignKeyRelation[Account] = fields.ForeignKeyField(
        "models.Account", related_name="field_changes", on_delete=fields.CASCADE
    )
    kind = fields.CharEnumField(AssetKind, max_length=16)
    local_id = fields.UUIDField()
    field = fields.CharField(max_length=64)
    old_value = fields.TextField(null=True)  # JSON text (see json_value)
    new_value = fields.TextField(null=True)  # JSON text (see json_value)
    source = fields.CharEnumField(ChangeSource, max_length=16)
    # The user's email for USER; the integration's id for PSA and PUSH.
    actor = fields.CharField(max_length=254, null=True)
    integration_id = fields.UUIDField(null=True)
    changed_at = fields.DatetimeField()

    class Meta:
        table = "field_change"
        indexes = (("kind", "local_id", "changed_at"),)
