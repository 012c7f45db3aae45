"""Push all syncable assets: a one-time push of every unlinked record, for a new PSA.

For partners switching to a PSA, or adopting their first one: psasync is the source of truth,
so each record the PSA does not have is matched there (and linked) or created, kind by kind,
organizations first so that their locations, contacts and configurations have a company to
go to. It runs as a ``SyncRun`` (kind PUSH_ALL) with progress, a checkpoint per page, and a
report per record (``SyncRunIssue`` rows grouped by outcome: created, linked, or why not).

- A dry run computes the same plan (would create / would link / would skip, and why), and
  writes nothing but its report.
- A real run is resumable: each page's links and report are written with the checkpoint.
  A crash between creating records in the PSA and writing their links is caught on resume,
  because the page is planned again and its records now *match* what was created.
- Running it twice creates nothing new: linked records are no longer candidates.
- Counts and the total cover every attempt of a run (paused and resumed, retried after an
  outage, taken over from a worker that died): each attempt adds to the run's counts, and
  its total is what earlier attempts processed plus what is left from the checkpoint. A page
  notes the records it is about to create (``creating`` in the checkpoint), so a resumed
  attempt reports the match that heals one as the create it was, not as a link.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tortoise.expressions import Subquery
from tortoise.transactions import in_transaction

from models import (
    ASSET_MODELS,
    AssetKind,
    Integration,
    RecordLink,
    RunKind,
    RunStatus,
    RunTrigger,
    SyncRun,
    SyncRunIssue,
)
from models.bulk import insert_rows
from sync import jobs, leases, push_create
from sync.apply import record_progress
from sync.columns import as_uuid
from sync.context import RunContext
from sync.deliverer import LEASE
from sync.errors import FatalError, RetriableError, RunPreempted
from sync.leases import Fence
from sync.providers.base import PsaProvider
from sync.push_create import Created, record_outcomes, write_created
from sync.push_values import columns_of, local_rows

PAGE = 500
LEASE_POLL = 0.2  # seconds between looks at a push lease the deliverer holds
ORDER = (
    AssetKind.ORGANIZATION,
    AssetKind.LOCATION,
    AssetKind.CONTACT,
    AssetKind.CONFIGURATION,
)
# Report codes of a real run and of a dry run, and the run counter each adds to.
DONE = {"create": ("created", "would_create"), "link": ("linked", "would_link")}
FAILURES = frozenset({"ambiguous_match", "psa_error"})
SCOPE_FILTERS: Mapping[AssetKind, tuple[tuple[str, str], ...]] = {
    AssetKind.ORGANIZATION: (
        ("organization_types", "organization_type_id"),
        ("organization_statuses", "organization_status_id"),
    ),
    AssetKind.CONFIGURATION: (
        ("configuration_types", "configuration_type_id"),
        ("configuration_statuses", "configuration_status_id"),
    ),
}


@dataclass
class Scope:
    """What to push: asset kinds, and per kind the types and statuses (local reference ids;
    empty means all)."""

    kinds: frozenset[AssetKind] = frozenset(ORDER)
    organization_types: frozenset[uuid.UUID] = frozenset()
    organization_statuses: frozenset[uuid.UUID] = frozenset()
    configuration_types: frozenset[uuid.UUID] = frozenset()
    configuration_statuses: frozenset[uuid.UUID] = frozenset()

    def as_json(self) -> dict[str, Any]:
        return {
            "kinds": sorted(k.value for k in self.kinds),
            **{
                name: sorted(str(i) for i in getattr(self, name))
                for name in (
                    "organization_types",
                    "organization_statuses",
                    "configuration_types",
                    "configuration_statuses",
                )
            },
        }

    @classmethod
    def of(cls, raw: Mapping[str, Any]) -> Scope:
        return cls(
            kinds=frozenset(AssetKind(k) for k in raw.get("kinds", [k.value for k in ORDER])),
            **{
                name: frozenset(as_uuid(i) for i in raw.get(name, ()))
                for name in (
                    "organization_types",
                    "organization_statuses",
                    "configuration_types",
                    "configuration_statuses",
                )
            },
        )


async def start(integration: Integration, scope: Scope, *, dry_run: bool) -> SyncRun:
    """Queue a push-all run (prioritised like a manual sync)."""
    run = await SyncRun.create(
        integration_id=integration.id,
        kind=RunKind.PUSH_ALL,
        trigger=RunTrigger.PUSH_ALL,
        dry_run=dry_run,
        priority=jobs.MANUAL_PRIORITY,
        checkpoint={"scope": scope.as_json()},
    )
    return run


@dataclass
class _Progress:
    planned: set[uuid.UUID] = field(default_factory=set)  # dry run: organizations created
    # What the attempt before was creating when it stopped: found in the PSA now, each is
    # (most likely) that create, and is reported as one.
    creating: frozenset[uuid.UUID] = frozenset()


async def push_all(ctx: RunContext, provider: PsaProvider) -> None:
    integration = ctx.integration
    if not (integration.two_way_enabled or ctx.two_way):
        raise FatalError(
            f"two-way sync is off for {integration.name}: turn it on before pushing all assets"
        )
    scope = Scope.of(ctx.checkpoint.get("scope") or {})
    resume_kind = ctx.checkpoint.get("kind")
    after = ctx.checkpoint.get("after")
    started = resume_kind is None
    progress = _Progress(creating=frozenset(map(as_uuid, ctx.checkpoint.get("creating", ()))))
    # Earlier attempts' records are linked now or behind the checkpoint: they count as done.
    done = (await SyncRun.get(id=ctx.run_id)).processed
    left = await _count(integration, scope, resume_kind, after)
    await SyncRun.filter(id=ctx.run_id).update(total=done + left)
    for kind in ORDER:
        if not started:
            if kind.value != resume_kind:
                continue
            started = True
        else:
            after = None
        if kind not in scope.kinds:
            continue
        await SyncRun.filter(id=ctx.run_id).update(phase=f"push {kind.value}s")
        while True:
            rows = await _page(integration, scope, kind, after)
            if not rows:
                break
            after = str(rows[-1]["id"])
            await _push_page(ctx, provider, kind, rows, progress, after, scope)


async def _count(
    integration: Integration, scope: Scope, resume_kind: str | None, after: str | None
) -> int:
    """Candidates from the checkpoint on (every one, for a run that has not started)."""
    total = 0
    started = resume_kind is None
    for kind in ORDER:
        started = started or kind.value == resume_kind
        if started and kind in scope.kinds:
            since = after if kind.value == resume_kind else None
            total += await _candidates(integration, scope, kind, since).count()
    return total


def _candidates(integration: Integration, scope: Scope, kind: AssetKind, after: str | None) -> Any:
    model = ASSET_MODELS[kind]
    linked = RecordLink.filter(
        integration_id=integration.id, kind=kind, psa_id__isnull=False
    ).values("local_id")
    query = model.filter(account_id=integration.account_id).exclude(  # type: ignore[attr-defined]
        id__in=Subquery(linked)
    )
    if after is not None:
        query = query.filter(id__gt=after)
    for name, column in SCOPE_FILTERS.get(kind, ()):
        wanted = getattr(scope, name)
        if wanted:
            query = query.filter(**{f"{column}__in": list(wanted)})
    return query


async def _page(
    integration: Integration, scope: Scope, kind: AssetKind, after: str | None
) -> list[dict[str, Any]]:
    ids = (
        await _candidates(integration, scope, kind, after)
        .order_by("id")
        .limit(PAGE)
        .values_list("id", flat=True)
    )
    if not ids:
        return []
    rows = await local_rows(kind, [as_uuid(i) for i in ids], columns_of(integration, kind))
    return [rows[as_uuid(i)] for i in ids if as_uuid(i) in rows]


async def _push_page(
    ctx: RunContext,
    provider: PsaProvider,
    kind: AssetKind,
    rows: Sequence[dict[str, Any]],
    progress: _Progress,
    after: str,
    scope: Scope,
) -> None:
    integration = ctx.integration
    name = provider.display_name
    planned = progress.planned if ctx.dry_run else None
    if not ctx.dry_run:
        # Creates are PSA writes like the outbox's: under the same lease, so a record a user
        # saves meanwhile is never created twice (once here, once by the deliverer).
        fence = await _push_lease(ctx)
        try:
            with fence.guarding():
                outcomes = await push_create.plan(integration, provider, kind, rows, name)
                await _note_creating(ctx, outcomes)
                await push_create.execute(provider, kind, outcomes, name)
                await _write_page(ctx, kind, name, rows, outcomes, progress, after, scope, fence)
        finally:
            await fence.release()
        return
    outcomes = await push_create.plan(integration, provider, kind, rows, name, planned)
    await _write_page(ctx, kind, name, rows, outcomes, progress, after, scope, None)


async def _push_lease(ctx: RunContext) -> Fence:
    """The integration's push lease, waited for while the deliverer holds it."""
    owner = f"push-all:{ctx.run_id}"
    waited = 0.0
    while True:
        fence = await leases.claim(ctx.integration.id, "push_lease", owner, ctx.clock, LEASE)
        if fence is not None:
            return fence
        if waited >= LEASE.total_seconds():
            raise RetriableError("the integration's pushes stayed busy; push-all waits")
        await asyncio.sleep(LEASE_POLL)
        waited += LEASE_POLL


