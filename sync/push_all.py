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
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tortoise.expressions import Subquery

from models import (
    ASSET_MODELS,
    AssetKind,
    Integration,
    RecordLink,
    RunKind,
    RunTrigger,
    SyncRun,
    SyncRunIssue,
)
from models.bulk import insert_rows
from sync import jobs, push_create
from sync.apply import record_progress
from sync.columns import as_uuid
from sync.context import RunContext
from sync.errors import FatalError
from sync.providers.base import PsaProvider
from sync.push import PushResults, record_outcomes, write_results
from sync.push_values import columns_of, local_rows

PAGE = 500
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
    progress = _Progress()
    await SyncRun.filter(id=ctx.run_id).update(total=await _count(integration, scope))
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


async def _count(integration: Integration, scope: Scope) -> int:
    total = 0
    for kind in ORDER:
        if kind in scope.kinds:
            total += await _candidates(integration, scope, kind, None).count()
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
    outcomes = await push_create.plan(integration, provider, kind, rows, name, planned)
    if not ctx.dry_run:
        await push_create.execute(provider, kind, outcomes, name)
    counts: Counter[str] = Counter()
    issues: list[dict[str, Any]] = []
    now = ctx.clock()
    for outcome in outcomes:
        done = DONE.get(outcome.code)
        if done is not None:
            code = done[1] if ctx.dry_run else done[0]
            counts["created" if outcome.code == "create" else "linked"] += 1
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

    if ctx.dry_run:
        results = PushResults()
    else:
        results = PushResults()
        by_id = {as_uuid(r["id"]): r for r in rows}
        await record_outcomes(integration, kind, outcomes, by_id, results, ctx.clock())
    await write_results(integration, results, ctx.clock(), also=report)


def _message(code: str, kind: AssetKind, name: str) -> str:
    return {
        "created": f"{kind.value} created in {name}",
        "would_create": f"{kind.value} would be created in {name}",
        "linked": f"{kind.value} linked to its match in {name}; our values are pushed to it",
        "would_link": f"{kind.value} would be linked to its match in {name}",
    }.get(code, code)
