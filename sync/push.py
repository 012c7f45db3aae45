"""Delivering the outbox: local changes out to the PSA, in order, coalesced, never lost.

One deliverer per integration at a time (a lease on the integration, claimed by
compare-and-set, so several processes on PostgreSQL never interleave one record's pushes).
A batch takes the oldest due entries, groups them by record and sends per record:

    UPDATE  one PATCH of the fields that still differ from the link's base (a fresh diff:
            any number of edits of a record become one write, and an edit already undone
            sends nothing)
    CREATE  match, then create or link (``sync.push_create``)
    DELETE  delete the PSA record (``propagateDeletes``)

Requests go out concurrently (bounded, and under the integration's rate limit); their
results are written in one short transaction afterwards, never during the requests:

    written              base := what the PSA stored, stamp := the PSA's stamp, entries gone
                         (so the PSA's own change notice of this write changes nothing)
    refused (RecordError) entries FAILED, the link shows the PSA's message; retryPush
    outage (RetriableError, FatalError)
                         entries wait with back-off and jitter (Retry-After honoured), and
                         the integration pauses its deliveries until then
"""

from __future__ import annotations

import asyncio
import logging
import random
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from aiolimiter import AsyncLimiter
from tortoise.expressions import F, Q, Subquery
from tortoise.transactions import in_transaction

from models import (
    ASSET_MODELS,
    AssetKind,
    ChangeSource,
    ConflictOutcome,
    Integration,
    IntegrationStatus,
    LinkState,
    OutboxEntry,
    OutboxOperation,
    OutboxStatus,
    PushState,
    RecordLink,
    SyncConflict,
)
from models.bulk import insert_rows, update_rows
from sync import history, leases, push_create
from sync.columns import as_uuid, stamps
from sync.concurrency import gather_all
from sync.connections import ProviderFactory
from sync.context import utcnow
from sync.directions import integration_directions
from sync.errors import FatalError, RecordError, RetriableError, SyncError
from sync.providers.base import PsaChange, PsaProvider, PsaRecord
from sync.push_values import (
    COLUMN_CODES,
    COLUMN_RELATIONS,
    Reverse,
    Translator,
    columns_of,
    diff,
    local_rows,
    pushable,
    snapshot_for,
)
from sync.snapshot import encode

log = logging.getLogger("psasync.push")

BATCH = 500
PUSHED_LINK_FIELDS = (
    "snapshot",
    "psa_updated_at",
    "synced_at",
    "psa_stamp",
    "stamp_trusted",
    "psa_hash",
)
ENTRY_COLUMNS = ("id", "kind", "local_id", "operation", "payload", "attempts", "created_by")
CONCURRENCY = 16
LEASE = timedelta(seconds=120)
BASE_DELAY = 5.0  # seconds; doubles per failed attempt
MAX_DELAY = 15 * 60.0


@dataclass
class _Group:
    """The due entries of one record."""

    kind: AssetKind
    local_id: uuid.UUID
    entry_ids: list[int] = field(default_factory=list)
    operations: set[OutboxOperation] = field(default_factory=set)
    payload: dict[str, Any] = field(default_factory=dict)
    attempts: int = 0
    actor: str | None = None


@dataclass
class _Push:
    """One request to make and, afterwards, its result."""

    group: _Group
    operation: OutboxOperation
    link: dict[str, Any] | None = None
    change: PsaChange | None = None
    columns: set[str] = field(default_factory=set)  # what the change carries
    local: dict[str, Any] = field(default_factory=dict)
    result: PsaRecord | None = None
    error: SyncError | None = None


