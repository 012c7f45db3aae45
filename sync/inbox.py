"""Webhook deliveries, processed: a notice is a hint to re-fetch its record, never data.

The receiver stored each delivery (``WebhookDelivery``, PENDING) and answered. Here, per
integration (one processor at a time, by lease) and in batches in arrival order:

1. Notices psasync cannot act on are IGNORED with why (an entity it does not sync, contacts
   switched off).
2. A notice of a version we already have is IGNORED without asking the PSA: ``echo`` when
   the change was psasync's own write (its PSA user, a stamp no newer than the link's), else
   ``stale``. Deletes carry no stamp and are always checked.
3. The rest are collapsed per record — a burst of notices for one record costs one re-fetch
   — and re-fetched by id in batches (``PsaProvider.fetch``); then the records are written
   exactly like a pull writes them (``apply``: scope, two-way merge, the stale-data guard).
   A record the PSA no longer has is orphaned.
4. Each delivery ends PROCESSED, IGNORED (why) or FAILED (the error); a failed one is retried
   with back-off up to ``MAX_ATTEMPTS`` and can be replayed.

Paused integrations keep their deliveries until they resume; while a run is syncing the
integration, its deliveries wait for the run to end (both would write the same links).
No network I/O happens inside a transaction: the re-fetch comes first, then the writes.
"""

from __future__ import annotations

import logging
import random
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from tortoise.expressions import F, Q, Subquery

from models import (
    AssetKind,
    DeliveryStatus,
    Integration,
    IntegrationStatus,
    LinkState,
    RunStatus,
    SyncRun,
    WebhookDelivery,
)
from sync import leases, transition
from sync.apply import LinkRow, apply, links_where
from sync.connections import ProviderFactory
from sync.context import RunContext, utcnow
from sync.errors import RecordError, SyncError
from sync.leases import Fence
from sync.pages import page_of
from sync.providers.base import PsaProvider
from sync.reference import load_index

log = logging.getLogger("psasync.inbox")

BATCH = 1000  # deliveries read per batch (their payloads stay in the database)
MAX_ATTEMPTS = 8  # then a FAILED delivery waits for replayWebhookDelivery
BASE_DELAY = 5.0  # seconds; doubled per attempt, with jitter
MAX_DELAY = 3600.0
LEASE = timedelta(seconds=120)
DELIVERY_COLUMNS = ("id", "kind", "psa_id", "action", "member", "stamp", "attempts")
# Outcomes of ``apply`` that leave a delivery IGNORED rather than PROCESSED.
_IGNORED_PREFIXES = ("out of scope", "stale", "not stored")


@dataclass
class _Record:
    """The deliveries of one record in a batch."""

    kind: AssetKind
    psa_id: int
    delivery_ids: list[int] = field(default_factory=list)
    notices: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class _Outcomes:
    """Delivery id → (status, reason), written at the end of a batch."""

    settled: dict[int, tuple[DeliveryStatus, str]] = field(default_factory=dict)
    failed: dict[int, str] = field(default_factory=dict)

    def set(self, ids: Sequence[int], status: DeliveryStatus, reason: str) -> None:
        for delivery_id in ids:
            self.settled[delivery_id] = (status, reason)

    def fail(self, ids: Sequence[int], reason: str) -> None:
        for delivery_id in ids:
            self.failed[delivery_id] = reason


