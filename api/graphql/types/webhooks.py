"""Near-real-time sync as GraphQL shows it: an integration's webhook status, and the inbox of
deliveries the PSA posted.

The status is built from the integration's own columns; its lists and counts resolve through
the request's loaders (keyed by integration), so a page of integrations costs one query per
field it asks for, whatever its size.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, ClassVar

import strawberry

from api.graphql.context import Info
from api.graphql.ids import to_global
from api.graphql.types.enums import AssetKindEnum, DeliveryStatusEnum, SubscriptionStateEnum
from api.graphql.types.node import Node
from models import AssetKind, DeliveryStatus, Provider, SubscriptionState
from sync.providers.connectwise.subscriptions import ConnectWiseSubscriptions

# The kinds each PSA can notify about: every one needs a registration.
NOTIFIED_KINDS: dict[Provider, frozenset[AssetKind]] = {
    Provider.CONNECTWISE_MANAGE: ConnectWiseSubscriptions.kinds,
}


@strawberry.type(description="A registration psasync keeps in the PSA for one asset kind.")
class WebhookSubscription:
    kind: AssetKindEnum  # type: ignore[valid-type]
    state: SubscriptionStateEnum  # type: ignore[valid-type]
    psa_id: int | None = strawberry.field(description="The PSA's id of the registration.")
    last_error: str | None = strawberry.field(description="Why registering failed (FAILED).")
    checked_at: datetime | None

    COLUMNS: ClassVar[tuple[str, ...]] = (
        "integration_id", "kind", "state", "psa_id", "last_error", "checked_at",
    )  # fmt: skip

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> WebhookSubscription:
        return cls(
            kind=AssetKind(row["kind"]),
            state=SubscriptionState(row["state"]),
            psa_id=row["psa_id"],
            last_error=row["last_error"],
            checked_at=row["checked_at"],
        )


@strawberry.type(description="Deliveries received in the last 24 hours, by status.")
class WebhookDeliveryCounts:
    pending: int = 0
    processed: int = 0
    ignored: int = 0
    failed: int = 0

    @classmethod
    def of(cls, counts: dict[DeliveryStatus, int]) -> WebhookDeliveryCounts:
        return cls(**{status.value.lower(): n for status, n in counts.items()})


@strawberry.type(description="Near-real-time sync: the PSA's webhooks and what they brought.")
class IntegrationWebhooks:
    receiver_url: str | None = strawberry.field(
        description="Where the PSA posts this integration's notifications; null when psasync "
        "has no public URL (PSASYNC_PUBLIC_URL): then sync relies on the reconciliation poll."
    )
    rejected_signatures: int = strawberry.field(
        description="Notifications refused for a bad signature (none of them stored)."
    )
    last_rejected_at: datetime | None
    integration_id: strawberry.Private[uuid.UUID]
    kinds: strawberry.Private[frozenset[AssetKind]]  # the kinds that need a registration
    wanted: strawberry.Private[bool]

    @strawberry.field(description="psasync's registrations in the PSA, one per asset kind.")
    async def subscriptions(self, info: Info) -> list[WebhookSubscription]:
        return await info.context.loaders.webhook_subscriptions.load(self.integration_id)

    @strawberry.field(
        description="Webhooks are wanted (a public URL; not paused; near-real-time or two-way "
        "sync on) and every kind the PSA notifies about is REGISTERED."
    )
    async def registered(self, info: Info) -> bool:
        if not self.wanted or not self.kinds:
            return False
        found = await info.context.loaders.webhook_subscriptions.load(self.integration_id)
        states = {AssetKind(s.kind): SubscriptionState(s.state) for s in found}
        return all(states.get(kind) == SubscriptionState.REGISTERED for kind in self.kinds)

    @strawberry.field(description="When the last delivery was received (any status).")
    async def last_delivery_at(self, info: Info) -> datetime | None:
        return await info.context.loaders.last_delivery.load(self.integration_id)

    @strawberry.field(name="last24h", description="Deliveries received in the last 24 hours.")
    async def last_24h(self, info: Info) -> WebhookDeliveryCounts:
        return await info.context.loaders.delivery_counts.load(self.integration_id)


@strawberry.type(description="A notification a PSA posted, and what became of it.")
class WebhookDelivery(Node):
    received_at: datetime
    kind: AssetKindEnum | None = strawberry.field(  # type: ignore[valid-type]
        description="Null for a notice about something psasync does not sync."
    )
    psa_id: int | None = strawberry.field(description="The record's id in the PSA.")
    action: str = strawberry.field(description="added, updated or deleted.")
    member: str | None = strawberry.field(description="The PSA user who made the change.")
    status: DeliveryStatusEnum  # type: ignore[valid-type]
    reason: str | None = strawberry.field(
        description="Why it was IGNORED (echo, out of scope, stale), the outcome of a "
        "PROCESSED one, or the error of a FAILED one."
    )
    attempts: int
    next_attempt_at: datetime | None = strawberry.field(
        description="A FAILED delivery is retried after this (with back-off)."
    )
    processed_at: datetime | None
    payload: str = strawberry.field(description="The body the PSA posted, as received.")
    local_id: strawberry.Private[int]
    integration_id: strawberry.Private[Any]

    COLUMNS: ClassVar[tuple[str, ...]] = (
        "id", "integration_id", "received_at", "kind", "psa_id", "action", "member", "status",
        "reason", "attempts", "not_before", "processed_at", "payload",
    )  # fmt: skip

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> WebhookDelivery:
        return cls(
            id=strawberry.ID(to_global("WebhookDelivery", row["id"])),
            local_id=int(row["id"]),
            integration_id=row["integration_id"],
            received_at=row["received_at"],
            kind=AssetKind(row["kind"]) if row["kind"] else None,
            psa_id=row["psa_id"],
            action=row["action"],
            member=row["member"],
            status=DeliveryStatus(row["status"]),
            reason=row["reason"],
            attempts=row["attempts"],
            next_attempt_at=row["not_before"],
            processed_at=row["processed_at"],
            payload=row["payload"],
        )
