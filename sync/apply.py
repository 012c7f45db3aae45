"""Apply one page of PSA records to one asset kind: plan in memory, then write once.

For each record: out of scope → its link is orphaned; linked and unchanged → nothing is
written; linked and changed → the asset takes the PSA values (one-way: the PSA wins);
unlinked → first-link matching (features.md §A5): one candidate links, none creates,
several are reported as ``ambiguous_match`` and left alone. Links the page should have
covered but did not return are orphaned (deleted in the PSA or out of its filter).

Linked records are merged inside the write transaction, on their link and local record as
locked and read there (``lock_rows``): a user's edit or a push's result committed while the
page was being planned is merged, never overwritten. A record whose link a push moved after
this page's PSA read began (``Page.read_at``) is left alone: the push recorded a newer
version. The transaction does no network I/O.

Push results go through here too (``Page.pushed``): the PSA's answer to a write is applied
like a pull of that record, with the values psasync wrote taken as agreed, so a change a PSA
user made between the push's read and its write lands locally in the same transaction.
"""

from __future__ import annotations

import functools
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from tortoise.expressions import F, Q
from tortoise.transactions import in_transaction

from models import (
    ASSET_MODELS,
    Asset,
    AssetKind,
    ChangeSource,
    ConflictOutcome,
    ContactSource,
    FieldChange,
    LinkState,
    OutboxEntry,
    OutboxOperation,
    PushState,
    RecordLink,
    RunStatus,
    SyncConflict,
    SyncRun,
    SyncRunIssue,
    match_keys,
)
from models.bulk import insert_rows, lock_rows, update_instances
from models.text import column_limits, first_unstorable
from sync import history, outbox
from sync.columns import CODES, RELATIONS, as_uuid, content_hash, stamps
from sync.connections import field_map, table_of
from sync.context import RunContext
from sync.errors import RunPreempted
from sync.leases import Fence
from sync.providers.base import PsaRecord
from sync.pull_merge import (
    LOCAL_SOURCES,
    MergeContext,
    echo_base,
    latest_local_times,
    merge_record,
    uses_newest,
)
from sync.push_values import local_rows
from sync.snapshot import snapshot_of

LINK_COLUMNS = (
    "id",
    "local_id",
    "psa_id",
    "psa_parent_id",
    "state",
    "psa_stamp",
    "stamp_trusted",
    "settings_version",
    "psa_hash",
)


@dataclass(slots=True)
class LinkRow:
    id: uuid.UUID
    local_id: uuid.UUID
    psa_id: int
    psa_parent_id: int | None
    state: LinkState
    psa_stamp: int | None
    stamp_trusted: bool
    settings_version: int
    psa_hash: str | None = None

    @classmethod
    def of(cls, row: dict[str, Any]) -> LinkRow:
        return cls(
            row["id"],
            as_uuid(row["local_id"]),
            row["psa_id"],
            row["psa_parent_id"],
            LinkState(row["state"]),
            row["psa_stamp"],
            bool(row["stamp_trusted"]),
            row["settings_version"],
            row["psa_hash"],
        )


async def links_where(ctx: RunContext, kind: AssetKind, where: Q) -> dict[int, LinkRow]:
    rows = await RecordLink.filter(where, integration_id=ctx.integration.id, kind=kind).values(
        *LINK_COLUMNS
    )
    return {row["psa_id"]: LinkRow.of(row) for row in rows}


async def resolve(
    ctx: RunContext, kind: AssetKind, psa_ids: Iterable[int | None]
) -> dict[int, LinkRow]:
    """Synced links of ``kind`` for these PSA ids (orphans do not resolve)."""
    wanted = {i for i in psa_ids if i is not None}
    if not wanted:
        return {}
    found = await links_where(ctx, kind, Q(psa_id__in=wanted, state=LinkState.SYNCED))
    if ctx.dry_run:  # records this dry run would have created resolve too
        for psa_id in wanted - found.keys():
            planned = ctx.planned[kind].get(psa_id)
            if planned is not None:
                found[psa_id] = planned
    return found


@dataclass
class Pushed:
    """What a push wrote to one PSA record, for applying the PSA's answer (``Page.pushed``;
    empty when nothing was sent and what was read is applied).

    ``sent``: the columns written, as encoded local values: the answer's value of each is
    agreed (a PSA that stored another form of it, e.g. trimmed, gives that form to the local
    record). Conflicts the push settled in our favour were recorded before it was sent; the
    others are found again when the answer is merged.
    """

    sent: dict[str, Any] = field(default_factory=dict)


