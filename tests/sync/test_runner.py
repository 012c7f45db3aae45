"""Durable runs: rate limits, PSA outages, revoked keys, a worker process killed mid-run."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path

from harness import FAST_RETRY, Psa

from models import (
    Integration,
    IntegrationStatus,
    Location,
    Organization,
    RecordLink,
    RunStatus,
    RunTrigger,
    SyncRun,
)
from models.vault import Vault
from simulators.connectwise import ApiCredentials
from sync import jobs
from sync.connections import provider_factory
from sync.context import utcnow
from sync.providers.base import ProviderScope, PsaProvider
from sync.runner import Worker

Connect = Callable[..., Awaitable[Integration]]
PSASYNC = str(Path(sys.executable).with_name("psasync"))
MID_RUN = ("locations", "contacts", "configurations")


async def test_a_sync_survives_rate_limiting_with_retry_after(
    psa: Psa, connect: Connect, worker: Worker
) -> None:
    psa.simulator.faults.rate_limit_every = 3
    psa.simulator.faults.retry_after_seconds = 0
    integration = await connect()
    await worker.run_until_idle()

    run = await SyncRun.get(integration_id=integration.id)
    assert run.status == RunStatus.SUCCEEDED
    assert psa.simulator.traffic.rate_limited > 5
    assert (await Integration.get(id=integration.id)).status == IntegrationStatus.OK
    assert await Organization.all().count() > 0


async def test_a_psa_outage_requeues_the_run_which_completes_once_the_psa_is_back(
    psa: Psa, connect: Connect, vault: Vault
) -> None:
    integration = await connect()
    psa.simulator.faults.error_every = 1  # every request: 503
    now = utcnow()
    worker = Worker(provider_factory(vault, retry=FAST_RETRY), schedule=False, clock=lambda: now)
    assert await worker.run_once()

    run = await SyncRun.get(integration_id=integration.id)
    assert run.status == RunStatus.QUEUED  # still queued, visible, not lost
    assert run.not_before is not None
    assert run.not_before > now
    assert run.error is not None
    assert "retrying" in run.error
    waiting = await Integration.get(id=integration.id)
    assert waiting.status == IntegrationStatus.QUEUED
    assert waiting.last_error
    assert not await worker.run_once()  # not before its back-off has passed

    psa.simulator.faults.error_every = 0
    later = Worker(
        provider_factory(vault, retry=FAST_RETRY),
        schedule=False,
        clock=lambda: now + timedelta(hours=1),
    )
    assert await later.run_until_idle() == 1
    run = await SyncRun.get(id=run.id)
    assert run.status == RunStatus.SUCCEEDED
    assert run.attempts == 2
    done = await Integration.get(id=integration.id)
    assert done.status == IntegrationStatus.OK
    assert done.last_error is None


async def test_revoked_keys_fail_the_run_with_a_clear_error_and_no_secret(
    psa: Psa, connect: Connect, worker: Worker
) -> None:
    integration = await connect()
    psa.simulator.credentials = ApiCredentials(
        company_id="acme", public_key="pub-key", private_key="rotated-key"
    )
    await worker.run_until_idle()

    run = await SyncRun.get(integration_id=integration.id)
    assert run.status == RunStatus.FAILED
    failed = await Integration.get(id=integration.id)
    assert failed.status == IntegrationStatus.ERROR
    assert failed.status_label == "Error"
    assert failed.last_error is not None
    assert "refused" in failed.last_error
    assert "priv-key" not in failed.last_error
    assert "priv-key" not in (run.error or "")


class _Watching:
    """A provider that notes the integration's status while the sync is running."""

    def __init__(self, inner: PsaProvider, integration: Integration, seen: list[str]) -> None:
        self.inner = inner
        self.integration = integration
        self.seen = seen
        self.display_name = inner.display_name

    async def check_connection(self) -> None:
        await self.inner.check_connection()

    async def reference_data(self):  # type: ignore[no-untyped-def]
        return await self.inner.reference_data()

    async def probe_reads(self, areas=None):  # type: ignore[no-untyped-def]
        return await self.inner.probe_reads(areas)

    async def estimate_total(self, scope: ProviderScope, *, contacts: bool) -> int | None:
        return await self.inner.estimate_total(scope, contacts=contacts)

    async def organizations(self, scope: ProviderScope, *, after: int | None = None):  # type: ignore[no-untyped-def]
        current = await Integration.get(id=self.integration.id)
        self.seen.append(current.status_label)
        async for page in self.inner.organizations(scope, after=after):
            yield page

    def locations(self, organization_psa_id: int):  # type: ignore[no-untyped-def]
        return self.inner.locations(organization_psa_id)

    def contacts(self, *, after: int | None = None):  # type: ignore[no-untyped-def]
        return self.inner.contacts(after=after)

    def configurations(self, scope: ProviderScope, *, after: int | None = None):  # type: ignore[no-untyped-def]
        return self.inner.configurations(scope, after=after)

    def budget_waits(self) -> dict[str, float]:
        return dict(self.inner.budget_waits())

    async def aclose(self) -> None:
        await self.inner.aclose()


