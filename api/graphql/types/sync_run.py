"""Sync runs: progress, counts, and the record-level errors grouped by type."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, ClassVar

import strawberry
from strawberry.scalars import JSON
from tortoise.functions import Count

from api.graphql.context import Info
from api.graphql.ids import to_global
from api.graphql.pagination import Connection, Ordering, SortDirection, keyset_page
from api.graphql.text import checked
from api.graphql.types.enums import AssetKindEnum, RunKindEnum, RunStatusEnum, RunTriggerEnum
from api.graphql.types.node import Node
from models import COUNT_FIELDS, AssetKind, RunKind, RunStatus, RunTrigger, SyncRunIssue

if TYPE_CHECKING:
    from api.graphql.types.integration import Integration


@strawberry.type
class RunProgress:
    processed: int
    total: int | None = strawberry.field(
        description="An estimate from the PSA's counts; grows as per-company lists are read."
    )

    @strawberry.field(description="0-100, when the total is known.")
    def percent(self) -> float | None:
        if not self.total:
            return None
        return round(min(100.0, 100.0 * self.processed / self.total), 1)


@strawberry.type
class RunCounts:
    created: int
    updated: int
    unchanged: int
    linked: int
    orphaned: int
    skipped: int
    failed: int


@strawberry.type(description="One record a run could not sync, and why.")
class RunIssue:
    kind: AssetKindEnum | None  # type: ignore[valid-type]
    psa_id: int | None
    record_id: strawberry.ID | None = strawberry.field(
        description="The local record's global id, when there is one."
    )
    message: str
    detail: JSON
    created_at: datetime

    COLUMNS: ClassVar[tuple[str, ...]] = (
        "id", "kind", "psa_id", "local_id", "message", "detail", "created_at",
    )  # fmt: skip

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> RunIssue:
        kind = AssetKind(row["kind"]) if row["kind"] else None
        local = row["local_id"]
        return cls(
            kind=kind,
            psa_id=row["psa_id"],
            record_id=(
                strawberry.ID(to_global(kind.value.title(), local)) if kind and local else None
            ),
            message=row["message"],
            detail=row["detail"],
            created_at=row["created_at"],
        )


@checked
@strawberry.type(description="A run's errors of one type.")
class IssueGroup:
    code: str
    message: str = strawberry.field(description="The first such error's message.")
    count: int
    run_id: strawberry.Private[uuid.UUID]

    @strawberry.field(description="The affected records, a page at a time.")
    async def records(
        self, first: int | None = 20, after: str | None = None
    ) -> Connection[RunIssue]:
        query = SyncRunIssue.filter(run_id=self.run_id, code=self.code)
        return await keyset_page(
            query, Ordering("created_at"), first, after, RunIssue.COLUMNS, RunIssue.from_row
        )


@strawberry.type
class SyncRun(Node):
    kind: RunKindEnum  # type: ignore[valid-type]
    trigger: RunTriggerEnum  # type: ignore[valid-type]
    dry_run: bool
    status: RunStatusEnum  # type: ignore[valid-type]
    phase: str | None
    progress: RunProgress
    counts: RunCounts
    error: str | None = strawberry.field(description="Why the run failed, or is waiting.")
    attempts: int
    not_before: datetime | None = strawberry.field(
        description="A run waiting out a PSA outage starts again after this."
    )
    queued_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    budget_wait_seconds: float = strawberry.field(
        description="Seconds spent waiting for the PSA's call budget (Pulseway PSA allows "
        "about 1,500 calls per hour per endpoint); when that set the pace, the run's errors "
        "say so (code psa_call_budget)."
    )
    local_id: strawberry.Private[uuid.UUID]
    integration_id: strawberry.Private[uuid.UUID]

    COLUMNS: ClassVar[tuple[str, ...]] = (
        "id", "integration_id", "kind", "trigger", "dry_run", "status", "phase", "processed",
        "total", *COUNT_FIELDS, "error", "attempts", "not_before", "queued_at", "started_at",
        "finished_at", "budget_wait_seconds",
    )  # fmt: skip

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> SyncRun:
        return cls(
            id=strawberry.ID(to_global("SyncRun", row["id"])),
            local_id=row["id"],
            integration_id=row["integration_id"],
            kind=RunKind(row["kind"]),
            trigger=RunTrigger(row["trigger"]),
            dry_run=row["dry_run"],
            status=RunStatus(row["status"]),
            phase=row["phase"],
            progress=RunProgress(processed=row["processed"], total=row["total"]),
            counts=RunCounts(**{name: row[name] for name in COUNT_FIELDS}),
            error=row["error"],
            attempts=row["attempts"],
            not_before=row["not_before"],
            queued_at=row["queued_at"],
            started_at=row["started_at"],
            finished_at=row["finished_at"],
            budget_wait_seconds=float(row["budget_wait_seconds"] or 0),
        )

    @property
    def finished(self) -> bool:
        return self.status not in (RunStatus.QUEUED, RunStatus.RUNNING)

    @strawberry.field
    async def integration(
        self, info: Info
    ) -> Annotated[Integration, strawberry.lazy("api.graphql.types.integration")]:
        found = await info.context.loaders.integration.load(self.integration_id)
        assert found is not None  # runs cascade with their integration
        return found

    @strawberry.field(description="Record-level errors, grouped by code, largest group first.")
    async def errors(self) -> list[IssueGroup]:
        groups = (
            await SyncRunIssue.filter(run_id=self.local_id)
            .annotate(n=Count("id"))
            .group_by("code")
            .order_by("-n", "code")
            .values("code", "n")
        )
        found = []
        for group in groups:
            first = (
                await SyncRunIssue.filter(run_id=self.local_id, code=group["code"])
                .order_by("created_at")
                .first()
                .values("message")
            )
            message = first["message"] if first else ""
            found.append(
                IssueGroup(code=group["code"], message=message, count=group["n"],
                           run_id=self.local_id)
            )  # fmt: skip
        return found


RUN_ORDER = Ordering("queued_at", SortDirection.DESC)