@dataclass
class PushResults:
    delivered: list[int] = field(default_factory=list)  # entry ids done with
    failed: dict[int, str] = field(default_factory=dict)  # entry id → PSA's message
    retry: list[tuple[list[int], int]] = field(default_factory=list)
    links: list[dict[str, Any]] = field(default_factory=list)  # base and stamps after a push
    link_errors: dict[Any, str] = field(default_factory=dict)  # link id → message
    settled: list[Any] = field(default_factory=list)  # link ids whose push is done
    new_links: list[dict[str, Any]] = field(default_factory=list)
    not_pushed: list[dict[str, Any]] = field(default_factory=list)
    followups: list[OutboxEntry] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list)
    normalised: dict[AssetKind, dict[uuid.UUID, dict[str, Any]]] = field(
        default_factory=lambda: defaultdict(dict)
    )
    replaced: dict[AssetKind, list[uuid.UUID]] = field(default_factory=lambda: defaultdict(list))
    retry_after: float | None = None
    outage: str | None = None
    # The PSA user our writes appear as (to recognise their echo in notifications).
    member: str | None = None


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
    ) -> None:
        self.open_provider = open_provider
        self.owner = owner
        self.clock = clock
        self.batch = batch
        self.concurrency = concurrency
        self.base_delay = base_delay
        self.rng = rng
        self._limiters: dict[uuid.UUID, tuple[int, AsyncLimiter]] = {}

    # -- scheduling ------------------------------------------------------------------------

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
        waiting out an outage, or another deliverer holds it."""
        if integration.status == IntegrationStatus.PAUSED:
            return 0
        now = self.clock()
        if integration.push_not_before is not None and integration.push_not_before > now:
            return 0
        done = 0
        if not await self._claim(integration):
            return 0
        provider: PsaProvider | None = None
        try:
            while True:
                groups = await self._due(integration)
                if not groups:
                    break
                if provider is None:
                    provider = await self.open_provider(integration)
                settled, stop = await self._deliver_batch(integration, provider, groups)
                done += settled
                if stop or not await self._claim(integration):
                    break
        finally:
            if provider is not None:
                await provider.aclose()
            await leases.release(integration.id, "push_lease", self.owner)
        return done

    async def _claim(self, integration: Integration) -> bool:
        query = Integration.filter(id=integration.id)
        return await leases.claim(query, "push_lease", self.owner, self.clock(), LEASE)

    async def _due(self, integration: Integration) -> list[_Group]:
        """The oldest due entries, grouped by record; records with an earlier entry that
        failed or waits are left alone, so a record's changes never overtake each other."""
        now = self.clock()
        held = OutboxEntry.filter(integration_id=integration.id).filter(
            Q(status=OutboxStatus.FAILED) | Q(next_attempt_at__gt=now)
        )
        rows = (
            await OutboxEntry.filter(integration_id=integration.id, status=OutboxStatus.PENDING)
            .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
            .exclude(local_id__in=Subquery(held.values("local_id")))
            .order_by("id")
            .limit(self.batch)
            .values(*ENTRY_COLUMNS)
        )
        # Each record's later entries too: they coalesce into the same push, whatever the
        # batch boundary (a batch is at most ``batch`` records).
        records = list(dict.fromkeys(row["local_id"] for row in rows))
        if records:
            rows = (
                await OutboxEntry.filter(
                    integration_id=integration.id,
                    status=OutboxStatus.PENDING,
                    local_id__in=records,
                )
                .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
                .order_by("id")
                .values(*ENTRY_COLUMNS)
            )
        groups: dict[tuple[AssetKind, uuid.UUID], _Group] = {}
        for row in rows:
            kind = AssetKind(row["kind"])
            local_id = as_uuid(row["local_id"])
            group = groups.setdefault((kind, local_id), _Group(kind, local_id))
            group.entry_ids.append(row["id"])
            group.operations.add(OutboxOperation(row["operation"]))
            group.attempts = max(group.attempts, row["attempts"])
            group.actor = row["created_by"] or group.actor
            if row["operation"] == OutboxOperation.DELETE:
                group.payload = row["payload"] or {}
        return list(groups.values())

    # -- one batch -------------------------------------------------------------------------

    async def _deliver_batch(
        self, integration: Integration, provider: PsaProvider, groups: list[_Group]
    ) -> tuple[int, bool]:
        results = PushResults()
        pushes: list[_Push] = []
        creates: dict[AssetKind, list[_Group]] = defaultdict(list)
        by_kind: dict[AssetKind, list[_Group]] = defaultdict(list)
        for group in groups:
            if OutboxOperation.DELETE in group.operations:
                pushes.append(_Push(group, OutboxOperation.DELETE))
            else:
                by_kind[group.kind].append(group)
        for kind, members in by_kind.items():
            await self._prepare(integration, kind, members, pushes, creates, results)
        await self._send(integration, provider, pushes, results)
        for kind, members in creates.items():
            if results.outage is None:
                await self._create(integration, provider, kind, members, results)
        await write_results(integration, results, self.clock(), self._delay)
        settled = len(results.delivered) + len(results.failed)
        return settled, results.outage is not None

    async def _prepare(
        self,
        integration: Integration,
        kind: AssetKind,
        groups: list[_Group],
        pushes: list[_Push],
        creates: dict[AssetKind, list[_Group]],
        results: PushResults,
    ) -> None:
        ids = [g.local_id for g in groups]
        links = {
            as_uuid(row["local_id"]): row
            for row in await RecordLink.filter(
                integration_id=integration.id, kind=kind, local_id__in=ids
            ).values("id", "local_id", "psa_id", "psa_parent_id", "snapshot", "state")
        }
        columns = columns_of(integration, kind)
        rows = await local_rows(kind, ids, columns)
        blocked: dict[uuid.UUID, set[str]] = defaultdict(set)
        for local_id, name in await SyncConflict.filter(
            integration_id=integration.id, kind=kind, local_id__in=ids, outcome=ConflictOutcome.OPEN
        ).values_list("local_id", "field"):
            blocked[as_uuid(local_id)].add(name)
        sendable = pushable(kind, integration_directions(integration), columns)
        translator = await Translator.load(integration, rows.values())
        for group in groups:
            row = rows.get(group.local_id)
            link = links.get(group.local_id)
            if row is None:  # deleted locally since: nothing left to push
                results.delivered.extend(group.entry_ids)
                continue
            if link is None or link["psa_id"] is None:
                creates[kind].append(group)
                continue
            if link["state"] != LinkState.SYNCED:  # orphaned meanwhile: the PSA record is gone
                results.delivered.extend(group.entry_ids)
                results.settled.append(link["id"])
                continue
            base = link["snapshot"] or {}
            changed = diff(kind, row, base, sendable, frozenset(blocked[group.local_id]))
            change, carried = translator.change(kind, row, sorted(changed))
            if change.empty:  # undone since, or nothing this PSA can take yet
                results.delivered.extend(group.entry_ids)
                results.settled.append(link["id"])
                continue
            pushes.append(_Push(group, OutboxOperation.UPDATE, link, change, carried, dict(row)))

    def _limiter(self, integration: Integration) -> AsyncLimiter:
        rate = max(1, integration.push_rate_per_minute)
        known = self._limiters.get(integration.id)
        if known is None or known[0] != rate:
            limiter = AsyncLimiter(rate, 60) if rate < 60 else AsyncLimiter(rate / 60, 1)
            known = (rate, limiter)
            self._limiters[integration.id] = known
        return known[1]

    async def _send(
        self,
        integration: Integration,
        provider: PsaProvider,
        pushes: list[_Push],
        results: PushResults,
    ) -> None:
        gate = asyncio.Semaphore(self.concurrency)
        limiter = self._limiter(integration)

        async def send(push: _Push) -> None:
            async with gate:
                if results.outage is not None:
                    return  # the PSA is down: the rest waits with the failed one
                async with limiter:
                    try:
                        if push.operation == OutboxOperation.DELETE:
                            payload = push.group.payload
                            await provider.delete_record(
                                push.group.kind,
                                int(payload["psa_id"]),
                                payload.get("psa_parent_id"),
                            )
                        else:
                            assert push.link is not None
                            assert push.change is not None
                            push.result = await provider.update_record(
                                push.group.kind,
                                int(push.link["psa_id"]),
                                push.link["psa_parent_id"],
                                push.change,
                            )
                    except RecordError as exc:
                        push.error = exc
                    except (RetriableError, FatalError) as exc:
                        push.error = exc
                        results.outage = exc.message
                        if isinstance(exc, RetriableError) and exc.retry_after:
                            results.retry_after = max(results.retry_after or 0, exc.retry_after)

        await gather_all(*(send(p) for p in pushes))
        for push in pushes:
            self._settle(integration, push, results)

    def _settle(self, integration: Integration, push: _Push, results: PushResults) -> None:
        group = push.group
        now = self.clock()
        if isinstance(push.error, RecordError):
            for entry_id in group.entry_ids:
                results.failed[entry_id] = push.error.message
            if push.link is not None:
                results.link_errors[push.link["id"]] = push.error.message
            return
        if push.error is not None or (
            push.operation == OutboxOperation.UPDATE and push.result is None
        ):
            results.retry.append((group.entry_ids, group.attempts))
            return
        results.delivered.extend(group.entry_ids)
        if push.operation == OutboxOperation.DELETE:
            log.info("deleted %s %s in the PSA", group.kind.value, group.payload.get("psa_id"))
            return
        assert push.link is not None
        assert push.result is not None
        record = push.result
        results.member = record.updated_by or results.member
        base = dict(push.link["snapshot"] or {})
        refs = dict(base.get("_refs") or {})
        for column in push.columns:
            if column in record.values and column not in COLUMN_CODES:
                stored = record.values[column]
                base[column] = encode(stored)
                if encode(stored) != encode(push.local.get(column)):
                    # The PSA normalised what we sent: take its form, or the next sync
                    # would see a difference and push again.
                    results.normalised[group.kind][group.local_id] = {
                        **results.normalised[group.kind].get(group.local_id, {}),
                        column: stored,
                    }
            else:
                base[column] = encode(push.local.get(column))
            if column in COLUMN_RELATIONS:
                name = COLUMN_RELATIONS[column][0]
                assert push.change is not None
                refs[name] = push.change.refs.get(name)
        base["_refs"] = {k: v for k, v in refs.items() if v is not None}
        results.links.append(
            {"id": push.link["id"], "snapshot": base, **stamps(record.updated_at, now)}
        )
        results.settled.append(push.link["id"])
        account_id = integration.account_id  # type: ignore[attr-defined]
        for column in sorted(push.columns):
            results.history.append(
                history.change(
                    account_id, group.kind, group.local_id, column,
                    (push.link["snapshot"] or {}).get(column), base.get(column),
                    ChangeSource.PUSH, now, actor=integration.name, integration_id=integration.id,
                )
            )  # fmt: skip

    async def _create(
        self,
        integration: Integration,
        provider: PsaProvider,
        kind: AssetKind,
        groups: list[_Group],
        results: PushResults,
    ) -> None:
        columns = columns_of(integration, kind)
        rows = await local_rows(kind, [g.local_id for g in groups], columns)
        ordered = [rows[g.local_id] for g in groups if g.local_id in rows]
        try:
            outcomes = await push_create.plan(
                integration, provider, kind, ordered, provider.display_name
            )
            await push_create.execute(provider, kind, outcomes, provider.display_name)
        except (RetriableError, FatalError) as exc:
            results.outage = exc.message
            for group in groups:
                results.retry.append((group.entry_ids, group.attempts))
            return
        by_id = {g.local_id: g for g in groups}
        for group in groups:
            if group.local_id not in rows:
                results.delivered.extend(group.entry_ids)
        await record_outcomes(integration, kind, outcomes, rows, results, self.clock())
        for outcome in outcomes:
            group = by_id[outcome.local_id]
            if outcome.code == "psa_error":  # refused: kept for retryPush, like an update
                for entry_id in group.entry_ids:
                    results.failed[entry_id] = outcome.message
            else:
                results.delivered.extend(group.entry_ids)

    # -- writing results -------------------------------------------------------------------

    def _delay(self, attempts: int, retry_after: float | None) -> float:
        ceiling = min(MAX_DELAY, self.base_delay * 2.0 ** min(attempts - 1, 20))
        jittered = ceiling * (0.5 + self.rng() / 2)
        return max(jittered, retry_after or 0.0)


