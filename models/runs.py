"""Sync runs: the durable job queue and, once finished, the sync history."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tortoise import fields
from tortoise.models import Model

from models.enums import AssetKind, RunKind, RunStatus, RunTrigger

if TYPE_CHECKING:
    from models.integrations import Integration

COUNT_FIELDS = ("created", "updated", "unchanged", "linked", "orphaned", "skipped", "failed")


class SyncRun(Model):
    """A run is claimed by compare-and-set on ``status``, and its lease is renewed by heartbeats.

    ``checkpoint`` is the resume point (phase and last PSA id durably written), advanced in
    the same transaction as each page's writes, so a run re-queued after a crash carries on
    where it stopped instead of starting over.
    """

    id = fields.UUIDField(primary_key=True)
    integration: fields.ForeignKeyRelation[Integration] = fields.ForeignKeyField(
        "models.Integration", related_name="runs", on_delete=fields.CASCADE
    )
    kind = fields.CharEnumField(RunKind, max_length=16, default=RunKind.FULL)
    trigger = fields.CharEnumField(RunTrigger, max_length=16, default=RunTrigger.SCHEDULE)
    dry_run = fields.BooleanField(default=False)
    priority = fields.IntField(default=0)
    status = fields.CharEnumField(RunStatus, max_length=16, default=RunStatus.QUEUED)
    phase = fields.CharField(max_length=32, null=True)
    processed = fields.IntField(default=0)
    total = fields.IntField(null=True)
    created = fields.IntField(default=0)
    updated = fields.IntField(default=0)
    unchanged = fields.IntField(default=0)
    linked = fields.IntField(default=0)
    orphaned = fields.IntField(default=0)
    skipped = fields.IntField(default=0)
    failed = fields.IntField(default=0)
    # Seconds spent waiting for the PSA's call budget (Pulseway: calls per hour per endpoint),
    # and the same per endpoint; both over all the run's attempts.
    budget_wait_seconds = fields.FloatField(default=0)
    budget_waits: Any = fields.JSONField(default=dict)
    # Seconds the run's attempts spent running, all together (not queued, not paused): the
    # time its budget waits are a share of.
    active_seconds = fields.FloatField(default=0)
    checkpoint: Any = fields.JSONField(default=dict)
    # The check of every link when the integration moved to another API (``sync.
    # transition``): ``{"from", "to", "verified", "relinked", "unsettled"}``; None otherwise.
    transition: Any = fields.JSONField(null=True)
    error = fields.TextField(null=True)
    attempts = fields.IntField(default=0)
    # A run that met a PSA outage waits until then before it is claimed again.
    not_before = fields.DatetimeField(null=True)
    lease_owner = fields.CharField(max_length=100, null=True)
    heartbeat_at = fields.DatetimeField(null=True)
    lease_expires_at = fields.DatetimeField(null=True)
    queued_at = fields.DatetimeField(auto_now_add=True)
    started_at = fields.DatetimeField(null=True)
    finished_at = fields.DatetimeField(null=True)

    class Meta:
        table = "sync_run"
        indexes = (("status", "priority", "queued_at"),)

    def counts(self) -> dict[str, int]:
        return {name: int(getattr(self, name)) for name in COUNT_FIELDS}


class SyncRunIssue(Model):
    """One record-level problem in a run, grouped by ``code`` for display."""

    id = fields.UUIDField(primary_key=True)
    run: fields.ForeignKeyRelation[SyncRun] = fields.ForeignKeyField(
        "models.SyncRun", related_name="issues", on_delete=fields.CASCADE
    )
    code = fields.CharField(max_length=64)
    kind = fields.CharEnumField(AssetKind, max_length=16, null=True)
    psa_id = fields.BigIntField(null=True)
    local_id = fields.UUIDField(null=True)
    message = fields.TextField()
    detail: Any = fields.JSONField(default=dict)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "sync_run_issue"
