"""Trouble on demand (rate limits, server errors, outages, latency, dropped answers, areas the
API user may not touch) and what the simulator has served.

Both objects belong to one simulator instance and may be changed while it runs, from Python
(``simulator.faults.rate_limit_every = 3``) or over HTTP (``POST /__simulator/faults``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any


@dataclass
class Faults:
    """Which API requests fail, and how. Counting starts at the first API request (1-based)."""

    rate_limit_every: int = 0  # every N-th request gets 429 + Retry-After; 0 = never
    retry_after_seconds: int = 1
    error_every: int = 0  # every M-th request gets `error_status`; 0 = never
    error_status: int = 503
    latency_ms: int = 0  # added before every API response
    outage_status: int = 0  # while non-zero, EVERY request fails with it (429 or 5xx); 0 = up
    # Every N-th applied write (counted in `Traffic.writes`) is done, then its answer is lost:
    # the connection drops mid-response (`simulators/transport.py`); 0 = never.
    drop_after_write_every: int = 0

    def fault_for(self, request_number: int) -> int | None:
        """The status to fail request number `request_number` with, or None to serve it."""
        if self.outage_status:
            return self.outage_status
        if self.rate_limit_every > 0 and request_number % self.rate_limit_every == 0:
            return 429
        if self.error_every > 0 and request_number % self.error_every == 0:
            return self.error_status
        return None

    def drops_answer(self, write_number: int) -> bool:
        """Whether applied write number `write_number` (1-based) loses its answer."""
        every = self.drop_after_write_every
        return every > 0 and write_number % every == 0

    def configure(self, changes: dict[str, Any]) -> None:
        """Apply a JSON object of settings; unknown names or bad values raise ValueError."""
        known = {f.name for f in fields(self)}
        for name, value in changes.items():
            if name not in known:
                raise ValueError(f"unknown fault setting {name!r}; known: {sorted(known)}")
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"{name} must be a non-negative integer")
        if "error_status" in changes and not 500 <= changes["error_status"] <= 599:
            raise ValueError("error_status must be a 5xx status")
        outage = changes.get("outage_status", 0)
        if outage and not (outage == 429 or 500 <= outage <= 599):
            raise ValueError("outage_status must be 0 (no outage), 429 or a 5xx status")
        for name, value in changes.items():
            setattr(self, name, value)

    def clear(self) -> None:
        """Back to serving every request promptly."""
        self.configure(asdict(Faults()))

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


@dataclass
class Traffic:
    """Counters a test can assert on; updated by the server for every API request."""

    requests: int = 0  # API requests received, faulted ones included
    by_method: dict[str, int] = field(default_factory=dict)  # `requests` per HTTP method
    served: int = 0  # API requests answered without an injected fault
    faults_injected: int = 0  # rate limits, server errors and dropped answers
    rate_limited: int = 0
    server_errors: int = 0
    writes: int = 0  # POST, PUT, PATCH and DELETE requests that changed a record
    dropped_answers: int = 0  # writes applied but never answered (the connection dropped)
    with_client_id: int = 0  # requests that carried a `clientId` header
    last_client_id: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


READ, WRITE = "read", "write"
_ACCESS_WORDS = {READ: {READ}, WRITE: {WRITE}, "all": {READ, WRITE}, "both": {READ, WRITE}}


class Denials:
    """Areas the API user's security role does not reach: requests there answer 403.

    A permission problem as a fault: set from Python (``simulator.denials.deny("tickets")``),
    at construction (``denied={"tickets": "read"}``) or over HTTP (``POST /__simulator/faults``
    with ``{"deny": {"tickets": "read", "companies": ["read", "write"]}}``; ``{"deny": {}}``
    and ``DELETE`` grant everything again). Reads are GET requests, writes everything else.
    """

    def __init__(self, areas: tuple[str, ...], denied: Mapping[str, Any] | None = None) -> None:
        self.areas = areas
        self.denied: dict[str, frozenset[str]] = {}
        if denied:
            self.configure(denied)

    def deny(self, area: str, access: str = "all") -> None:
        """Deny `access` ("read", "write" or "all") to `area`, on top of earlier denials."""
        merged = set(self.denied.get(area, ())) | self._access(area, access)
        self.configure({**self.as_dict(), area: sorted(merged)})

    def configure(self, denied: Mapping[str, Any]) -> None:
        """Replace the denials; ValueError names an unknown area or access word."""
        if not isinstance(denied, Mapping):
            raise ValueError('deny must be an object such as {"tickets": "read"}')
        parsed: dict[str, frozenset[str]] = {}
        for area, access in denied.items():
            if area not in self.areas:
                raise ValueError(f"unknown area {area!r}; known: {', '.join(self.areas)}")
            words = [access] if isinstance(access, str) else access
            if access is None or words == []:
                continue
            if not isinstance(words, list | tuple):
                raise ValueError(f"{area}: give read, write, all, or a list of them")
            granted: set[str] = set()
            for word in words:
                granted |= self._access(area, word)
            parsed[area] = frozenset(granted)
        self.denied = parsed

    def _access(self, area: str, word: Any) -> set[str]:
        found = _ACCESS_WORDS.get(word) if isinstance(word, str) else None
        if found is None:
            raise ValueError(f"{area}: {word!r} is not read, write or all")
        return set(found)

    def denies(self, area: str | None, method: str) -> bool:
        """Whether a request with `method` to `area` is refused (None: an area never denied)."""
        if area is None:
            return False
        return (READ if method in ("GET", "HEAD") else WRITE) in self.denied.get(area, ())

    def clear(self) -> None:
        self.denied = {}

    def as_dict(self) -> dict[str, list[str]]:
        return {area: sorted(access) for area, access in self.denied.items()}
