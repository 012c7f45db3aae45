"""Webhook mutations: replaying a delivery whose processing failed.

Managers only, as every integration action; the answer carries ``WebhookError``s. A delivery
of another account's integration is NOT_FOUND.
"""

from __future__ import annotations

import strawberry

from api.graphql.context import Info
from api.graphql.errors import WebhookError, WebhookErrorCode
from api.graphql.ids import InvalidId, from_global_int
from api.graphql.permissions import denied
from api.graphql.rows import fetch
from api.graphql.text import checked
from api.graphql.types.webhooks import WebhookDelivery
from models import DeliveryStatus, Role
from models import WebhookDelivery as DeliveryRow
from sync import inbox


@strawberry.type
class ReplayWebhookDeliveryPayload:
    delivery: WebhookDelivery | None = strawberry.field(
        default=None, description="The delivery, PENDING again: the worker processes it soon."
    )
    errors: list[WebhookError] = strawberry.field(default_factory=list)


def _error(code: WebhookErrorCode, message: str) -> ReplayWebhookDeliveryPayload:
    return ReplayWebhookDeliveryPayload(
        errors=[WebhookError(code=code, message=message, field="id")]
    )


async def _delivery(info: Info, delivery_id: int) -> WebhookDelivery | None:
    rows = await fetch(
        DeliveryRow.filter(id=delivery_id, integration__account_id=info.context.account_id),
        WebhookDelivery.COLUMNS,
    )
    return WebhookDelivery.from_row(rows[0]) if rows else None


@checked
@strawberry.type
class WebhookMutations:
    @strawberry.mutation(
        description="Process a FAILED delivery again (managers): it becomes PENDING, with its "
        "attempts reset, and the record is re-fetched from the PSA."
    )
    async def replay_webhook_delivery(
        self, info: Info, id: strawberry.ID
    ) -> ReplayWebhookDeliveryPayload:
        if message := denied(info, Role.MANAGER):
            return ReplayWebhookDeliveryPayload(
                errors=[
                    WebhookError(
                        code=WebhookErrorCode.PERMISSION_DENIED,
                        message=message,
                        required_role=Role.MANAGER,
                    )
                ]
            )
        try:
            delivery_id = from_global_int(str(id), "WebhookDelivery")
        except InvalidId as exc:
            return _error(WebhookErrorCode.INVALID_ID, str(exc))
        found = await _delivery(info, delivery_id)
        if found is None:
            return _error(WebhookErrorCode.NOT_FOUND, "no such webhook delivery")
        # The update checks the status again: a delivery retried meanwhile is not replayed.
        if found.status != DeliveryStatus.FAILED or not await inbox.replay(delivery_id):
            current = await _delivery(info, delivery_id)
            status = DeliveryStatus(current.status if current else found.status)
            return _error(
                WebhookErrorCode.NOT_FAILED,
                f"only a FAILED delivery can be replayed; this one is {status.value}",
            )
        info.context.wake_inbox()
        return ReplayWebhookDeliveryPayload(delivery=await _delivery(info, delivery_id))
