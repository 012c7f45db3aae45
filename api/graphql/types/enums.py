"""The stored enumerations, as GraphQL enums (one definition, shared by every type)."""

from __future__ import annotations

import strawberry

from models import (
    AssetKind,
    ChangeSource,
    ConflictOutcome,
    DeliveryStatus,
    IntegrationStatus,
    LinkState,
    OutboxOperation,
    OutboxStatus,
    Provider,
    ReferenceKind,
    RunKind,
    RunStatus,
    RunTrigger,
    SubscriptionState,
    SyncState,
)
from sync.conflicts import Choice
from sync.merge import Direction, Policy, Side
from sync.providers.connectwise.credentials import ConnectWiseApi
from sync.providers.connectwise.provider import ConnectWiseProvider

AssetKindEnum = strawberry.enum(AssetKind, name="AssetKind")
IntegrationStatusEnum = strawberry.enum(IntegrationStatus, name="IntegrationStatus")
LinkStateEnum = strawberry.enum(LinkState, name="LinkState")
ProviderEnum = strawberry.enum(Provider, name="Provider")
ReferenceKindEnum = strawberry.enum(ReferenceKind, name="ReferenceKind")
RunKindEnum = strawberry.enum(RunKind, name="RunKind")
RunStatusEnum = strawberry.enum(RunStatus, name="RunStatus")
RunTriggerEnum = strawberry.enum(RunTrigger, name="RunTrigger")
SyncStateEnum = strawberry.enum(SyncState, name="SyncState")
# Two-way sync.
ChangeSourceEnum = strawberry.enum(ChangeSource, name="ChangeSource")
ConnectWiseApiEnum = strawberry.enum(
    ConnectWiseApi,
    name="ConnectWiseApi",
    description="REST (API member keys) or the legacy SOAP API (integrator login).",
)
ConflictChoiceEnum = strawberry.enum(Choice, name="ConflictChoice")
ConflictOutcomeEnum = strawberry.enum(ConflictOutcome, name="ConflictOutcome")
ConflictPolicyEnum = strawberry.enum(Policy, name="ConflictPolicy")
DirectionEnum = strawberry.enum(Direction, name="SyncDirection")
OutboxOperationEnum = strawberry.enum(OutboxOperation, name="OutboxOperation")
OutboxStatusEnum = strawberry.enum(OutboxStatus, name="OutboxStatus")
SideEnum = strawberry.enum(Side, name="SyncSide")
# Webhooks (near-real-time sync).
DeliveryStatusEnum = strawberry.enum(DeliveryStatus, name="WebhookDeliveryStatus")
SubscriptionStateEnum = strawberry.enum(SubscriptionState, name="WebhookSubscriptionState")

# What people call each PSA (in messages such as a record's "not yet pushed" reason).
PSA_NAMES: dict[Provider, str] = {
    Provider.CONNECTWISE_MANAGE: ConnectWiseProvider.display_name,
    Provider.PULSEWAY_PSA: "Pulseway PSA",
}


def psa_name(provider: Provider | str) -> str:
    try:
        return PSA_NAMES[Provider(provider)]
    except (KeyError, ValueError):
        return str(provider)
