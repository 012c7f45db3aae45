"""Reference data: the types and statuses that decide what is in a sync's scope.

Values belong to the account (``ReferenceValue``); how each value maps to a PSA's list, and
whether it is synced, belongs to the integration (``ReferenceMapping``), so one account can
connect a second PSA without the two fighting over one flag.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tortoise import fields
from tortoise.models import Model

from models.enums import ReferenceKind, SyncState

if TYPE_CHECKING:
    from models.accounts import Account
    from models.integrations import Integration


class ReferenceValue(Model):
    id = fields.UUIDField(primary_key=True)
    account: fields.ForeignKeyRelation[Account] = fields.ForeignKeyField(
        "models.Account", related_name="reference_values", on_delete=fields.CASCADE
    )
    kind = fields.CharEnumField(ReferenceKind, max_length=24)
    name = fields.CharField(max_length=100)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "reference_value"
        unique_together = (("account", "kind", "name"),)


class ReferenceMapping(Model):
    id = fields.UUIDField(primary_key=True)
    integration: fields.ForeignKeyRelation[Integration] = fields.ForeignKeyField(
        "models.Integration", related_name="reference_mappings", on_delete=fields.CASCADE
    )
    value: fields.ForeignKeyRelation[ReferenceValue] = fields.ForeignKeyField(
        "models.ReferenceValue", related_name="mappings", on_delete=fields.CASCADE
    )
    kind = fields.CharEnumField(ReferenceKind, max_length=24)
    psa_id = fields.BigIntField()
    psa_name = fields.CharField(max_length=100)
    sync_state = fields.CharEnumField(SyncState, max_length=16, default=SyncState.DISABLED)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "reference_mapping"
        unique_together = (("integration", "kind", "psa_id"), ("integration", "value"))
