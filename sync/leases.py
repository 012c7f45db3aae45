"""Leases on an integration: which worker holds one of its jobs (pushes, the inbox).

A lease is two columns, ``{name}_owner`` and ``{name}_expires_at``. It is taken by one
compare-and-set UPDATE (free, already ours, or expired), so with several processes exactly
one holds it; a holder that dies loses it when it expires.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from tortoise.expressions import Q
from tortoise.queryset import QuerySet

from models import Integration, IntegrationStatus


async def claim(
    query: QuerySet[Integration], name: str, owner: str, now: datetime, duration: timedelta
) -> bool:
    """Take (or extend) the ``name`` lease of the integration ``query`` selects, unless it is
    paused or another live owner holds it."""
    unset: dict[str, Any] = {f"{name}_owner__isnull": True}
    ours: dict[str, Any] = {f"{name}_owner": owner}
    expired: dict[str, Any] = {f"{name}_expires_at__lt": now}
    free = Q(**unset) | Q(**ours) | Q(**expired)
    owned = await (
        query.exclude(status=IntegrationStatus.PAUSED)
        .filter(free)
        .update(**{f"{name}_owner": owner, f"{name}_expires_at": now + duration})
    )
    return owned == 1


async def release(integration_id: object, name: str, owner: str) -> None:
    """Give the lease back, if still ours."""
    await Integration.filter(id=integration_id, **{f"{name}_owner": owner}).update(
        **{f"{name}_owner": None, f"{name}_expires_at": None}
    )
