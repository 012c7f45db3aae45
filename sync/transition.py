"""An integration's links checked once when it moves to another API of its PSA.

A ConnectWise integration that read its records through the legacy SOAP API and is then
given REST keys keeps its links: a SOAP record id is taken to be the REST id of the same
record. The first run that opens REST checks that for every link, before its pull reads
anything, kind by kind (an organization first, so its children are looked up under its
verified id):

    organizations   the REST company at the linked id has the identifier (short name) the
                    link's snapshot holds (SOAP's ``CompanyID``), case-insensitively
    locations       the REST sites of the (verified) company: one with the linked id, of
                    the same name and first address line (SOAP addresses ≈ REST sites)
    contacts        the REST contact at the linked id has the same first and last name
    configurations  the REST configuration at the linked id has the same name

A link whose record agrees is left as it is: nothing is written. One whose record differs
or is gone is looked up (``PsaProvider.find_matches``: organizations by identifier, the
others by name within their organization). With exactly one candidate that no other link
holds (or that a link of the same page moves away from: two records swapped), the link is
re-linked to it: its PSA id, the parent id of its children, its id in the relations of its
company's snapshots, pending deletes' addresses and its conflicts change together; its
stamps are cleared, so the run's pull takes a full look at the record (the local record
changes only where the PSA's values differ). Otherwise the link is kept and reported on the
run (``transition_unsettled``, with the reason); the pull then treats it as any link (a
record gone from the PSA is orphaned). Counts go to the log and to ``SyncRun.transition``.

Links are read in pages: the PSA is read for a page, then one short transaction writes what
the page changed (nothing when every link agreed). A run that stops midway checks again
from the start on its next attempt: links already re-linked agree by then. Only SYNCED
links are checked; an orphaned link's record is gone through either API. Not rewritten: an
organization's id in other organizations' ``parent`` relation snapshots (the next full look
at those records takes the PSA's).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from tortoise.transactions import in_transaction

from models import (
    AssetKind,
    Integration,
    LinkState,
    OutboxEntry,
    OutboxOperation,
    OutboxStatus,
    RecordLink,
    ReferenceKind,
    ReferenceMapping,
    SyncConflict,
    SyncRun,
    SyncRunIssue,
    SyncState,
)
from models.bulk import update_instances
from sync.apply import record_progress
from sync.columns import RELATIONS, as_uuid
from sync.concurrency import gather_all
from sync.connections import provider_api
from sync.context import RunContext
from sync.errors import RecordError
from sync.providers.base import MatchProbe, PsaProvider, PsaRecord

log = logging.getLogger("psasync.sync")

# The moves whose links are checked: (API the links were read through, API opened now).
CHECKED: Final = frozenset({("SOAP", "REST")})
PAGE: Final = 200  # links per page (organizations per page when their sites are checked)
SITE_CONCURRENCY: Final = 8  # companies whose sites are read at once
ISSUE: Final = "transition_unsettled"
# A company that leaves the sync at the switch: REST shows types SOAP could not (SOAP shows a
# company's first type only), and one of them is not enabled.
SCOPE_ISSUE: Final = "transition_leaves_scope"
# The kinds in the order they are checked: a child is looked up under its verified parent.
KINDS: Final = (
    AssetKind.ORGANIZATION,
    AssetKind.LOCATION,
    AssetKind.CONTACT,
    AssetKind.CONFIGURATION,
)
_LINK_COLUMNS: Final = ("id", "local_id", "psa_id", "psa_parent_id", "snapshot")
_CHILDREN: Final = (AssetKind.LOCATION, AssetKind.CONTACT, AssetKind.CONFIGURATION)


def pending(integration: Integration, provider: PsaProvider) -> bool:
    """The integration's links were read through another API than ``provider`` speaks, and
    have not been checked yet: nothing should use them (pushes, notices) before a run does."""
    return (integration.synced_api, provider_api(provider)) in CHECKED


async def before_pull(ctx: RunContext, provider: PsaProvider) -> None:
    """At a run's start: check the links if the integration moved to another API since its
    last run, then record the API the run uses. Dry runs do neither."""
    api = provider_api(provider)
    if api is None or ctx.dry_run:
        return
    previous = ctx.integration.synced_api
    if previous is not None and (previous, api) in CHECKED:
        await check_links(ctx, provider, previous, api)
    if previous != api:
        await Integration.filter(id=ctx.integration.id).update(synced_api=api)
        ctx.integration.synced_api = api


@dataclass
class Tally:
    verified: int = 0
    relinked: int = 0
    unsettled: int = 0
    leaving_scope: int = 0


async def check_links(ctx: RunContext, provider: PsaProvider, old: str, new: str) -> Tally:
    """Verify every synced link through ``provider``; re-link or report where they differ."""
    tally = Tally()
    # An earlier attempt of this run reported what this one reports again.
    await SyncRunIssue.filter(run_id=ctx.run_id, code__in=(ISSUE, SCOPE_ISSUE)).delete()
    await SyncRun.filter(id=ctx.run_id).update(phase="transition")
    types = await _type_states(ctx, provider)
    for kind in KINDS:
        if kind is AssetKind.LOCATION:
            await _check_sites(ctx, provider, tally)
        else:
            await _check_records(ctx, provider, kind, tally, types)
    log.info(
        "%s: links made through %s checked through %s: %d verified, %d re-linked, %d unsettled, "
        "%d companies leave the sync (types SOAP did not show)",
        ctx.integration.name, old, new, tally.verified, tally.relinked, tally.unsettled,
        tally.leaving_scope,
    )  # fmt: skip
    summary = {"from": old, "to": new, **tally.__dict__}
    await SyncRun.filter(id=ctx.run_id).update(transition=summary)
    return tally


@dataclass(slots=True)
class _Link:
    id: uuid.UUID
    local_id: uuid.UUID
    psa_id: int
    psa_parent_id: int | None
    snapshot: dict[str, Any]

    @classmethod
    def of(cls, row: Mapping[str, Any]) -> _Link:
        return cls(
            as_uuid(row["id"]),
            as_uuid(row["local_id"]),
            int(row["psa_id"]),
            row["psa_parent_id"],
            dict(row["snapshot"] or {}),
        )


@dataclass(slots=True)
class _Unsettled:
    link: _Link
    message: str
    detail: dict[str, Any]


@dataclass
class _Page:
    """What one page of links comes to: links to move (to a PSA id), links to report."""

    kind: AssetKind
    moves: list[tuple[_Link, int]] = field(default_factory=list)
    unsettled: list[_Unsettled] = field(default_factory=list)


# -- scope: types SOAP did not show ----------------------------------------------------------------


@dataclass(frozen=True)
class _TypeStates:
    """Organization type names by REST id, and the sync state of each name."""

    names: Mapping[int, str]
    states: Mapping[str, SyncState]

    def not_synced(self, record: PsaRecord) -> tuple[list[str], list[str]]:
        """The record's type names, and those of them that are not enabled."""
        kind = ReferenceKind.ORGANIZATION_TYPE
        types = [self.names.get(i, f"#{i}") for i in record.codes.get(kind, ())]
        return types, [t for t in types if self.states.get(t.casefold()) is not SyncState.ENABLED]


