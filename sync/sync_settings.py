"""The Sync Settings screen: which types and statuses sync, contacts, two-way, near-real-time
sync (webhooks), and the intervals of the reconciliation poll and the full reconciliation.

Saving a change of scope queues a sync at once ("the sync will be automatically queued",
both seeds) and bumps the integration's ``settings_version``, so records read under the old
scope get a full look instead of a stamp check.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from tortoise.expressions import F
from tortoise.transactions import in_transaction

from models import Integration, ReferenceMapping, RunTrigger, SyncRun, SyncState
from sync import directions, jobs
from sync.connections import table_of
from sync.errors import SyncError
from sync.integrations import IntegrationError
from sync.providers.base import PsaProvider

# Below a minute a poll every N seconds would hardly finish before the next one.
MIN_INTERVAL = 60
MAX_INTERVAL = 7 * 24 * 3600
MIN_RECONCILE_INTERVAL = 3600
MAX_RECONCILE_INTERVAL = 30 * 24 * 3600


_SETTINGS_FIELDS = [
    "contacts_enabled", "two_way_enabled", "webhooks_due", "near_real_time",
    "sync_interval_seconds", "next_poll_at", "reconcile_interval_seconds", "next_reconcile_at",
    "settings_version", "updated_at",
]  # fmt: skip


@dataclass
class SettingsChange:
    """What the user changed; None leaves a setting as it is."""

    # Reference value id (the account's type or status) → ENABLED or DISABLED.
    states: Mapping[uuid.UUID, SyncState] = field(default_factory=dict)
    contacts_enabled: bool | None = None
    two_way_enabled: bool | None = None
    sync_interval_seconds: int | None = None  # the reconciliation poll (incremental)
    reconcile_interval_seconds: int | None = None  # the full id reconciliation
    near_real_time: bool | None = None  # PSA webhooks


@dataclass
class SettingsResult:
    integration: Integration
    run: SyncRun | None  # the sync queued because the scope changed


async def update(integration: Integration, change: SettingsChange) -> SettingsResult:
    interval = change.sync_interval_seconds
    if interval is not None and interval != 0 and not MIN_INTERVAL <= interval <= MAX_INTERVAL:
        raise IntegrationError(
            "INVALID_INTERVAL",
            f"the interval is 0 (no scheduled syncs) or between {MIN_INTERVAL} "
            f"and {MAX_INTERVAL} seconds",
            field="syncIntervalSeconds",
        )
    reconcile = change.reconcile_interval_seconds
    if (
        reconcile is not None
        and reconcile != 0
        and not MIN_RECONCILE_INTERVAL <= reconcile <= MAX_RECONCILE_INTERVAL
    ):
        raise IntegrationError(
            "INVALID_INTERVAL",
            f"the reconciliation interval is 0 (none) or between {MIN_RECONCILE_INTERVAL} "
            f"and {MAX_RECONCILE_INTERVAL} seconds",
            field="reconcileIntervalSeconds",
        )
    for state in change.states.values():
        if state not in (SyncState.ENABLED, SyncState.DISABLED):
            raise IntegrationError(
                "INVALID_SYNC_STATE", "a value can be set ENABLED or DISABLED", field="syncState"
            )
    mappings = {
        m.value_id: m  # type: ignore[attr-defined]
        for m in await ReferenceMapping.filter(
            integration_id=integration.id, value_id__in=list(change.states)
        )
    }
    for value_id, state in change.states.items():
        mapping = mappings.get(value_id)
        if mapping is None:
            raise IntegrationError(
                "REFERENCE_NOT_FOUND",
                f"{value_id} is not a type or status of this integration's PSA",
                field="referenceId",
            )
        if mapping.sync_state == SyncState.NOT_CONNECTED and state == SyncState.ENABLED:
            raise IntegrationError(
                "NOT_CONNECTED",
                f"{mapping.psa_name!r} is no longer in the PSA and cannot be enabled",
                field="referenceId",
            )

    scope_changed = False
    run = None
    async with in_transaction():
        for value_id, state in change.states.items():
            mapping = mappings[value_id]
            if mapping.sync_state not in (state, SyncState.NOT_CONNECTED):
                mapping.sync_state = state
                await mapping.save(update_fields=["sync_state", "updated_at"])
                scope_changed = True
        for name in ("contacts_enabled", "two_way_enabled"):
            wanted = getattr(change, name)
            if wanted is not None and wanted != getattr(integration, name):
                setattr(integration, name, wanted)
                scope_changed = True
                # Two-way sync wants webhooks: the worker registers (or removes) them.
                integration.webhooks_due = integration.webhooks_due or name == "two_way_enabled"
        if (
            change.near_real_time is not None
            and change.near_real_time != integration.near_real_time
        ):
            integration.near_real_time = change.near_real_time
            integration.webhooks_due = True
        now = datetime.now(UTC)
        # A new interval counts from now (not from a poll planned under the old one).
        if interval is not None and interval != integration.sync_interval_seconds:
            integration.sync_interval_seconds = interval
            integration.next_poll_at = now + timedelta(seconds=interval) if interval else None
        if reconcile is not None and reconcile != integration.reconcile_interval_seconds:
            integration.reconcile_interval_seconds = reconcile
            integration.next_reconcile_at = (
                now + timedelta(seconds=reconcile) if reconcile else None
            )
        if scope_changed:
            integration.settings_version += 1
        # Only what this form changes: a whole-row save would write back stale copies of what
        # runs change meanwhile (status, leases, bookmarks, the permissions report).
        await integration.save(update_fields=_SETTINGS_FIELDS)
        if scope_changed:
            run = await jobs.enqueue(integration, trigger=RunTrigger.SETTINGS)
    await integration.refresh_from_db()
    return SettingsResult(integration, run)


@dataclass
class TwoWayChange:
    """The Two-Way Sync Settings tab beyond the checkbox; None leaves a setting as it is.

    ``directions``: changes to ``sync.directions`` settings (``default``, ``kinds``,
    ``fields``, ``clock_skew_seconds``, ``tie_breaker``; a None rule removes an override).
    """

    directions: Mapping[str, object] = field(default_factory=dict)
    propagate_deletes: bool | None = None
    contact_email_type: str | None = None
    contact_phone_type: str | None = None
    push_rate_per_minute: int | None = None


MAX_PUSH_RATE = 100_000


async def update_two_way(
    integration: Integration,
    change: TwoWayChange,
    *,
    open_provider: Callable[[Integration], Awaitable[PsaProvider]] | None = None,
) -> Integration:
    """Store two-way settings. Contact attributes are checked against the PSA's own lists
    (read before anything is written); directions against the provider's mapped fields."""
    try:
        stored = directions.validated(
            table_of(integration), integration.directions or {}, change.directions
        )
    except directions.DirectionError as exc:
        raise IntegrationError("INVALID_DIRECTION", str(exc), field=exc.field) from exc
    rate = change.push_rate_per_minute
    if rate is not None and not 1 <= rate <= MAX_PUSH_RATE:
        raise IntegrationError(
            "INVALID_INPUT",
            f"the push rate is between 1 and {MAX_PUSH_RATE} per minute",
            field="pushRatePerMinute",
        )
    attributes = {
        "email": change.contact_email_type,
        "phone": change.contact_phone_type,
    }
    if any(v for v in attributes.values()):
        if open_provider is None:
            raise IntegrationError("CONNECTION_FAILED", "no PSA to check contact attributes")
        provider = await open_provider(integration)
        try:
            options = await provider.contact_attribute_options()
        except SyncError as exc:
            raise IntegrationError("CONNECTION_FAILED", exc.message) from exc
        finally:
            await provider.aclose()
        for kind, wanted in attributes.items():
            known = options.get(kind, [])
            if wanted and wanted not in known:
                raise IntegrationError(
                    "UNKNOWN_REFERENCE",
                    f"{wanted!r} is not a {kind} type in the PSA (it has: {', '.join(known)})",
                    field=f"contact{kind.title()}Type",
                )
    updates: dict[str, object] = {"directions": stored}
    if change.propagate_deletes is not None:
        updates["propagate_deletes"] = change.propagate_deletes
    for name in ("contact_email_type", "contact_phone_type"):
        value = getattr(change, name)
        if value is not None:
            updates[name] = value or None  # "" clears it
    if rate is not None:
        updates["push_rate_per_minute"] = rate
    async with in_transaction():
        await Integration.filter(id=integration.id).update(**updates)
        # A field's direction decides what a pull reads: look at every record again.
        if change.directions:
            await Integration.filter(id=integration.id).update(
                settings_version=F("settings_version") + 1
            )
    await integration.refresh_from_db()
    return integration
