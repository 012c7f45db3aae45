"""Apply one page of PSA records to one asset kind: plan in memory, then write once.

For each record: out of scope → its link is orphaned; linked and unchanged → nothing is
written; linked and changed → the asset takes the PSA values (one-way: the PSA wins);
unlinked → first-link matching (features.md §A5): one candidate links, none creates,
several are reported as ``ambiguous_match`` and left alone. Links the page should have
covered but did not return are orphaned (deleted in the PSA or out of its filter).

Reads happen before the transaction; the transaction holds only writes, and no network I/O.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from tortoise.expressions import F, Q
from tortoise.transactions import in_transaction

from models import (
    ASSET_MODELS,
    Asset,
    AssetKind,
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
from models.bulk import insert_rows, update_instances
from sync import history, outbox
from sync.columns import CODES, RELATIONS, as_uuid, content_hash, stamps
from sync.connections import field_map
from sync.context import RunContext
from sync.errors import RunPreempted
from sync.providers.base import PsaRecord
from sync.pull_merge import (
    LOCAL_SOURCES,
    MergeContext,
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


Related = dict[AssetKind, dict[int, LinkRow]]
RelatedLoader = Callable[[list[PsaRecord]], Awaitable[Related]]


@dataclass
class _Plan:
    creates: list[dict[str, Any]] = field(default_factory=list)
    new_links: list[dict[str, Any]] = field(default_factory=list)
    updates: dict[uuid.UUID, tuple[dict[str, Any], LinkRow | None]] = field(default_factory=dict)
    link_updates: list[RecordLink] = field(default_factory=list)
    orphans: list[uuid.UUID] = field(default_factory=list)
    issues: list[SyncRunIssue] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)
    # Two-way sync: merged links (their push state and error are the outbox's business),
    # pushes to queue, conflicts and field history.
    merged_links: list[RecordLink] = field(default_factory=list)
    outbox: list[OutboxEntry] = field(default_factory=list)
    conflicts: list[SyncConflict] = field(default_factory=list)
    reopened: list[tuple[uuid.UUID, dict[str, Any]]] = field(default_factory=list)
    settled: list[uuid.UUID] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class _Local:
    """Our side of the linked records a two-way page merges."""

    rows: dict[uuid.UUID, dict[str, Any]] = field(default_factory=dict)
    open_conflicts: dict[uuid.UUID, dict[str, uuid.UUID]] = field(default_factory=dict)
    times: dict[uuid.UUID, dict[str, datetime]] = field(default_factory=dict)
    context: MergeContext | None = None


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
        if _unchanged(link, record, settings_version):
            plan.counts["unchanged"] += 1
            ctx.note(record.psa_id, "unchanged")
            continue
        changed.append(record)

    related = await page.related(changed) if changed and page.related else {}
    pending: list[tuple[PsaRecord, dict[str, Any], dict[str, Any]]] = []
    needs_snapshot: list[uuid.UUID] = []
    for record in changed:
        values = _local_values(ctx, page, related, record)
        pending.append((record, values, snapshot_of(values, record.refs)))
        link = page.links.get(record.psa_id)
        if link is not None:
            needs_snapshot.append(link.id)

    # Links the page covered that the PSA did not return: deleted, or filtered out there.
    for psa_id, link in page.links.items():
        if psa_id not in seen and link.state == LinkState.SYNCED:
            plan.orphans.append(link.id)
            plan.counts["orphaned"] += 1
            ctx.note(psa_id, "orphaned: gone from the PSA")

    ours = await _our_side(ctx, page, pending, now)
    snapshots: dict[uuid.UUID, Any] = {}
    if needs_snapshot:
        snapshots = dict(
            await RecordLink.filter(id__in=needs_snapshot).values_list("id", "snapshot")
        )
    unlinked = [(r, v, s) for r, v, s in pending if r.psa_id not in page.links]
    candidates = await _candidates(ctx, page.kind, model, unlinked)

    claimed: dict[uuid.UUID, int] = {}
    for record, values, snap in pending:
        link = page.links.get(record.psa_id)
        if link is not None:
            _plan_linked(ctx, plan, record, values, snap, link, snapshots.get(link.id), now, ours)
            continue
        found = candidates.get(values["match_key"], [])
        if len(found) > 1:
            plan.counts["failed"] += 1
            plan.issues.append(_ambiguous(ctx, page.kind, record, found))
            ctx.note(record.psa_id, "ambiguous match")
            continue
        if found and found[0] in claimed:
            # Two PSA records match one local record: linking either would be a guess.
            plan.counts["failed"] += 1
            plan.issues.append(_ambiguous(ctx, page.kind, record, found))
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
        async with in_transaction():
            if plan.issues:
                await SyncRunIssue.bulk_create(plan.issues)
            await record_progress(ctx, plan.counts, page.checkpoint)
    else:
        await _write(ctx, model, plan, page, now)
    return plan.counts


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


def _plan_linked(
    ctx: RunContext,
    plan: _Plan,
    record: PsaRecord,
    values: dict[str, Any],
    snap: dict[str, Any],
    link: LinkRow,
    base: Any,
    now: datetime,
    ours: _Local,
) -> None:
    stamp = record.updated_at
    if link.psa_stamp is not None and stamp is not None and int(stamp.timestamp()) < link.psa_stamp:
        # Older than what we last read or wrote (a slow page, a late notice): stale data
        # never wins.
        plan.counts["unchanged"] += 1
        ctx.note(record.psa_id, "stale")
        return
    relinked = link.state != LinkState.SYNCED
    if not relinked and ours.context is not None and link.local_id in ours.rows:
        _plan_merged(ctx, plan, record, values, snap, link, base or {}, now, ours)
        return
    if base == snap and not relinked:
        # Same values under a new stamp (an unmapped field changed): remember the stamp only.
        plan.counts["unchanged"] += 1
        ctx.note(record.psa_id, "unchanged")
    else:
        plan.counts["linked" if relinked else "updated"] += 1
        ctx.note(record.psa_id, "linked" if relinked else "updated")
        plan.updates[link.local_id] = (values, link)
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


def _plan_merged(
    ctx: RunContext,
    plan: _Plan,
    record: PsaRecord,
    values: dict[str, Any],
    snap: dict[str, Any],
    link: LinkRow,
    base: dict[str, Any],
    now: datetime,
    ours: _Local,
) -> None:
    assert ours.context is not None
    merged = merge_record(
        ours.context,
        record,
        values,
        snap,
        base,
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
    plan.merged_links.append(
        RecordLink(
            id=link.id,
            snapshot=merged.snapshot,
            state=LinkState.SYNCED,
            psa_parent_id=record.parent_psa_id,
            refs_pending=_refs_pending(record, values),
            push_state=PushState.PENDING if merged.push else PushState.NONE,
            updated_at=now,
            **_stamps(ctx, record, now, values),
        )
    )
    if merged.push:
        plan.outbox.append(
            OutboxEntry(
                integration_id=ctx.integration.id,
                kind=ours.context.kind,
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


async def _our_side(
    ctx: RunContext,
    page: Page,
    pending: list[tuple[PsaRecord, dict[str, Any], dict[str, Any]]],
    now: datetime,
) -> _Local:
    """Under two-way sync, read our records behind the page's changed links (one query
    each for values, open conflicts and, for NEWEST_WINS, local change times)."""
    ours = _Local()
    if not ctx.two_way or ctx.directions is None:
        return ours
    ids = [
        link.local_id
        for record, _values, _snap in pending
        if (link := page.links.get(record.psa_id)) is not None and link.state == LinkState.SYNCED
    ]
    if not ids:
        return ours
    columns = field_map(ctx.integration.provider).columns(page.kind)
    ours.context = MergeContext(
        ctx.integration.id,
        ctx.integration.account_id,  # type: ignore[attr-defined]
        ctx.integration.name,
        page.kind,
        columns,
        ctx.directions,
        ctx.clocks,
        now,
    )
    ours.rows = await local_rows(page.kind, ids, columns)
    for local_id, name, conflict_id in await SyncConflict.filter(
        integration_id=ctx.integration.id,
        kind=page.kind,
        local_id__in=ids,
        outcome=ConflictOutcome.OPEN,
    ).values_list("local_id", "field", "id"):
        ours.open_conflicts.setdefault(as_uuid(local_id), {})[name] = as_uuid(conflict_id)
    if uses_newest(ctx.directions):
        ours.times = latest_local_times(
            await FieldChange.filter(
                kind=page.kind, local_id__in=ids, source__in=list(LOCAL_SOURCES)
            ).values_list("local_id", "field", "changed_at")
        )
    return ours


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


def _ambiguous(
    ctx: RunContext, kind: AssetKind, record: PsaRecord, candidates: list[uuid.UUID]
) -> SyncRunIssue:
    names = ", ".join(str(c) for c in candidates)
    values = record.values
    label = values.get("name") or " ".join(
        str(v) for v in (values.get("first_name"), values.get("last_name")) if v
    )
    return SyncRunIssue(
        id=uuid.uuid4(),
        run_id=None if ctx.run is None else ctx.run.id,  # outside a run: reported, not kept
        code="ambiguous_match",
        kind=kind,
        psa_id=record.psa_id,
        message=(
            f"{kind.value} {label!r} (PSA id {record.psa_id}) matches {len(candidates)} local "
            f"records ({names}); "
            "none was linked. Rename or remove the duplicates, then sync again."
        ),
        detail={"candidates": [str(c) for c in candidates]},
    )


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
    rows: list[Asset] = []
    if plan.updates:
        rows = await model.filter(id__in=list(plan.updates)).all()
        columns: set[str] = set()
        for row in rows:
            values, _link = plan.updates[row.id]
            for key, value in values.items():
                setattr(row, key, value)
            if model.kind == AssetKind.CONTACT:
                row.primary_email = _primary_email({"emails": row.emails})  # type: ignore[attr-defined]
            if "match_key" not in values:  # a merge writes some fields only
                row.match_key = row.compute_match_key()
                columns.add("match_key")
            row.version += 1
            row.updated_at = now
            columns.update(values)
        columns.update({"version", "updated_at"})
        if model.kind == AssetKind.CONTACT:
            columns.add("primary_email")
    async with in_transaction():
        if plan.creates:
            await insert_rows(model, plan.creates)
        if rows:
            await update_instances(model, rows, sorted(columns))
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
        await record_progress(ctx, plan.counts, page.checkpoint)
    ctx.rows_written += (
        len(plan.creates) + len(rows) + len(plan.new_links) + len(plan.link_updates)
        + len(plan.orphans)
    )  # fmt: skip


async def _write_merged(plan: _Plan) -> None:
    if plan.merged_links:
        await update_instances(RecordLink, plan.merged_links, MERGED_LINK_FIELDS)
        # Only a new push changes the push state: an earlier one still queued or refused
        # keeps what it shows (a refused one stays FAILED: the new entry waits behind it).
        pending = [link.id for link in plan.merged_links if link.push_state == PushState.PENDING]
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