async def _type_states(ctx: RunContext, provider: PsaProvider) -> _TypeStates:
    kind = ReferenceKind.ORGANIZATION_TYPE
    names = {r.psa_id: r.name for r in (await provider.reference_data()).get(kind, [])}
    rows = await ReferenceMapping.filter(integration_id=ctx.integration.id, kind=kind).values_list(
        "psa_name", "sync_state"
    )
    return _TypeStates(names, {str(name).casefold(): SyncState(state) for name, state in rows})


def _leaving_scope(
    ctx: RunContext, types: _TypeStates, links: Sequence[_Link], current: Mapping[int, PsaRecord]
) -> list[SyncRunIssue]:
    """Synced companies REST shows with a type that is not enabled. SOAP shows a company's
    first type only, so such a company was synced through SOAP, and the pull that follows
    leaves it out (every type of a company must be enabled, as in IT Glue): said here, with
    the types to enable to keep it, instead of an orphan without a reason."""
    issues = []
    for link in links:
        record = current.get(link.psa_id)
        if record is None:
            continue
        found, off = types.not_synced(record)
        if not off:
            continue
        name = record.values.get("name") or link.snapshot.get("name")
        listed = ", ".join(map(repr, off))
        issues.append(
            SyncRunIssue(
                id=uuid.uuid4(),
                run_id=ctx.run_id,
                code=SCOPE_ISSUE,
                kind=AssetKind.ORGANIZATION,
                psa_id=link.psa_id,
                local_id=link.local_id,
                message=(
                    f"{name!r} is also of type {listed} in ConnectWise, which SOAP did not "
                    "show and which is not synced: it leaves the sync (every type of a "
                    f"company must be enabled). Enable {listed} to keep it."
                ),
                detail={"types": found, "not_synced": off},
            )
        )
    return issues


