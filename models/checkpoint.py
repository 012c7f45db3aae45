"""SQLite WAL checkpoints off the commit path.

SQLite checkpoints the write-ahead log inside whichever commit grows it past
``wal_autocheckpoint`` pages, and that commit (a webhook batch, a sync page) stalls for the
copy: tens of milliseconds at a tail that should be two. The service runs a PASSIVE
checkpoint from its own connection in a thread every ``interval`` instead: it never blocks
writers or readers, and it keeps the log short enough that the automatic checkpoint (left
on, a safety net) rarely fires. PostgreSQL needs none of this.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import urlsplit

log = logging.getLogger("psasync.db")

INTERVAL = 0.25  # seconds


def sqlite_path(database_url: str) -> str | None:
    """The file of a ``sqlite://`` URL (None for other databases and in-memory ones)."""
    parts = urlsplit(database_url)
    if parts.scheme != "sqlite":
        return None
    path = (parts.netloc + parts.path) or ""
    return None if path in ("", ":memory:") else path


def _checkpoint(connection: sqlite3.Connection) -> None:
    connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()


@asynccontextmanager
async def background_checkpoints(
    database_url: str, interval: float = INTERVAL
) -> AsyncIterator[None]:
    path = sqlite_path(database_url)
    if path is None:
        yield
        return
    connection = sqlite3.connect(path, timeout=0, check_same_thread=False)

    async def run() -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await asyncio.to_thread(_checkpoint, connection)
            except sqlite3.Error as exc:  # busy or locked: the next round tries again
                log.debug("WAL checkpoint skipped: %s", exc)

    task = asyncio.create_task(run(), name="sqlite-checkpoints")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        connection.close()
