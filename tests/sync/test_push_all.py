"""Push all syncable assets to a PSA: the dry run's plan, the real run, a second run, a run
that crashed after creating records in the PSA but before linking them, and a run whose
attempt stopped mid-page (paused, a PSA outage, a worker that died) and resumed."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from datetime import timedelta
from typing import Any

import pytest
from harness import FAST_RETRY, Psa
from two_way_helpers import two_way

from models import (
    Account,
    AssetKind,
    Integration,
    LinkState,
    Organization,
    RecordLink,
    ReferenceValue,
    RunStatus,
    SyncRun,
    SyncRunIssue,
)
from models.vault import Vault
from sync import integrations, local_edits, push_all
from sync.connections import provider_factory
from sync.context import utcnow
from sync.errors import RetriableError
from sync.providers.base import PsaChange, PsaProvider, PsaRecord
from sync.push_all import Scope
from sync.runner import Worker

Connect = Callable[..., Awaitable[Integration]]


async def reference(account: Account, kind: str, name: str) -> Any:
    return (await ReferenceValue.get(account_id=account.id, kind=kind, name=name)).id


async def documented_organization(account: Account, name: str, org_type: str = "Client") -> Any:
    """An organization documented in psasync only, with a primary location."""
    org = await local_edits.create(
        AssetKind.ORGANIZATION,
        account.id,
        {
            "name": name,
            "organization_type_id": await reference(account, "organization_type", org_type),
            "organization_status_id": await reference(account, "organization_status", "Active"),
        },
    )
    site = await local_edits.create(
        AssetKind.LOCATION,
        account.id,
        {"organization_id": org.id, "name": "Main", "address_1": f"1 {name} Way", "city": "Tampa"},
    )
    await Organization.filter(id=org.id).update(primary_location_id=site.id)
    return org


# What pushing ``switching`` reports: Newco 0-2 and one site created; Dormant Partner and the
# sites ConnectWise made with the new companies linked; the vendor and its site skipped.
EVERY_RECORD = {"created": 4, "linked": 4, "skipped": 2}


def nonzero(counts: Mapping[str, int]) -> dict[str, int]:
    return {name: n for name, n in counts.items() if n}


async def codes(run: SyncRun) -> dict[str, int]:
    found: dict[str, int] = {}
    for issue in await SyncRunIssue.filter(run_id=run.id):
        found[issue.code] = found.get(issue.code, 0) + 1
    return found


@pytest.fixture
async def switching(
    psa: Psa, connect: Connect, worker: Worker, account: Account
) -> tuple[Integration, list[Any]]:
    """A partner whose documentation predates the PSA: three new organizations, a vendor
    (type not synced) and one that already exists in ConnectWise outside the sync scope."""
    integration = await connect()
    await worker.run_until_idle()
    psa.store.create(
        "companies",
        {
            "identifier": "Dormant",
            "name": "Dormant Partner",
            "addressLine1": "9 Old Rd",
            "status": {"name": "Inactive"},
            "types": [{"name": "Client"}],
        },
    )
    orgs = [await documented_organization(account, f"Newco {i}") for i in range(3)]
    orgs.append(await documented_organization(account, "Dormant Partner"))
    orgs.append(await documented_organization(account, "Parts Vendor", org_type="Competitor"))
    # Two-way goes on afterwards: records that existed before are not pushed by themselves.
    integration = await two_way(worker, integration)
    return integration, orgs


async def test_the_dry_run_returns_the_plan_and_writes_nothing(
    psa: Psa, worker: Worker, switching: tuple[Integration, list[Any]]
) -> None:
    integration, orgs = switching
    writes = psa.simulator.traffic.writes
    run = await push_all.start(integration, Scope(), dry_run=True)
    await worker.run_until_idle()
    run = await SyncRun.get(id=run.id)
    assert run.status == RunStatus.SUCCEEDED
    found = await codes(run)
    assert found["would_create"] >= 3 + 3  # three organizations, then their locations
    assert found["would_link"] == 1  # Dormant Partner exists in ConnectWise
    assert found["type_not_syncable"] == 1
    vendor = await SyncRunIssue.get(run_id=run.id, code="type_not_syncable")
    assert vendor.local_id == orgs[-1].id
    assert "Competitor" in vendor.message
    assert psa.simulator.traffic.writes == writes
    assert not await RecordLink.filter(local_id__in=[o.id for o in orgs]).exists()


async def test_the_real_run_creates_and_links_and_a_second_run_creates_nothing(
    psa: Psa, worker: Worker, switching: tuple[Integration, list[Any]]
) -> None:
    integration, orgs = switching
    run = await push_all.start(integration, Scope(), dry_run=False)
    await worker.run_until_idle()
    run = await SyncRun.get(id=run.id)
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert nonzero(run.counts()) == EVERY_RECORD
    assert run.processed == run.total == sum(EVERY_RECORD.values())
    for i in range(3):
        found = psa.store.find("companies", f'name = "Newco {i}"')
        assert len(found) == 1
        link = await RecordLink.get(integration_id=integration.id, local_id=orgs[i].id)
        assert link.psa_id == found[0]["id"]
        assert link.state == LinkState.SYNCED
    dormant = psa.store.find(
        "companies",
        'name = "Dormant Partner"',
    )
    assert len(dormant) == 1
    assert (await RecordLink.get(integration_id=integration.id, local_id=orgs[3].id)).psa_id == (
        dormant[0]["id"]
    )
    assert not psa.store.find("companies", 'name = "Parts Vendor"')
    companies = len(psa.store.find("companies"))
    sites = sum(
        len(psa.store.find("sites", parent_id=c["id"])) for c in psa.store.find("companies")
    )

    again = await push_all.start(integration, Scope(), dry_run=False)
    await worker.run_until_idle()
    again = await SyncRun.get(id=again.id)
    assert again.created == 0
    assert len(psa.store.find("companies")) == companies
    assert (
        sum(len(psa.store.find("sites", parent_id=c["id"])) for c in psa.store.find("companies"))
        == sites
    )


async def test_a_scope_by_kind_pushes_only_those_kinds(
    psa: Psa, worker: Worker, switching: tuple[Integration, list[Any]]
) -> None:
    integration, _orgs = switching
    run = await push_all.start(
        integration, Scope(kinds=frozenset({AssetKind.ORGANIZATION})), dry_run=True
    )
    await worker.run_until_idle()
    kinds = {i.kind for i in await SyncRunIssue.filter(run_id=run.id)}
    assert kinds == {AssetKind.ORGANIZATION}


async def test_a_run_that_crashed_after_creating_resumes_without_duplicates(
    psa: Psa,
    worker: Worker,
    switching: tuple[Integration, list[Any]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    integration, orgs = switching
    real_write = push_all.write_created

    async def crash(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("killed after the PSA created the records")

    monkeypatch.setattr(push_all, "write_created", crash)
    first = await push_all.start(integration, Scope(), dry_run=False)
    await worker.run_until_idle()
    assert (await SyncRun.get(id=first.id)).status == RunStatus.FAILED
    assert len(psa.store.find("companies", 'name = "Newco 0"')) == 1  # created, not linked
    assert not await RecordLink.filter(local_id=orgs[0].id).exists()

    monkeypatch.setattr(push_all, "write_created", real_write)
    second = await push_all.start(integration, Scope(), dry_run=False)
    await worker.run_until_idle()
    second = await SyncRun.get(id=second.id)
    assert second.status == RunStatus.SUCCEEDED, second.error
    for i in range(3):
        assert len(psa.store.find("companies", f'name = "Newco {i}"')) == 1
        link = await RecordLink.get(integration_id=integration.id, local_id=orgs[i].id)
        assert link.state == LinkState.SYNCED


class WorkerDied(BaseException):
    """The worker's process ends mid-page: nothing after this point runs."""