async def _write_page(
    ctx: RunContext,
    kind: AssetKind,
    name: str,
    rows: Sequence[dict[str, Any]],
    outcomes: Sequence[push_create.Outcome],
    progress: _Progress,
    after: str,
    scope: Scope,
    fence: Fence | None,
) -> None:
    """The page's report and checkpoint, with its links (a real run), in one transaction."""
    counts: Counter[str] = Counter()
    issues: list[dict[str, Any]] = []
    now = ctx.clock()
    for outcome in outcomes:
        done = DONE.get(outcome.code)
        if done is not None:
            as_create = outcome.code == "create" or outcome.local_id in progress.creating
            code = done[1] if ctx.dry_run else ("created" if as_create else done[0])
            counts["created" if as_create else "linked"] += 1
            if ctx.dry_run and kind == AssetKind.ORGANIZATION and outcome.code == "create":
                progress.planned.add(outcome.local_id)
        else:
            code = outcome.code
            counts["failed" if code in FAILURES else "skipped"] += 1
        psa_id = outcome.match.psa_id if outcome.match is not None else None
        issues.append(
            {
                "id": uuid.uuid4(),
                "run_id": ctx.run_id,
                "code": code,
                "kind": kind,
                "psa_id": psa_id,
                "local_id": outcome.local_id,
                "message": outcome.message or _message(code, kind, name),
                "detail": {"candidates": outcome.candidates} if outcome.candidates else {},
                "created_at": now,
            }
        )
    checkpoint = {"scope": scope.as_json(), "kind": kind.value, "after": after}

    async def report() -> None:
        await insert_rows(SyncRunIssue, issues)
        await record_progress(ctx, counts, checkpoint)

    if fence is None:  # a dry run: its report is all it writes
        async with in_transaction():
            await report()
        return
    created = Created()
    by_id = {as_uuid(r["id"]): r for r in rows}
    await record_outcomes(ctx.integration, kind, outcomes, by_id, created, now)
    await write_created(ctx.integration, created, fence, now, also=report)


async def _note_creating(ctx: RunContext, outcomes: Sequence[push_create.Outcome]) -> None:
    """Note in the checkpoint (still before this page) what the page is about to create,
    and stop if the run is no longer ours: a paused run creates nothing more."""
    creating = [str(o.local_id) for o in outcomes if o.code == "create"]
    if not creating or ctx.run is None:
        return
    mine = SyncRun.filter(id=ctx.run_id, status=RunStatus.RUNNING, lease_owner=ctx.run.lease_owner)
    current = await mine.first()
    if current is not None and await mine.update(
        checkpoint={**current.checkpoint, "creating": creating}
    ):
        return
    raise RunPreempted(f"run {ctx.run_id} was paused, cancelled or deleted")


def _message(code: str, kind: AssetKind, name: str) -> str:
    return {
        "created": f"{kind.value} created in {name}",
        "would_create": f"{kind.value} would be created in {name}",
        "linked": f"{kind.value} linked to its match in {name}; our values are pushed to it",
        "would_link": f"{kind.value} would be linked to its match in {name}",
        "linked_meanwhile": f"{kind.value} was linked to {name} while this run was under way",
    }.get(code, code)
