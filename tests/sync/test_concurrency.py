"""A failed request stops its siblings before the caller closes their HTTP client."""

from __future__ import annotations

import asyncio

import pytest

from sync.concurrency import gather_all
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
