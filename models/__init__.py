"""Tables of psasync. Every row is scoped to an account, directly or through its integration."""

from models.accounts import Account, ApiKey, Invitation, User
from models.assets import ASSET_MODELS, Asset, Configuration, Contact, Location, Organization
from models.enums import (
    AssetKind,
    ChangeSource,
    ConflictOutcome,
    ContactSource,
    DeliveryStatus,
    IntegrationStatus,
    LinkState,
    OutboxOperation,
    OutboxStatus,
    Provider,
    PushState,
    ReferenceKind,
    Role,
    RunKind,
    RunStatus,
    RunTrigger,
    SubscriptionState,
    SyncState,
    UserInvitesStep,
)
from models.integrations import Integration
from models.links import RecordLink
from models.outbox import FieldChange, OutboxEntry, SyncConflict
from models.reference import ReferenceMapping, ReferenceValue
from models.runs import COUNT_FIELDS, SyncRun, SyncRunIssue
from models.webhooks import WebhookDelivery, WebhookSubscription

__all__ = [
    "ASSET_MODELS",
    "COUNT_FIELDS",
    "Account",
    "ApiKey",
    "Asset",
    "AssetKind",
    "ChangeSource",
    "Configuration",
    "ConflictOutcome",
    "Contact",
    "ContactSource",
    "DeliveryStatus",
    "FieldChange",
    "Integration",
    "IntegrationStatus",
    "Invitation",
    "LinkState",
    "Location",
    "Organization",
    "OutboxEntry",
    "OutboxOperation",
    "OutboxStatus",
    "Provider",
    "PushState",
    "RecordLink",
    "ReferenceKind",
    "ReferenceMapping",
    "ReferenceValue",
    "Role",
    "RunKind",
    "RunStatus",
    "RunTrigger",
    "SubscriptionState",
    "SyncConflict",
    "SyncRun",
    "SyncRunIssue",
    "SyncState",
    "User",
    "UserInvitesStep",
    "WebhookDelivery",
    "WebhookSubscription",
]
