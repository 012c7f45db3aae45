"""The link between a local asset and its PSA record: identity after the first match."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tortoise import fields
from tortoise.models import Model

from models.enums import AssetKind, LinkState, PushState

if TYPE_CHECKING:
    from models.integrations import Integration


class RecordLink(Model):
    """Unique both ways, so a duplicate link cannot exist even under concurrent writers.

    ``snapshot`` holds the mapped field values as of the last successful sync (the base of a
    three-way merge); ``psa_updated_at`` is the PSA's own last-updated stamp of that version
    and ``synced_at`` when we read it, which together (as ``psa_stamp``/``stamp_trusted``)
    let an unchanged record be skipped without comparing fields. ``psa_parent_id`` is the
    PSA id of the owning company, which ConnectWise needs to address a site and which scopes
    contacts and configurations.
    """

    id = fields.UUIDField(primary_key=True)
    integration: fields.ForeignKeyRelation[Integration] = fields.ForeignKeyField(
        "models.Integration", related_name="links", on_delete=fields.CASCADE
    )
    kind = fields.CharEnumField(AssetKind, max_length=16)
    local_id = fields.UUIDField()
    # None only for a NOT_PUSHED link: a record two-way sync could not create in the PSA yet.
    psa_id = fields.BigIntField(null=True)
    psa_parent_id = fields.BigIntField(null=True)
    snapshot: Any = fields.JSONField(default=dict)
    psa_updated_at = fields.DatetimeField(null=True)
    synced_at = fields.DatetimeField(null=True)
    # The same facts as integers, for the per-page hot path (no datetime parsing per row):
    # the PSA stamp in epoch seconds; whether we read it at least one stamp-resolution after
    # it was set (so no later write can hide under the same stamp); the integration's
    # settings version when it was read.
    psa_stamp = fields.BigIntField(null=True)
    stamp_trusted = fields.BooleanField(default=False)
    # ``sync.columns.content_hash`` of the record as last pulled: an equal digest is skipped.
    psa_hash = fields.CharField(max_length=32, null=True)
    settings_version = fields.IntField(default=0)
    state = fields.CharEnumField(LinkState, max_length=16, default=LinkState.SYNCED)
    # A relation the PSA names could not be resolved yet (its target may arrive later).
    refs_pending = fields.BooleanField(default=False)
    # The sync created the local record (rather than matching one that already existed):
    # deleting an integration with its data removes only these.
    created_by_sync = fields.BooleanField(default=False)
    last_error = fields.TextField(null=True)
    # Local changes on their way to the PSA (the outbox holds them); kept apart from
    # ``state`` so a pull never mistakes a record with a pending push for a stale one.
    push_state = fields.CharEnumField(PushState, max_length=8, default=PushState.NONE)
    # Values psasync is writing to the PSA record and has not recorded the answer of yet,
    # by column, as JSON lists (in flight, or sent by a delivery that died or timed out):
    # a pull or a notice that shows one of them sees psasync's own write, not a PSA user's
    # change, whatever order the answer and the notice arrive in. Cleared with the answer.
    sending: Any = fields.JSONField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "record_link"
        unique_together = (("integration", "kind", "psa_id"), ("integration", "kind", "local_id"))
