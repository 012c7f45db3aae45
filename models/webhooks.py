"""Inbound PSA notifications: the inbox of deliveries, and the PSA-side registrations.

A delivery is stored once (unique per integration by its dedupe key: the PSA's message id,
or a hash of the body when the PSA sends none) in the request's one transaction, before the
PSA hears 200. The runner processes it later; nothing on the request path calls the PSA.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tortoise import fields
from tortoise.models import Model

from models.enums import AssetKind, DeliveryStatus, SubscriptionState

if TYPE_CHECKING:
    from models.integrations import Integration


class WebhookDelivery(Model):
    """One notification a PSA posted, and what became of it.

    ``kind``/``psa_id``/``action``/``member``/``stamp`` are what the parser read from the
    (verified) body; ``payload`` is the raw body as text, kept for replay and support.
    """

    id = fields.BigIntField(primary_key=True)
    integration: fields.ForeignKeyRelation[Integration] = fields.ForeignKeyField(
        "models.Integration", related_name="webhook_deliveries", on_delete=fields.CASCADE
    )
    dedupe_key = fields.CharField(max_length=128)
    received_at = fields.DatetimeField()
    kind = fields.CharEnumField(AssetKind, max_length=16, null=True)
    psa_id = fields.BigIntField(null=True)
    action = fields.CharField(max_length=16)
    member = fields.CharField(max_length=254, null=True)
    # The record's stamp in the notice (epoch seconds), when the PSA sent one.
    stamp = fields.BigIntField(null=True)
    payload = fields.TextField()
    status = fields.CharEnumField(DeliveryStatus, max_length=16, default=DeliveryStatus.PENDING)
    reason = fields.TextField(null=True)
    attempts = fields.IntField(default=0)
    not_before = fields.DatetimeField(null=True)
    processed_at = fields.DatetimeField(null=True)

    class Meta:
        table = "webhook_delivery"
        unique_together = (("integration", "dedupe_key"),)
        indexes = (("integration_id", "status", "id"), ("integration_id", "received_at"))


class WebhookSubscription(Model):
    """A PSA-side registration (a ConnectWise callback) psasync made for one asset kind."""

    id = fields.UUIDField(primary_key=True)
    integration: fields.ForeignKeyRelation[Integration] = fields.ForeignKeyField(
        "models.Integration", related_name="webhook_subscriptions", on_delete=fields.CASCADE
    )
    kind = fields.CharEnumField(AssetKind, max_length=16)
    psa_id = fields.BigIntField(null=True)  # the PSA's id of the registration
    url = fields.CharField(max_length=1000)
    state = fields.CharEnumField(SubscriptionState, max_length=16)
    last_error = fields.TextField(null=True)
    checked_at = fields.DatetimeField(null=True)

    class Meta:
        table = "webhook_subscription"
        unique_together = (("integration", "kind"),)
