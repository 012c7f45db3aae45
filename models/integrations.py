"""PSA integrations: their credentials (encrypted), sync settings and status."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tortoise import fields
from tortoise.models import Model

from models.enums import IntegrationStatus, Provider

if TYPE_CHECKING:
    from models.accounts import Account
    from models.vault import Vault

# The reconciliation poll (an incremental sync) behind webhooks, and the full id comparison
# that finds records deleted without a notice.
DEFAULT_SYNC_INTERVAL = 15 * 60
DEFAULT_RECONCILE_INTERVAL = 24 * 3600
# ConnectWise: "over 1,000 requests per minute will likely experience rate limiting".
DEFAULT_PUSH_RATE = 600


class Integration(Model):
    """One connection from an account to one PSA instance.

    Which types and statuses are in scope lives on ``ReferenceMapping.sync_state``; the flags
    here are the rest of IT Glue's Sync Settings screen. Credentials are a Fernet token of a
    JSON object; only the provider code knows its fields.
    """

    id = fields.UUIDField(primary_key=True)
    account: fields.ForeignKeyRelation[Account] = fields.ForeignKeyField(
        "models.Account", related_name="integrations", on_delete=fields.CASCADE
    )
    provider = fields.CharEnumField(Provider, max_length=32)
    name = fields.CharField(max_length=200)
    site_url = fields.CharField(max_length=500)
    sandbox = fields.BooleanField(default=False)
    status = fields.CharEnumField(
        IntegrationStatus, max_length=16, default=IntegrationStatus.NOT_SYNCED, db_index=True
    )
    last_success_at = fields.DatetimeField(null=True)
    last_error = fields.TextField(null=True)
    contacts_enabled = fields.BooleanField(default=True)
    two_way_enabled = fields.BooleanField(default=False)
    sync_interval_seconds = fields.IntField(default=DEFAULT_SYNC_INTERVAL)
    reconcile_interval_seconds = fields.IntField(default=DEFAULT_RECONCILE_INTERVAL)
    # Scheduled runs are claimed by compare-and-set on these, so with several processes
    # exactly one queues each due run.
    next_poll_at = fields.DatetimeField(null=True)
    next_reconcile_at = fields.DatetimeField(null=True)
    # Incremental sync: per asset kind, the PSA stamp (ISO 8601) up to which every change
    # has been written locally.
    bookmarks: Any = fields.JSONField(default=dict)
    # Near-real-time sync: PSA webhooks registered (when psasync has a public URL) and
    # processed as they arrive. Two-way sync registers them too.
    near_real_time = fields.BooleanField(default=True)
    # The registrations need a look (settings changed, paused, resumed).
    webhooks_due = fields.BooleanField(default=False)
    # The invite step of setup (``UserInvitesStep``): None until users are invited or the
    # step is skipped.
    user_invites = fields.CharField(max_length=8, null=True)
    webhooks_checked_at = fields.DatetimeField(null=True)
    # Notifications refused for a bad signature (none of them stored).
    webhook_rejected = fields.IntField(default=0)
    webhook_last_rejected_at = fields.DatetimeField(null=True)
    # The PSA user psasync's own writes appear as (learned from them): a notice of a change
    # made by it, to a version we already have, is our echo.
    psa_member = fields.CharField(max_length=254, null=True)
    # One inbox processor per integration at a time, across processes.
    inbox_lease_owner = fields.CharField(max_length=100, null=True)
    inbox_lease_expires_at = fields.DatetimeField(null=True)
    # Bumped by every scope change: links read under an older version get a full look on
    # the next sync instead of a stamp check.
    settings_version = fields.IntField(default=0)
    # Two-way sync beyond the checkbox: direction and conflict policy per asset kind and per
    # field, clock-skew tolerance and tie-breaker for NEWEST_WINS (``sync.directions``).
    directions: Any = fields.JSONField(default=dict)
    propagate_deletes = fields.BooleanField(default=False)
    # PSA contact attributes given to new directory contacts' emails and phones; a directory
    # contact is pushed automatically only when both are set (seed: Active Directory).
    contact_email_type = fields.CharField(max_length=100, null=True)
    contact_phone_type = fields.CharField(max_length=100, null=True)
    # Pushes per minute this integration may send (the PSA's limit, with room to spare).
    push_rate_per_minute = fields.IntField(default=DEFAULT_PUSH_RATE)
    # A PSA outage met while pushing: no delivery before this time.
    push_not_before = fields.DatetimeField(null=True)
    # One deliverer per integration at a time, across processes (claimed by compare-and-set),
    # so a record's pushes leave in order.
    push_lease_owner = fields.CharField(max_length=100, null=True)
    push_lease_expires_at = fields.DatetimeField(null=True)
    # Which of its PSA's APIs this integration's links were last read through ("REST",
    # "SOAP"; None for a PSA with one API, or before the first run): set when a run opens
    # its provider, so a run that opens another API knows its links need checking first
    # (``sync.transition``).
    synced_api = fields.CharField(max_length=8, null=True)
    # What the PSA's security role denies, by area (``sync.permissions``).
    permissions: Any = fields.JSONField(default=dict)
    credentials_token = fields.TextField()
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "integration"

    def __repr__(self) -> str:  # never show the token
        return f"<Integration {self.id} {self.provider} {self.name!r}>"

    __str__ = __repr__

    def set_credentials(self, vault: Vault, credentials: dict[str, Any]) -> None:
        self.credentials_token = vault.encrypt(credentials)

    def credentials(self, vault: Vault) -> dict[str, Any]:
        return vault.decrypt(self.credentials_token)

    @property
    def status_label(self) -> str:
        return IntegrationStatus(self.status).label
