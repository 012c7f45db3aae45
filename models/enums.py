"""Enumerations stored in the database (as short strings, so rows stay readable)."""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    ADMINISTRATOR = "administrator"
    MANAGER = "manager"
    EDITOR = "editor"
    VIEWER = "viewer"


class ContactSource(StrEnum):
    MANUAL = "manual"
    PSA = "psa"
    DIRECTORY = "directory"
    IMPORT = "import"
    API = "api"


class ReferenceKind(StrEnum):
    """The PSA lists that scope a sync (features.md §A2)."""

    ORGANIZATION_TYPE = "organization_type"
    ORGANIZATION_STATUS = "organization_status"
    CONFIGURATION_TYPE = "configuration_type"
    CONFIGURATION_STATUS = "configuration_status"
    CONTACT_TYPE = "contact_type"


class SyncState(StrEnum):
    ENABLED = "ENABLED"
    DISABLED = "DISABLED"
    NOT_CONNECTED = "NOT_CONNECTED"


class Provider(StrEnum):
    CONNECTWISE_MANAGE = "connectwise_manage"
    PULSEWAY_PSA = "pulseway_psa"


class IntegrationStatus(StrEnum):
    NOT_SYNCED = "NOT_SYNCED"
    QUEUED = "QUEUED"
    SYNCING = "SYNCING"
    OK = "OK"
    PAUSED = "PAUSED"
    ERROR = "ERROR"

    @property
    def label(self) -> str:
        """The words IT Glue's Active Integrations screen shows."""
        return _STATUS_LABELS[self]


_STATUS_LABELS = {
    IntegrationStatus.NOT_SYNCED: "Not synced",
    IntegrationStatus.QUEUED: "Queued",
    IntegrationStatus.SYNCING: "Syncing...",
    IntegrationStatus.OK: "OK",
    IntegrationStatus.PAUSED: "Paused",
    IntegrationStatus.ERROR: "Error",
}


class AssetKind(StrEnum):
    ORGANIZATION = "organization"
    LOCATION = "location"
    CONTACT = "contact"
    CONFIGURATION = "configuration"


class LinkState(StrEnum):
    SYNCED = "SYNCED"
    ORPHANED = "ORPHANED"
    DISCONNECTED = "DISCONNECTED"
    SYNC_DISABLED = "SYNC_DISABLED"
    ERROR = "ERROR"
    # A local record a two-way push could not create in the PSA yet (no PSA id; the link's
    # ``last_error`` says why). Records never touched since two-way was turned on have no
    # link at all and show the same state.
    NOT_PUSHED = "NOT_PUSHED"
    # Shown, not stored: a linked record with a push waiting in the outbox.
    PENDING_PUSH = "PENDING_PUSH"


class PushState(StrEnum):
    """Where a linked record's local changes are on their way to the PSA."""

    NONE = "NONE"
    PENDING = "PENDING"  # outbox entries wait for delivery
    FAILED = "FAILED"  # the PSA refused them; the entries wait for retryPush


class OutboxOperation(StrEnum):
    CREATE = "CREATE"  # create or link the record in the PSA (match first)
    UPDATE = "UPDATE"  # push the changed fields of a linked record
    DELETE = "DELETE"  # delete the PSA record (propagateDeletes)


class OutboxStatus(StrEnum):
    PENDING = "PENDING"
    FAILED = "FAILED"  # refused by the PSA: kept until retryPush


class ChangeSource(StrEnum):
    """Who or what set a field (field history)."""

    USER = "USER"
    PSA = "PSA"  # a pull applied the PSA's value
    PUSH = "PUSH"  # the value was delivered to the PSA
    CONFLICT = "CONFLICT"  # a conflict resolution set it
    DIRECTORY = "DIRECTORY"  # a directory import (Active Directory) set it


class ConflictOutcome(StrEnum):
    PSA = "PSA"  # the PSA's value won
    LOCAL = "LOCAL"  # ours won (pushed)
    OPEN = "OPEN"  # MANUAL: parked until someone decides
    RESOLVED = "RESOLVED"  # decided through resolveConflict


class RunKind(StrEnum):
    FULL = "FULL"
    INCREMENTAL = "INCREMENTAL"  # records changed since the bookmarks (reconciliation poll)
    MANUAL = "MANUAL"
    PUSH_ALL = "PUSH_ALL"
    RECONCILE = "RECONCILE"  # id sets compared: PSA records deleted without a notice


class RunTrigger(StrEnum):
    SETUP = "setup"
    SCHEDULE = "schedule"
    MANUAL = "manual"
    SETTINGS = "settings"
    CLI = "cli"
    PUSH_ALL = "push_all"


class DeliveryStatus(StrEnum):
    """Where an inbound PSA notification is."""

    PENDING = "PENDING"  # stored, waiting for the runner
    PROCESSED = "PROCESSED"  # the record was re-fetched and synced
    IGNORED = "IGNORED"  # nothing to do; ``reason`` says why (echo, out of scope, stale)
    FAILED = "FAILED"  # processing failed; retried with back-off, replayable


class SubscriptionState(StrEnum):
    """A PSA-side webhook registration psasync manages."""

    REGISTERED = "REGISTERED"
    FAILED = "FAILED"  # registering failed; ``last_error`` says why, retried
    REMOVED = "REMOVED"  # unregistered (paused, two-way and near-real-time off)


class RunStatus(StrEnum):
    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"


class UserInvitesStep(StrEnum):
    """The setup step that invites the PSA's users: done one way or the other."""

    INVITED = "INVITED"
    SKIPPED = "SKIPPED"
