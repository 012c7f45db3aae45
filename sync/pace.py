"""Saying when a PSA's call budget, not the work, set a run's pace.

A PSA that allows so many calls per endpoint per hour (Pulseway PSA: about 1,500) makes a big
sync wait. The provider counts those waits; at the end of each attempt the run adds them, and
the attempt's running time, to its own (``budget_wait_seconds``, ``budget_waits`` per
endpoint, ``active_seconds``). When waiting took a large share of the run's time so far, one
issue says so, with the run's figures (an earlier attempt's is replaced), naming the
endpoints that waited longest, so the user knows the sync was throttled on purpose and where.
A paused and resumed run, or one retried after an outage, is judged as a whole.
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
    """Add this attempt's running time and budget waits to the run's, and say (in one issue)
    when the budget set the pace of the run so far."""
    elapsed = max((now - started).total_seconds(), 0.0)
    async with in_transaction():
        found = await SyncRun.filter(id=run.id).first()
        if found is None:  # deleted meanwhile
            return
        totals = dict(found.budget_waits or {})
        for endpoint, seconds in waits.items():
            totals[endpoint] = totals.get(endpoint, 0.0) + seconds
        active = found.active_seconds + elapsed
        await SyncRun.filter(id=run.id).update(
            active_seconds=active,
            budget_waits=totals,
            budget_wait_seconds=F("budget_wait_seconds") + sum(waits.values()),
        )
        if not totals:
            return
        await SyncRunIssue.filter(run_id=run.id, code=CODE).delete()
        if paced_by_budget(totals, active):
            waited = sum(totals.values())
            await SyncRunIssue.create(
                run_id=run.id,
                code=CODE,
                message=message(display_name, totals, active),
                detail={"waited_seconds": round(waited, 3), "elapsed_seconds": round(active, 3),
                        "endpoints": {k: round(v, 3) for k, v in totals.items()}},
            )  # fmt: skip
