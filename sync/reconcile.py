"""Full reconciliation: the PSA's id sets against our links, for deletes nobody announced.

Polling by stamp cannot see a hard delete and a notification can be lost, so once a day (by
default) each kind's ids are listed — ids only, cheap — and every synced link whose PSA id
is not among them is orphaned, exactly as a full sync orphans the gaps between its pages.
The reference lists are read again (renamed and new types and statuses), and the sites of
every synced organization are read (sites have no id listing across companies).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from itertools import pairwise

from tortoise.expressions import Q

from models import AssetKind, LinkState, SyncRun
from sync import reference
from sync.apply import links_where
from sync.context import RunContext
from sync.errors import ProtocolError
from sync.full_sync import orphan_links, sync_locations
from sync.providers.base import ProviderScope, PsaProvider

PHASES = ("organizations", "locations", "contacts", "configurations")
_KINDS = {
    "organizations": AssetKind.ORGANIZATION,
    "contacts": AssetKind.CONTACT,
    "configurations": AssetKind.CONFIGURATION,
}


async def reconcile(ctx: RunContext, provider: PsaProvider) -> None:
    lists = await provider.reference_data()
    ctx.reference = await reference.sync_reference_data(ctx.integration, lists, dry_run=ctx.dry_run)
    scope = ctx.reference.scope()
    resume = dict(ctx.checkpoint)
    start = PHASES.index(resume["phase"]) if resume.get("phase") in PHASES else 0
    for index, phase in enumerate(PHASES):
        if index < start:
            continue
        after = resume.get("after") if index == start else None
        ctx.checkpoint = {"phase": phase}
        await SyncRun.filter(id=ctx.run_id).update(phase=phase)
        if phase == "locations":
            if ctx.reads(AssetKind.LOCATION):
                await sync_locations(ctx, provider, after)
        elif not ctx.reads(_KINDS[phase]):
            continue  # an area the role may not read: its links stay as they are
        elif phase != "contacts" or ctx.integration.contacts_enabled:
            await _id_set(ctx, provider, _KINDS[phase], scope, after)


async def _id_set(
    ctx: RunContext,
    provider: PsaProvider,
    kind: AssetKind,
    scope: ProviderScope,
    after: int | None,
) -> None:
    """Orphan the synced links of ``kind`` whose ids the PSA no longer lists."""
    low = after if after is not None else -1
    async for ids in provider.record_ids(kind, scope):
        ids = [i for i in ids if i > low]
        if not ids:
            continue
        if any(a >= b for a, b in pairwise(ids)):
            raise ProtocolError(f"the PSA listed {kind.value} ids out of order after {low}")
        high = ids[-1]
        links = await links_where(
            ctx, kind, Q(psa_id__gt=low, psa_id__lte=high, state=LinkState.SYNCED)
        )
        present = set(ids)
        await _orphan_page(ctx, [link.id for i, link in links.items() if i not in present], high)
        low = high
    tail = await links_where(ctx, kind, Q(psa_id__gt=low, state=LinkState.SYNCED))
    await orphan_links(ctx, [link.id for link in tail.values()])


async def _orphan_page(ctx: RunContext, link_ids: Sequence[uuid.UUID], high: int) -> None:
    ctx.checkpoint = {"phase": ctx.checkpoint["phase"], "after": high}
    await orphan_links(ctx, link_ids, checkpoint=ctx.checkpoint)
