"""Concurrent requests that never outlive their failure.

``asyncio.gather`` raises the first error while the other awaitables keep running; the
caller then closes its provider (and its HTTP client) under requests still in flight, whose
connections are left open. ``gather_all`` cancels and awaits the rest before raising.
``read_ahead`` loads the next page while the caller works on the current one, on the same
terms: a page still loading when the caller stops or fails is cancelled and awaited.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import TypeVar

T = TypeVar("T")


async def gather_all(*awaitables: Awaitable[T]) -> list[T]:
    """Like ``asyncio.gather``; when one fails, the others are cancelled and waited for, then
    the first error is raised (as itself, not as an ExceptionGroup)."""
    tasks = [asyncio.ensure_future(a) for a in awaitables]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


async def read_ahead(loads: Sequence[Callable[[], Awaitable[T]]]) -> AsyncGenerator[T, None]:
    """Each load's result in order, the next one already loading while the caller has the
    current one (one page ahead: memory stays two pages)."""
    if not loads:
        return
    pending = asyncio.ensure_future(loads[0]())
    try:
        for following in (*loads[1:], None):
            current = await pending
            if following is not None:
                pending = asyncio.ensure_future(following())
            yield current
    finally:
        if not pending.done():
            pending.cancel()
            await asyncio.gather(pending, return_exceptions=True)


@asynccontextmanager
async def closing(pages: AsyncIterator[T]) -> AsyncGenerator[AsyncIterator[T], None]:
    """Close a provider's pages when the caller stops early (an error while writing a page):
    a page it was reading ahead is cancelled now, not left running for the garbage collector
    after the provider's HTTP client has closed."""
    try:
        yield pages
    finally:
        close = getattr(pages, "aclose", None)
        if close is not None:
            await close()