async def test_the_integration_shows_syncing_while_its_run_is_running(
    psa: Psa, connect: Connect, vault: Vault
) -> None:
    integration = await connect()
    seen: list[str] = []
    inner = provider_factory(vault)

    async def watching(found: Integration) -> PsaProvider:
        return _Watching(await inner(found), found, seen)  # type: ignore[return-value]

    assert (await Integration.get(id=integration.id)).status_label == "Queued"
    await Worker(watching, schedule=False).run_until_idle()
    assert seen == ["Syncing..."]
    assert (await Integration.get(id=integration.id)).status_label == "OK"


async def test_a_manual_sync_is_claimed_before_scheduled_ones(
    psa: Psa, connect: Connect, worker: Worker
) -> None:
    first = await connect(name="First")
    second = await connect(name="Second")
    manual = await jobs.manual_sync(second)
    claimed = await worker.claim()
    assert claimed is not None
    assert claimed.id == manual.id
    assert claimed.integration_id == second.id  # type: ignore[attr-defined]
    assert first.id != second.id


async def test_queueing_twice_reuses_the_waiting_run(
    psa: Psa, connect: Connect, worker: Worker
) -> None:
    integration = await connect()
    waiting = await SyncRun.get(integration_id=integration.id)
    again = await jobs.manual_sync(integration)
    assert again.id == waiting.id
    assert (await SyncRun.get(id=waiting.id)).priority == jobs.MANUAL_PRIORITY


async def test_the_schedule_queues_a_sync_once_the_interval_has_passed(
    psa: Psa, connect: Connect, vault: Vault
) -> None:
    integration = await connect(sync_interval_seconds=600)
    worker = Worker(provider_factory(vault), schedule=False)
    await worker.run_until_idle()

    soon = Worker(provider_factory(vault), clock=lambda: utcnow() + timedelta(minutes=5))
    await soon.schedule_due()
    assert await SyncRun.filter(integration_id=integration.id).count() == 1

    later = Worker(provider_factory(vault), clock=lambda: utcnow() + timedelta(minutes=11))
    await later.schedule_due()
    queued = await SyncRun.filter(integration_id=integration.id, status=RunStatus.QUEUED)
    assert len(queued) == 1
    assert queued[0].trigger == RunTrigger.SCHEDULE


async def test_a_worker_killed_mid_run_leaves_a_run_that_resumes_without_duplicates(
    psa: Psa, connect: Connect, db: str, secret_key: str, vault: Vault
) -> None:
    integration = await connect()
    run = await SyncRun.get(integration_id=integration.id)
    psa.simulator.faults.latency_ms = 150  # slow enough to be caught between two pages

    env = {
        **os.environ,
        "PSASYNC_DATABASE_URL": db,
        "PSASYNC_SECRET_KEY": secret_key,
        "PSASYNC_LOG_LEVEL": "warning",
    }
    process = await asyncio.create_subprocess_exec(
        PSASYNC, "worker", env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        for _ in range(1200):
            current = await SyncRun.get(id=run.id)
            # Past the organizations, before the end: kill it right there.
            if current.checkpoint.get("phase") in MID_RUN:
                break
            assert process.returncode is None, "the worker process exited by itself"
            await asyncio.sleep(0.02)
        else:
            raise AssertionError("the worker process never got into the run")
    finally:
        process.send_signal(signal.SIGKILL)
        await process.wait()

    killed = await SyncRun.get(id=run.id)
    assert killed.status == RunStatus.RUNNING  # nobody said goodbye: the lease must expire
    assert killed.checkpoint.get("phase") in MID_RUN
    assert await Organization.all().count() > 0
    psa.simulator.faults.latency_ms = 0

    after_lease = Worker(
        provider_factory(vault),
        schedule=False,
        clock=lambda: utcnow() + timedelta(minutes=5),
    )
    assert await after_lease.run_until_idle() == 1

    done = await SyncRun.get(id=run.id)
    assert done.status == RunStatus.SUCCEEDED
    assert done.attempts == 2
    companies = {c["id"] for c in psa.store.find("companies")}
    org_links = await RecordLink.filter(integration_id=integration.id, kind="organization")
    assert len(org_links) == len({link.psa_id for link in org_links})
    assert await Organization.all().count() == len(org_links)
    assert {link.psa_id for link in org_links} <= companies
    site_links = await RecordLink.filter(integration_id=integration.id, kind="location")
    assert await Location.all().count() == len(site_links)
    expected_sites = sum(len(psa.store.find("sites", parent_id=link.psa_id)) for link in org_links)
    assert len(site_links) == expected_sites
    # Counts carried over the crash: every record created exactly once.
    total = await RecordLink.filter(integration_id=integration.id).count()
    assert done.created == total
