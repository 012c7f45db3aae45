"""A failed request stops its siblings before the caller closes their HTTP client; a page
read ahead is loading while the caller works, and is cancelled when the caller stops."""

from __future__ import annotations

import asyncio
from functools import partial

import pytest

from sync.concurrency import closing, gather_all, read_ahead
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


async def test_the_next_page_loads_while_the_caller_has_this_one() -> None:
    started: list[int] = []

    async def load(n: int) -> int:
        started.append(n)
        await asyncio.sleep(0)
        return n

    seen: list[tuple[int, list[int]]] = []
    async for page in read_ahead([partial(load, n) for n in range(4)]):
        await asyncio.sleep(0)  # the caller's work on the page (writes) lets the next load run
        seen.append((page, list(started)))
    assert [page for page, _ in seen] == [0, 1, 2, 3]
    # While the caller had page n, page n + 1 had started already (none further ahead).
    assert [max(loaded) for _, loaded in seen] == [1, 2, 3, 3]


async def test_stopping_early_cancels_the_page_loading_ahead() -> None:
    finished: list[str] = []

    async def first() -> str:
        return "first"

    async def slow() -> str:
        try:
            await asyncio.sleep(3600)
            return "slow"
        finally:
            finished.append("slow")

    async def write_pages() -> None:
        async with closing(read_ahead([first, slow])) as pages:
            async for _page in pages:
                await asyncio.sleep(0)
                raise RetriableError("could not write the page")

    with pytest.raises(RetriableError, match="could not write"):
        await write_pages()
    assert finished == ["slow"]  # cancelled and waited for before the error got out
