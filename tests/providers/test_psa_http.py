"""Provider-neutral retries and paginators, over httpx.MockTransport (no network, no waiting)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import httpx
import pytest

from sync.errors import FatalError, ProtocolError, RetriableError, UnreachableError
from sync.providers.http import NextLinkPaginator, RetryPolicy, parse_retry_after, send

URL = "https://psa.example.com/items"
Outcome = httpx.Response | Exception


class Sleeps:
    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


def scripted(*outcomes: Outcome) -> tuple[httpx.AsyncClient, list[httpx.Request]]:
    """A client whose transport answers with ``outcomes`` in order, recording the requests."""
    queue: Iterator[Outcome] = iter(outcomes)
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        outcome = next(queue)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    return httpx.AsyncClient(transport=httpx.MockTransport(handle)), seen


def factory(client: httpx.AsyncClient, method: str = "GET") -> Callable[[], httpx.Request]:
    return lambda: client.build_request(method, URL)


# -- Retry-After and back-off --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("7", 7.0),
        ("0", 0.0),
        ("1.5", 1.5),
        ("-3", 0.0),
        (None, None),
        ("soon", None),
        ("nan", None),
    ],
)
def test_retry_after_seconds(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value) == expected


def test_retry_after_http_date_is_relative_to_now() -> None:
    now = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)

    assert parse_retry_after("Wed, 01 Jan 2025 12:00:45 GMT", now=now) == 45.0
    assert parse_retry_after("Wed, 01 Jan 2025 11:00:00 GMT", now=now) == 0.0


def test_backoff_is_full_jitter_under_an_exponential_cap() -> None:
    policy = RetryPolicy(base_delay=0.5, max_delay=30.0)

    assert [policy.backoff(n, lambda: 1.0) for n in (1, 2, 3, 4)] == [0.5, 1.0, 2.0, 4.0]
    assert policy.backoff(20, lambda: 1.0) == 30.0
    assert policy.backoff(3, lambda: 0.0) == 0.0


# -- send ----------------------------------------------------------------------------------------


async def test_success_is_returned_without_sleeping() -> None:
    client, _ = scripted(httpx.Response(200, json=[]))
    sleeps = Sleeps()

    response = await send(client, factory(client), RetryPolicy(), sleep=sleeps)

    assert response.status_code == 200
    assert sleeps.delays == []


@pytest.mark.parametrize("status", [429, 502, 503, 504])
async def test_transient_statuses_are_retried(status: int) -> None:
    client, seen = scripted(httpx.Response(status), httpx.Response(200))
    sleeps = Sleeps()

    response = await send(client, factory(client), RetryPolicy(), sleep=sleeps, rng=lambda: 1.0)

    assert response.status_code == 200
    assert len(seen) == 2
    assert sleeps.delays == [0.5]


async def test_retry_after_is_honoured_and_capped() -> None:
    client, _ = scripted(
        httpx.Response(429, headers={"Retry-After": "7"}),
        httpx.Response(503, headers={"Retry-After": "600"}),
        httpx.Response(200),
    )
    sleeps = Sleeps()

    await send(client, factory(client), RetryPolicy(max_retry_after=120.0), sleep=sleeps)

    assert sleeps.delays == [7.0, 120.0]


async def test_client_errors_are_returned_not_retried() -> None:
    client, seen = scripted(httpx.Response(404))

    response = await send(client, factory(client), RetryPolicy(), sleep=Sleeps())

    assert response.status_code == 404
    assert len(seen) == 1


async def test_giving_up_carries_the_last_retry_after() -> None:
    client, seen = scripted(*[httpx.Response(429, headers={"Retry-After": "9"})] * 3)

    with pytest.raises(RetriableError) as caught:
        await send(client, factory(client), RetryPolicy(max_attempts=3), sleep=Sleeps())

    assert caught.value.retry_after == 9.0
    assert len(seen) == 3


async def test_timeouts_are_retried_then_retriable_error() -> None:
    client, seen = scripted(httpx.ReadTimeout("slow"), httpx.ReadTimeout("slow"))

    with pytest.raises(RetriableError, match="in time") as caught:
        await send(client, factory(client), RetryPolicy(max_attempts=2), sleep=Sleeps())

    assert not isinstance(caught.value, UnreachableError)
    assert len(seen) == 2


async def test_connection_failures_end_as_unreachable() -> None:
    client, _ = scripted(httpx.ConnectError("refused"), httpx.ConnectError("refused"))

    with pytest.raises(UnreachableError):
        await send(client, factory(client), RetryPolicy(max_attempts=2), sleep=Sleeps())


async def test_500_is_retried_only_a_few_times() -> None:
    client, seen = scripted(*[httpx.Response(500)] * 3)

    with pytest.raises(RetriableError, match="500"):
        await send(client, factory(client), RetryPolicy(server_error_retries=2), sleep=Sleeps())

    assert len(seen) == 3


async def test_non_idempotent_requests_are_resent_only_when_surely_unapplied() -> None:
    client, seen = scripted(httpx.Response(429), httpx.ConnectError("refused"), httpx.Response(201))

    response = await send(
        client, factory(client, "POST"), RetryPolicy(), idempotent=False, sleep=Sleeps()
    )

    assert response.status_code == 201
    assert len(seen) == 3


@pytest.mark.parametrize("outcome", [httpx.Response(502), httpx.ReadTimeout("slow")])
async def test_non_idempotent_requests_are_not_resent_when_they_may_have_applied(
    outcome: Outcome,
) -> None:
    client, seen = scripted(outcome)

    with pytest.raises(RetriableError, match="may or may not have been applied"):
        await send(client, factory(client, "POST"), RetryPolicy(), idempotent=False, sleep=Sleeps())

    assert len(seen) == 1


async def test_a_deterministic_transport_failure_is_not_retried() -> None:
    client, seen = scripted(httpx.UnsupportedProtocol("no"))

    with pytest.raises(FatalError):
        await send(client, factory(client), RetryPolicy(), sleep=Sleeps())

    assert len(seen) == 1


def test_retry_policy_refuses_nonsense() -> None:
    with pytest.raises(ValueError, match="max_attempts"):
        RetryPolicy(max_attempts=0)


# -- paginators ----------------------------------------------------------------------------------


def page(next_url: str | None = None, url: str = URL) -> httpx.Response:
    headers = {"Link": f'<{next_url}>; rel="next", <{URL}?page=9>; rel="last"'} if next_url else {}
    return httpx.Response(200, headers=headers, request=httpx.Request("GET", url))


def test_next_link_paginator_follows_rel_next() -> None:
    paginator = NextLinkPaginator()

    paginator.advance(page(f"{URL}?page=2"))
    assert paginator.current_value == f"{URL}?page=2"
    paginator.advance(page(None))

    assert paginator.finished
    assert paginator.count == 2


def test_relative_next_links_resolve_against_the_page() -> None:
    paginator = NextLinkPaginator()

    paginator.advance(page("/items?page=2"))

    assert paginator.current_value == "https://psa.example.com/items?page=2"


def test_a_repeated_token_raises_protocol_error() -> None:
    paginator = NextLinkPaginator()
    paginator.advance(page(f"{URL}?a=1&page=2"))

    # The same page with its query in another order is still the same page.
    with pytest.raises(ProtocolError, match="twice"):
        paginator.advance(page(f"{URL}?page=2&a=1"))


def test_a_cycle_back_to_an_earlier_page_is_caught() -> None:
    paginator = NextLinkPaginator()
    paginator.advance(page(f"{URL}?page=2"))
    paginator.advance(page(f"{URL}?page=3"))

    with pytest.raises(ProtocolError):
        paginator.advance(page(f"{URL}?page=2"))


@pytest.mark.parametrize(("rows", "finished"), [(0, True), (3, True), (5, False)])
def test_short_and_empty_pages_end_the_walk(rows: int, finished: bool) -> None:
    paginator = NextLinkPaginator(page_size=5)

    paginator.advance(page(f"{URL}?page=2"), row_count=rows)

    assert paginator.finished is finished


def test_advancing_past_the_end_is_a_bug() -> None:
    paginator = NextLinkPaginator()
    paginator.advance(page(None))

    with pytest.raises(RuntimeError):
        paginator.advance(page(None))
