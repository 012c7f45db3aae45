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


class RunKind(StrEnum):
    FULL = "FULL"
    INCREMENTAL = "INCREMENTAL"
    MANUAL = "MANUAL"


class RunTrigger(StrEnum):
    SETUP = "setup"
    SCHEDULE = "schedule"
    MANUAL = "manual"
    SETTINGS = "settings"
    CLI = "cli"


class RunStatus(StrEnum):
    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