# -- comparing ---------------------------------------------------------------------------------


def _key(value: Any) -> str:
    return str(value).strip().casefold() if value is not None else ""


def _identity(kind: AssetKind, values: Mapping[str, Any]) -> tuple[str, ...]:
    """What must agree between the link's last version and the PSA's record."""
    if kind is AssetKind.ORGANIZATION:
        # The identifier is unique in ConnectWise; a company without one goes by its name.
        return (_key(values.get("short_name")) or _key(values.get("name")),)
    if kind is AssetKind.CONTACT:
        return (_key(values.get("first_name")), _key(values.get("last_name")))
    if kind is AssetKind.LOCATION:
        return (_key(values.get("name")), _key(values.get("address_1")))
    return (_key(values.get("name")),)


def _described(kind: AssetKind, values: Mapping[str, Any]) -> str:
    if kind is AssetKind.ORGANIZATION and _key(values.get("short_name")):
        return f"identifier {values.get('short_name')!r}"
    if kind is AssetKind.CONTACT:
        name = " ".join(str(values.get(c) or "") for c in ("first_name", "last_name")).strip()
        return f"name {name!r}"
    return f"name {values.get('name')!r}"


def _agrees(kind: AssetKind, link: _Link, record: PsaRecord | None) -> bool:
    return record is not None and _identity(kind, link.snapshot) == _identity(kind, record.values)


# -- records fetched by id ------------------------------------------------------------------------


async def _check_records(
    ctx: RunContext, provider: PsaProvider, kind: AssetKind, tally: Tally, types: _TypeStates
) -> None:
    """Organizations, contacts, configurations: a page of links, their records by id (and,
    for organizations, those the next pull leaves out for a type SOAP did not show)."""
    last: uuid.UUID | None = None
    while True:
        links = await _links_page(ctx, kind, last)
        if not links:
            return
        last = links[-1].id
        current = {r.psa_id: r for r in await provider.fetch(kind, [x.psa_id for x in links])}
        differing = [x for x in links if not _agrees(kind, x, current.get(x.psa_id))]
        tally.verified += len(links) - len(differing)
        found = await _lookups(provider, kind, differing) if differing else []
        candidates = _by_link(kind, differing, found)
        page = await _settle(ctx, provider, kind, differing, current, candidates)
        await _write(ctx, page, tally)
        if kind is AssetKind.ORGANIZATION:
            moved = {x.id for x in differing}
            agreeing = [x for x in links if x.id not in moved]
            leaving = _leaving_scope(ctx, types, agreeing, current)
            if leaving:
                tally.leaving_scope += len(leaving)
                await SyncRunIssue.bulk_create(leaving)


async def _links_page(
    ctx: RunContext, kind: AssetKind, after: uuid.UUID | None, **where: Any
) -> list[_Link]:
    # By link id, not PSA id: a re-link changes the PSA id, never the link's.
    query = RecordLink.filter(
        integration_id=ctx.integration.id,
        kind=kind,
        state=LinkState.SYNCED,
        psa_id__isnull=False,
        **where,
    )
    if after is not None:
        query = query.filter(id__gt=after)
    rows = await query.order_by("id").limit(PAGE).values(*_LINK_COLUMNS)
    return [_Link.of(row) for row in rows]


