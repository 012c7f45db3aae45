"""Fenced leases on an integration: which worker holds one of its jobs (pushes, the inbox).

A lease is two columns, ``{name}_owner`` and ``{name}_expires_at``. A claim writes a token
that is new at every claim (the holder's name and a random part) by one compare-and-set
UPDATE, which succeeds only when the lease is free or expired: with several tasks or
processes exactly one holds it, and there is no "already mine" that two tasks could share.
The token is the fence:

- ``guard`` runs before every request the holder sends to the PSA (``sync.providers.http.
  send_guard``): every ``CONFIRM_EVERY``, and whenever the holder's own deadline draws near,
  it renews the lease by token in the database; a holder whose token is gone (it stalled
  past its lease and another claimed it, or the integration was paused or deleted) gets
  ``LeaseLost`` and sends nothing more;
- ``hold`` is the first statement of a transaction that writes results: it renews by token
  too, so a holder that lost the lease writes nothing (the transaction rolls back).

Correctness never rests on clocks agreeing: the local deadline only decides when to look,
the token in the database decides who holds.
"""

from __future__ import annotations

import logging
import secrets
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from tortoise.expressions import Q
from tortoise.queryset import QuerySet

from models import Integration, IntegrationStatus
from sync.errors import LeaseLost
from sync.providers.base import PsaProvider
from sync.providers.http import send_guard

log = logging.getLogger("psasync.leases")

# How often a holder that keeps sending confirms its token in the database (and so how soon
# a pause stops its requests).
CONFIRM_EVERY = timedelta(seconds=2)
_OWNER_ROOM = 100 - 1 - 16  # the owner column's length, minus "#" and the random part


@dataclass
class Fence:
    """One claim of the ``name`` lease of an integration."""

    integration_id: uuid.UUID
    name: str
    token: str
    duration: timedelta
    clock: Callable[[], datetime]
    deadline: datetime
    confirmed_at: datetime
    lost: bool = False

    async def guard(self) -> None:
        """Before a request: raise ``LeaseLost`` unless this claim still holds."""
        if self.lost:
            raise LeaseLost(f"the {self.name} of integration {self.integration_id} was lost")
        now = self.clock()
        if now - self.confirmed_at >= CONFIRM_EVERY or now >= self.deadline - self.duration / 4:
            await self.renew()

    async def renew(self) -> None:
        """Extend the lease by token; ``LeaseLost`` when the token is no longer there."""
        now = self.clock()
        owned = await (
            Integration.filter(id=self.integration_id, **{f"{self.name}_owner": self.token})
            .exclude(status=IntegrationStatus.PAUSED)
            .update(**{f"{self.name}_expires_at": now + self.duration})
        )
        if owned != 1:
            self.lost = True
            raise LeaseLost(f"the {self.name} of integration {self.integration_id} was lost")
        self.deadline = now + self.duration
        self.confirmed_at = now

    async def hold(self) -> None:
        """First statement of a transaction that writes this holder's results."""
        await self.renew()

    async def release(self) -> None:
        """Give the lease back, if this claim still holds it."""
        await Integration.filter(
            id=self.integration_id, **{f"{self.name}_owner": self.token}
        ).update(**{f"{self.name}_owner": None, f"{self.name}_expires_at": None})

    @contextmanager
    def guarding(self) -> Iterator[None]:
        """Requests sent inside the block (from this task and the tasks it starts) are
        guarded by this fence."""
        reset = send_guard.set(self.guard)
        try:
            yield
        finally:
            send_guard.reset(reset)


def new_token(owner: str) -> str:
    return f"{owner[:_OWNER_ROOM]}#{secrets.token_hex(8)}"


async def claim(
    integration_id: uuid.UUID,
    name: str,
    owner: str,
    clock: Callable[[], datetime],
    duration: timedelta,
    *,
    only: QuerySet[Integration] | None = None,
) -> Fence | None:
    """Claim the ``name`` lease of the integration, unless it is paused, a live claim holds
    it, or it is not among ``only`` (a caller's further condition); the new claim's fence,
    or None. One UPDATE: the condition and the claim cannot come apart."""
    now = clock()
    unset: dict[str, Any] = {f"{name}_owner__isnull": True}
    expired: dict[str, Any] = {f"{name}_expires_at__lt": now}
    token = new_token(owner)
    query = (only if only is not None else Integration.all()).filter(id=integration_id)
    owned = await (
        query.exclude(status=IntegrationStatus.PAUSED)
        .filter(Q(**unset) | Q(**expired))
        .update(**{f"{name}_owner": token, f"{name}_expires_at": now + duration})
    )
    if owned != 1:
        return None
    return Fence(integration_id, name, token, duration, clock, now + duration, now)


class Held:
    """What a claim's holder works with: its fence, and the integration's provider, opened
    on first use (a holder with nothing to do opens none)."""

    def __init__(self, fence: Fence, open_provider: Callable[[], Awaitable[PsaProvider]]) -> None:
        self.fence = fence
        self._open = open_provider
        self._provider: PsaProvider | None = None

    async def provider(self) -> PsaProvider:
        if self._provider is None:
            self._provider = await self._open()
        return self._provider

    async def close(self) -> None:
        if self._provider is not None:
            await self._provider.aclose()


@asynccontextmanager
async def holding(
    fence: Fence, open_provider: Callable[[], Awaitable[PsaProvider]], what: str
) -> AsyncIterator[Held]:
    """Work under ``fence`` (its guard on every request), then close the provider and give
    the lease back. A lost lease ends the block quietly: the new holder carries on."""
    held = Held(fence, open_provider)
    try:
        with fence.guarding():
            yield held
    except LeaseLost:
        log.warning("%s stopped: the lease was lost", what)
    finally:
        await held.close()
        await fence.release()
