"""The stored enumerations, as GraphQL enums (one definition, shared by every type)."""

from __future__ import annotations

import strawberry

from models import (
    AssetKind,
    IntegrationStatus,
    LinkState,
    Provider,
    ReferenceKind,
    RunKind,
    RunStatus,
    RunTrigger,
    SyncState,
)

AssetKindEnum = strawberry.enum(AssetKind, name="AssetKind")
IntegrationStatusEnum = strawberry.enum(IntegrationStatus, name="IntegrationStatus")
LinkStateEnum = strawberry.enum(LinkState, name="LinkState")
ProviderEnum = strawberry.enum(Provider, name="Provider")
ReferenceKindEnum = strawberry.enum(ReferenceKind, name="ReferenceKind")
RunKindEnum = strawberry.enum(RunKind, name="RunKind")
RunStatusEnum = strawberry.enum(RunStatus, name="RunStatus")
RunTriggerEnum = strawberry.enum(RunTrigger, name="RunTrigger")
SyncStateEnum = strawberry.enum(SyncState, name="SyncState")
