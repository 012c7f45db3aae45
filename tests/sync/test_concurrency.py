"""A failed request stops its siblings before the caller closes their HTTP client; pages the
caller stops reading early are closed at once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from sync.concurrency import closing, gather_all
from sync.errors import RetriableError


async def test_results_come_back_in_order() -> None:
    async def value(n: int) -> int:
        await asyncio.sleep(0)
        return n

    assert await gather_all(*(value(n) for n in range(5))) == [0, 1, 2, 3, 4]


async def test_a_failure_cancels_the_others_and_waits_for_them() -> None:
    started = asyncio.Event()
    finished: list[str] = []

    async def slow() -> None:
        try:
            started.set()
            await asyncio.sleep(3600)
        finally:
            finished.append("slow")  # ran to its end (cancelled) before gather_all raised

    async def failing() -> None:
        await started.wait()
        raise RetriableError("the PSA is down")

    with pytest.raises(RetriableError, match="the PSA is down"):
        await gather_all(slow(), failing())
    assert finished == ["slow"]


async def test_stopping_early_closes_the_pages_at_once() -> None:
    finished: list[str] = []

    async def listing() -> AsyncIterator[int]:
        try:
            yield 1
            yield 2
        finally:
            finished.append("listing")

    async def write_pages() -> None:
        async with closing(listing()) as pages:
            async for _page in pages:
                raise RetriableError("could not write the page")

    with pytest.raises(RetriableError, match="could not write"):
        await write_pages()
    assert finished == ["listing"]  # closed before the error got out, not when collected
