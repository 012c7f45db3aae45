"""Saying when a PSA's call budget, not the work, set a run's pace.

A PSA that allows so many calls per endpoint per hour (Pulseway PSA: about 1,500) makes a big
sync wait. The provider counts those waits; at the end of each attempt the run adds them to
``SyncRun.budget_wait_seconds`` and, when waiting took a large share of the attempt, records
an issue naming the endpoints that waited longest, so the user knows the sync was throttled
on purpose and where.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from tortoise.expressions import F
from tortoise.transactions import in_transaction

from models import SyncRun, SyncRunIssue

CODE = "psa_call_budget"
# Waiting for at least this share of an attempt (and this long) means the budget set the pace.
SHARE = 0.25
MINIMUM_SECONDS = 1.0
NAMED_ENDPOINTS = 3


def paced_by_budget(waits: Mapping[str, float], elapsed: float) -> bool:
    waited = sum(waits.values())
    return waited >= MINIMUM_SECONDS and waited >= SHARE * max(elapsed, 0.0)


def message(display_name: str, waits: Mapping[str, float], elapsed: float) -> str:
    waited = sum(waits.values())
    slowest = sorted(waits.items(), key=lambda item: (-item[1], item[0]))[:NAMED_ENDPOINTS]
    where = ", ".join(f"{endpoint} {seconds:.0f} s" for endpoint, seconds in slowest)
    return (
        f"{display_name}'s call budget set the pace: {waited:.0f} s of {elapsed:.0f} s were "
        f"spent waiting for it ({where}). Raise the budget only if your PSA allows more calls."
    )


async def record(
    run: SyncRun,
    display_name: str,
    waits: Mapping[str, float],
    started: datetime,
    now: datetime,
) -> None:
    """Add this attempt's budget waits to the run (and an issue when they set its pace)."""
    waited = sum(waits.values())
    if waited <= 0:
        return
    elapsed = (now - started).total_seconds()
    async with in_transaction():
        await SyncRun.filter(id=run.id).update(
            budget_wait_seconds=F("budget_wait_seconds") + waited
        )
        if paced_by_budget(waits, elapsed):
            await SyncRunIssue.create(
                run_id=run.id,
                code=CODE,
                message=message(display_name, waits, elapsed),
                detail={"waited_seconds": round(waited, 3), "elapsed_seconds": round(elapsed, 3),
                        "endpoints": {k: round(v, 3) for k, v in waits.items()}},
            )  # fmt: skip
