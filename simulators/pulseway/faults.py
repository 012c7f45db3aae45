"""Trouble on demand and what the simulator has served, plus Pulseway's hourly call budget.

`Faults` and `Denials` are the ConnectWise simulator's (same settings, same
``/__simulator/faults`` API; the areas differ, see `app.AREAS`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from simulators.connectwise.faults import Denials, Faults

__all__ = ["CallBudget", "Denials", "Faults", "Traffic"]


@dataclass
class Traffic:
    """Counters a test can assert on; updated for every API request."""

    requests: int = 0  # API requests received, faulted ones included
    served: int = 0  # answered without an injected fault
    faults_injected: int = 0  # injected 429s, 5xx and dropped answers
    rate_limited: int = 0  # injected 429s
    server_errors: int = 0  # injected 5xx
    over_budget: int = 0  # 429s from the hourly per-endpoint budget
    unauthorized: int = 0  # 401s
    writes: int = 0  # successful POST, PUT, PATCH and DELETE (authentication excluded)
    dropped_answers: int = 0  # writes applied but never answered (the connection dropped)
    by_endpoint: dict[str, int] = field(default_factory=dict)  # "GET /v2/crm/..." → requests

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class CallBudget:
    """At most `per_hour` calls per endpoint (method + path template) per hour; 0 = unlimited.

    Pulseway documents "1500 per hour per endpoint" without saying how the hour is counted;
    here each endpoint's hour starts with its first call after the previous hour ended
    (a fixed window), measured on the simulator's clock.
    """

    per_hour: int = 1500
    windows: dict[str, tuple[datetime, int]] = field(default_factory=dict)

    def spend(self, endpoint: str, now: datetime) -> int | None:
        """Count one call; None if allowed, else the seconds until the window resets."""
        if self.per_hour <= 0:
            return None
        start, used = self.windows.get(endpoint, (now, 0))
        if now >= start + timedelta(hours=1):
            start, used = now, 0
        if used >= self.per_hour:
            self.windows[endpoint] = (start, used)
            return max(1, int((start + timedelta(hours=1) - now).total_seconds()))
        self.windows[endpoint] = (start, used + 1)
        return None

    def used(self, endpoint: str) -> int:
        return self.windows.get(endpoint, (None, 0))[1]

    def reset(self) -> None:
        self.windows.clear()