class Stopping:
    """The real provider, until its creates are done and ``stop`` ends the attempt there:
    the records are in the PSA, the page's links and report are not written."""

    def __init__(self, inner: PsaProvider, stop: Callable[[], Awaitable[None]]) -> None:
        self.inner = inner
        self.stop = stop
        self.created = 0
        self.in_flight = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def create_record(self, kind: AssetKind, change: PsaChange) -> PsaRecord:
        self.in_flight += 1
        try:
            record = await self.inner.create_record(kind, change)
        finally:
            self.in_flight -= 1
        self.created += 1
        if self.created >= 2 and not self.in_flight:  # several creates, none left half-done
            await self.stop()
        return record


@pytest.mark.parametrize("stop", ["paused", "psa_outage", "worker_died"])
async def test_a_run_stopped_mid_page_counts_every_record_once_over_all_its_attempts(
    psa: Psa,
    vault: Vault,
    switching: tuple[Integration, list[Any]],
    monkeypatch: pytest.MonkeyPatch,
    stop: str,
) -> None:
    integration, _orgs = switching
    monkeypatch.setattr(push_all, "PAGE", 2)  # several pages, and a stop inside one
    stopped: list[str] = []

    async def stop_here() -> None:
        if stopped:
            return
        stopped.append(stop)
        if stop == "paused":
            await integrations.pause(integration)
        elif stop == "psa_outage":
            raise RetriableError("ConnectWise did not answer")
        else:
            raise WorkerDied

    real = provider_factory(vault, retry=FAST_RETRY)

    async def stopping(found: Integration) -> PsaProvider:
        return Stopping(await real(found), stop_here)  # type: ignore[return-value]

    first = Worker(stopping, schedule=False, retry_delay=timedelta(0))
    run = await push_all.start(integration, Scope(), dry_run=False)

    if stop == "worker_died":
        with pytest.raises(WorkerDied):
            await first.run_until_idle()
        # Its lease runs out; another worker takes the run over.
        later = Worker(real, schedule=False, clock=lambda: utcnow() + timedelta(minutes=5))
        await later.run_until_idle()
    else:
        await first.run_until_idle()
        if stop == "paused":
            assert (await SyncRun.get(id=run.id)).status == RunStatus.QUEUED
            await integrations.resume(integration)
        later = first
        await later.run_until_idle()

    run = await SyncRun.get(id=run.id)
    assert stopped == [stop]
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.attempts == 2
    assert nonzero(run.counts()) == EVERY_RECORD  # as if it had never stopped
    assert run.processed == run.total == sum(EVERY_RECORD.values())
    for i in range(3):
        assert len(psa.store.find("companies", f'name = "Newco {i}"')) == 1
    reported = await codes(run)
    assert reported["created"] == run.created
    assert reported.get("linked", 0) == run.linked
    assert sum(reported.values()) == run.processed
    assert later.last_context is not None
    assert later.last_context.processed == run.processed  # the run's figures, not the leg's
    assert nonzero(later.last_context.counts) == EVERY_RECORD
