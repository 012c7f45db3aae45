"""The in-process worker: claims queued runs, runs them, keeps their lease alive.

A run is claimed by compare-and-set (``UPDATE … WHERE status = 'QUEUED'`` returns 1 for one
worker only), so several workers, in one process or many (PostgreSQL), never run the same
run twice. A worker renews its lease with heartbeats; a run whose lease expired (its process
died) is queued again, and resumes from its checkpoint. One run per integration at a time.

Beside the runs, the worker delivers the outbox (pushes), processes the webhook inbox, keeps
the PSA-side webhook registrations in shape, and schedules the reconciliation poll
(incremental, every ``sync_interval_seconds``) and the full reconciliation (id sets, every
``reconcile_interval_seconds``). Scheduling claims each due run by compare-and-set on the
integration's ``next_poll_at``/``next_reconcile_at``: with several processes, exactly one
queues it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from tortoise.expressions import F, Q, Subquery

from models import Integration, IntegrationStatus, RunKind, RunStatus, RunTrigger, SyncRun
from sync import outbox, pace, permissions, transition
from sync.connections import ProviderFactory
from sync.context import RunContext, utcnow
from sync.deliverer import Deliverer
from sync.errors import FatalError, PermissionDenied, RetriableError, RunPreempted
from sync.full_sync import full_sync
from sync.inbox import InboxProcessor, prune_settled
from sync.incremental import has_bookmarks, incremental_sync, set_bookmarks_after_full_sync
from sync.jobs import enqueue
from sync.push_all import push_all
from sync.reconcile import reconcile
from sync.subscriptions import sync_subscriptions

log = logging.getLogger("psasync.runner")

MAX_ATTEMPTS = 6  # PSA outages: the run waits and tries again, then gives up visibly
# A burst of notices arriving together is processed together (one re-fetch per record).
INBOX_DEBOUNCE = 0.2
# How often registrations are checked (re-registered if the PSA lost them) without a reason.
WEBHOOK_CHECK = timedelta(hours=1)
PRUNE_EVERY = timedelta(hours=1)  # settled webhook deliveries past their keeping time


class Worker:
    def __init__(
        self,
        open_provider: ProviderFactory,
        *,
        worker_id: str | None = None,
        lease: timedelta = timedelta(seconds=60),
        heartbeat: timedelta = timedelta(seconds=10),
        poll_interval: float = 1.0,
        retry_delay: timedelta = timedelta(seconds=30),
        clock: Callable[[], datetime] = utcnow,
        schedule: bool = True,
        public_url: str | None = None,
    ) -> None:
        self.open_provider = open_provider
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.lease = lease
        self.heartbeat = heartbeat
        self.poll_interval = poll_interval
        self.retry_delay = retry_delay
        self.clock = clock
        self.schedule = schedule
        self.public_url = public_url
        self._wake = asyncio.Event()
        self._inbox_wake = asyncio.Event()
        self._pruned_at: datetime | None = None
        self.last_context: RunContext | None = None  # the last run's counters, for benchmarks
        # Pushes (two-way sync) are delivered beside the runs, so an edit reaches the PSA
        # within seconds even while a long full sync is running.
        self.deliverer = Deliverer(open_provider, owner=self.worker_id, clock=clock)
        self.inbox = InboxProcessor(open_provider, owner=self.worker_id, clock=clock)

    def wake(self) -> None:
        """Look for work now rather than at the next poll."""
        self._wake.set()

    def wake_inbox(self) -> None:
        """A webhook delivery was stored: process the inbox soon."""
        self._inbox_wake.set()

    async def run_forever(self) -> None:
        await self.requeue_expired()
        helpers = [
            asyncio.create_task(self.deliver_forever()),
            asyncio.create_task(self.process_inbox_forever()),
        ]
        try:
            await self._runs_forever()
        finally:
            for task in helpers:
                task.cancel()
            for task in helpers:
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def process_inbox_forever(self) -> None:
        """Process webhook deliveries when one is stored in this process (after a short
        pause that lets a burst gather), and at each poll (other processes' deliveries,
        retries whose back-off has passed, integrations that resumed)."""
        while True:
            woken = self._inbox_wake.is_set()
            self._inbox_wake.clear()
            try:
                if woken:
                    await asyncio.sleep(INBOX_DEBOUNCE)
                await self.inbox.run_due()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("processing webhook deliveries failed; retrying")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._inbox_wake.wait(), self.poll_interval)

    async def deliver_forever(self) -> None:
        """Deliver the outbox whenever an edit is queued in this process, and at each poll
        (for edits made by other processes and entries whose back-off has passed)."""
        while True:
            outbox.queued.clear()
            try:
                await self.deliverer.run_due()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("delivering pushes failed; retrying")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(outbox.queued.wait(), self.poll_interval)

    async def _runs_forever(self) -> None:
        while True:
            try:
                if self.schedule:
                    await self.schedule_due()
                    await self.maintain_webhooks()
                    await self._prune_inbox()
                if await self.run_once():
                    continue
                await self.requeue_expired()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("worker loop failed; retrying")
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_interval)

    async def run_until_idle(self) -> int:
        """Run queued work until none is left; returns how many runs were executed."""
        done = 0
        await self.requeue_expired()
        while True:
            delivered = await self.deliverer.run_due()
            delivered += await self.inbox.run_due()
            if self.schedule:
                await self.maintain_webhooks()
            if await self.run_once():
                done += 1
            elif not delivered:
                return done

    async def requeue_expired(self) -> int:
        now = self.clock()
        expired = await SyncRun.filter(
            status=RunStatus.RUNNING, lease_expires_at__lt=now
        ).values_list("id", "integration_id")
        count = 0
        for run_id, integration_id in expired:
            count += await SyncRun.filter(
                id=run_id, status=RunStatus.RUNNING, lease_expires_at__lt=now
            ).update(status=RunStatus.QUEUED, lease_owner=None, lease_expires_at=None)
            await Integration.filter(id=integration_id, status=IntegrationStatus.SYNCING).update(
                status=IntegrationStatus.QUEUED
            )
        if count:
            log.warning("re-queued %d run(s) whose worker stopped heartbeating", count)
        return count

    async def schedule_due(self) -> None:
        """Queue the reconciliation poll and the full reconciliation of integrations whose
        time has come; one process wins each (compare-and-set on the integration)."""
        now = self.clock()
        ready = Integration.filter(status__in=[IntegrationStatus.OK, IntegrationStatus.ERROR])
        plans = [
            (
                column,
                interval,
                kind,
                await ready.filter(**{f"{interval}__gt": 0}).filter(_due(column, now)),
            )
            for column, interval, kind in (
                ("next_reconcile_at", "reconcile_interval_seconds", RunKind.RECONCILE),
                ("next_poll_at", "sync_interval_seconds", RunKind.INCREMENTAL),
            )
        ]
        for column, interval, kind, due in plans:
            for integration in due:
                seconds = getattr(integration, interval)
                won = await (
                    Integration.filter(id=integration.id)
                    .filter(_due(column, now))
                    .update(**{column: now + timedelta(seconds=seconds)})
                )
                if won != 1:
                    continue  # another process queued it
                if kind is RunKind.INCREMENTAL and not has_bookmarks(integration):
                    kind_now = RunKind.FULL  # never fully synced: nothing to poll from
                else:
                    kind_now = kind
                await enqueue(integration, kind=kind_now, trigger=RunTrigger.SCHEDULE)

    async def _prune_inbox(self) -> None:
        now = self.clock()
        if self._pruned_at is not None and now - self._pruned_at < PRUNE_EVERY:
            return
        self._pruned_at = now
        removed = await prune_settled(now)
        if removed:
            log.info("pruned %d settled webhook deliveries", removed)

    async def maintain_webhooks(self) -> None:
        """Register or remove PSA webhooks where settings changed (``webhooks_due``), and
        check every registration now and then (a PSA may drop or disable one)."""
        now = self.clock()
        stale = now - WEBHOOK_CHECK
        candidates = await Integration.filter(
            Q(webhooks_due=True)
            | Q(webhooks_checked_at__isnull=True)
            | Q(webhooks_checked_at__lt=stale)
        ).exclude(status=IntegrationStatus.NOT_SYNCED)
        for integration in candidates:
            if not self.public_url and not integration.webhooks_due:
                continue  # nothing registered, nothing to check
            claimed = await (
                Integration.filter(id=integration.id, webhooks_due=integration.webhooks_due)
                .filter(
                    Q(webhooks_checked_at__isnull=True)
                    | Q(webhooks_checked_at=integration.webhooks_checked_at)
                )
                .update(webhooks_due=False, webhooks_checked_at=now)
            )
            if claimed != 1:
                continue
            try:
                provider = await self.open_provider(integration)
            except Exception:
                log.exception("opening %s for its webhooks failed", integration.name)
                continue
            try:
                await sync_subscriptions(integration, provider, self.public_url, clock=self.clock)
            except Exception:
                log.exception("keeping the webhooks of %s failed", integration.name)
            finally:
                await provider.aclose()

    async def claim(self) -> SyncRun | None:
        now = self.clock()
        busy = SyncRun.filter(status=RunStatus.RUNNING).values("integration_id")
        paused = Integration.filter(status=IntegrationStatus.PAUSED).values("id")
        candidates = (
            await SyncRun.filter(status=RunStatus.QUEUED)
            .filter(Q(not_before__isnull=True) | Q(not_before__lte=now))
            .exclude(integration_id__in=Subquery(busy))
            .exclude(integration_id__in=Subquery(paused))
            .order_by("-priority", "queued_at")
            .limit(5)
        )
        for run in candidates:
            claimed = await SyncRun.filter(id=run.id, status=RunStatus.QUEUED).update(
                status=RunStatus.RUNNING,
                lease_owner=self.worker_id,
                heartbeat_at=now,
                lease_expires_at=now + self.lease,
                started_at=run.started_at or now,
                attempts=F("attempts") + 1,
            )
            if claimed == 1:
                await run.refresh_from_db()
                return run
        return None

    async def run_once(self) -> bool:
        run = await self.claim()
        if run is None:
            return False
        integration = await Integration.get(id=run.integration_id)  # type: ignore[attr-defined]
        if not run.dry_run:
            await (
                Integration.filter(id=integration.id)
                .exclude(status=IntegrationStatus.PAUSED)
                .update(status=IntegrationStatus.SYNCING)
            )
        beat = asyncio.create_task(self._heartbeat(run.id))
        try:
            await self._execute(integration, run)
        except asyncio.CancelledError:
            # Shutting down: hand the run back at once instead of waiting for the lease.
            with contextlib.suppress(Exception):
                await asyncio.shield(self._release(run))
            raise
        finally:
            beat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beat
        return True

    async def _heartbeat(self, run_id: uuid.UUID) -> None:
        while True:
            await asyncio.sleep(self.heartbeat.total_seconds())
            now = self.clock()
            await SyncRun.filter(id=run_id, lease_owner=self.worker_id).update(
                heartbeat_at=now, lease_expires_at=now + self.lease
            )

    async def _release(self, run: SyncRun) -> None:
        await SyncRun.filter(id=run.id, lease_owner=self.worker_id).update(
            status=RunStatus.QUEUED, lease_owner=None, lease_expires_at=None
        )

    async def _execute(self, integration: Integration, run: SyncRun) -> None:
        ctx = RunContext(integration, run, clock=self.clock, checkpoint=dict(run.checkpoint or {}))
        self.last_context = ctx
        provider = None
        started = self.clock()
        try:
            provider = await self.open_provider(integration)
            full_instead = False
            if run.kind != RunKind.PUSH_ALL:
                # What the API user may read, checked each run (a poll: only the areas denied
                # so far): denied kinds are skipped; a lifted denial clears, and the run then
                # reads everything once (a full sync).
                before = permissions.denied_kinds(permissions.report_of(integration.permissions))
                poll = run.kind == RunKind.INCREMENTAL and has_bookmarks(integration)
                ctx.skipped = permissions.denied_kinds(
                    await permissions.refresh(integration, provider, denied_only=poll)
                )
                full_instead = bool(before - ctx.skipped)
            if not run.dry_run:
                # Links read through another API are checked before anything uses them.
                await transition.before_pull(ctx, provider)
                # Catch up first: edits queued while the integration was paused or the PSA
                # was down go out before the pull reads the PSA again.
                await self._catch_up(integration)
            if run.kind == RunKind.PUSH_ALL:
                await push_all(ctx, provider)
            elif run.kind == RunKind.RECONCILE:
                await reconcile(ctx, provider)
            elif (
                run.kind == RunKind.INCREMENTAL and has_bookmarks(integration) and not full_instead
            ):
                await incremental_sync(ctx, provider)
            else:
                await full_sync(ctx, provider)
                if not run.dry_run:
                    await self._after_full_sync(integration, run)
        except RunPreempted:
            log.info("run %s was taken away (paused, cancelled or deleted); dropping it", run.id)
            return
        except RetriableError as exc:
            await self._retry_later(integration, run, exc)
            return
        except FatalError as exc:
            if isinstance(exc, PermissionDenied):  # shown by area until a check clears it
                await permissions.record_denial(integration.id, exc)
            await self._finish(integration, run, RunStatus.FAILED, exc.message)
            return
        except Exception as exc:
            log.exception("run %s failed", run.id)
            await self._finish(integration, run, RunStatus.FAILED, f"{type(exc).__name__}: {exc}")
            return
        finally:
            if provider is not None:
                await provider.aclose()
                # Every attempt's time counts, waits or not: the run is judged as a whole.
                waits = provider.budget_waits()
                await pace.record(run, provider.display_name, waits, started, self.clock())
        await self._finish(integration, run, RunStatus.SUCCEEDED, None)

    async def _after_full_sync(self, integration: Integration, run: SyncRun) -> None:
        """Polls start from here; the first poll and reconciliation come one interval on."""
        now = self.clock()
        await set_bookmarks_after_full_sync(integration, run.started_at or now)
        for column, interval in (
            ("next_poll_at", integration.sync_interval_seconds),
            ("next_reconcile_at", integration.reconcile_interval_seconds),
        ):
            await Integration.filter(id=integration.id, **{f"{column}__isnull": True}).update(
                **{column: now + timedelta(seconds=interval)}
            )

    async def _catch_up(self, integration: Integration) -> None:
        try:
            await self.deliverer.deliver(integration)
        except Exception:
            log.exception("catching up pushes of %s failed; the pull goes on", integration.name)

    async def _retry_later(
        self, integration: Integration, run: SyncRun, exc: RetriableError
    ) -> None:
        if run.attempts >= MAX_ATTEMPTS:
            message = f"{exc.message} (gave up after {run.attempts} attempts)"
            await self._finish(integration, run, RunStatus.FAILED, message)
            return
        delay = max(
            self.retry_delay.total_seconds() * 2 ** (run.attempts - 1), exc.retry_after or 0
        )
        not_before = self.clock() + timedelta(seconds=delay)
        owned = await SyncRun.filter(id=run.id, lease_owner=self.worker_id).update(
            status=RunStatus.QUEUED,
            lease_owner=None,
            lease_expires_at=None,
            not_before=not_before,
            error=f"{exc.message}; retrying after {not_before:%H:%M:%S} UTC",
        )
        if owned and not run.dry_run:
            await (
                Integration.filter(id=integration.id)
                .exclude(status=IntegrationStatus.PAUSED)
                .update(status=IntegrationStatus.QUEUED, last_error=exc.message)
            )

    async def _finish(
        self, integration: Integration, run: SyncRun, status: RunStatus, error: str | None
    ) -> None:
        now = self.clock()
        owned = await SyncRun.filter(id=run.id, lease_owner=self.worker_id).update(
            status=status, error=error, finished_at=now, lease_owner=None, lease_expires_at=None
        )
        if not owned or run.dry_run:  # paused or deleted meanwhile: not ours to finish
            return
        if status == RunStatus.SUCCEEDED:
            changes = {"status": IntegrationStatus.OK, "last_success_at": now, "last_error": None}
        else:
            changes = {"status": IntegrationStatus.ERROR, "last_error": error}
        await (
            Integration.filter(id=integration.id)
            .exclude(status=IntegrationStatus.PAUSED)
            .update(**changes)
        )
        await Integration.filter(id=integration.id, status=IntegrationStatus.PAUSED).update(
            **{k: v for k, v in changes.items() if k != "status"}
        )


def _due(column: str, now: datetime) -> Q:
    """``column`` is unset or has passed."""
    unset: dict[str, Any] = {f"{column}__isnull": True}
    passed: dict[str, Any] = {f"{column}__lte": now}
    return Q(**unset) | Q(**passed)