class InboxProcessor:
    def __init__(
        self,
        open_provider: ProviderFactory,
        *,
        owner: str,
        clock: Callable[[], datetime] = utcnow,
        base_delay: float = BASE_DELAY,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self.open_provider = open_provider
        self.owner = owner
        self.clock = clock
        self.base_delay = base_delay
        self.rng = rng
        self.fetches = 0  # re-fetch calls made (for tests and benchmarks)

    # -- scheduling ------------------------------------------------------------------------

    def _due(self, now: datetime) -> Q:
        return Q(status=DeliveryStatus.PENDING) | Q(
            status=DeliveryStatus.FAILED, attempts__lt=MAX_ATTEMPTS, not_before__lte=now
        )

    async def run_due(self) -> int:
        """Process what is due for every integration that may be processed now; returns how
        many deliveries were settled."""
        now = self.clock()
        ids = await (
            WebhookDelivery.filter(self._due(now))
            .distinct()
            .values_list("integration_id", flat=True)
        )
        done = 0
        for integration in await Integration.filter(id__in=list(ids)):
            done += await self.process(integration)
        return done

    async def process(self, integration: Integration) -> int:
        if integration.status == IntegrationStatus.PAUSED:
            return 0
        if await SyncRun.filter(
            integration_id=integration.id, status=RunStatus.RUNNING, dry_run=False
        ).exists():
            return 0
        fence = await self._claim(integration)
        if fence is None:
            return 0
        done = 0
        opened = partial(self.open_provider, integration)
        what = f"webhook deliveries of {integration.name}"
        async with leases.holding(fence, opened, what) as held:
            while True:
                rows = await (
                    WebhookDelivery.filter(self._due(self.clock()), integration_id=integration.id)
                    .order_by("id")
                    .limit(BATCH)
                    .values(*DELIVERY_COLUMNS)
                )
                if not rows:
                    break
                provider = await held.provider()
                if transition.pending(integration, provider):
                    break  # its links are checked by its next run first
                done += await self._batch(integration, provider, rows, fence)
                if len(rows) < BATCH:
                    break
        return done

    async def _claim(self, integration: Integration) -> Fence | None:
        # Not while a run syncs the integration: two writers would race on its links.
        running = SyncRun.filter(status=RunStatus.RUNNING, dry_run=False).values("integration_id")
        only = Integration.all().exclude(id__in=Subquery(running))
        return await leases.claim(
            integration.id, "inbox_lease", self.owner, self.clock, LEASE, only=only
        )

    # -- one batch -------------------------------------------------------------------------

    async def _batch(
        self,
        integration: Integration,
        provider: PsaProvider,
        rows: list[dict[str, Any]],
        fence: Fence,
    ) -> int:
        outcomes = _Outcomes()
        records: dict[tuple[AssetKind, int], _Record] = {}
        for row in rows:
            kind = AssetKind(row["kind"]) if row["kind"] else None
            if kind is None or row["psa_id"] is None:
                outcomes.set([row["id"]], DeliveryStatus.IGNORED, "not an asset psasync syncs")
            elif kind is AssetKind.CONTACT and not integration.contacts_enabled:
                outcomes.set([row["id"]], DeliveryStatus.IGNORED, "contacts are not synced")
            elif kind is AssetKind.LOCATION:
                # Sites are read through their organization (the next poll does that).
                outcomes.set([row["id"]], DeliveryStatus.IGNORED, "locations sync by polling")
            else:
                record = records.setdefault((kind, row["psa_id"]), _Record(kind, row["psa_id"]))
                record.delivery_ids.append(row["id"])
                record.notices.append(row)

        ctx = RunContext(integration, None, clock=self.clock, outcomes={})
        by_kind: dict[AssetKind, list[_Record]] = defaultdict(list)
        for record in records.values():
            by_kind[record.kind].append(record)
        if by_kind:
            ctx.reference = await load_index(integration)
        for kind, group in by_kind.items():
            await self._kind(ctx, provider, kind, group, outcomes, fence)
        await self._write(outcomes, fence)
        return len(outcomes.settled) + len(outcomes.failed)

    async def _kind(
        self,
        ctx: RunContext,
        provider: PsaProvider,
        kind: AssetKind,
        group: list[_Record],
        outcomes: _Outcomes,
        fence: Fence,
    ) -> None:
        ids = [r.psa_id for r in group]
        known = await links_where(ctx, kind, Q(psa_id__in=ids))
        wanted: list[_Record] = []
        for record in group:
            why = _already_have(ctx.integration, known.get(record.psa_id), record.notices)
            if why is None:
                wanted.append(record)
                continue
            for delivery_id, reason in why.items():
                outcomes.set([delivery_id], DeliveryStatus.IGNORED, reason)
        if not wanted:
            return
        ids = sorted(r.psa_id for r in wanted)
        read_at = self.clock()
        try:
            self.fetches += 1
            fetched = await provider.fetch(kind, ids)
        except SyncError as exc:
            for record in wanted:
                outcomes.fail(record.delivery_ids, f"re-fetching from the PSA failed: {exc}")
            return
        # The links again, after the network: a push may have moved them meanwhile.
        links = await links_where(ctx, kind, Q(psa_id__in=ids))
        assert ctx.outcomes is not None
        ctx.outcomes.clear()
        page = await page_of(ctx, kind, fetched, links, read_at=read_at)
        page.fence = fence
        try:
            await apply(ctx, page)
        except RecordError as exc:
            for record in wanted:
                outcomes.fail(record.delivery_ids, str(exc))
            return
        returned = {r.psa_id for r in fetched}
        for record in wanted:
            outcome = ctx.outcomes.get(record.psa_id)
            if outcome is None:
                outcome = "gone from the PSA" if record.psa_id not in returned else "unchanged"
                status = DeliveryStatus.IGNORED
            elif outcome == "ambiguous match":
                outcomes.fail(record.delivery_ids, "ambiguous match: several local records match")
                continue
            elif outcome.startswith(_IGNORED_PREFIXES):
                status = DeliveryStatus.IGNORED
            else:
                status = DeliveryStatus.PROCESSED
            outcomes.set(record.delivery_ids, status, outcome)

    async def _write(self, outcomes: _Outcomes, fence: Fence) -> None:
        await fence.renew()  # a holder that lost the lease records nothing more
        now = self.clock()
        by_outcome: dict[tuple[DeliveryStatus, str], list[int]] = defaultdict(list)
        for delivery_id, outcome in outcomes.settled.items():
            by_outcome[outcome].append(delivery_id)
        for (status, reason), ids in by_outcome.items():
            await WebhookDelivery.filter(id__in=ids).update(
                status=status,
                reason=reason,
                processed_at=now,
                not_before=None,
                attempts=F("attempts") + 1,
            )
        failed: dict[str, list[int]] = defaultdict(list)
        for delivery_id, reason in outcomes.failed.items():
            failed[reason].append(delivery_id)
        for reason, ids in failed.items():
            attempts = await WebhookDelivery.filter(id__in=ids).values_list("id", "attempts")
            for delivery_id, tried in attempts:
                when = now + timedelta(seconds=self._delay(tried + 1))
                await WebhookDelivery.filter(id=delivery_id).update(
                    status=DeliveryStatus.FAILED,
                    reason=reason,
                    processed_at=now,
                    not_before=when,
                    attempts=tried + 1,
                )
            log.warning("%d webhook deliveries failed: %s", len(ids), reason)

    def _delay(self, attempts: int) -> float:
        ceiling = min(MAX_DELAY, self.base_delay * 2.0 ** min(attempts - 1, 20))
        return ceiling * (0.5 + self.rng() / 2)


def _already_have(
    integration: Integration, link: LinkRow | None, notices: list[dict[str, Any]]
) -> dict[int, str] | None:
    """Why each of these notices needs no re-fetch (each names a version the link already
    has), by delivery id; None when any of them does."""
    if link is None or link.state != LinkState.SYNCED or link.psa_stamp is None:
        return None
    reasons: dict[int, str] = {}
    for notice in notices:
        stamp = notice["stamp"]
        if notice["action"] == "deleted" or stamp is None:
            return None
        ours = notice["member"] is not None and notice["member"] == integration.psa_member
        if stamp > link.psa_stamp:
            return None
        # A stamp read in its own second may hide a later change in that second, unless
        # the notice is of our own write: another writer's change sends its own notice.
        if stamp == link.psa_stamp and not link.stamp_trusted and not ours:
            return None
        reasons[notice["id"]] = (
            "echo of psasync's own write" if ours else "stale: a newer version is already synced"
        )
    return reasons


KEEP_SETTLED = timedelta(days=7)  # processed and ignored deliveries, for support
KEEP_FAILED = timedelta(days=30)  # failed ones wait longer for a replay
PRUNE_BATCH = 5000


async def prune_settled(now: datetime) -> int:
    """Delete settled deliveries past their keeping time, a batch at a time (the inbox of a
    busy PSA grows by millions a day); returns how many went."""
    removed = 0
    # Per integration: the (integration, received_at) index finds the old ones.
    for integration_id in await Integration.all().values_list("id", flat=True):
        for statuses, keep in (
            ((DeliveryStatus.PROCESSED, DeliveryStatus.IGNORED), KEEP_SETTLED),
            ((DeliveryStatus.FAILED,), KEEP_FAILED),
        ):
            while True:
                ids = await (
                    WebhookDelivery.filter(
                        integration_id=integration_id,
                        received_at__lt=now - keep,
                        status__in=list(statuses),
                    )
                    .limit(PRUNE_BATCH)
                    .values_list("id", flat=True)
                )
                if not ids:
                    break
                removed += await WebhookDelivery.filter(id__in=list(ids)).delete()
    return removed


async def replay(delivery_id: int) -> bool:
    """Queue a FAILED delivery again (replayWebhookDelivery); False when it is not failed."""
    return bool(
        await WebhookDelivery.filter(id=delivery_id, status=DeliveryStatus.FAILED).update(
            status=DeliveryStatus.PENDING, attempts=0, not_before=None
        )
    )