@dataclass
class Page:
    """What a page needs besides its records, gathered by the caller before ``apply``."""

    kind: AssetKind
    records: Sequence[PsaRecord]
    links: dict[int, LinkRow]  # every link the page covers, returned or not
    organizations: dict[int, LinkRow] = field(default_factory=dict)
    # Other related records (sites, contacts), resolved only for the records that need a
    # full look: on a resync where nothing changed, that is none of them.
    related: RelatedLoader | None = None
    out_of_scope: Callable[[PsaRecord], str | None] = lambda _record: None
    checkpoint: dict[str, Any] | None = None
    # When the PSA read of these records began: a link a push moved after it holds a newer
    # version than the page, which then leaves that record alone. None: when ``apply`` runs.
    read_at: datetime | None = None
    # Push results: PSA id → what was written to that record (see ``Pushed``).
    pushed: Mapping[int, Pushed] = field(default_factory=dict)
    # A fence to hold in the write transaction (results of a leased job), and the caller's
    # own writes for the same transaction.
    fence: Fence | None = None
    also: Callable[[], Awaitable[None]] | None = None


Related = dict[AssetKind, dict[int, LinkRow]]
RelatedLoader = Callable[[list[PsaRecord]], Awaitable[Related]]


@dataclass
class _Linked:
    """A changed record with a link, to merge once its link is read in the transaction."""

    record: PsaRecord
    values: dict[str, Any]
    snap: dict[str, Any]
    link: LinkRow


@dataclass
class _Plan:
    creates: list[dict[str, Any]] = field(default_factory=list)
    new_links: list[dict[str, Any]] = field(default_factory=list)
    updates: dict[uuid.UUID, tuple[dict[str, Any], LinkRow | None]] = field(default_factory=dict)
    linked: list[_Linked] = field(default_factory=list)
    link_updates: list[RecordLink] = field(default_factory=list)
    orphans: list[uuid.UUID] = field(default_factory=list)
    issues: list[SyncRunIssue] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)
    # Two-way sync: merged links (their push state and error are the outbox's business),
    # pushes to queue, conflicts and field history (history of one-way pulls too).
    merged_links: list[RecordLink] = field(default_factory=list)
    overlays: list[RecordLink] = field(default_factory=list)  # answers behind a newer read
    outbox: list[OutboxEntry] = field(default_factory=list)
    conflicts: list[SyncConflict] = field(default_factory=list)
    reopened: list[tuple[uuid.UUID, dict[str, Any]]] = field(default_factory=list)
    settled: list[uuid.UUID] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class LocalSide:
    """Our side of linked records a two-way merge needs."""

    rows: dict[uuid.UUID, dict[str, Any]] = field(default_factory=dict)
    open_conflicts: dict[uuid.UUID, dict[str, uuid.UUID]] = field(default_factory=dict)
    times: dict[uuid.UUID, dict[str, datetime]] = field(default_factory=dict)
    context: MergeContext | None = None


@dataclass
class _Fresh:
    """A link as read (and locked) in the write transaction."""

    snapshot: dict[str, Any]
    sending: dict[str, Any] | None
    synced_at: datetime | None
    psa_stamp: int | None
    state: LinkState


