"""Pushing one batch of local changes to a PSA: read, merge, mark, send, settle.

A batch is the due outbox entries of up to ``deliverer.BATCH`` records, grouped per record
(``sync.deliverer`` claims the fenced lease and picks them). Kind by kind, organizations
first (a record created here needs its organization in the PSA):

    DELETE              the PSA record is deleted (``propagateDeletes``)
    no PSA record yet   match in the PSA first, then create or link (``sync.push_create``):
                        a create whose answer was lost is found there, never sent twice
    linked              read-merge-write, in chunks the rate limit lets through in about
                        a second:
      read    the PSA's current version of each record (``PsaProvider.read_for_write``:
              one list call per chunk where the PSA filters by id, one get per record
              where it does not; Pulseway's asset PUT reuses that read)
      merge   three-way against the link's base, per field by its direction and policy,
              with the pulls' merge (``sync.pull_merge``): a field the PSA changed since
              the base is written over only when its policy says so (LOCAL_WINS,
              NEWEST_WINS by the stamps); MANUAL parks both sides
      mark    on the link, what is about to be sent (``RecordLink.sending``): a notice or a
              poll that shows it is psasync's own write, whichever arrives first; and the
              conflicts the values sent won (on record whatever becomes of the answer)
      send    one write per record of the fields to push (any number of edits make one
              write; an edit undone sends nothing), under the rate limit; every request
              checks the fence first
    settle  per kind, one transaction that holds the fence: the PSA's answers (or, where
            nothing was sent, what was read) are applied as a pull applies a record
            (``sync.apply``) with the values written agreed, so a PSA user's change to
            another field lands locally in the same transaction; conflicts and field
            history are recorded, the entries go, the marks are cleared

What a write can end in:
    answered                    settled as above
    refused (RecordError)       entries FAILED with the PSA's message and the link FAILED,
                                until retryPush
    denied (PermissionDenied)   the same, and the area's write (or read) denial is recorded
                                on the integration (``sync.permissions``): a 403 is not an
                                outage, sending again changes nothing until the role does
    outage, or no answer        entries wait with back-off (Retry-After honoured), the
    (RetriableError, FatalError) integration's deliveries pause until then; the mark stays,
                                so if the write did land, the next read sees our own value

The window that remains: ConnectWise and Pulseway have no conditional writes, so a PSA
user's change to a field we write, made between our read and our write, is overwritten. A
chunk is sized so that window is about a second; a change to any other field in it comes
back in the PSA's answer and lands locally.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from aiolimiter import AsyncLimiter
from tortoise.expressions import F, Subquery
from tortoise.transactions import in_transaction

from models import (
    ASSET_MODELS,
    AssetKind,
    ConflictOutcome,
    Integration,
    LinkState,
    OutboxEntry,
    OutboxOperation,
    OutboxStatus,
    PushState,
    RecordLink,
    SyncConflict,
)
from models.bulk import update_rows
from models.text import column_limits, first_unstorable
from sync import permissions, push_create
from sync.apply import LinkRow, LocalSide, Pushed, apply, local_terms, our_side
from sync.columns import as_uuid
from sync.concurrency import gather_all
from sync.context import RunContext
from sync.errors import FatalError, PermissionDenied, RecordError, RetriableError, SyncError
from sync.leases import Fence
from sync.pages import page_of
from sync.providers.base import PsaChange, PsaProvider, PsaRecord
from sync.pull_merge import echo_base, merge_record
from sync.push_values import TOGETHER, Translator, columns_of, local_rows
from sync.reference import load_index
from sync.snapshot import encode

log = logging.getLogger("psasync.push")

ORDER = (AssetKind.ORGANIZATION, AssetKind.LOCATION, AssetKind.CONTACT, AssetKind.CONFIGURATION)
CHUNK = 50  # records read together at most, then written


@dataclass
class Group:
    """The due entries of one record."""

    kind: AssetKind
    local_id: uuid.UUID
    entry_ids: list[int] = field(default_factory=list)
    operations: set[OutboxOperation] = field(default_factory=set)
    payload: dict[str, Any] = field(default_factory=dict)
    attempts: int = 0
    actor: str | None = None


class Limits:
    """The integrations' push rate limiters, kept across batches (an ``AsyncLimiter`` is a
    leaky bucket: a new one per batch would forget what was just sent)."""

    def __init__(self) -> None:
        self._known: dict[uuid.UUID, tuple[int, AsyncLimiter]] = {}

    def of(self, integration: Integration) -> tuple[AsyncLimiter, float]:
        """The limiter, and the writes per second it lets through."""
        rate = max(1, integration.push_rate_per_minute)
        known = self._known.get(integration.id)
        if known is None or known[0] != rate:
            limiter = AsyncLimiter(rate, 60) if rate < 60 else AsyncLimiter(rate / 60, 1)
            known = (rate, limiter)
            self._known[integration.id] = known
        return known[1], rate / 60


@dataclass
class Options:
    clock: Callable[[], datetime]
    concurrency: int
    delay: Callable[[int, float | None], float]  # back-off (attempts, Retry-After) → seconds
    limits: Limits


@dataclass
class Report:
    settled: int  # entries done with (delivered or refused)
    stop: bool  # the PSA is down: the rest waits


@dataclass
class _Write:
    """One linked record on its way: what was read, what is sent, how it went."""

    group: Group
    link: dict[str, Any]
    read: PsaRecord | None = None
    change: PsaChange | None = None
    sent: dict[str, Any] = field(default_factory=dict)  # column → encoded value sent
    conflicts: list[SyncConflict] = field(default_factory=list)  # won by the value sent
    answer: PsaRecord | None = None
    error: SyncError | None = None
    attempted: bool = False
    terms: tuple[dict[str, Any], dict[str, Any]] | None = None  # ``read`` in local terms
    marked_before: dict[str, Any] | None = None  # ``sending`` before this attempt's mark

    @property
    def psa_id(self) -> int:
        return int(self.link["psa_id"])


@dataclass
class _Entries:
    """What becomes of the batch's entries and links, written with the settle of their kind
    (``flush``), or at the end of the batch."""

    delivered: list[int] = field(default_factory=list)
    failed: dict[int, str] = field(default_factory=dict)  # entry id → PSA's message
    waiting: list[tuple[list[int], int]] = field(default_factory=list)  # (ids, attempts)
    link_errors: dict[Any, str] = field(default_factory=dict)
    unmarked: list[Any] = field(default_factory=list)  # links whose ``sending`` is cleared
    remarked: dict[Any, dict[str, Any] | None] = field(default_factory=dict)  # … put back
    settled: list[Any] = field(default_factory=list)  # links whose push may be done
    orphaned: list[Any] = field(default_factory=list)
    member: str | None = None  # the PSA user our writes appear as
    outage: str | None = None
    retry_after: float | None = None
    count: int = 0
    # For the permissions report, after the batch: 403s met, and kinds a write went through.
    denials: list[PermissionDenied] = field(default_factory=list)
    written: set[AssetKind] = field(default_factory=set)

    def deny(self, groups: Sequence[Group], exc: PermissionDenied) -> None:
        """The PSA's role refused these records' push: FAILED with its message."""
        self.denials.append(exc)
        for group in groups:
            for entry_id in group.entry_ids:
                self.failed[entry_id] = exc.message

    def wait(self, groups: Sequence[Group]) -> None:
        self.waiting.extend((g.entry_ids, g.attempts) for g in groups)

    def note_outage(self, exc: RetriableError | FatalError) -> None:
        self.outage = self.outage or exc.message
        if isinstance(exc, RetriableError) and exc.retry_after:
            self.retry_after = max(self.retry_after or 0, exc.retry_after)


# ------------------------------------------------------------------------------ the batch


async def push_batch(
    integration: Integration,
    provider: PsaProvider,
    groups: Sequence[Group],
    fence: Fence,
    options: Options,
) -> Report:
    """Deliver one batch of grouped entries (see the module docstring)."""
    entries = _Entries()
    ctx = RunContext(integration, None, clock=options.clock)
    ctx.reference = await load_index(integration)
    by_kind: dict[AssetKind, list[Group]] = defaultdict(list)
    deletes: list[Group] = []
    for group in groups:
        if OutboxOperation.DELETE in group.operations:
            deletes.append(group)
        else:
            by_kind[group.kind].append(group)
    for kind in ORDER:
        if by_kind.get(kind):
            await _push_kind(ctx, provider, kind, by_kind[kind], fence, options, entries)
    if deletes:
        await _delete(provider, deletes, options, entries)
    async with in_transaction():
        await fence.hold()
        await _flush(integration, entries, options)
    for denied in entries.denials:
        await permissions.record_denial(integration.id, denied)
    await permissions.record_writes_allowed(integration.id, entries.written)
    return Report(entries.count, entries.outage is not None)


async def _push_kind(
    ctx: RunContext,
    provider: PsaProvider,
    kind: AssetKind,
    groups: list[Group],
    fence: Fence,
    options: Options,
    entries: _Entries,
) -> None:
    integration = ctx.integration
    links = {
        as_uuid(row["local_id"]): row
        for row in await RecordLink.filter(
            integration_id=integration.id, kind=kind, local_id__in=[g.local_id for g in groups]
        ).values("id", "local_id", "psa_id", "psa_parent_id", "snapshot", "state", "sending")
    }
    present = set(await ASSET_MODELS[kind].filter(id__in=[g.local_id for g in groups]).values_list(
        "id", flat=True
    ))  # fmt: skip
    present_ids = {as_uuid(i) for i in present}
    writes: list[_Write] = []
    creates: list[Group] = []
    for group in groups:
        link = links.get(group.local_id)
        if group.local_id not in present_ids:  # deleted locally since: nothing left to push
            entries.delivered.extend(group.entry_ids)
        elif link is None or link["psa_id"] is None:
            creates.append(group)
        elif link["state"] != LinkState.SYNCED:  # orphaned meanwhile: the PSA record is gone
            entries.delivered.extend(group.entry_ids)
            entries.settled.append(link["id"])
        else:
            writes.append(_Write(group, link))
    if creates:
        if entries.outage is None:
            await _create(ctx, provider, kind, creates, fence, entries)
        else:
            entries.wait(creates)
    if writes:
        await _update(ctx, provider, kind, writes, fence, options, entries)


# ---------------------------------------------------------------- linked: read-merge-write


async def _update(
    ctx: RunContext,
    provider: PsaProvider,
    kind: AssetKind,
    writes: list[_Write],
    fence: Fence,
    options: Options,
    entries: _Entries,
) -> None:
    limiter, per_second = options.limits.of(ctx.integration)
    chunk = max(1, min(CHUNK, options.concurrency, int(per_second)))
    read_at = options.clock()
    for start in range(0, len(writes), chunk):
        part = writes[start : start + chunk]
        if entries.outage is not None:
            entries.wait([w.group for w in part])
            continue
        await _read(ctx, provider, kind, part, limiter, entries)
        # Our side as it is now, after the PSA's answered (edits keep coming meanwhile).
        side = await our_side(ctx, kind, [w.group.local_id for w in part], options.clock())
        translator = await Translator.load(ctx.integration, side.rows.values())
        for write in part:
            if write.read is not None:
                _decide(ctx, kind, write, side, translator)
        await _mark(fence, [w for w in part if w.change is not None])
        await _send(provider, kind, part, limiter, options.concurrency, entries)
    await _settle(ctx, kind, writes, fence, options, entries, read_at)


async def _read(
    ctx: RunContext,
    provider: PsaProvider,
    kind: AssetKind,
    part: list[_Write],
    limiter: AsyncLimiter,
    entries: _Entries,
) -> None:
    """The PSA's current version of each record (``write.read``; None: gone from the PSA,
    which the settle records as an orphan)."""
    try:
        async with limiter:
            current = await provider.read_for_write(
                kind, [(w.psa_id, w.link["psa_parent_id"]) for w in part]
            )
    except PermissionDenied as exc:
        entries.deny([w.group for w in part], exc)
        for write in part:
            entries.link_errors[write.link["id"]] = exc.message
        return
    except (RetriableError, FatalError) as exc:
        entries.note_outage(exc)
        entries.wait([w.group for w in part])
        return
    found = {record.psa_id: record for record in current}
    terms = await local_terms(ctx, await page_of(ctx, kind, current, {}))
    limits = column_limits(ASSET_MODELS[kind])
    for write in part:
        write.read = found.get(write.psa_id)
        bad = first_unstorable(write.read.values, limits) if write.read else None
        if write.read is None:
            entries.delivered.extend(write.group.entry_ids)
            entries.orphaned.append(write.link["id"])
            entries.unmarked.append(write.link["id"])
        elif bad is not None:
            # Its merge could not be stored (a conflict's PSA value, the PSA's changes):
            # the edit waits, visible, until the PSA's value is corrected.
            message = (
                f"The PSA's version of this record cannot be stored as it is (its {bad[0]} "
                f"{bad[1]}); nothing was pushed. Correct it in the PSA, then retry the push."
            )
            for entry_id in write.group.entry_ids:
                entries.failed[entry_id] = message
            entries.link_errors[write.link["id"]] = message
            write.read = None
        else:
            write.terms = terms[write.psa_id]


def _decide(
    ctx: RunContext, kind: AssetKind, write: _Write, side: LocalSide, translator: Translator
) -> None:
    """Merge what the PSA holds now with the base and our record: what to send, if anything.
    The merge's other outcomes (PSA changes to take, conflicts) are the settle's to write."""
    assert write.read is not None
    assert write.terms is not None
    local = side.rows.get(write.group.local_id)
    if side.context is None or local is None:
        return  # nothing flows to this PSA any more (two-way turned off meanwhile)
    values, snap = write.terms
    base = echo_base(write.link["snapshot"] or {}, write.link["sending"], snap)
    merged = merge_record(
        side.context,
        write.read,
        values,
        snap,
        base,
        local,
        write.group.local_id,
        side.open_conflicts.get(write.group.local_id, {}),
        side.times.get(write.group.local_id, {}),
    )
    columns = set(merged.psa)
    for together in TOGETHER.get(kind, ()):
        if columns & together:
            columns |= together & side.context.columns
    # A column sent only because its partner is (contact methods share one list in
    # ConnectWise) carries what the PSA holds: it is not ours to change, nor agreed by this.
    row = {**local, **{c: values[c] for c in columns - set(merged.psa) if c in values}}
    change, carried = translator.change(kind, row, sorted(columns))
    if change.empty:
        return
    write.change = change
    write.sent = {c: encode(row.get(c)) for c in carried if c in merged.psa}
    write.conflicts = [
        c for c in merged.conflicts if c.outcome == ConflictOutcome.LOCAL and c.field in carried
    ]


async def _mark(fence: Fence, writes: list[_Write]) -> None:
    """Record on each link what is about to be sent, and the conflicts whose winner is being
    sent, before sending: whatever becomes of the answer (lost, or the worker dies), the
    next read sees our own value, and the conflict it settled is on record."""
    if not writes:
        return
    rows = []
    for write in writes:
        write.marked_before = write.link["sending"]
        marked: dict[str, list[Any]] = {
            c: list(v) for c, v in (write.link["sending"] or {}).items()
        }
        for column, value in write.sent.items():
            if value not in marked.setdefault(column, []):
                marked[column].append(value)
        write.link["sending"] = marked
        rows.append({"id": write.link["id"], "sending": marked})
    conflicts = await _unrecorded([c for write in writes for c in write.conflicts])
    async with in_transaction():
        await fence.hold()
        await update_rows(RecordLink, ["sending"], rows)
        if conflicts:
            await SyncConflict.bulk_create(conflicts)


async def _unrecorded(conflicts: list[SyncConflict]) -> list[SyncConflict]:
    """Leave out the conflicts an earlier attempt of the same write recorded already."""
    if not conflicts:
        return []
    known = {
        (str(local_id), name, local_value, psa_value)
        for local_id, name, local_value, psa_value in await SyncConflict.filter(
            integration_id__in=list({c.integration_id for c in conflicts}),  # type: ignore[attr-defined]
            local_id__in=[c.local_id for c in conflicts],
            outcome=ConflictOutcome.LOCAL,
        ).values_list("local_id", "field", "local_value", "psa_value")
    }
    return [
        c for c in conflicts if (str(c.local_id), c.field, c.local_value, c.psa_value) not in known
    ]


async def _send(
    provider: PsaProvider,
    kind: AssetKind,
    part: list[_Write],
    limiter: AsyncLimiter,
    concurrency: int,
    entries: _Entries,
) -> None:
    gate = asyncio.Semaphore(concurrency)

    async def send(write: _Write) -> None:
        assert write.change is not None
        async with gate:
            if entries.outage is not None:
                return  # the PSA is down: the rest waits with the failed one
            async with limiter:
                write.attempted = True
                try:
                    write.answer = await provider.update_record(
                        kind, write.psa_id, write.link["psa_parent_id"], write.change
                    )
                except (RecordError, PermissionDenied) as exc:
                    write.error = exc
                    if isinstance(exc, PermissionDenied):
                        entries.denials.append(exc)
                except (RetriableError, FatalError) as exc:
                    write.error = exc
                    entries.note_outage(exc)

    await gather_all(*(send(w) for w in part if w.change is not None))


async def _settle(
    ctx: RunContext,
    kind: AssetKind,
    writes: list[_Write],
    fence: Fence,
    options: Options,
    entries: _Entries,
    read_at: datetime,
) -> None:
    """Apply the answers (and, where nothing was sent, the reads) in one transaction with
    what becomes of the entries."""
    records: list[PsaRecord] = []
    pushed: dict[int, Pushed] = {}
    links: dict[int, LinkRow] = {}
    for write in writes:
        group, link = write.group, write.link
        if write.read is None:
            continue  # gone (orphaned) or not read (waiting)
        if write.change is None:  # nothing to send: what was read is applied like a pull
            records.append(write.read)
            pushed[write.psa_id] = Pushed()
            entries.delivered.extend(group.entry_ids)
            entries.settled.append(link["id"])
            entries.unmarked.append(link["id"])  # the read, merged, supersedes earlier marks
        elif write.answer is not None:
            records.append(write.answer)
            pushed[write.psa_id] = Pushed(write.sent)
            entries.delivered.extend(group.entry_ids)
            entries.settled.append(link["id"])
            entries.unmarked.append(link["id"])
            entries.member = write.answer.updated_by or entries.member
            entries.written.add(kind)
        elif isinstance(write.error, RecordError | PermissionDenied):
            for entry_id in group.entry_ids:
                entries.failed[entry_id] = write.error.message
            entries.link_errors[link["id"]] = write.error.message
            entries.remarked[link["id"]] = write.marked_before  # refused: not in the PSA
            continue
        else:  # outage, no answer, or not attempted: wait (an attempted mark stays)
            entries.wait([group])
            if not write.attempted:
                entries.remarked[link["id"]] = write.marked_before
            continue
        links[write.psa_id] = _link_row(ctx, link)

    async def also() -> None:
        await _flush(ctx.integration, entries, options)

    page = await page_of(ctx, kind, records, links, read_at=read_at)
    page.pushed = pushed
    page.fence = fence
    page.also = also
    await apply(ctx, page)


def _link_row(ctx: RunContext, link: dict[str, Any]) -> LinkRow:
    return LinkRow(
        link["id"],
        as_uuid(link["local_id"]),
        int(link["psa_id"]),
        link["psa_parent_id"],
        LinkState(link["state"]),
        None,
        False,
        ctx.integration.settings_version,
    )


# ------------------------------------------------------------------------------ creates


async def _create(
    ctx: RunContext,
    provider: PsaProvider,
    kind: AssetKind,
    groups: list[Group],
    fence: Fence,
    entries: _Entries,
) -> None:
    integration = ctx.integration
    rows = await local_rows(kind, [g.local_id for g in groups], columns_of(integration, kind))
    ordered = [rows[g.local_id] for g in groups if g.local_id in rows]
    outcomes: list[push_create.Outcome] = []
    try:
        outcomes = await push_create.plan(
            integration, provider, kind, ordered, provider.display_name
        )
        await push_create.execute(provider, kind, outcomes, provider.display_name)
    except PermissionDenied as exc:  # a lookup the role may not make: refused, not an outage
        entries.deny(groups, exc)
        return
    except (RetriableError, FatalError) as exc:
        # Creates that did land before the failure have no link yet: the next attempt
        # matches them in the PSA instead of creating them again.
        entries.note_outage(exc)
        entries.wait(groups)
        return
    created = push_create.Created()
    await push_create.record_outcomes(integration, kind, outcomes, rows, created, ctx.clock())
    by_id = {g.local_id: g for g in groups}
    for outcome in outcomes:
        group = by_id[outcome.local_id]
        if outcome.code == "psa_error":  # refused: kept for retryPush, like an update
            for entry_id in group.entry_ids:
                entries.failed[entry_id] = outcome.message
            if outcome.denied is not None:
                entries.denials.append(outcome.denied)
        else:
            entries.delivered.extend(group.entry_ids)
            if outcome.code == "create":
                entries.written.add(kind)
    entries.member = created.member or entries.member
    await push_create.write_created(integration, created, fence, ctx.clock())


# ------------------------------------------------------------------------------ deletes


async def _delete(
    provider: PsaProvider, groups: list[Group], options: Options, entries: _Entries
) -> None:
    gate = asyncio.Semaphore(options.concurrency)

    async def delete(group: Group) -> None:
        async with gate:
            if entries.outage is not None:
                entries.wait([group])
                return
            payload = group.payload
            try:
                await provider.delete_record(
                    group.kind, int(payload["psa_id"]), payload.get("psa_parent_id")
                )
            except RecordError as exc:
                for entry_id in group.entry_ids:
                    entries.failed[entry_id] = exc.message
                return
            except PermissionDenied as exc:
                entries.deny([group], exc)
                return
            except (RetriableError, FatalError) as exc:
                entries.note_outage(exc)
                entries.wait([group])
                return
            entries.delivered.extend(group.entry_ids)
            log.info("deleted %s %s in the PSA", group.kind.value, payload.get("psa_id"))

    await gather_all(*(delete(g) for g in groups))


# ------------------------------------------------------------------ what became of entries


async def _flush(integration: Integration, entries: _Entries, options: Options) -> None:
    """Write (in the caller's transaction) what became of the entries so far, and forget it."""
    now = options.clock()
    if entries.delivered:
        await OutboxEntry.filter(id__in=entries.delivered).delete()
    for entry_id, message in entries.failed.items():
        await OutboxEntry.filter(id=entry_id).update(
            status=OutboxStatus.FAILED, last_error=message, attempts=F("attempts") + 1
        )
    for link_id, message in entries.link_errors.items():
        await RecordLink.filter(id=link_id).update(push_state=PushState.FAILED, last_error=message)
    if entries.waiting:
        attempts = max(a for _, a in entries.waiting) + 1
        when = now + timedelta(seconds=options.delay(attempts, entries.retry_after))
        ids = [i for entry_ids, _ in entries.waiting for i in entry_ids]
        await OutboxEntry.filter(id__in=ids).update(
            next_attempt_at=when,
            attempts=F("attempts") + 1,
            last_error=entries.outage or "the PSA did not answer",
        )
        await Integration.filter(id=integration.id).update(push_not_before=when)
        log.warning("pushes to %s wait until %s: %s", integration.name, when, entries.outage)
    if entries.unmarked:
        await RecordLink.filter(id__in=entries.unmarked).update(sending=None)
    if entries.remarked:
        rows = [{"id": link, "sending": marks} for link, marks in entries.remarked.items()]
        await update_rows(RecordLink, ["sending"], rows)
    if entries.orphaned:
        await RecordLink.filter(id__in=entries.orphaned).update(
            state=LinkState.ORPHANED, updated_at=now
        )
    if entries.settled:
        remaining = OutboxEntry.filter(integration_id=integration.id).values("local_id")
        await (
            RecordLink.filter(id__in=entries.settled)
            .exclude(local_id__in=Subquery(remaining))
            .update(push_state=PushState.NONE, last_error=None)
        )
    if entries.member and entries.member != integration.psa_member:
        await Integration.filter(id=integration.id).update(psa_member=entries.member)
        integration.psa_member = entries.member
    entries.count += len(entries.delivered) + len(entries.failed)
    for name in ("delivered", "waiting", "unmarked", "settled", "orphaned"):
        getattr(entries, name).clear()
    entries.failed.clear()
    entries.link_errors.clear()
    entries.remarked.clear()