async def _lookups(
    provider: PsaProvider, kind: AssetKind, links: Sequence[_Link]
) -> list[PsaRecord]:
    """The PSA's records that could be these links' (one batched lookup for the page)."""
    probes = [p for p in (_probe(kind, x) for x in links) if p is not None]
    return await provider.find_matches(kind, probes) if probes else []


def _probe(kind: AssetKind, link: _Link) -> MatchProbe | None:
    values = link.snapshot
    if not any(_identity(kind, values)):
        return None  # nothing to look it up by
    if kind is AssetKind.ORGANIZATION:
        return MatchProbe(name=values.get("name"), short_name=values.get("short_name") or None)
    if kind is AssetKind.CONTACT:
        return MatchProbe(
            first_name=values.get("first_name"),
            last_name=values.get("last_name"),
            parent_psa_id=link.psa_parent_id,
        )
    return MatchProbe(name=values.get("name"), parent_psa_id=link.psa_parent_id)


def _by_link(
    kind: AssetKind, links: Sequence[_Link], found: Sequence[PsaRecord]
) -> dict[uuid.UUID, list[int]]:
    """Each link's candidates: records with its identity (and, below an organization, under
    the same one), by PSA id."""
    by_identity: dict[tuple[str, ...], list[PsaRecord]] = {}
    for record in found:
        by_identity.setdefault(_identity(kind, record.values), []).append(record)
    candidates: dict[uuid.UUID, list[int]] = {}
    for link in links:
        wanted = _identity(kind, link.snapshot)
        records = by_identity.get(wanted, []) if any(wanted) else []
        if kind is not AssetKind.ORGANIZATION:
            records = [r for r in records if r.parent_psa_id == link.psa_parent_id]
        candidates[link.id] = sorted({r.psa_id for r in records})
    return candidates


# -- sites, per company ---------------------------------------------------------------------------


async def _check_sites(ctx: RunContext, provider: PsaProvider, tally: Tally) -> None:
    """Locations: a page of synced organizations, their sites read per company (under the
    company's verified id), and the location links below them."""
    gate = asyncio.Semaphore(SITE_CONCURRENCY)

    async def sites_of(company: int) -> list[PsaRecord]:
        async with gate:
            try:
                return [r async for page in provider.locations(company) for r in page]
            except RecordError:  # the company is gone: so are its sites
                return []

    last: uuid.UUID | None = None
    while True:
        companies = await _links_page(ctx, AssetKind.ORGANIZATION, last)
        if not companies:
            return
        last = companies[-1].id
        ids = sorted({c.psa_id for c in companies})
        links = await _site_links(ctx, ids)
        if not links:
            continue
        parents = sorted({x.psa_parent_id for x in links if x.psa_parent_id is not None})
        read = await gather_all(*(sites_of(c) for c in parents))
        sites = {company: found for company, found in zip(parents, read, strict=True)}
        current = {s.psa_id: s for found in read for s in found}
        differing = []
        for link in links:
            site = current.get(link.psa_id)
            owner = None if site is None else site.parent_psa_id or link.psa_parent_id
            if owner != link.psa_parent_id:
                site = None  # another company's site
            if not _agrees(AssetKind.LOCATION, link, site):
                differing.append(link)
        tally.verified += len(links) - len(differing)
        candidates = {
            x.id: _site_candidates(x, sites.get(x.psa_parent_id or -1, [])) for x in differing
        }
        page = await _settle(ctx, provider, AssetKind.LOCATION, differing, current, candidates)
        await _write(ctx, page, tally)


async def _site_links(ctx: RunContext, companies: Sequence[int]) -> list[_Link]:
    rows = await (
        RecordLink.filter(
            integration_id=ctx.integration.id,
            kind=AssetKind.LOCATION,
            state=LinkState.SYNCED,
            psa_id__isnull=False,
            psa_parent_id__in=list(companies),
        )
        .order_by("id")
        .values(*_LINK_COLUMNS)
    )
    return [_Link.of(row) for row in rows]