async def apply(ctx: RunContext, page: Page) -> Counter[str]:
    """Plan and write one page; returns the counts it adds to the run."""
    plan = _Plan()
    now = ctx.clock()
    model = ASSET_MODELS[page.kind]
    settings_version = ctx.integration.settings_version

    changed: list[PsaRecord] = []
    seen: set[int] = set()
    for record in page.records:
        seen.add(record.psa_id)
        link = page.links.get(record.psa_id)
        reason = page.out_of_scope(record)
        if (
            reason is None
            and page.kind != AssetKind.ORGANIZATION
            and page.organizations.get(record.parent_psa_id or -1) is None
        ):
            reason = "organization_not_synced"
        if reason is not None:
            ctx.note(record.psa_id, f"out of scope: {reason}")
            if link is not None and link.state == LinkState.SYNCED:
                plan.orphans.append(link.id)
                plan.counts["orphaned"] += 1
            else:
                plan.counts["skipped"] += 1
            continue
        if record.psa_id not in page.pushed and _unchanged(link, record, settings_version):
            plan.counts["unchanged"] += 1
            ctx.note(record.psa_id, "unchanged")
            continue
        changed.append(record)

    related = await page.related(changed) if changed and page.related else {}
    pending: list[tuple[PsaRecord, dict[str, Any], dict[str, Any]]] = []
    limits = _limits(model)
    for record in changed:
        bad = first_unstorable(record.values, limits)
        if bad is not None:
            # Skipped as it is, never stored altered: its link (if any) keeps the last
            # version stored, and the record is taken once the PSA holds a storable value.
            plan.counts["failed"] += 1
            plan.issues.extend(_unstorable(ctx, page.kind, record, *bad))
            ctx.note(record.psa_id, f"not stored: its {bad[0]} {bad[1]}")
            continue
        values = _local_values(ctx, page, related, record)
        pending.append((record, values, snapshot_of(values, record.refs)))

    # Links the page covered that the PSA did not return: deleted, or filtered out there.
    for psa_id, link in page.links.items():
        if psa_id not in seen and link.state == LinkState.SYNCED:
            plan.orphans.append(link.id)
            plan.counts["orphaned"] += 1
            ctx.note(psa_id, "orphaned: gone from the PSA")

    unlinked = [(r, v, s) for r, v, s in pending if r.psa_id not in page.links]
    candidates = await _candidates(ctx, page.kind, model, unlinked)

    claimed: dict[uuid.UUID, int] = {}
    for record, values, snap in pending:
        link = page.links.get(record.psa_id)
        if link is not None:
            plan.linked.append(_Linked(record, values, snap, link))
            continue
        found = candidates.get(values["match_key"], [])
        if len(found) > 1:
            plan.counts["failed"] += 1
            plan.issues.extend(_ambiguous(ctx, page.kind, record, found))
            ctx.note(record.psa_id, "ambiguous match")
            continue
        if found and found[0] in claimed:
            # Two PSA records match one local record: linking either would be a guess.
            plan.counts["failed"] += 1
            plan.issues.extend(_ambiguous(ctx, page.kind, record, found))
            ctx.note(record.psa_id, "ambiguous match")
            continue
        local_id = found[0] if found else uuid.uuid4()
        claimed[local_id] = record.psa_id
        if found:
            plan.updates[local_id] = (values, None)
            plan.counts["linked"] += 1
            ctx.note(record.psa_id, "linked")
        else:
            plan.creates.append(_new_asset(ctx, page.kind, local_id, values, now))
            plan.counts["created"] += 1
            ctx.note(record.psa_id, "created")
        plan.new_links.append(
            {
                "id": uuid.uuid4(),
                "integration_id": ctx.integration.id,
                "kind": page.kind,
                "local_id": local_id,
                "psa_id": record.psa_id,
                "psa_parent_id": record.parent_psa_id,
                "snapshot": snap,
                "state": LinkState.SYNCED,
                "refs_pending": _refs_pending(record, values),
                "created_by_sync": not found,
                "created_at": now,
                "updated_at": now,
                **_stamps(ctx, record, now, values),
            }
        )
        if ctx.dry_run:
            ctx.planned[page.kind][record.psa_id] = LinkRow(
                uuid.uuid4(), local_id, record.psa_id, record.parent_psa_id,
                LinkState.SYNCED, None, False, settings_version,
            )  # fmt: skip

    if ctx.dry_run:
        # The run's own rows are its report: a dry run keeps its counts and its issues.
        await _plan_links(ctx, page, plan, now)
        async with in_transaction():
            if plan.issues:
                await SyncRunIssue.bulk_create(plan.issues)
            await record_progress(ctx, plan.counts, page.checkpoint)
    else:
        await _write(ctx, model, plan, page, now)
    return plan.counts


# The text columns' lengths, once per model: the check runs for every changed record.
_limits = functools.cache(column_limits)


def _unchanged(link: LinkRow | None, record: PsaRecord, settings_version: int) -> bool:
    """Nothing to apply: the link holds this record's stamp (trusted) or its content."""
    if link is None or link.state != LinkState.SYNCED or link.settings_version != settings_version:
        return False
    if (
        link.stamp_trusted
        and record.updated_at is not None
        and link.psa_stamp == int(record.updated_at.timestamp())
    ):
        return True
    return link.psa_hash is not None and link.psa_hash == content_hash(record)


