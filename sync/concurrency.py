"""Concurrent requests that never outlive their failure.

``asyncio.gather`` raises the first error while the other awaitables keep running; the
caller then closes its provider (and its HTTP client) under requests still in flight, whose
connections are left open. ``gather_all`` cancels and awaits the rest before raising.
``closing`` closes a provider's pages when the caller stops early, on the same terms: a
request still in flight is cancelled and awaited.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable
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


@asynccontextmanager
async def closing(pages: AsyncIterator[T]) -> AsyncGenerator[AsyncIterator[T], None]:
    """Close a provider's pages when the caller stops early (an error while writing a page):
    their generator's ``finally`` (a listing's pending request) runs now, not at the garbage
    collector's whim after the provider's HTTP client has closed."""
    try:
        yield pages
    finally:
        close = getattr(pages, "aclose", None)
        if close is not None:
            await close()
