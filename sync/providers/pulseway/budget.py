"""Per-endpoint call budget: Pulseway PSA allows 1,500 calls per hour per endpoint.

Each endpoint key (method + path template, ``GET /v2/crm/contacts/summary``) gets its own
``aiolimiter`` leaky bucket. The bucket is sized so that no window of one hour can hold more than
``per_hour`` calls: a small burst (``per_hour // 60``, at least 1) and a sustained rate of the rest.
A plain ``AsyncLimiter(per_hour, 3600)`` would allow a full burst plus an hour of drip, twice the
budget in the worst hour.

The bucket reads an injected clock and the waiting is done with an injected ``sleep``, so tests
drive time by hand. Every wait is recorded: a run can then tell "the budget, not the work, set
the pace". Waits are recorded as time that went by, not summed per call: eight creates waiting
together for 30 s waited 30 s, not 240 s.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from types import MappingProxyType

from aiolimiter import AsyncLimiter

from sync.providers.http import Sleep

__all__ = ["Clock", "EndpointBudget"]

Clock = Callable[[], float]

_HOUR = 3600.0
_EPSILON = 1e-3  # seconds of budget not worth waiting for


class _ClockedLimiter(AsyncLimiter):
    """aiolimiter's bucket drained by an injected clock instead of the event loop's.

    Only the accounting is aiolimiter's (``has_capacity``/``acquire``); ``EndpointBudget`` sleeps
    until there is capacity before acquiring, so ``acquire`` never parks on a loop timer (which
    would mix the two clocks). Relies on aiolimiter 1.x's ``_leak`` hook.
    """

    __slots__ = ("_clock",)

    def __init__(self, max_rate: float, time_period: float, clock: Clock) -> None:
        super().__init__(max_rate, time_period)
        self._clock = clock
        self._last_check = clock()

    def _leak(self) -> None:
        now = self._clock()
        if self._level:
            # A wall clock may step back: never let that fill the bucket.
            elapsed = max(now - self._last_check, 0.0)
            self._level = max(self._level - elapsed * self._rate_per_sec, 0.0)
        self._last_check = now

    def seconds_until_capacity(self, amount: float = 1.0) -> float:
        self._leak()
        delay = max(self._level + amount - self.max_rate, 0.0) / self._rate_per_sec
        if delay < _EPSILON:
            # Float rounding after a wait of exactly the computed delay: a clock far from its
            # epoch cannot advance by such a sliver, so waiting for it could loop forever.
            self._level = min(self._level, self.max_rate - amount)
            return 0.0
        return delay


class _WaitLedger:
    """Time during which calls waited, per endpoint. A second in which several calls wait
    counts once, shared among the endpoints waiting then: the endpoints' seconds add up to
    the time anything waited, never to more than the time that went by."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._waiting: dict[str, int] = {}  # endpoint -> calls waiting now
        self._since = 0.0
        self.seconds: dict[str, float] = {}

    def settle(self) -> None:
        now = self._clock()
        if self._waiting:
            # A wall clock may step back: that is no time spent waiting.
            share = max(now - self._since, 0.0) / len(self._waiting)
            for endpoint in self._waiting:
                self.seconds[endpoint] = self.seconds.get(endpoint, 0.0) + share
        self._since = now

    def begin(self, endpoint: str) -> None:
        self.settle()
        self._waiting[endpoint] = self._waiting.get(endpoint, 0) + 1

    def end(self, endpoint: str) -> None:
        self.settle()
        left = self._waiting.pop(endpoint) - 1
        if left:
            self._waiting[endpoint] = left


class EndpointBudget:
    """Spreads calls so that no endpoint exceeds ``per_hour`` calls in any hour."""

    def __init__(
        self, per_hour: int, *, clock: Clock = time.monotonic, sleep: Sleep = asyncio.sleep
    ) -> None:
        if per_hour < 1:
            raise ValueError("the call budget must allow at least one call per hour")
        self.per_hour = per_hour
        self._burst = max(1, per_hour // 60)
        sustained = per_hour - self._burst
        self._period = _HOUR * self._burst / sustained if sustained > 0 else _HOUR
        self._clock = clock
        self._sleep = sleep
        self._limiters: dict[str, _ClockedLimiter] = {}
        self._ledger = _WaitLedger(clock)
        self._calls: dict[str, int] = {}

    async def acquire(self, endpoint: str) -> float:
        """Wait until ``endpoint`` may be called, count the call; return the seconds this
        call waited."""
        limiter = self._limiters.get(endpoint)
        if limiter is None:
            limiter = _ClockedLimiter(self._burst, self._period, self._clock)
            self._limiters[endpoint] = limiter
        waited = 0.0
        delay = limiter.seconds_until_capacity()
        if delay > 0:
            self._ledger.begin(endpoint)
            try:
                while delay > 0:
                    await self._sleep(delay)
                    waited += delay
                    delay = limiter.seconds_until_capacity()
            finally:
                self._ledger.end(endpoint)
        # Capacity is there and nothing awaits in between: this returns without suspending.
        await limiter.acquire()
        self._calls[endpoint] = self._calls.get(endpoint, 0) + 1
        return waited

    @property
    def wait_seconds(self) -> float:
        """Seconds during which calls waited for the budget (overlapping waits once)."""
        return sum(self.waits.values())

    @property
    def waits(self) -> Mapping[str, float]:
        """Seconds spent waiting, per endpoint key, adding up to ``wait_seconds`` (endpoints
        that never waited are absent)."""
        self._ledger.settle()
        return MappingProxyType({k: v for k, v in self._ledger.seconds.items() if v > 0})

    @property
    def calls(self) -> Mapping[str, int]:
        """Calls counted against the budget, per endpoint key."""
        return MappingProxyType(self._calls)