def _local_values(
    ctx: RunContext, page: Page, related: Related, record: PsaRecord
) -> dict[str, Any]:
    values = dict(record.values)
    for code_kind, psa_ids in record.codes.items():
        values[CODES[code_kind]] = ctx.reference.local_id(code_kind, psa_ids)
    if page.kind != AssetKind.ORGANIZATION:
        org = page.organizations.get(record.parent_psa_id or -1)
        values["organization_id"] = org.local_id if org else None
    for name, psa_id in record.refs.items():
        target_kind, column = RELATIONS[name]
        target = related.get(target_kind, {}).get(psa_id) if psa_id is not None else None
        if (
            target is not None
            and name == "contact"
            and target.psa_parent_id != record.parent_psa_id
        ):
            target = None  # a contact of another company is never attached (features §A2)
        values[column] = target.local_id if target else None
    values["match_key"] = _match_key(page.kind, values)
    return values


def _match_key(kind: AssetKind, values: dict[str, Any]) -> str:
    return match_keys.for_values(kind, values)


def _refs_pending(record: PsaRecord, values: dict[str, Any]) -> bool:
    """A relation the PSA names but we could not resolve yet (its target may come later)."""
    return any(
        psa_id is not None and values.get(RELATIONS[name][1]) is None
        for name, psa_id in record.refs.items()
    )


async def _plan_links(ctx: RunContext, page: Page, plan: _Plan, now: datetime) -> None:
    """Plan the linked records against their links and local records as they are now (in
    the write transaction, after ``_lock``)."""
    if not plan.linked:
        return
    fresh = await _fresh_links(plan.linked)
    ids = [
        item.link.local_id
        for item in plan.linked
        if item.link.state == LinkState.SYNCED
        and (current := fresh.get(item.link.id)) is not None
        and current.state == LinkState.SYNCED
    ]
    ours = await our_side(ctx, page.kind, ids, now)
    for linked in plan.linked:
        current = fresh.get(linked.link.id)
        if current is None:  # the local record was deleted meanwhile: its link went with it
            plan.counts["unchanged"] += 1
            ctx.note(linked.record.psa_id, "unchanged")
            continue
        _plan_linked(ctx, page, plan, linked, current, now, ours)


async def _fresh_links(linked: Sequence[_Linked]) -> dict[uuid.UUID, _Fresh]:
    rows = await RecordLink.filter(id__in=[item.link.id for item in linked]).values(
        "id", "snapshot", "sending", "synced_at", "psa_stamp", "state"
    )
    return {
        row["id"]: _Fresh(
            row["snapshot"] or {},
            row["sending"],
            row["synced_at"],
            row["psa_stamp"],
            LinkState(row["state"]),
        )
        for row in rows
    }


def _plan_linked(
    ctx: RunContext,
    page: Page,
    plan: _Plan,
    linked: _Linked,
    current: _Fresh,
    now: datetime,
    ours: LocalSide,
) -> None:
    record, values, snap, link = linked.record, linked.values, linked.snap, linked.link
    pushed = page.pushed.get(record.psa_id)
    moved = (
        page.read_at is not None
        and current.synced_at is not None
        and current.synced_at > page.read_at
    )
    stamp = record.updated_at
    older = (
        current.psa_stamp is not None
        and stamp is not None
        and int(stamp.timestamp()) < current.psa_stamp
    )
    if pushed is None and (moved or older):
        # Older than what we last read or wrote (a slow page, a late notice, a push that
        # landed since this read began): stale data never wins.
        plan.counts["unchanged"] += 1
        ctx.note(record.psa_id, "stale")
        return
    relinked = link.state != LinkState.SYNCED or current.state != LinkState.SYNCED
    if not relinked and ours.context is not None and link.local_id in ours.rows:
        _plan_merged(ctx, plan, linked, current, pushed, moved or older, now, ours)
        return
    base = current.snapshot
    if base == snap and not relinked:
        # Same values under a new stamp (an unmapped field changed): remember the stamp only.
        plan.counts["unchanged"] += 1
        ctx.note(record.psa_id, "unchanged")
    else:
        plan.counts["linked" if relinked else "updated"] += 1
        ctx.note(record.psa_id, "linked" if relinked else "updated")
        plan.updates[link.local_id] = (values, link)
        if not relinked:
            plan.history.extend(_pulled(ctx, page.kind, link.local_id, base, snap, now))
    plan.link_updates.append(
        RecordLink(
            id=link.id,
            snapshot=snap,
            state=LinkState.SYNCED,
            psa_parent_id=record.parent_psa_id,
            refs_pending=_refs_pending(record, values),
            last_error=None,
            updated_at=now,
            **_stamps(ctx, record, now, values),
        )
    )


