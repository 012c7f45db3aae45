"""Incremental sync: what the PSA changed since the bookmarks (the reconciliation poll).

Webhooks make sync near-real-time; this poll catches whatever a notification missed. Per
asset kind the integration keeps a bookmark, the PSA stamp up to which every change has been
written locally. A run lists ``lastUpdated >= bookmark - OVERLAP`` (the overlap absorbs
clock skew and same-second writes; records re-read in it are skipped by their unchanged
stamp, with no local write), writes each page like a full sync does, and moves the bookmark
to the newest stamp it wrote only once the kind's pages are all written. Sites have no stamp
query of their own across companies: the sites of the organizations found changed are read
again. Its cost is proportional to what changed, not to the PSA's size.

The reference lists are not read again (the full reconciliation does that); a kind without
a bookmark (never fully synced) makes the run a full sync.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

from tortoise.expressions import Q

from models import AssetKind, Integration, LinkState, SyncRun
from sync import reference
from sync.apply import apply, links_where
from sync.concurrency import closing
from sync.context import RunContext
from sync.full_sync import orphan_links, resolve_pending_relations, sync_locations
from sync.pages import page_of
from sync.providers.base import ProviderScope, PsaProvider, PsaRecord

OVERLAP = timedelta(minutes=2)
# A full sync's bookmark is its start time by our clock, less this much for the PSA's.
CLOCK_SKEW = timedelta(minutes=5)
POLLED = (AssetKind.ORGANIZATION, AssetKind.CONTACT, AssetKind.CONFIGURATION)
PHASES = ("organizations", "locations", "contacts", "configurations", "relations")


def bookmark_of(integration: Integration, kind: AssetKind) -> datetime | None:
    value = (integration.bookmarks or {}).get(kind.value)
    return datetime.fromisoformat(value) if value else None


def has_bookmarks(integration: Integration) -> bool:
    return all(bookmark_of(integration, kind) is not None for kind in POLLED)


async def set_bookmarks_after_full_sync(integration: Integration, started: datetime) -> None:
    """A full sync that started at ``started`` wrote everything changed before it."""
    mark = (started - CLOCK_SKEW).isoformat()
    bookmarks = {kind.value: mark for kind in POLLED}
    await Integration.filter(id=integration.id).update(bookmarks=bookmarks)
    integration.bookmarks = bookmarks


async def incremental_sync(ctx: RunContext, provider: PsaProvider) -> None:
    integration = ctx.integration
    ctx.reference = await reference.load_index(integration)
    scope = ctx.reference.scope()
    resume = dict(ctx.checkpoint)
    start = PHASES.index(resume["phase"]) if resume.get("phase") in PHASES else 0
    run_started = ctx.run.started_at if ctx.run is not None else None
    for index, phase in enumerate(PHASES):
        if index < start:
            continue
        after = resume.get("after") if index == start else None
        ctx.checkpoint = {"phase": phase}
        await SyncRun.filter(id=ctx.run_id).update(phase=phase)
        if phase == "organizations":
            await _changed(ctx, AssetKind.ORGANIZATION, provider, scope, after)
        elif phase == "locations":
            if ctx.reads(AssetKind.LOCATION):
                await sync_locations(ctx, provider, after, synced_since=run_started)
        elif phase == "contacts":
            if integration.contacts_enabled and ctx.reads(AssetKind.CONTACT):
                await _changed(ctx, AssetKind.CONTACT, provider, scope, after)
        elif phase == "configurations":
            if ctx.reads(AssetKind.CONFIGURATION):
                await _changed(ctx, AssetKind.CONFIGURATION, provider, scope, after)
        else:
            for kind in AssetKind:
                await resolve_pending_relations(ctx, kind)


def _pages(
    provider: PsaProvider,
    kind: AssetKind,
    scope: ProviderScope,
    after: int | None,
    since: datetime,
) -> AsyncIterator[list[PsaRecord]]:
    if kind is AssetKind.ORGANIZATION:
        return provider.organizations(scope, after=after, since=since)
    if kind is AssetKind.CONTACT:
        return provider.contacts(after=after, since=since)
    return provider.configurations(scope, after=after, since=since)


async def _changed(
    ctx: RunContext,
    kind: AssetKind,
    provider: PsaProvider,
    scope: ProviderScope,
    after: int | None,
) -> None:
    """Write the records of ``kind`` changed since its bookmark, page by page; then move the
    bookmark. Records listed here that we do not sync are out of scope: apply orphans their
    links. (Deleted records are not listed: notices and the reconciliation find those.)"""
    bookmark = bookmark_of(ctx.integration, kind)
    assert bookmark is not None  # the runner makes a run without bookmarks a full sync
    newest = bookmark
    read_at = ctx.clock()  # some PSAs are read whole before the first page comes
    async with closing(_pages(provider, kind, scope, after, bookmark - OVERLAP)) as pages:
        async for records in pages:
            if not records:
                continue
            ids = [r.psa_id for r in records]
            links = await links_where(ctx, kind, Q(psa_id__in=ids))
            checkpoint: dict[str, Any] = {"phase": ctx.checkpoint["phase"], "after": max(ids)}
            page = await page_of(ctx, kind, records, links, checkpoint, read_at=read_at)
            await apply(ctx, page)
            stamps = [r.updated_at for r in records if r.updated_at is not None]
            if stamps:
                newest = max(newest, *stamps)
    # Soft deletes since the bookmark (ConnectWise companies): orphaned now, not at the
    # next reconciliation.
    async for ids in provider.deleted_since(kind, bookmark - OVERLAP):
        gone = await links_where(ctx, kind, Q(psa_id__in=ids, state=LinkState.SYNCED))
        await orphan_links(ctx, [link.id for link in gone.values()])
    if newest > bookmark and not ctx.dry_run:
        bookmarks = {**(ctx.integration.bookmarks or {}), kind.value: newest.isoformat()}
        await Integration.filter(id=ctx.integration.id).update(bookmarks=bookmarks)
        ctx.integration.bookmarks = bookmarks
