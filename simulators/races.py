"""Races on demand: what a test makes happen while a client's write is being handled.

Each simulator has ``before_write: list[WriteHook]``. A write request to the API (POST, PUT, PATCH,
DELETE; not Pulseway's authentication) that got past the injected faults and the credential check
calls every hook, in order, just before the handler applies it; an async hook is awaited. A hook
typically edits the same record as a PSA user would, between the client's read and its write::

    def rename(request: Request) -> None:
        if request.method == "PATCH":
            store.update("companies", 250, {"name": "Renamed in the UI"})

    simulator.before_write.append(rename)

Served with ``serve_in_thread``, hooks run on the server's thread and event loop.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from starlette.requests import Request

__all__ = ["WriteHook", "before_write"]

WriteHook = Callable[[Request], Awaitable[None] | None]


async def before_write(hooks: Sequence[WriteHook], request: Request) -> None:
    """Call each hook with the request, awaiting the async ones."""
    for hook in list(hooks):  # a copy: a hook may remove itself
        result = hook(request)
        if result is not None:
            await result
