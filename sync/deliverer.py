"""Delivering the outbox: which integrations have pushes due, and one fenced deliverer each.

At most one delivery of an integration's outbox is in flight anywhere. The deliverer claims
the integration's push lease (``sync.leases``: a token new at every claim, so the worker's
own delivery loop and a run's catch-up cannot both hold it), and every request it sends and
every result it writes checks that token first: a deliverer that stalled past its lease
sends nothing more and writes nothing.

Holding the lease, it takes the oldest due entries in batches, grouped by record (each
record's later entries joined in, so any number of edits of a record make one write), and
hands each batch to ``sync.push.push_batch``. A record whose earlier entry failed or waits
is left alone, so a record's changes never overtake each other.
"""

from __future__ import annotations

import logging
import random
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import partial

from tortoise.expressions import Q, Subquery

from models import AssetKind, Integration, IntegrationStatus, OutboxEntry, OutboxOperation
from models.enums import OutboxStatus
from sync import leases, push, transition
from sync.columns import as_uuid
from sync.connections import ProviderFactory
from sync.context import utcnow

log = logging.getLogger("psasync.push")

BATCH = 200  # records per batch: one settle transaction each
CONCURRENCY = 16
# Longer than one request can take (the HTTP timeout is 30 s), so a new holder never starts
# while a request of the old one may still be on its way.
LEASE = timedelta(seconds=120)
BASE_DELAY = 5.0  # seconds; doubles per failed attempt
MAX_DELAY = 15 * 60.0
ENTRY_COLUMNS = ("id", "kind", "local_id", "operation", "payload", "attempts", "created_by")


class Deliverer:
    def __init__(
        self,
        open_provider: ProviderFactory,
        *,
        owner: str,
        clock: Callable[[], datetime] = utcnow,
        batch: int = BATCH,
        concurrency: int = CONCURRENCY,
        base_delay: float = BASE_DELAY,
        rng: Callable[[], float] = random.random,
        lease: timedelta = LEASE,
    ) -> None:
        self.open_provider = open_provider
        self.owner = owner
        self.clock = clock
        self.batch = batch
        self.concurrency = concurrency
        self.base_delay = base_delay
        self.rng = rng
        self.lease = lease
        self.limits = push.Limits()

    async def run_due(self) -> int:
        """Deliver what is due for every integration; returns how many entries settled."""
        now = self.clock()
        ids = await (
            OutboxEntry.filter(status=OutboxStatus.PENDING)
            .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
            .distinct()
            .values_list("integration_id", flat=True)
        )
        done = 0
        for integration in await Integration.filter(id__in=list(ids)):
            done += await self.deliver(integration)
        return done

    async def deliver(self, integration: Integration) -> int:
        """Deliver this integration's due entries, batch after batch, unless it is paused,
        waiting out an outage, or another deliverer holds it. Returns how many settled."""
        if integration.status == IntegrationStatus.PAUSED:
            return 0
        now = self.clock()
        if integration.push_not_before is not None and integration.push_not_before > now:
            return 0
        fence = await leases.claim(integration.id, "push_lease", self.owner, self.clock, self.lease)
        if fence is None:
            return 0
        done = 0
        opened = partial(self.open_provider, integration)
        async with leases.holding(fence, opened, f"pushes to {integration.name}") as held:
            while True:
                groups = await self.due(integration)
                if not groups:
                    break
                provider = await held.provider()
                if transition.pending(integration, provider):
                    break  # its links are checked by its next run first
                report = await push.push_batch(
                    integration,
                    provider,
                    groups,
                    fence,
                    push.Options(self.clock, self.concurrency, self._delay, self.limits),
                )
                done += report.settled
                if report.stop:
                    break
        return done

    async def due(self, integration: Integration) -> list[push.Group]:
        """The oldest due entries, grouped by record; records with an earlier entry that
        failed or waits are left alone."""
        now = self.clock()
        held = OutboxEntry.filter(integration_id=integration.id).filter(
            Q(status=OutboxStatus.FAILED) | Q(next_attempt_at__gt=now)
        )
        due = OutboxEntry.filter(integration_id=integration.id, status=OutboxStatus.PENDING).filter(
            Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now)
        )
        rows = (
            await due.exclude(local_id__in=Subquery(held.values("local_id")))
            .order_by("id")
            .limit(self.batch)
            .values(*ENTRY_COLUMNS)
        )
        # Each record's later entries too: they coalesce into the same push, whatever the
        # batch boundary (a batch is at most ``batch`` records).
        records = list(dict.fromkeys(row["local_id"] for row in rows))
        if records:
            rows = await due.filter(local_id__in=records).order_by("id").values(*ENTRY_COLUMNS)
        groups: dict[tuple[AssetKind, uuid.UUID], push.Group] = {}
        for row in rows:
            kind = AssetKind(row["kind"])
            local_id = as_uuid(row["local_id"])
            group = groups.setdefault((kind, local_id), push.Group(kind, local_id))
            group.entry_ids.append(row["id"])
            group.operations.add(OutboxOperation(row["operation"]))
            group.attempts = max(group.attempts, row["attempts"])
            group.actor = row["created_by"] or group.actor
            if row["operation"] == OutboxOperation.DELETE:
                group.payload = row["payload"] or {}
        return list(groups.values())

    def _delay(self, attempts: int, retry_after: float | None) -> float:
        ceiling = min(MAX_DELAY, self.base_delay * 2.0 ** min(attempts - 1, 20))
        jittered = ceiling * (0.5 + self.rng() / 2)
        return max(jittered, retry_after or 0.0)