def _pulled(
    ctx: RunContext,
    kind: AssetKind,
    local_id: uuid.UUID,
    base: Mapping[str, Any],
    snap: Mapping[str, Any],
    now: datetime,
) -> list[dict[str, Any]]:
    """Field history of a one-way pull: each mapped column the PSA changed since the base
    (the local record held the base: one-way fields are read-only locally)."""
    columns = field_map(table_of(ctx.integration)).columns(kind)
    return [
        history.change(
            ctx.integration.account_id,  # type: ignore[attr-defined]
            kind,
            local_id,
            column,
            base.get(column),
            snap.get(column),
            ChangeSource.PSA,
            now,
            actor=ctx.integration.name,
            integration_id=ctx.integration.id,
        )
        for column in sorted(columns)
        if column in snap and base.get(column) != snap[column]
    ]


def _plan_merged(
    ctx: RunContext,
    plan: _Plan,
    linked: _Linked,
    current: _Fresh,
    pushed: Pushed | None,
    behind: bool,
    now: datetime,
    ours: LocalSide,
) -> None:
    """Merge one record three-way. For a push's answer (``pushed``), what was written is
    the base of its columns; when another reader recorded a newer version meanwhile
    (``behind``), only those columns are taken from the answer."""
    assert ours.context is not None
    record, values, snap, link = linked.record, linked.values, linked.snap, linked.link
    context = ours.context
    base = dict(current.snapshot)
    if pushed is not None:
        base.update(pushed.sent)
        if behind:
            context = replace(context, columns=context.columns & frozenset(pushed.sent))
    merged = merge_record(
        context,
        record,
        values,
        snap,
        echo_base(base, current.sending, snap),
        ours.rows[link.local_id],
        link.local_id,
        ours.open_conflicts.get(link.local_id, {}),
        ours.times.get(link.local_id, {}),
    )
    if merged.local:
        plan.updates[link.local_id] = (merged.local, link)
        plan.counts["updated"] += 1
    else:
        plan.counts["unchanged"] += 1
    ctx.note(record.psa_id, "updated" if merged.local else "unchanged")
    snapshot = merged.snapshot
    state = PushState.PENDING if merged.push else PushState.NONE
    if pushed is not None and behind:
        # Another reader recorded a newer version: keep its base and stamps, and take the
        # written columns from the answer.
        snapshot = _overlay(current.snapshot, merged.snapshot, context.columns)
        plan.overlays.append(
            RecordLink(id=link.id, snapshot=snapshot, push_state=state, updated_at=now)
        )
    else:
        plan.merged_links.append(
            RecordLink(
                id=link.id,
                snapshot=snapshot,
                state=LinkState.SYNCED,
                psa_parent_id=record.parent_psa_id,
                refs_pending=_refs_pending(record, values),
                push_state=state,
                updated_at=now,
                **_stamps(ctx, record, now, values),
            )
        )
    if merged.push and pushed is None:  # (a push's own local changes have their entries)
        plan.outbox.append(
            OutboxEntry(
                integration_id=ctx.integration.id,
                kind=context.kind,
                local_id=link.local_id,
                operation=OutboxOperation.UPDATE,
                created_by=ctx.integration.name,
            )
        )
    plan.conflicts.extend(merged.conflicts)
    opened = ours.open_conflicts.get(link.local_id, {})
    plan.reopened.extend((opened[f], v) for f, v in merged.reopened.items())
    plan.settled.extend(opened[f] for f in merged.settled)
    plan.history.extend(merged.history)
    if pushed is not None:
        plan.history.extend(
            history.change(
                context.account_id,
                context.kind,
                link.local_id,
                column,
                current.snapshot.get(column),
                snapshot.get(column),
                ChangeSource.PUSH,
                now,
                actor=context.integration_name,
                integration_id=context.integration_id,
            )
            for column in sorted(pushed.sent)
            if column in snapshot
        )


def _overlay(
    base: Mapping[str, Any], answer: Mapping[str, Any], columns: frozenset[str]
) -> dict[str, Any]:
    """``base`` with ``columns`` (and their relations' PSA ids) taken from ``answer``."""
    snapshot = {**base, **{c: answer[c] for c in columns if c in answer}}
    refs = dict(base.get("_refs") or {})
    for name, (_kind, column) in RELATIONS.items():
        if column in columns:
            refs.pop(name, None)
            found = (answer.get("_refs") or {}).get(name)
            if found is not None:
                refs[name] = found
    snapshot["_refs"] = refs
    return snapshot


