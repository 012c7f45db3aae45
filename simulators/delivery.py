"""What the simulators' outgoing notices share (ConnectWise callbacks, Pulseway webhooks):
the record of one delivery, the signed message that carries it, and how one POST attempt
ends. Each PSA keeps its own payload, signature, queue and retry schedule."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Generic, NamedTuple, TypeVar

import httpx

REQUEST_TIMEOUT = 5.0
RECENT_DELIVERIES = 1000  # deliveries kept for inspection, newest last

D = TypeVar("D", bound="Attempts")


@dataclass(kw_only=True)
class Attempts:
    """How a delivery went so far (final once it is in a simulator's `deliveries`)."""

    attempts: int = 0
    status: int | None = None  # HTTP status of the last attempt
    error: str | None = None  # connection error or timeout of the last attempt

    @property
    def succeeded(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "succeeded": self.succeeded}

    def settle(self, outcome: httpx.Response | Exception, retriable: Callable[[int], bool]) -> bool:
        """Record one attempt's outcome; True when it is worth another: a connection error
        or timeout, or a `retriable` status. A bad URL or other client error is final."""
        self.attempts += 1
        if isinstance(outcome, httpx.Response):
            self.status, self.error = outcome.status_code, None
            return retriable(outcome.status_code)
        self.status, self.error = None, describe(outcome)
        return isinstance(outcome, httpx.TransportError)


class Message(NamedTuple, Generic[D]):
    delivery: D
    body: bytes
    headers: dict[str, str]


def describe(error: Exception) -> str:
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
