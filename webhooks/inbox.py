"""The inbox: verified notices stored as PENDING ``WebhookDelivery`` rows, by group commit.

Concurrent requests hand their row to one writer task, which inserts whatever is waiting (up
to ``batch_size`` rows) with one multi-row ``INSERT … ON CONFLICT (integration_id,
dedupe_key) DO NOTHING`` — one statement, so one transaction: a batch is stored whole or not
at all — and then answers each request. A request hears 200 only after its row is committed;
a duplicate (same dedupe key for the integration, in the table or in the batch) is stored once
and answered as a duplicate. While one batch is being written the next one gathers, so the
database sees a few large statements instead of one transaction per request.

The sources refuse what the database could not store (``webhooks.source``). Should a batch
fail anyway, its rows are written again one by one, so a bad row costs only its own request:
a row the database refuses for its values (a data error, by class) is answered 400, the others
are stored and answered as usual. An error that is not the row's (the database is down, the
disk is full) answers the row 503.

    InboxError            the request's answer is ``status``
      InboxUnavailable    503: the write failed (the row not stored), or shutting down
      RowRefused          400: the database refuses this row's values (only this row)
      InboxBusy           429: too many rows waiting (ConnectWise retries a 429)
      IntegrationGone     404: the integration was deleted meanwhile (foreign key)

The writer starts lazily on the first row, in the running event loop, and ``aclose`` drains
and stops it (the service's lifespan calls it).
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import asyncpg  # type: ignore[import-untyped]
from tortoise.exceptions import IntegrityError

from models import DeliveryStatus, Integration, WebhookDelivery
from webhooks.source import Notice

__all__ = [
    "Delivery",
    "Inbox",
    "InboxBusy",
    "InboxError",
    "InboxUnavailable",
    "IntegrationGone",
    "RowRefused",
]

log = logging.getLogger("psasync.webhooks")

# One row's parameters; SQLite allows 32,766 per statement and PostgreSQL 32,767.
_COLUMNS: Final = (
    "integration_id",
    "dedupe_key",
    "received_at",
    "kind",
    "psa_id",
    "action",
    "member",
    "stamp",
    "payload",
    "status",
    "attempts",
)
MAX_BATCH: Final = 2_000
# Payload bytes per statement and waiting in all: bodies may be up to 256 KiB each.
BATCH_BYTES: Final = 8 * 1024 * 1024
WAITING_BYTES: Final = 64 * 1024 * 1024
_RECEIVED_AT: Final = WebhookDelivery._meta.fields_map["received_at"]


class InboxError(Exception):
    status = 503

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InboxUnavailable(InboxError):
    status = 503


class InboxBusy(InboxError):
    status = 429


class IntegrationGone(InboxError):
    status = 404


class RowRefused(InboxError):
    status = 400


# Errors that say a row's values cannot be stored (not that the database cannot store): a
# driver refusing a parameter (an integer outside 64 bits, unencodable text) or PostgreSQL's
# data exceptions (SQLSTATE class 22, e.g. a NUL in text). Decided by class, never by message.
_ROW_FAULTS: Final = (
    ValueError,
    TypeError,
    OverflowError,
    UnicodeError,
    sqlite3.DataError,
    sqlite3.InterfaceError,
    asyncpg.DataError,
)


@dataclass(frozen=True, slots=True)
class Delivery:
    """What the receiver hands the inbox: a verified notice and its raw body."""

    integration_id: uuid.UUID
    notice: Notice
    payload: str


_Waiting = tuple[Delivery, "asyncio.Future[bool]"]


class Inbox:
    """Group-committing writer of ``WebhookDelivery`` rows (see the module docstring)."""

    def __init__(
        self,
        *,
        batch_size: int = 500,
        max_waiting: int = 10_000,
        max_waiting_bytes: int = WAITING_BYTES,
        on_stored: Callable[[], None] | None = None,
        on_gone: Callable[[uuid.UUID], None] | None = None,
    ) -> None:
        if not 1 <= batch_size <= MAX_BATCH:
            raise ValueError(f"batch_size must be between 1 and {MAX_BATCH}")
        self.batch_size = batch_size
        self.max_waiting = max_waiting
        self.max_waiting_bytes = max_waiting_bytes
        self._on_stored = on_stored
        self._on_gone = on_gone
        self._waiting: list[_Waiting] = []
        self._waiting_bytes = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wakeup: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._sql: dict[tuple[str, int], str] = {}
        # Counters for tests and benchmarks.
        self.batches = 0
        self.stored = 0
        self.split = 0  # failed batches written again one row at a time

    async def put(self, delivery: Delivery) -> bool:
        """Store ``delivery``; True once committed as new, False for a duplicate.

        Raises an ``InboxError`` (see the module docstring)."""
        if self._stopping:
            raise InboxUnavailable("The service is shutting down; try again.")
        size = len(delivery.payload)
        if (
            len(self._waiting) >= self.max_waiting
            or self._waiting_bytes + size > self.max_waiting_bytes
        ):
            raise InboxBusy("Too many notifications are waiting to be stored; try again.")
        loop = asyncio.get_running_loop()
        wakeup = self._writer(loop)
        future: asyncio.Future[bool] = loop.create_future()
        self._waiting.append((delivery, future))
        self._waiting_bytes += size
        wakeup.set()
        return await future

    async def aclose(self, grace: float = 10.0) -> None:
        """Store what is waiting, then stop the writer (it starts again on the next row)."""
        task, loop = self._task, self._loop
        if task is None or task.done() or loop is not asyncio.get_running_loop():
            self._task = None
            return
        self._stopping = True
        try:
            assert self._wakeup is not None
            self._wakeup.set()
            try:
                await asyncio.wait_for(asyncio.shield(task), grace)
            except TimeoutError:
                task.cancel()
                log.warning("webhook inbox: the writer did not stop within %.0f s", grace)
        finally:
            self._fail(self._waiting, InboxUnavailable("The service is shutting down."))
            self._waiting = []
            self._waiting_bytes = 0
            self._task = None
            self._stopping = False

    # -- the writer ------------------------------------------------------------------------------

    def _writer(self, loop: asyncio.AbstractEventLoop) -> asyncio.Event:
        if self._task is None or self._task.done() or self._loop is not loop:
            if self._loop is not loop:
                # Another loop's futures: nobody can await them here.
                self._waiting = []
                self._waiting_bytes = 0
            self._loop = loop
            self._wakeup = asyncio.Event()
            self._task = loop.create_task(self._run(self._wakeup), name="psasync-webhook-inbox")
        assert self._wakeup is not None
        return self._wakeup

    async def _run(self, wakeup: asyncio.Event) -> None:
        while True:
            await wakeup.wait()
            wakeup.clear()
            while self._waiting:
                await self._write(self._next_batch())
            if self._stopping:
                return

    def _next_batch(self) -> list[_Waiting]:
        """The oldest waiting rows: at most ``batch_size``, and ``BATCH_BYTES`` of payload
        unless one row alone is larger."""
        count, size = 0, 0
        for delivery, _future in self._waiting[: self.batch_size]:
            size += len(delivery.payload)
            if count and size > BATCH_BYTES:
                break
            count += 1
        batch = self._waiting[:count]
        del self._waiting[:count]
        self._waiting_bytes -= sum(len(d.payload) for d, _ in batch)
        return batch

    async def _write(self, batch: list[_Waiting]) -> None:
        try:
            try:
                inserted = await self._insert([d for d, _ in batch])
            except IntegrityError:
                # Only a foreign key can fail (duplicates are DO NOTHING): an integration was
                # deleted since its lookup. Answer its rows 404 and store the others.
                batch = await self._drop_gone(batch)
                inserted = await self._insert([d for d, _ in batch]) if batch else set()
        except asyncio.CancelledError:
            self._fail(batch, InboxUnavailable("The service is shutting down."))
            raise
        except Exception:
            log.warning(
                "webhook inbox: storing %d notifications together failed; one by one",
                len(batch),
                exc_info=True,
            )
            await self._one_by_one(batch)
            return
        self._answer(batch, inserted)

    async def _one_by_one(self, batch: list[_Waiting]) -> None:
        """Each row of a failed batch in its own statement: the innocent are stored, a row
        the database refuses for its values hears 400; any other failure is the database's,
        and the rows not yet written hear 503."""
        self.split += 1
        for waiting in batch:
            delivery = waiting[0]
            try:
                inserted = await self._insert([delivery])
            except asyncio.CancelledError:
                self._fail(batch, InboxUnavailable("The service is shutting down."))
                raise
            except IntegrityError:
                if self._on_gone is not None:
                    self._on_gone(delivery.integration_id)
                self._fail([waiting], IntegrationGone("No such integration (it was deleted)."))
            except Exception as exc:
                if not _row_fault(exc):
                    # The database is failing, not the row: the rest of the batch would fail
                    # the same way, so don't hammer it one statement at a time.
                    log.exception("webhook inbox: storing a notification failed")
                    self._fail(
                        batch, InboxUnavailable("The notification could not be stored; try again.")
                    )
                    return
                log.warning(
                    "webhook inbox: integration %s's notification %r refused by the database: %s",
                    delivery.integration_id,
                    delivery.notice.dedupe_key,
                    exc,
                )
                self._fail(
                    [waiting], RowRefused("The notification holds a value that cannot be stored.")
                )
            else:
                self._answer([waiting], inserted)

    def _answer(self, batch: list[_Waiting], inserted: set[tuple[str, str]]) -> None:
        self.batches += 1
        new_rows = len(inserted)
        self.stored += new_rows
        for delivery, future in batch:
            key = (str(delivery.integration_id), delivery.notice.dedupe_key)
            new = key in inserted
            inserted.discard(key)  # a second copy in the same batch is a duplicate
            if not future.done():
                future.set_result(new)
        if new_rows and self._on_stored is not None:
            try:
                self._on_stored()
            except Exception:
                log.exception("webhook inbox: the wake hook failed")

    async def _insert(self, deliveries: Sequence[Delivery]) -> set[tuple[str, str]]:
        """One multi-row INSERT; the (integration id, dedupe key) pairs it stored."""
        db = WebhookDelivery._meta.db
        dialect = db.capabilities.dialect
        # One time for the batch: its rows arrived within the last few milliseconds.
        received_at = _RECEIVED_AT.to_db_value(datetime.now(UTC), WebhookDelivery)
        pending = DeliveryStatus.PENDING.value
        values: list[Any] = []
        for d in deliveries:
            n = d.notice
            values += (
                str(d.integration_id),
                n.dedupe_key,
                received_at,
                n.kind.value if n.kind is not None else None,
                n.psa_id,
                n.action,
                n.member,
                n.stamp,
                d.payload,
                pending,
                0,
            )
        rows = await db.execute_query_dict(self._statement(dialect, len(deliveries)), values)
        return {(str(row["integration_id"]), str(row["dedupe_key"])) for row in rows}

    def _statement(self, dialect: str, rows: int) -> str:
        sql = self._sql.get((dialect, rows))
        if sql is None:
            width = len(_COLUMNS)
            if dialect == "sqlite":
                one = "(" + ",".join("?" * width) + ")"
                values = ",".join([one] * rows)
            elif dialect == "postgres":
                values = ",".join(
                    "(" + ",".join(f"${r * width + c + 1}" for c in range(width)) + ")"
                    for r in range(rows)
                )
            else:
                raise RuntimeError(f"the webhook inbox does not support {dialect!r} databases")
            sql = (
                f'INSERT INTO "{WebhookDelivery._meta.db_table}" '  # noqa: S608 (placeholders)
                f"({','.join(_COLUMNS)}) VALUES {values} "
                "ON CONFLICT (integration_id, dedupe_key) DO NOTHING "
                "RETURNING integration_id, dedupe_key"
            )
            self._sql[(dialect, rows)] = sql
        return sql

    async def _drop_gone(self, batch: list[_Waiting]) -> list[_Waiting]:
        ids = {d.integration_id for d, _ in batch}
        existing = {
            uuid.UUID(str(i))
            for i in await Integration.filter(id__in=list(ids)).values_list("id", flat=True)
        }
        gone = ids - existing
        if not gone:
            raise RuntimeError("the inbox INSERT failed, and not for a deleted integration")
        for integration_id in gone:
            if self._on_gone is not None:
                self._on_gone(integration_id)
        self._fail(
            [w for w in batch if w[0].integration_id in gone],
            IntegrationGone("No such integration (it was deleted)."),
        )
        return [w for w in batch if w[0].integration_id not in gone]

    @staticmethod
    def _fail(waiting: Sequence[_Waiting], error: InboxError) -> None:
        for _delivery, future in waiting:
            if not future.done():
                future.set_exception(error)


def _row_fault(exc: BaseException) -> bool:
    """Whether ``exc`` (or what it wraps: Tortoise re-raises driver errors) is about a row's
    values rather than the database."""
    seen: BaseException | None = exc
    for _ in range(5):
        if seen is None:
            return False
        if isinstance(seen, _ROW_FAULTS):
            return True
        seen = seen.__cause__ or seen.__context__
    return False