async def write_results(
    integration: Integration,
    results: PushResults,
    now: datetime,
    delay: Callable[[int, float | None], float] | None = None,
    also: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """Write a batch's results in one transaction (``also`` adds the caller's own writes,
    e.g. a run's checkpoint)."""
    normalised = []
    for kind, rows in results.normalised.items():
        model = ASSET_MODELS[kind]
        for asset in await model.filter(id__in=list(rows)):
            for column, value in rows[asset.id].items():
                setattr(asset, column, value)
            asset.match_key = asset.compute_match_key()
            asset.version += 1
            normalised.append((asset, sorted(rows[asset.id])))
    async with in_transaction():
        if results.delivered:
            await OutboxEntry.filter(id__in=results.delivered).delete()
        for entry_id, message in results.failed.items():
            await OutboxEntry.filter(id=entry_id).update(
                status=OutboxStatus.FAILED, last_error=message, attempts=F("attempts") + 1
            )
        for link_id, message in results.link_errors.items():
            await RecordLink.filter(id=link_id).update(
                push_state=PushState.FAILED, last_error=message
            )
        if results.retry:
            attempts = max(a for _, a in results.retry) + 1
            seconds = delay(attempts, results.retry_after) if delay else BASE_DELAY
            when = now + timedelta(seconds=seconds)
            ids = [i for entry_ids, _ in results.retry for i in entry_ids]
            await OutboxEntry.filter(id__in=ids).update(
                next_attempt_at=when,
                attempts=F("attempts") + 1,
                last_error=results.outage or "the PSA did not answer",
            )
            await Integration.filter(id=integration.id).update(push_not_before=when)
            log.warning("pushes to %s wait until %s: %s", integration.name, when, results.outage)
        if results.links:
            await update_rows(RecordLink, PUSHED_LINK_FIELDS, results.links)
        for kind, local_ids in results.replaced.items():
            await RecordLink.filter(
                integration_id=integration.id,
                kind=kind,
                local_id__in=local_ids,
                psa_id__isnull=True,
            ).delete()
        if results.new_links:
            await insert_rows(RecordLink, results.new_links)
        if results.not_pushed:
            await insert_rows(RecordLink, results.not_pushed)
        if results.followups:
            await OutboxEntry.bulk_create(results.followups)
        for asset, columns in normalised:
            await asset.save(update_fields=[*columns, "match_key", "version", "updated_at"])
        if results.history:
            await history.write(results.history)
        if results.settled:
            remaining = OutboxEntry.filter(integration_id=integration.id).values("local_id")
            await (
                RecordLink.filter(id__in=results.settled)
                .exclude(local_id__in=Subquery(remaining))
                .update(push_state=PushState.NONE, last_error=None)
            )
        if results.member and results.member != integration.psa_member:
            await Integration.filter(id=integration.id).update(psa_member=results.member)
            integration.psa_member = results.member
        if also is not None:
            await also()


async def record_outcomes(
    integration: Integration,
    kind: AssetKind,
    outcomes: Sequence[push_create.Outcome],
    rows: dict[uuid.UUID, dict[str, Any]],
    results: PushResults,
    now: datetime,
) -> None:
    """Turn create/link/skip outcomes into link rows (written later by ``_write``).

    A created record's base is what the PSA stored, and our record takes the PSA's form of
    any value it normalised. A linked (matched) record's base is the PSA record as found, and
    an UPDATE follows to push our values: the user asked for this record to be pushed.
    """
    acted = [o for o in outcomes if o.code in ("create", "link") and o.match is not None]
    reverse = await Reverse.load(integration, [o.match for o in acted if o.match is not None])
    local_ids = [o.local_id for o in outcomes]
    # A NOT_PUSHED link gives way to the new state of the record.
    results.replaced[kind].extend(local_ids)
    for outcome in outcomes:
        row = rows[outcome.local_id]
        if outcome.match is None or outcome.code not in ("create", "link"):
            results.not_pushed.append(
                _link_row(integration, kind, outcome.local_id, now, state=LinkState.NOT_PUSHED,
                          last_error=outcome.message or outcome.code)
            )  # fmt: skip
            continue
        record = outcome.match
        values = reverse.local_values(kind, record)
        created = outcome.code == "create"
        results.new_links.append(
            _link_row(
                integration, kind, outcome.local_id, now,
                psa_id=record.psa_id, psa_parent_id=record.parent_psa_id,
                snapshot=snapshot_for(kind, values, record), state=LinkState.SYNCED,
                push_state=PushState.NONE if created else PushState.PENDING,
                **stamps(record.updated_at, now),
            )
        )  # fmt: skip
        if created:
            results.member = record.updated_by or results.member
            adopted = {
                c: v
                for c, v in record.values.items()
                if c in row and encode(v) != encode(row.get(c))
            }
            if adopted:
                results.normalised[kind][outcome.local_id] = adopted
            for column in sorted(record.values):
                results.history.append(
                    history.change(
                        integration.account_id,  # type: ignore[attr-defined]
                        kind, outcome.local_id, column, None, encode(record.values[column]),
                        ChangeSource.PUSH, now, actor=integration.name,
                        integration_id=integration.id,
                    )
                )  # fmt: skip
        else:
            results.followups.append(
                OutboxEntry(
                    integration_id=integration.id,
                    kind=kind,
                    local_id=outcome.local_id,
                    operation=OutboxOperation.UPDATE,
                )
            )


def _link_row(
    integration: Integration, kind: AssetKind, local_id: uuid.UUID, now: datetime, **values: Any
) -> dict[str, Any]:
    return {
        "id": uuid.uuid4(),
        "integration_id": integration.id,
        "kind": kind,
        "local_id": local_id,
        "settings_version": integration.settings_version,
        "created_at": now,
        "updated_at": now,
        **values,
    }