async def our_side(
    ctx: RunContext, kind: AssetKind, ids: Sequence[uuid.UUID], now: datetime
) -> LocalSide:
    """Under two-way sync, our records behind linked PSA records (one query each for values,
    open conflicts and, for NEWEST_WINS, local change times); empty under one-way sync."""
    ours = LocalSide()
    if not ctx.two_way or ctx.directions is None or not ids:
        return ours
    columns = field_map(table_of(ctx.integration)).columns(kind)
    ours.context = MergeContext(
        ctx.integration.id,
        ctx.integration.account_id,  # type: ignore[attr-defined]
        ctx.integration.name,
        kind,
        columns,
        ctx.directions,
        ctx.clocks,
        now,
    )
    ours.rows = await local_rows(kind, ids, columns)
    for local_id, name, conflict_id in await SyncConflict.filter(
        integration_id=ctx.integration.id,
        kind=kind,
        local_id__in=list(ids),
        outcome=ConflictOutcome.OPEN,
    ).values_list("local_id", "field", "id"):
        ours.open_conflicts.setdefault(as_uuid(local_id), {})[name] = as_uuid(conflict_id)
    if uses_newest(ctx.directions):
        ours.times = latest_local_times(
            await FieldChange.filter(
                kind=kind, local_id__in=list(ids), source__in=list(LOCAL_SOURCES)
            ).values_list("local_id", "field", "changed_at")
        )
    return ours


async def local_terms(
    ctx: RunContext, page: Page
) -> dict[int, tuple[dict[str, Any], dict[str, Any]]]:
    """Each record of the page in local terms, as a pull reads it: PSA id → (values, the
    same encoded as a link's snapshot)."""
    records = list(page.records)
    related = await page.related(records) if records and page.related else {}
    terms = {}
    for record in records:
        values = _local_values(ctx, page, related, record)
        terms[record.psa_id] = (values, snapshot_of(values, record.refs))
    return terms


def _stamps(
    ctx: RunContext, record: PsaRecord, now: datetime, values: dict[str, Any]
) -> dict[str, Any]:
    # A link whose relations are still pending holds less than the record says: no digest,
    # so the record is looked at again until they resolve.
    pending = _refs_pending(record, values)
    return {
        **stamps(record.updated_at, now, None if pending else content_hash(record)),
        "settings_version": ctx.integration.settings_version,
    }


def _new_asset(
    ctx: RunContext, kind: AssetKind, local_id: uuid.UUID, values: dict[str, Any], now: datetime
) -> dict[str, Any]:
    row = {
        **values,
        "id": local_id,
        "account_id": ctx.integration.account_id,  # type: ignore[attr-defined]
        "created_at": now,
        "updated_at": now,
        "version": 1,
    }
    if kind == AssetKind.CONTACT:
        row["source"] = ContactSource.PSA
        row["primary_email"] = _primary_email(values)
    return row


def _primary_email(values: dict[str, Any]) -> str | None:
    emails = values.get("emails") or []
    chosen = next((e for e in emails if e.get("primary")), emails[0] if emails else None)
    return str(chosen["value"]).lower() if chosen and chosen.get("value") else None


def _label(record: PsaRecord) -> str:
    """How a record is named in an issue: repr-quoted (a NUL or a lone surrogate in it is
    escaped, so the message itself can be stored) and cut short."""
    values = record.values
    label = values.get("name") or " ".join(
        str(v) for v in (values.get("first_name"), values.get("last_name")) if v
    )
    text = repr(str(label))
    return text if len(text) <= 80 else text[:77] + "...'"


def _unstorable(
    ctx: RunContext, kind: AssetKind, record: PsaRecord, path: str, reason: str
) -> list[SyncRunIssue]:
    """The run's issue for a record holding a value the database cannot store as it is."""
    if ctx.run is None:
        return []
    return [
        SyncRunIssue(
            id=uuid.uuid4(),
            run_id=ctx.run.id,
            code="unstorable_value",
            kind=kind,
            psa_id=record.psa_id,
            message=(
                f"{kind.value} {_label(record)} (PSA id {record.psa_id}) was not synced: its "
                f"{path} {reason}. Correct it in the PSA; the next sync takes it."
            ),
            detail={"field": path, "reason": reason},
        )
    ]


