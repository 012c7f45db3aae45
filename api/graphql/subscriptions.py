"""``syncRunProgress``: a run as it changes, until it ends.

The run's row is the source of truth (a worker in another process writes it), so the
subscription reads it at a short interval and sends it only when something visible changed.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator

import strawberry

from api.graphql.context import Info
from api.graphql.loaders import Loaders
from api.graphql.permissions import PublicError
from api.graphql.queries import load_run, local_id
from api.graphql.types.sync_run import SyncRun

POLL_SECONDS = 0.5


def _fingerprint(run: SyncRun) -> tuple[object, ...]:
    return (
        run.status, run.phase, run.progress.processed, run.progress.total, run.error,
        tuple(vars(run.counts).values()),
    )  # fmt: skip


@strawberry.type
class Subscription:
    @strawberry.subscription(description="The run each time it changes; ends when it finishes.")
    async def sync_run_progress(
        self, info: Info, run_id: strawberry.ID
    ) -> AsyncGenerator[SyncRun, None]:
        run_uuid = local_id(run_id, "SyncRun", argument="runId")
        last: tuple[object, ...] | None = None
        if await load_run(info, run_uuid) is None:
            raise PublicError("no such run", "NOT_FOUND")
        while True:
            # Fresh loaders per event: a connection lives long, its caches must not.
            info.context.loaders = Loaders(info.context.account_id)
            run = await load_run(info, run_uuid)
            if run is None:
                return
            seen = _fingerprint(run)
            if seen != last:
                last = seen
                yield run
            if run.finished:
                return
            await asyncio.sleep(POLL_SECONDS)
