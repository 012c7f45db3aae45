"""Provider-neutral HTTP plumbing: retries with back-off, and paginators.

``send`` turns the transient outcomes of one request (429, 502-504, a bounded number of 500s,
timeouts, connection failures) into retries with exponential back-off and full jitter, honouring
``Retry-After``. What it returns is a final response that the provider maps to domain errors;
what it raises is already a ``sync.errors`` class. Retries are done here, not in the transport,
because httpx's transport retries cover connect errors only.

Paginators follow singer-sdk's ``pagination.py``: objects with ``get_next``, ``has_more`` and
``advance`` that refuse a page token they already handed out instead of looping forever.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Hashable
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Generic, TypeVar

import httpx

from sync.errors import FatalError, ProtocolError, RetriableError, UnreachableError

__all__ = [
    "NextLinkPaginator",
    "Paginator",
    "RetryPolicy",
    "Sleep",
    "json_body",
    "parse_retry_after",
    "send",
    "send_guard",
]

logger = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]

# Awaited before every attempt ``send`` makes, when set: a job holding a lease sets it
# (``sync.leases.Fence.guarding``), so a holder that lost its lease (it stalled in a retry
# wait, say) sends nothing more. It raises to stop the request.
send_guard: ContextVar[Callable[[], Awaitable[None]] | None] = ContextVar(
    "send_guard", default=None
)

# Statuses that mean "not now" rather than "no".
RETRY_STATUSES = frozenset({429, 502, 503, 504})
# Outcomes after which the server has certainly not applied the request, so even a POST may be
# sent again. 503 and 429 are refusals at the door; a 502/504/timeout may hide an applied write.
_UNAPPLIED_STATUSES = frozenset({429, 503})
_UNSENT_EXCEPTIONS = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
# Deterministic failures: sending again cannot help.
_PERMANENT_EXCEPTIONS = (httpx.UnsupportedProtocol, httpx.LocalProtocolError)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How hard ``send`` tries: attempts in total, back-off bounds, and the Retry-After cap."""

    max_attempts: int = 6
    base_delay: float = 0.5
    max_delay: float = 30.0
    max_retry_after: float = 120.0
    # A 500 is usually a bug on the PSA side, sometimes a hiccup: retry it a little only.
    server_error_retries: int = 2

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if min(self.base_delay, self.max_delay, self.max_retry_after) < 0:
            raise ValueError("delays must not be negative")

    def backoff(self, failures: int, rng: Callable[[], float] = random.random) -> float:
        """Full-jitter delay after ``failures`` failed attempts.

        Uniform in ``[0, min(max_delay, base_delay * 2 ** (failures - 1)))``.
        """
        ceiling = min(self.max_delay, self.base_delay * 2.0 ** min(max(failures - 1, 0), 62))
        return rng() * ceiling


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP-date), or None."""
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:  # RFC 9110 dates are GMT
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    if not math.isfinite(seconds):
        return None
    return max(seconds, 0.0)


async def send(
    client: httpx.AsyncClient,
    request_factory: Callable[[], httpx.Request],
    policy: RetryPolicy,
    *,
    sleep: Sleep = asyncio.sleep,
    rng: Callable[[], float] = random.random,
    idempotent: bool = True,
    service: str = "the PSA",
) -> httpx.Response:
    """Send a request, retrying transient failures; return the first non-transient response.

    ``request_factory`` builds a fresh request per attempt. 429/502/503/504, timeouts and
    connection failures are retried up to ``policy.max_attempts``; a 500 only
    ``policy.server_error_retries`` times. A non-``idempotent`` request (POST, PATCH) is only
    re-sent when the server certainly did not apply it (429, 503, no connection made).

    Giving up raises ``UnreachableError`` when no connection could be made, otherwise
    ``RetriableError`` carrying the server's last ``Retry-After`` (None if it sent none).
    Every other response (2xx, 3xx, 4xx, other 5xx) is returned for the caller to map.
    """
    server_errors = 0
    attempt = 0
    while True:
        attempt += 1
        guard = send_guard.get()
        if guard is not None:
            await guard()
        request = request_factory()
        what = f"{request.method} {request.url.path}"
        try:
            response = await client.send(request)
        except _PERMANENT_EXCEPTIONS as exc:
            raise FatalError(f"Could not send {what} to {service}: {type(exc).__name__}") from exc
        except httpx.DecodingError as exc:
            raise ProtocolError(f"{service} sent an undecodable body for {what}") from exc
        except httpx.TransportError as exc:
            retriable = idempotent or isinstance(exc, _UNSENT_EXCEPTIONS)
            if not retriable or attempt >= policy.max_attempts:
                raise _transport_failure(exc, what, service, attempt, retriable) from exc
            delay = policy.backoff(attempt, rng)
            logger.info(
                "%s: %s failed (%s), retry %d/%d in %.1fs",
                service,
                what,
                type(exc).__name__,
                attempt,
                policy.max_attempts - 1,
                delay,
            )
            await sleep(delay)
            continue

        status = response.status_code
        if status == 500:
            server_errors += 1
            if server_errors > policy.server_error_retries or not idempotent:
                raise RetriableError(
                    f"{service} failed with 500 Internal Server Error on {what}"
                    + (f" {server_errors} times" if server_errors > 1 else "")
                )
        elif status not in RETRY_STATUSES:
            return response
        elif not idempotent and status not in _UNAPPLIED_STATUSES:
            raise RetriableError(
                f"{service} answered {status} {response.reason_phrase} on {what}; the request "
                f"may or may not have been applied, so it was not re-sent"
            )

        retry_after = parse_retry_after(response.headers.get("retry-after"))
        if attempt >= policy.max_attempts:
            raise RetriableError(
                f"{service} still answered {status} {response.reason_phrase} on {what} "
                f"after {attempt} attempts",
                retry_after=retry_after,
            )
        if retry_after is not None:
            delay = min(retry_after, policy.max_retry_after)
        else:
            delay = policy.backoff(attempt, rng)
        logger.info(
            "%s: %s answered %d, retry %d/%d in %.1fs",
            service,
            what,
            status,
            attempt,
            policy.max_attempts - 1,
            delay,
        )
        await sleep(delay)


def _transport_failure(
    exc: httpx.TransportError, what: str, service: str, attempts: int, retried: bool
) -> RetriableError:
    tries = f" after {attempts} attempts" if attempts > 1 else ""
    if isinstance(exc, _UNSENT_EXCEPTIONS):
        return UnreachableError(
            f"Could not connect to {service} ({type(exc).__name__}){tries}: check the site "
            f"address and that {service} is up."
        )
    if isinstance(exc, httpx.TimeoutException):
        message = f"{service} did not answer {what} in time{tries}"
    else:
        message = f"The connection to {service} failed during {what} ({type(exc).__name__}){tries}"
    if not retried:
        message += "; the request may or may not have been applied, so it was not re-sent"
    return RetriableError(message)


TToken = TypeVar("TToken", bound=Hashable)


class Paginator(ABC, Generic[TToken]):
    """Walks pages by token, after singer-sdk's ``BaseAPIPaginator``.

    Call ``advance(response)`` after each page; read ``finished`` and ``current_value`` to decide
    the next request. Every token handed out is remembered, and a repeat raises
    ``ProtocolError``: a PSA that hands back a page it already gave would otherwise loop forever.
    """

    def __init__(self, start_value: TToken | None = None) -> None:
        self._value = start_value
        self._seen: set[Hashable] = set()
        # The first token's key is taken only once a second page exists: most walks are one
        # page, and a key can be costly (a long URL to parse).
        self._start = start_value
        self._count = 0
        self._finished = False

    @property
    def current_value(self) -> TToken | None:
        """The token of the page to request next (None before the first token)."""
        return self._value

    @property
    def finished(self) -> bool:
        return self._finished

    @property
    def count(self) -> int:
        """Pages seen so far."""
        return self._count

    @abstractmethod
    def get_next(self, response: httpx.Response) -> TToken | None:
        """The token of the page after ``response``, or None when there is none."""

    def has_more(self, response: httpx.Response, row_count: int | None = None) -> bool:
        """Whether another page may follow ``response`` (which held ``row_count`` rows)."""
        return True

    def token_key(self, token: TToken) -> Hashable:
        """What makes two tokens the same page (override to normalise)."""
        return token

    def advance(self, response: httpx.Response, *, row_count: int | None = None) -> None:
        """Move past ``response``; sets ``finished`` or the next ``current_value``."""
        if self._finished:
            raise RuntimeError("advance() called after the last page")
        self._count += 1
        if not self.has_more(response, row_count):
            self._finished = True
            return
        token = self.get_next(response)
        if token is None or token == "":
            self._finished = True
            return
        if self._start is not None:
            self._seen.add(self.token_key(self._start))
            self._start = None
        key = self.token_key(token)
        if key in self._seen:
            raise ProtocolError(
                f"The PSA returned page {str(token)[:300]!r} twice (after {self._count} pages); "
                f"stopping instead of looping forever"
            )
        self._seen.add(key)
        self._value = token


class NextLinkPaginator(Paginator[str]):
    """Follows the ``Link: <...>; rel="next"`` header (as parsed by ``httpx.Response.links``).

    With ``page_size`` set, an empty or short page ends the walk even if a next link is present:
    some servers always send one (ConnectWise forward-only paging does not say how it ends).
    """

    def __init__(self, page_size: int | None = None, start_value: str | None = None) -> None:
        super().__init__(start_value)
        self.page_size = page_size

    def has_more(self, response: httpx.Response, row_count: int | None = None) -> bool:
        if row_count is None:
            return True
        return row_count > 0 and (self.page_size is None or row_count >= self.page_size)

    def get_next(self, response: httpx.Response) -> str | None:
        url = response.links.get("next", {}).get("url")
        if not url:
            return None
        # A relative link is relative to the page it came with.
        return str(response.request.url.join(url))

    def token_key(self, token: str) -> Hashable:
        # The same page may come back with its query in another order.
        url = httpx.URL(token)
        return (url.scheme, url.host, url.port, url.path, tuple(sorted(url.params.multi_items())))


def json_body(response: httpx.Response, service: str, what: str) -> Any:
    """The response's JSON; ``ProtocolError`` naming the service when it is not JSON."""
    try:
        return response.json()
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
        kind = response.headers.get("content-type", "no content type")
        raise ProtocolError(
            f"{service} answered {what} with a body that is not JSON ({kind})"
        ) from exc