def _site_candidates(link: _Link, sites: Sequence[PsaRecord]) -> list[int]:
    """The company's sites of the link's name; of several, those of its first address line."""
    name = _key(link.snapshot.get("name"))
    if not name:
        return []
    named = [s for s in sites if _key(s.values.get("name")) == name]
    if len(named) > 1:
        line = _key(link.snapshot.get("address_1"))
        named = [s for s in named if _key(s.values.get("address_1")) == line] or named
    return sorted(s.psa_id for s in named)


# -- settling ------------------------------------------------------------------------------------


async def _settle(
    ctx: RunContext,
    provider: PsaProvider,
    kind: AssetKind,
    differing: Sequence[_Link],
    current: Mapping[int, PsaRecord],
    candidates: Mapping[uuid.UUID, list[int]],
) -> _Page:
    """Re-link each differing link to its one free candidate; report the others."""
    page = _Page(kind)
    if not differing:
        return page
    api = provider.display_name
    wanted: dict[uuid.UUID, int] = {}
    for link in differing:
        found = candidates.get(link.id, [])
        what = _described(kind, link.snapshot)
        at_id = current.get(link.psa_id)
        if at_id is None:
            state = f"{api} has no {kind.value} {link.psa_id}"
        else:
            state = f"{api}'s {kind.value} {link.psa_id} has {_described(kind, at_id.values)}"
        detail: dict[str, Any] = {"candidates": found, "reason": "not_found"}
        if not found:
            message = f"{state}, and no other {kind.value} has the {what}: the link is kept"
            page.unsettled.append(_Unsettled(link, message, detail))
        elif len(found) > 1:
            detail["reason"] = "ambiguous"
            message = (
                f"{state}; {len(found)} {kind.value}s have the {what} "
                f"({', '.join(map(str, found))}): the link is kept"
            )
            page.unsettled.append(_Unsettled(link, message, detail))
        else:
            wanted[link.id] = found[0]
    # A target must be free: held by no link, or by a link of this page moving away (two
    # records swapped). A link that cannot move keeps its id, which may block another.
    by_id = {x.id: x for x in differing}
    claims = Counter(wanted.values())
    holders = await _holders(ctx, kind, set(wanted.values()))
    moving = {link_id for link_id, target in wanted.items() if claims[target] == 1}
    while True:
        blocked = {
            link_id
            for link_id in moving
            if (holder := holders.get(wanted[link_id])) is not None
            and holder != link_id
            and holder not in moving
        }
        if not blocked:
            break
        moving -= blocked
    for link_id, target in wanted.items():
        link = by_id[link_id]
        if link_id in moving:
            page.moves.append((link, target))
            continue
        what = _described(kind, link.snapshot)
        reason = "taken" if claims[target] == 1 else "claimed_twice"
        message = (
            f"{api}'s {kind.value} with the {what} is {target}, linked to another record: "
            "the link is kept"
            if reason == "taken"
            else f"{api}'s {kind.value} {target} has the {what} of several links: they are kept"
        )
        page.unsettled.append(_Unsettled(link, message, {"candidates": [target], "reason": reason}))
    return page


async def _holders(ctx: RunContext, kind: AssetKind, psa_ids: set[int]) -> dict[int, uuid.UUID]:
    """The link holding each of these PSA ids, whatever its state (ids are unique per kind)."""
    if not psa_ids:
        return {}
    rows = await RecordLink.filter(
        integration_id=ctx.integration.id, kind=kind, psa_id__in=sorted(psa_ids)
    ).values_list("psa_id", "id")
    return {int(psa_id): as_uuid(link_id) for psa_id, link_id in rows}


# -- writing -------------------------------------------------------------------------------------


async def _write(ctx: RunContext, page: _Page, tally: Tally) -> None:
    """One short transaction for the page's re-links and reports (none when all agreed)."""
    tally.relinked += len(page.moves)
    tally.unsettled += len(page.unsettled)
    for link, target in page.moves:
        log.info(
            "%s: %s link %s re-linked from %d to %d",
            ctx.integration.name, page.kind.value, link.local_id, link.psa_id, target,
        )  # fmt: skip
    if not page.moves and not page.unsettled:
        return
    issues = [
        SyncRunIssue(
            id=uuid.uuid4(),
            run_id=ctx.run_id,
            code=ISSUE,
            kind=page.kind,
            psa_id=u.link.psa_id,
            local_id=u.link.local_id,
            message=u.message,
            detail=u.detail,
        )
        for u in page.unsettled
    ]
    async with in_transaction():
        await record_progress(ctx, Counter(), None)  # the run is still ours, or RunPreempted
        written = await _relink(ctx, page.kind, page.moves)
        if issues:
            await SyncRunIssue.bulk_create(issues)
    ctx.rows_written += written + len(issues)