def _ambiguous(
    ctx: RunContext, kind: AssetKind, record: PsaRecord, candidates: list[uuid.UUID]
) -> list[SyncRunIssue]:
    """The run's issue for a record that matches several local ones (outside a run, a
    notice's or a push's, the outcome says it: nothing to keep)."""
    if ctx.run is None:
        return []
    names = ", ".join(str(c) for c in candidates)
    label = _label(record)
    return [
        SyncRunIssue(
            id=uuid.uuid4(),
            run_id=ctx.run.id,
            code="ambiguous_match",
            kind=kind,
            psa_id=record.psa_id,
            message=(
                f"{kind.value} {label} (PSA id {record.psa_id}) matches {len(candidates)} local "
                f"records ({names}); "
                "none was linked. Rename or remove the duplicates, then sync again."
            ),
            detail={"candidates": [str(c) for c in candidates]},
        )
    ]


async def _candidates(
    ctx: RunContext,
    kind: AssetKind,
    model: type[Asset],
    unlinked: list[tuple[PsaRecord, dict[str, Any], dict[str, Any]]],
) -> dict[str, list[uuid.UUID]]:
    """Local records with the same match key that this integration has not linked yet."""
    keys = {values["match_key"] for _, values, _ in unlinked}
    if not keys:
        return {}
    rows = await model.filter(
        account_id=ctx.integration.account_id,  # type: ignore[attr-defined]
        match_key__in=keys,
    ).values_list("id", "match_key")
    if not rows:
        return {}
    taken = set(
        await RecordLink.filter(
            integration_id=ctx.integration.id,
            kind=kind,
            local_id__in=[r[0] for r in rows],
            psa_id__isnull=False,  # a NOT_PUSHED record is still free to match
        ).values_list("local_id", flat=True)
    )
    taken_ids = {as_uuid(t) for t in taken}
    found: dict[str, list[uuid.UUID]] = {}
    for local_id, key in rows:
        if as_uuid(local_id) not in taken_ids:
            found.setdefault(key, []).append(as_uuid(local_id))
    return found


async def _write(
    ctx: RunContext, model: type[Asset], plan: _Plan, page: Page, now: datetime
) -> None:
    async with in_transaction():
        if page.fence is not None:
            await page.fence.hold()
        # Records first, then links: the order an edit takes them in (no lock cycles).
        await lock_rows(
            model, sorted({*plan.updates, *(item.link.local_id for item in plan.linked)}, key=str)
        )
        await lock_rows(RecordLink, [item.link.id for item in plan.linked])
        await _drop_taken(ctx, model.kind, plan)
        await _plan_links(ctx, page, plan, now)
        rows = await _updated_rows(model, plan, now)
        if plan.creates:
            await insert_rows(model, plan.creates)
        if rows:
            await update_instances(model, rows, _updated_columns(model, plan))
        if plan.new_links:
            # A record that could not be pushed (NOT_PUSHED) and now matches a PSA record
            # gets a real link instead.
            await RecordLink.filter(
                integration_id=ctx.integration.id,
                kind=model.kind,
                local_id__in=[link["local_id"] for link in plan.new_links],
                psa_id__isnull=True,
            ).delete()
            await insert_rows(RecordLink, plan.new_links)
        if plan.link_updates:
            await update_instances(RecordLink, plan.link_updates, LINK_UPDATE_FIELDS)
        if plan.orphans:
            await RecordLink.filter(id__in=plan.orphans).update(
                state=LinkState.ORPHANED, updated_at=now
            )
        if plan.issues and ctx.run is not None:
            await SyncRunIssue.bulk_create(plan.issues)
        await _write_merged(plan)
        if page.also is not None:
            await page.also()
        await record_progress(ctx, plan.counts, page.checkpoint)
    ctx.rows_written += (
        len(plan.creates) + len(rows) + len(plan.new_links) + len(plan.link_updates)
        + len(plan.orphans) + len(plan.merged_links) + len(plan.overlays)
    )  # fmt: skip


