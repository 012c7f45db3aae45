"""PSA-side webhook registrations (ConnectWise callbacks, Pulseway PSA admin webhooks) that
psasync keeps in shape.

Wanted when psasync has a public URL (``PSASYNC_PUBLIC_URL``) and the integration is not
paused and has two-way or near-real-time sync on: then each kind the PSA can notify about has
one active registration pointing at ``{public}/webhooks/{provider}/{integration}?recordId=``
(ConnectWise appends the record id). Otherwise psasync's registrations are removed.
Registrations are recognised by that URL, so one removed or disabled in the PSA is made
again, and none is ever duplicated (a PSA that cannot list them, Pulseway, is told the ids
the rows hold through ``track``). The PSA is called outside any transaction; the rows
(``WebhookSubscription``) are what GraphQL shows.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from datetime import datetime

from models import (
    AssetKind,
    Integration,
    IntegrationStatus,
    SubscriptionState,
    WebhookSubscription,
)
from sync.connections import connector
from sync.context import utcnow
from sync.errors import SyncError
from sync.providers.base import PsaProvider, PsaSubscription

log = logging.getLogger("psasync.subscriptions")


def receiver_url(public_url: str, integration: Integration) -> str:
    """Where the PSA posts this integration's notifications."""
    path = connector(integration.provider).webhook_path
    return f"{public_url.rstrip('/')}/webhooks/{path}/{integration.id}"


def wanted(integration: Integration, public_url: str | None) -> bool:
    return (
        bool(public_url)
        and integration.status != IntegrationStatus.PAUSED
        and (integration.two_way_enabled or integration.near_real_time)
    )


async def sync_subscriptions(
    integration: Integration,
    provider: PsaProvider,
    public_url: str | None,
    *,
    clock: Callable[[], datetime] = utcnow,
) -> None:
    """Make the PSA's registrations match what the integration wants (see module doc)."""
    subscriptions = provider.subscriptions
    if subscriptions is None:
        return
    want = wanted(integration, public_url)
    prefix = receiver_url(public_url, integration) if public_url else None
    rows: dict[AssetKind, tuple[SubscriptionState, int | None, str, str | None]] = {}
    await _track(integration, subscriptions)
    try:
        existing = await subscriptions.list()
    except SyncError as exc:
        await _failed(integration, subscriptions.kinds, f"listing the PSA's webhooks: {exc}")
        return
    ours = [s for s in existing if _is_ours(s, integration)]
    for kind in sorted(subscriptions.kinds):
        mine = [s for s in ours if s.kind == kind]
        url = f"{prefix}?recordId=" if prefix else ""
        keep = next((s for s in mine if want and s.active and s.url == url), None)
        try:
            for stale in mine:
                if stale is not keep:  # disabled by the PSA, an old URL, or not wanted
                    await subscriptions.delete(stale.psa_id)
            if want and keep is None:
                keep = await subscriptions.create(kind, url)
                log.info("registered %s webhooks of %s", kind.value, integration.name)
        except SyncError as exc:
            rows[kind] = (SubscriptionState.FAILED, None, url, str(exc))
            continue
        if keep is not None:
            rows[kind] = (SubscriptionState.REGISTERED, keep.psa_id, url, None)
        else:
            rows[kind] = (SubscriptionState.REMOVED, None, url, None)
    await _write(integration, rows, clock())


def _is_ours(subscription: PsaSubscription, integration: Integration) -> bool:
    # Whatever public URL psasync had then, the path names this integration.
    path = connector(integration.provider).webhook_path
    return f"/webhooks/{path}/{integration.id}" in subscription.url


async def unsubscribe_all(integration: Integration, provider: PsaProvider) -> None:
    """Remove every registration of this integration's (it is being deleted)."""
    subscriptions = provider.subscriptions
    if subscriptions is None:
        return
    await _track(integration, subscriptions)
    for subscription in await subscriptions.list():
        if _is_ours(subscription, integration):
            await subscriptions.delete(subscription.psa_id)


async def _track(integration: Integration, subscriptions: object) -> None:
    """Tell a PSA without a list of its webhooks (Pulseway) which ones psasync registered."""
    track = getattr(subscriptions, "track", None)
    if track is None:
        return
    track(
        (row.psa_id, AssetKind(row.kind))
        for row in await WebhookSubscription.filter(integration_id=integration.id)
        if row.psa_id is not None
    )


async def _failed(integration: Integration, kinds: frozenset[AssetKind], message: str) -> None:
    log.warning("webhooks of %s: %s", integration.name, message)
    await _write(
        integration,
        {kind: (SubscriptionState.FAILED, None, "", message) for kind in kinds},
        utcnow(),
        keep_ids=True,
    )


async def _write(
    integration: Integration,
    rows: dict[AssetKind, tuple[SubscriptionState, int | None, str, str | None]],
    now: datetime,
    *,
    keep_ids: bool = False,
) -> None:
    existing = {
        AssetKind(r.kind): r
        for r in await WebhookSubscription.filter(integration_id=integration.id)
    }
    for kind, (state, psa_id, url, error) in rows.items():
        row = existing.get(kind)
        if row is None:
            await WebhookSubscription.create(
                id=uuid.uuid4(),
                integration_id=integration.id,
                kind=kind,
                psa_id=psa_id,
                url=url,
                state=state,
                last_error=error,
                checked_at=now,
            )
            continue
        row.state = state
        row.last_error = error  # type: ignore[assignment]  # a nullable TextField
        row.checked_at = now
        if not keep_ids:
            row.psa_id = psa_id
            row.url = url
        await row.save()
    await Integration.filter(id=integration.id).update(webhooks_checked_at=now)