async def _relink(ctx: RunContext, kind: AssetKind, moves: Sequence[tuple[_Link, int]]) -> int:
    """Move links to their new PSA ids and keep everything that names those ids in step;
    returns the rows written. In the caller's transaction."""
    if not moves:
        return 0
    integration_id = ctx.integration.id
    now = ctx.clock()
    moved = {link.psa_id: target for link, target in moves}
    # Ids are unique per kind: free them all first, so two records swapped can trade.
    await RecordLink.filter(id__in=[link.id for link, _ in moves]).update(psa_id=None)
    written = len(moves)
    for link, target in moves:
        await RecordLink.filter(id=link.id).update(
            psa_id=target,
            psa_stamp=None,
            stamp_trusted=False,
            psa_hash=None,
            updated_at=now,
        )
        written += await SyncConflict.filter(
            integration_id=integration_id, kind=kind, local_id=link.local_id
        ).update(psa_id=target)
    if kind is AssetKind.ORGANIZATION:
        written += await _move_children(ctx, moved)
    else:
        companies = {link.psa_parent_id for link, _ in moves if link.psa_parent_id is not None}
        written += await _rewrite_relations(ctx, kind, moved, companies)
    return written


async def _move_children(ctx: RunContext, moved: Mapping[int, int]) -> int:
    """The children of re-linked organizations name their new id (through a negative id
    first, so swapped organizations do not end up with each other's children)."""
    written = 0
    base = RecordLink.filter(integration_id=ctx.integration.id, kind__in=list(_CHILDREN))
    for old in moved:
        written += await base.filter(psa_parent_id=old).update(psa_parent_id=-old - 1)
    for old, new in moved.items():
        await base.filter(psa_parent_id=-old - 1).update(psa_parent_id=new)
    deletes = await OutboxEntry.filter(
        integration_id=ctx.integration.id,
        operation=OutboxOperation.DELETE,
        status__in=[OutboxStatus.PENDING, OutboxStatus.FAILED],
    )
    changed = []
    for entry in deletes:
        payload = dict(entry.payload or {})
        parent = payload.get("psa_parent_id")
        if isinstance(parent, int) and parent in moved:
            payload["psa_parent_id"] = moved[parent]
            entry.payload = payload
            changed.append(entry)
    if changed:
        await update_instances(OutboxEntry, changed, ["payload"])
    return written + len(changed)


async def _rewrite_relations(
    ctx: RunContext, kind: AssetKind, moved: Mapping[int, int], companies: Iterable[int]
) -> int:
    """Snapshots of the re-linked records' companies (the company and its children) name the
    new ids in their relations (a site as a primary location or a location, a contact)."""
    names = {name for name, (target, _column) in RELATIONS.items() if target is kind}
    wanted = sorted(set(companies))
    if not wanted:
        return 0
    integration_id = ctx.integration.id
    rows = [
        *await RecordLink.filter(
            integration_id=integration_id, kind=AssetKind.ORGANIZATION, psa_id__in=wanted
        ).values("id", "snapshot"),
        *await RecordLink.filter(
            integration_id=integration_id, kind__in=list(_CHILDREN), psa_parent_id__in=wanted
        ).values("id", "snapshot"),
    ]
    changed = []
    for row in rows:
        snapshot = dict(row["snapshot"] or {})
        refs = dict(snapshot.get("_refs") or {})
        hits = {n: moved[v] for n, v in refs.items() if n in names and v in moved}
        if hits:
            snapshot["_refs"] = {**refs, **hits}
            changed.append(RecordLink(id=row["id"], snapshot=snapshot))
    if changed:
        await update_instances(RecordLink, changed, ["snapshot"])
    return len(changed)
