"""A full sync of one integration, phase by phase, page by page.

    reference       types and statuses (new ones arrive DISABLED)
    organizations   companies in scope: type AND status enabled
    locations       the sites of every synced organization
    contacts        if contact sync is on
    configurations  type AND status enabled, of synced organizations
    relations       relations whose target arrived later in the run (parents, primary sites)

Every page is fetched, mapped, then written in one short transaction together with the run's
checkpoint, so a run that dies resumes after the last page it wrote. Memory holds one page
(or one batch of companies' sites), whatever the size of the PSA.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from itertools import pairwise
from typing import Any

from tortoise.expressions import F, Q, Subquery
from tortoise.transactions import in_transaction

from models import (
    ASSET_MODELS,
    AssetKind,
    LinkState,
    RecordLink,
    SyncRun,
    SyncRunIssue,
)
from models.bulk import update_instances
from sync import reference, statistics
from sync.apply import (
    LINK_COLUMNS,
    LinkRow,
    apply,
    links_where,
    record_progress,
    resolve,
)
from sync.columns import RELATIONS, as_uuid
from sync.concurrency import closing, gather_all
from sync.context import RunContext
from sync.errors import PermissionDenied, ProtocolError, RecordError
from sync.pages import page_of
from sync.providers.base import ProviderScope, PsaProvider, PsaRecord
from sync.snapshot import encode

PHASES = ("organizations", "locations", "contacts", "configurations", "relations")
SITE_BATCH = 100  # companies whose sites are fetched, then written, together
SITE_CONCURRENCY = 8  # sites are per company in ConnectWise: keep a few requests in flight


async def full_sync(ctx: RunContext, provider: PsaProvider) -> None:
    lists = await provider.reference_data()
    ctx.reference = await reference.sync_reference_data(ctx.integration, lists, dry_run=ctx.dry_run)
    scope = ctx.reference.scope()
    try:
        total = await provider.estimate_total(scope, contacts=ctx.integration.contacts_enabled)
    except PermissionDenied:  # a count in an area the role lacks: progress without a total
        total = None
    if total is not None:
        # A resumed run keeps its total: it has grown by the sites earlier attempts read.
        await SyncRun.filter(id=ctx.run_id, total__isnull=True).update(total=total)
    resume = dict(ctx.checkpoint)
    start = PHASES.index(resume["phase"]) if resume.get("phase") in PHASES else 0
    for index, phase in enumerate(PHASES):
        if index < start:
            continue
        after = resume.get("after") if index == start else None
        await _set_phase(ctx, phase)
        if phase == "organizations":
            await _organizations(ctx, provider, scope, after)
        elif phase == "locations":
            if ctx.reads(AssetKind.LOCATION):
                await sync_locations(ctx, provider, after)
        elif phase == "contacts":
            if ctx.integration.contacts_enabled and ctx.reads(AssetKind.CONTACT):
                await _contacts(ctx, provider, after)
        elif phase == "configurations":
            if ctx.reads(AssetKind.CONFIGURATION):
                await _configurations(ctx, provider, scope, after)
        else:
            for kind in ASSET_MODELS:
                await resolve_pending_relations(ctx, kind)


async def _set_phase(ctx: RunContext, phase: str) -> None:
    ctx.checkpoint = {"phase": phase}
    await SyncRun.filter(id=ctx.run_id).update(phase=phase)


async def _ranged(
    ctx: RunContext,
    kind: AssetKind,
    pages: AsyncIterator[list[PsaRecord]],
    after: int | None,
) -> None:
    """Apply pages that arrive in ascending PSA id order, orphaning the gaps between them."""
    low = after if after is not None else -1
    written = 0
    # Some PSAs are read whole before the first page comes: every page dates from the start.
    read_at = ctx.clock()
    async with closing(pages) as listed:
        async for records in listed:
            if not records:
                continue
            ids = [r.psa_id for r in records]
            if ids[0] <= low or any(a >= b for a, b in pairwise(ids)):
                # The gaps between pages are what gets orphaned: out-of-order pages would
                # orphan records the PSA still has.
                raise ProtocolError(f"the PSA listed {kind.value}s out of id order after {low}")
            high = ids[-1]
            # Every id of the page lies in (low, high]: one range read covers the page and the
            # links the PSA no longer returns.
            links = await links_where(ctx, kind, Q(psa_id__gt=low, psa_id__lte=high))
            checkpoint = {"phase": ctx.checkpoint["phase"], "after": high}
            await apply(ctx, await page_of(ctx, kind, records, links, checkpoint, read_at=read_at))
            low = high
            written += 1
            await statistics.refresh_as_tables_grow(ctx, kind, written)
    # Past the last page: whatever we still link there is gone from the PSA's list.
    tail = await links_where(ctx, kind, Q(psa_id__gt=low, state=LinkState.SYNCED))
    await orphan_links(ctx, [link.id for link in tail.values()])
    await statistics.refresh(ctx, kind)


async def orphan_links(
    ctx: RunContext, link_ids: Sequence[uuid.UUID], checkpoint: dict[str, Any] | None = None
) -> None:
    counts: Counter[str] = Counter(orphaned=len(link_ids))
    if ctx.dry_run or not link_ids:
        await record_progress(ctx, counts, checkpoint)
        return
    async with in_transaction():
        await RecordLink.filter(id__in=list(link_ids)).update(
            state=LinkState.ORPHANED, updated_at=ctx.clock()
        )
        await record_progress(ctx, counts, checkpoint)
    ctx.rows_written += len(link_ids)


async def _organizations(
    ctx: RunContext, provider: PsaProvider, scope: ProviderScope, after: int | None
) -> None:
    pages = provider.organizations(scope, after=after)
    await _ranged(ctx, AssetKind.ORGANIZATION, pages, after)


async def _contacts(ctx: RunContext, provider: PsaProvider, after: int | None) -> None:
    await _ranged(ctx, AssetKind.CONTACT, provider.contacts(after=after), after)


async def _configurations(
    ctx: RunContext, provider: PsaProvider, scope: ProviderScope, after: int | None
) -> None:
    pages = provider.configurations(scope, after=after)
    await _ranged(ctx, AssetKind.CONFIGURATION, pages, after)


async def sync_locations(
    ctx: RunContext,
    provider: PsaProvider,
    after: int | None,
    *,
    synced_since: datetime | None = None,
) -> None:
    """Sites hang off companies: fetch them for a batch of synced organizations at a time.

    ``synced_since``: only the organizations synced since then (an incremental sync reads
    the sites of the companies it found changed)."""
    gate = asyncio.Semaphore(SITE_CONCURRENCY)

    async def fetch(company: int) -> list[PsaRecord] | RecordError:
        async with gate:
            try:
                return [r async for page in provider.locations(company) for r in page]
            except RecordError as exc:  # the company went away since we listed it
                return exc

    async def fetch_batch(
        batch: dict[int, LinkRow],
    ) -> tuple[dict[int, LinkRow], list[list[PsaRecord] | RecordError], datetime]:
        read_at = ctx.clock()
        return batch, await gather_all(*(fetch(c) for c in batch)), read_at

    low = after if after is not None else -1
    batches = 0
    first = await _synced_organizations(ctx, low, synced_since)
    # While one batch is written, the next one is fetched: the PSA and the database work
    # at the same time (the fetching task never touches the database).
    pending = asyncio.create_task(fetch_batch(first)) if first else None
    try:
        while pending is not None:
            batch, results, read_at = await pending
            high = max(batch)
            following = await _synced_organizations(ctx, high, synced_since)
            pending = asyncio.create_task(fetch_batch(following)) if following else None
            await _write_sites(ctx, batch, results, high, read_at)
            low = high
            batches += 1
            if synced_since is None:
                await statistics.refresh_as_tables_grow(ctx, AssetKind.LOCATION, batches)
    finally:
        if pending is not None:
            pending.cancel()
    if synced_since is not None:
        return  # a poll's few sites: the planner's statistics stay good
    await statistics.refresh(ctx, AssetKind.LOCATION)
    # Sites of organizations that stopped syncing are orphans too (features.md §A7).
    synced = RecordLink.filter(
        integration_id=ctx.integration.id, kind=AssetKind.ORGANIZATION, state=LinkState.SYNCED
    ).values("psa_id")
    stray = (
        await RecordLink.filter(
            integration_id=ctx.integration.id, kind=AssetKind.LOCATION, state=LinkState.SYNCED
        )
        .exclude(psa_parent_id__in=Subquery(synced))
        .values_list("id", flat=True)
    )
    await orphan_links(ctx, [as_uuid(i) for i in stray])


async def _write_sites(
    ctx: RunContext,
    batch: dict[int, LinkRow],
    results: list[list[PsaRecord] | RecordError],
    high: int,
    read_at: datetime,
) -> None:
    records: list[PsaRecord] = []
    fetched: list[int] = []
    issues: list[SyncRunIssue] = []
    for company, result in zip(batch, results, strict=True):
        if isinstance(result, RecordError):
            issues.append(
                SyncRunIssue(
                    id=uuid.uuid4(),
                    run_id=ctx.run_id,
                    code="locations_unavailable",
                    kind=AssetKind.ORGANIZATION,
                    psa_id=company,
                    message=f"sites of company {company} could not be read: {result}",
                    detail={"status": result.status_code, "errors": result.errors},
                )
            )
            continue
        fetched.append(company)
        records.extend(result)
    if issues and not ctx.dry_run:
        await SyncRunIssue.bulk_create(issues)
    if records:  # sites are only countable once fetched: the total grows with them
        await SyncRun.filter(id=ctx.run_id).update(total=F("total") + len(records))
    # Sites of these companies, and sites that moved here from another company.
    links = await links_where(ctx, AssetKind.LOCATION, Q(psa_parent_id__in=fetched))
    moved = [r.psa_id for r in records if r.psa_id not in links]
    if moved:
        links.update(await links_where(ctx, AssetKind.LOCATION, Q(psa_id__in=moved)))
    checkpoint = {"phase": "locations", "after": high}
    page = await page_of(
        ctx, AssetKind.LOCATION, records, links, checkpoint, organizations=batch, read_at=read_at
    )
    await apply(ctx, page)


async def _synced_organizations(
    ctx: RunContext, after: int, synced_since: datetime | None = None
) -> dict[int, LinkRow]:
    """The next batch of synced organizations after a PSA id, in ascending id order."""
    query = RecordLink.filter(
        integration_id=ctx.integration.id,
        kind=AssetKind.ORGANIZATION,
        state=LinkState.SYNCED,
        psa_id__gt=after,
    )
    if synced_since is not None:
        query = query.filter(synced_at__gte=synced_since)
    found = await query.order_by("psa_id").limit(SITE_BATCH).values(*LINK_COLUMNS)
    batch = {row["psa_id"]: LinkRow.of(row) for row in found}
    if ctx.dry_run:  # organizations this dry run would have created have sites too
        planned = ctx.planned[AssetKind.ORGANIZATION]
        batch.update((i, planned[i]) for i in sorted(planned) if i > after)
        batch = dict(sorted(batch.items())[:SITE_BATCH])
    return batch


async def resolve_pending_relations(ctx: RunContext, kind: AssetKind) -> None:
    """Resolve relations whose target was linked after the record (e.g. a later parent)."""
    if ctx.dry_run:
        return
    model = ASSET_MODELS[kind]
    last = None
    while True:
        query = RecordLink.filter(integration_id=ctx.integration.id, kind=kind, refs_pending=True)
        if last is not None:
            query = query.filter(id__gt=last)
        rows = (
            await query.order_by("id")
            .limit(500)
            .values("id", "local_id", "snapshot", "psa_parent_id")
        )
        if not rows:
            return
        last = rows[-1]["id"]
        wanted: dict[AssetKind, set[int]] = {}
        for row in rows:
            for name, psa_id in (row["snapshot"] or {}).get("_refs", {}).items():
                wanted.setdefault(RELATIONS[name][0], set()).add(int(psa_id))
        targets = {k: await resolve(ctx, k, ids) for k, ids in wanted.items()}
        changes: list[tuple[uuid.UUID, dict[str, Any], dict[str, Any]]] = []
        for row in rows:
            snapshot = dict(row["snapshot"] or {})
            columns: dict[str, Any] = {}
            for name, psa_id in snapshot.get("_refs", {}).items():
                target_kind, column = RELATIONS[name]
                target = targets.get(target_kind, {}).get(int(psa_id))
                if (
                    target is not None
                    and name == "contact"
                    and target.psa_parent_id != row["psa_parent_id"]
                ):
                    target = None
                if target is not None and snapshot.get(column) != str(target.local_id):
                    columns[column] = target.local_id
                    snapshot[column] = encode(target.local_id)
            changes.append((row["id"], columns, snapshot))
        # Read the assets to change before the transaction; write everything in batches.
        changed = {
            as_uuid(row["local_id"]): cols
            for (_, cols, _), row in zip(changes, rows, strict=True)
            if cols
        }
        assets = await model.filter(id__in=list(changed)).all() if changed else []
        now = ctx.clock()
        for asset in assets:
            for column, value in changed[asset.id].items():
                setattr(asset, column, value)
            asset.version += 1
            asset.updated_at = now
        columns_changed = sorted({c for cols in changed.values() for c in cols})
        links = [
            RecordLink(id=link_id, snapshot=snapshot, refs_pending=False, updated_at=now)
            for link_id, _, snapshot in changes
        ]
        async with in_transaction():
            if assets:
                await update_instances(model, assets, [*columns_changed, "version", "updated_at"])
            await update_instances(RecordLink, links, ["snapshot", "refs_pending", "updated_at"])
        ctx.rows_written += len(links) + len(assets)