async def _drop_taken(ctx: RunContext, kind: AssetKind, plan: _Plan) -> None:
    """Leave out the new links whose PSA record or local record got linked since the page
    was planned (a push that created that PSA record and had its answer, on another worker):
    linking twice would break a link's uniqueness, and the record is in hand already."""
    if not plan.new_links:
        return
    taken = (
        await RecordLink.filter(integration_id=ctx.integration.id, kind=kind)
        .filter(
            Q(psa_id__in=[link["psa_id"] for link in plan.new_links])
            | Q(local_id__in=[link["local_id"] for link in plan.new_links], psa_id__isnull=False)
        )
        .values_list("psa_id", "local_id")
    )
    if not taken:
        return
    psa_ids = {int(p) for p, _local in taken if p is not None}
    local_ids = {as_uuid(local) for _p, local in taken}
    dropped = {
        link["local_id"]
        for link in plan.new_links
        if link["psa_id"] in psa_ids or as_uuid(link["local_id"]) in local_ids
    }
    created = {row["id"] for row in plan.creates}
    plan.new_links = [link for link in plan.new_links if link["local_id"] not in dropped]
    plan.creates = [row for row in plan.creates if row["id"] not in dropped]
    for local_id in dropped:
        plan.counts["created" if local_id in created else "linked"] -= 1
        plan.counts["unchanged"] += 1
        if local_id in plan.updates and plan.updates[local_id][1] is None:
            del plan.updates[local_id]


def _updated_columns(model: type[Asset], plan: _Plan) -> list[str]:
    columns: set[str] = {"version", "updated_at", "match_key"}
    for values, _link in plan.updates.values():
        columns.update(values)
    if model.kind == AssetKind.CONTACT:
        columns.add("primary_email")
    return sorted(columns)


async def _updated_rows(model: type[Asset], plan: _Plan, now: datetime) -> list[Asset]:
    """The records the plan updates, read (in the transaction) and changed in memory."""
    if not plan.updates:
        return []
    rows = await model.filter(id__in=list(plan.updates)).all()
    for row in rows:
        values, _link = plan.updates[row.id]
        for key, value in values.items():
            setattr(row, key, value)
        if model.kind == AssetKind.CONTACT:
            row.primary_email = _primary_email({"emails": row.emails})  # type: ignore[attr-defined]
        if "match_key" not in values:  # a merge writes some fields only
            row.match_key = row.compute_match_key()
        row.version += 1
        row.updated_at = now
    return rows


async def _write_merged(plan: _Plan) -> None:
    if plan.merged_links:
        await update_instances(RecordLink, plan.merged_links, MERGED_LINK_FIELDS)
    if plan.overlays:
        await update_instances(RecordLink, plan.overlays, ["snapshot", "updated_at"])
    # Only a new push changes the push state: an earlier one still queued or refused keeps
    # what it shows (a refused one stays FAILED: the new entry waits behind it).
    pending = [
        link.id
        for link in (*plan.merged_links, *plan.overlays)
        if link.push_state == PushState.PENDING
    ]
    if pending:
        await (
            RecordLink.filter(id__in=pending)
            .exclude(push_state=PushState.FAILED)
            .update(push_state=PushState.PENDING)
        )
    if plan.outbox:
        await OutboxEntry.bulk_create(plan.outbox)
        outbox.queued.set()
    if plan.conflicts:
        await SyncConflict.bulk_create(plan.conflicts)
    for conflict_id, values in plan.reopened:
        await SyncConflict.filter(id=conflict_id).update(**values)
    if plan.settled:
        await SyncConflict.filter(id__in=plan.settled).update(
            outcome=ConflictOutcome.RESOLVED, resolution="AGREED"
        )
    if plan.history:
        await history.write(plan.history)


LINK_UPDATE_FIELDS = [
    "snapshot",
    "psa_updated_at",
    "synced_at",
    "psa_stamp",
    "stamp_trusted",
    "settings_version",
    "state",
    "psa_parent_id",
    "refs_pending",
    "last_error",
    "updated_at",
    "psa_hash",
]


# A merged link keeps its push error: that is the outbox's to clear.
MERGED_LINK_FIELDS = [f for f in LINK_UPDATE_FIELDS if f != "last_error"]


async def record_progress(
    ctx: RunContext, counts: Counter[str], checkpoint: dict[str, Any] | None
) -> None:
    """Add a page's counts to the run, with its checkpoint, in the caller's transaction."""
    ctx.counts.update(counts)
    processed = sum(counts.values())
    ctx.processed += processed
    if ctx.run is None:
        return
    changes: dict[str, Any] = {name: F(name) + n for name, n in counts.items() if n}
    changes["processed"] = F("processed") + processed
    if checkpoint is not None:
        changes["checkpoint"] = checkpoint
    owned = await SyncRun.filter(
        id=ctx.run_id, status=RunStatus.RUNNING, lease_owner=ctx.run.lease_owner
    ).update(**changes)
    if not owned:
        raise RunPreempted(f"run {ctx.run_id} was paused, cancelled or deleted")
