"""Two-way sync under faults, end to end over real HTTP: the three ways pushes used to lose
data, measured before the read-merge-write rewrite, each as a user would notice it.

The ConnectWise simulator runs in a thread and posts signed callbacks to the psasync service
(uvicorn on loopback, in this test's event loop), which stores them; the test drives a
``Worker`` (deliverer, inbox, runs) step by step, or, on PostgreSQL, two ``psasync worker``
processes do.

1. A PSA user's edit made while psasync could not deliver (paused, an outage, no webhooks)
   was overwritten by the delayed push: it is kept, or is a conflict settled by its policy.
2. Many edits under rate limiting, with the notices of psasync's own writes processed while
   the next pushes are on their way: every last edit lands on both sides, no phantom
   conflict.
3. Creates racing a manual sync's catch-up and pull, with rate limits and lost answers: each
   record created once in the PSA and kept once locally, and each later PATCH applied once.
4. (PostgreSQL) Two ``psasync worker`` processes sharing that work: every last edit on both
   sides, each create once, no PATCH applied twice in a row.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from harness import ALL_SCOPE, FAST_RETRY, Psa, live_connectwise, served_here
from starlette.applications import Starlette
from starlette.requests import Request
from two_way_helpers import a_synced_organization, new_configuration, psa_field, two_way

from models import (
    Account,
    AssetKind,
    Configuration,
    ConflictOutcome,
    DeliveryStatus,
    Integration,
    LinkState,
    Organization,
    OutboxEntry,
    RecordLink,
    RunKind,
    RunStatus,
    SyncConflict,
    SyncRun,
    WebhookDelivery,
)
from models.vault import Vault
from simulators.connectwise import DatasetSpec
from sync import integrations, jobs, local_edits
from sync.connections import provider_factory
from sync.integrations import add_connectwise
from sync.runner import Worker
from sync.sync_settings import TwoWayChange, update_two_way

PSASYNC = str(Path(sys.executable).with_name("psasync"))
# As tests/conftest.py reads it (a module of tests cannot import a conftest reliably).
BACKEND = os.environ.get("PSASYNC_TEST_BACKEND", "sqlite").strip().lower()
ORG = AssetKind.ORGANIZATION
CONFIG = AssetKind.CONFIGURATION
# Every third request to ConnectWise is answered 429 Retry-After 1 (the tests' retry policy
# waits 10 ms instead; the worker processes of the PostgreSQL test wait the second).
RATE_LIMITED = {"rate_limit_every": 3, "retry_after_seconds": 1}
FAST_PUSHES = 6000  # writes per minute: the default 600 would make the test wait, not test


# ------------------------------------------------------------------------------ fixtures


@pytest.fixture
async def live() -> AsyncIterator[Psa]:
    """The simulator served on its own thread, posting its callbacks for real."""
    async with live_connectwise(DatasetSpec(companies=8, configurations=60, seed=5)) as psa:
        yield psa


@dataclass
class Service:
    app: Starlette
    base_url: str  # where ConnectWise posts callbacks


@pytest.fixture
async def service(db: str, secret_key: str) -> AsyncIterator[Service]:
    async with served_here(db, secret_key) as (app, base_url):
        yield Service(app, base_url)


@pytest.fixture
def worker(vault: Vault, service: Service) -> Worker:
    """A worker that registers callbacks to the service; no back-off between attempts
    beyond what ConnectWise's Retry-After asks (the tests wait that out, as a worker does)."""
    worker = Worker(
        provider_factory(vault, retry=FAST_RETRY),
        schedule=False,
        retry_delay=timedelta(0),
        public_url=service.base_url,
    )
    worker.deliverer.base_delay = 0
    return worker


@pytest.fixture
def applied(live: Psa) -> Iterator[list[tuple[str, str, Any]]]:
    """Writes ConnectWise applied (they passed the injected faults), in order:
    (method, path, JSON body)."""
    seen: list[tuple[str, str, Any]] = []

    async def record(request: Request) -> None:
        raw = await request.body()
        seen.append((request.method, request.url.path, json.loads(raw) if raw else {}))

    live.simulator.before_write.append(record)
    yield seen
    live.simulator.before_write.remove(record)


# ------------------------------------------------------------------------------- helpers


async def connected(
    account: Account,
    live: Psa,
    vault: Vault,
    worker: Worker,
    *,
    push_rate: int | None = FAST_PUSHES,
    **directions: Any,
) -> Integration:
    """Set up, first full sync, two-way on (with ``directions``), callbacks registered (when
    the worker has a public URL), and the notices of all that processed."""
    integration, _run = await add_connectwise(
        account, live.credentials(), vault, sandbox=True, enable=ALL_SCOPE
    )
    await worker.run_until_idle()
    integration = await two_way(worker, integration, **directions)
    if push_rate is not None:
        integration = await update_two_way(
            integration, TwoWayChange(push_rate_per_minute=push_rate)
        )
    await worker.maintain_webhooks()
    await quiet(live, worker)
    return await Integration.get(id=integration.id)


async def quiet(live: Psa, worker: Worker) -> None:
    """ConnectWise has posted every notice, and the worker has done what it could now."""
    await live.simulator.callbacks.drain(timeout=30)
    await worker.run_until_idle()


async def settle(live: Psa, worker: Worker, integration: Integration) -> None:
    """Faults off; deliver and process notices, waiting out push back-offs until nothing is
    left (as a worker's loop would), then a poll (it reads what failed notices would have)."""
    live.simulator.faults.clear()
    for _ in range(40):
        await quiet(live, worker)
        waiting = await OutboxEntry.filter(integration_id=integration.id).count()
        notices = await WebhookDelivery.filter(
            integration_id=integration.id, status=DeliveryStatus.PENDING
        ).count()
        if not waiting and not notices:
            break
        await asyncio.sleep(0.5)  # a Retry-After of one second, jitter: what a worker waits
    await jobs.enqueue(integration, kind=RunKind.INCREMENTAL)
    await quiet(live, worker)
    assert not await OutboxEntry.filter(integration_id=integration.id).exists()


async def synced_configurations(integration: Integration, count: int) -> list[tuple[Any, int]]:
    """(local id, PSA id) of ``count`` linked configurations, by PSA id."""
    links = (
        await RecordLink.filter(integration_id=integration.id, kind=CONFIG, state=LinkState.SYNCED)
        .exclude(psa_id=None)
        .order_by("psa_id")
        .limit(count)
    )
    assert len(links) == count
    return [(link.local_id, int(link.psa_id or 0)) for link in links]


def patches_by_record(applied: list[tuple[str, str, Any]], collection: str) -> dict[int, list[Any]]:
    """The PATCH bodies ConnectWise applied, per record id."""
    found: dict[int, list[Any]] = {}
    for method, path, body in applied:
        head, _, record_id = path.rpartition("/")
        if method == "PATCH" and head.endswith(collection) and record_id.isdigit():
            found.setdefault(int(record_id), []).append(body)
    return found


def created_names(applied: list[tuple[str, str, Any]], names: list[str]) -> list[str]:
    """Which of ``names`` ConnectWise was sent a create of, once per create applied."""
    return sorted(
        body["name"]
        for method, _path, body in applied
        if method == "POST" and isinstance(body, dict) and body.get("name") in names
    )


def patched_values(body: Any) -> dict[str, Any]:
    """A JSON Patch body as {field: value}."""
    return {op["path"].strip("/"): op.get("value") for op in body}


# ---------------------------------------- 1. a PSA edit made while psasync could not deliver


@dataclass(frozen=True)
class Case:
    """How delivery was held back, and the name field's policy."""

    held: str  # "paused", "outage" or "no webhooks"
    policy: str
    outcome: ConflictOutcome
    psa_after: str  # the name ConnectWise ends with
    local_after: str  # the name psasync ends with


OURS, THEIRS = "Renamed In Psasync", "Renamed In ConnectWise"
CASES = [
    Case("paused", "PSA_WINS", ConflictOutcome.PSA, THEIRS, THEIRS),
    Case("outage", "PSA_WINS", ConflictOutcome.PSA, THEIRS, THEIRS),
    Case("no webhooks", "PSA_WINS", ConflictOutcome.PSA, THEIRS, THEIRS),
    Case("paused", "MANUAL", ConflictOutcome.OPEN, THEIRS, OURS),
    Case("outage", "LOCAL_WINS", ConflictOutcome.LOCAL, OURS, OURS),
    Case("no webhooks", "MANUAL", ConflictOutcome.OPEN, THEIRS, OURS),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c.held}-{c.policy}")
async def test_a_psa_edit_made_while_psasync_cannot_deliver_is_kept_or_settled_by_policy(
    account: Account,
    live: Psa,
    vault: Vault,
    worker: Worker,
    applied: list[tuple[str, str, Any]],
    case: Case,
) -> None:
    if case.held == "no webhooks":
        worker.public_url = None  # nothing registered: only the push reads ConnectWise
    # PSA_WINS is the default: only the other policies are set.
    fields = {"organization.name": {"direction": "TWO_WAY", "policy": case.policy}}
    directions = {"fields": fields} if case.policy != "PSA_WINS" else {}
    integration = await connected(account, live, vault, worker, **directions)
    registered = [e for e in live.simulator.callbacks.entries() if str(integration.id) in e["url"]]
    assert bool(registered) == (case.held != "no webhooks")
    org, psa_id = await a_synced_organization(live, integration)

    if case.held == "paused":
        integration = await integrations.pause(integration)
        await worker.maintain_webhooks()  # callbacks removed while paused
    if case.held == "outage":
        live.simulator.faults.outage_status = 503
    await local_edits.update(ORG, account.id, org.id, {"name": OURS})
    if case.held != "no webhooks":
        await quiet(live, worker)  # held back: paused, or tried and failed
    live.store.update("companies", psa_id, {"name": THEIRS})  # a ConnectWise user, meanwhile
    if case.held != "no webhooks":
        await quiet(live, worker)  # its notice stored, and waiting or failed
    [entry] = await OutboxEntry.filter(local_id=org.id)  # still to deliver
    assert (entry.attempts > 0) == (case.held == "outage")  # tried, and ConnectWise was down

    if case.held == "paused":
        integration = await integrations.resume(integration)
        await worker.maintain_webhooks()
    live.simulator.faults.clear()
    await quiet(live, worker)  # delivered now

    [conflict] = await SyncConflict.filter(local_id=org.id)
    assert (conflict.field, conflict.outcome) == ("name", case.outcome)
    assert (conflict.local_value, conflict.psa_value) == (json.dumps(OURS), json.dumps(THEIRS))
    assert psa_field(live, "companies", psa_id, "name") == case.psa_after
    assert (await Organization.get(id=org.id)).name == case.local_after
    sent = patches_by_record(applied, "companies").get(psa_id, [])
    if case.outcome == ConflictOutcome.LOCAL:
        assert [patched_values(body)["name"] for body in sent] == [OURS]
    else:
        assert sent == []  # ours was not sent
    assert not await OutboxEntry.filter(integration_id=integration.id).exists()

    await settle(live, worker, integration)  # a poll later: still settled, nothing new
    assert psa_field(live, "companies", psa_id, "name") == case.psa_after
    assert (await Organization.get(id=org.id)).name == case.local_after
    assert await SyncConflict.filter(local_id=org.id).count() == 1


# ------------------------------------------- 2. many edits under rate limits, echoes meanwhile


async def test_twenty_records_edited_ten_times_under_rate_limits_all_end_with_their_last_edit(
    account: Account, live: Psa, vault: Vault, service: Service, worker: Worker
) -> None:
    # At the shipped push rate (10 writes a second), so a batch is still on its way when
    # ConnectWise's notices of its first writes come back.
    integration = await connected(account, live, vault, worker, push_rate=None)
    records = await synced_configurations(integration, 20)
    live.simulator.faults.configure(RATE_LIMITED)

    # The worker's own loops, as in production: the service wakes the inbox when it stores
    # a notice, an edit wakes the deliverer.
    service.app.state.worker = worker
    worker.poll_interval = 0.1
    loops = [
        asyncio.create_task(worker.deliver_forever()),
        asyncio.create_task(worker.process_inbox_forever()),
    ]
    try:
        for round_ in range(10):
            for local_id, psa_id in records:
                serial = f"SN-{psa_id}-{round_}"
                await local_edits.update(CONFIG, account.id, local_id, {"serial_number": serial})
                await asyncio.sleep(0.01)  # a user at work while pushes and notices go on
    finally:
        for task in loops:
            task.cancel()
        await asyncio.gather(*loops, return_exceptions=True)
        service.app.state.worker = None
    assert live.simulator.traffic.rate_limited > 0
    notices = WebhookDelivery.filter(integration_id=integration.id, kind=CONFIG)
    assert await notices.exclude(status=DeliveryStatus.PENDING).exists()  # echoes processed

    await settle(live, worker, integration)

    for local_id, psa_id in records:
        last = f"SN-{psa_id}-9"
        assert psa_field(live, "configurations", psa_id, "serialNumber") == last
        assert (await Configuration.get(id=local_id)).serial_number == last
    assert await SyncConflict.filter(integration_id=integration.id).count() == 0
    assert not await OutboxEntry.filter(integration_id=integration.id).exists()


# ------------------------------------ 3. creates racing a manual sync, with lost answers


async def test_thirty_creates_racing_manual_syncs_under_faults_are_made_once_and_patched_once(
    account: Account,
    live: Psa,
    vault: Vault,
    worker: Worker,
    applied: list[tuple[str, str, Any]],
) -> None:
    integration = await connected(account, live, vault, worker)
    org, org_psa_id = await a_synced_organization(live, integration)
    names = [f"Created Under Faults {n:02}" for n in range(30)]
    created = [
        await local_edits.create(
            CONFIG, account.id, await new_configuration(integration, org.id, name)
        )
        for name in names
    ]
    before = {c["id"] for c in live.store.find("configurations", "")}
    # Rate limits, and every fourth applied write loses its answer (created, or patched,
    # but psasync is not told).
    live.simulator.faults.configure({**RATE_LIMITED, "drop_after_write_every": 4})

    # The deliverer, and a manual sync whose catch-up delivers too and whose pull reads
    # ConnectWise while creates are on their way, until the faults let everything through.
    for _ in range(6):
        await jobs.manual_sync(integration)
        await asyncio.gather(worker.deliverer.run_due(), worker.run_once(), worker.inbox.run_due())
        if not await OutboxEntry.filter(integration_id=integration.id).exists():
            break
    assert live.simulator.traffic.dropped_answers > 0
    await settle(live, worker, integration)

    new = [c for c in live.store.find("configurations", "") if c["id"] not in before]
    assert sorted(c["name"] for c in new) == names  # each created once
    assert all(c["company"]["id"] == org_psa_id for c in new)
    assert created_names(applied, names) == names  # each sent once
    locals_ = await Configuration.filter(name__in=names).values_list("name", flat=True)
    assert sorted(locals_) == names  # none pulled back as a duplicate
    psa_ids = {c["name"]: c["id"] for c in new}
    for config in created:
        link = await RecordLink.get(integration_id=integration.id, local_id=config.id)
        assert (link.state, link.psa_id) == (LinkState.SYNCED, psa_ids[config.name])

    # Each edited once, under the same faults: each PATCH is applied once, lost answer or not.
    applied.clear()
    live.simulator.faults.configure({**RATE_LIMITED, "drop_after_write_every": 4})
    for config in created:
        serial = f"SN-{psa_ids[config.name]}"
        await local_edits.update(CONFIG, account.id, config.id, {"serial_number": serial})
    await jobs.manual_sync(integration)
    await asyncio.gather(worker.deliverer.run_due(), worker.run_once(), worker.inbox.run_due())
    await settle(live, worker, integration)

    patches = patches_by_record(applied, "configurations")
    assert {
        psa_id: [patched_values(body).get("serialNumber") for body in bodies]
        for psa_id, bodies in patches.items()
    } == {psa_id: [f"SN-{psa_id}"] for psa_id in psa_ids.values()}
    for config in created:
        serial = f"SN-{psa_ids[config.name]}"
        assert psa_field(live, "configurations", psa_ids[config.name], "serialNumber") == serial
        assert (await Configuration.get(id=config.id)).serial_number == serial
    assert await SyncConflict.filter(integration_id=integration.id).count() == 0


# ------------------------------------------------- 4. two worker processes on PostgreSQL


async def start_worker(db: str, secret_key: str, public_url: str) -> asyncio.subprocess.Process:
    env = {
        **os.environ,
        "PSASYNC_DATABASE_URL": db,
        "PSASYNC_SECRET_KEY": secret_key,
        "PSASYNC_ALLOW_SANDBOX": "true",
        "PSASYNC_PUBLIC_URL": public_url,
        "PSASYNC_LOG_LEVEL": "warning",
    }
    return await asyncio.create_subprocess_exec(PSASYNC, "worker", env=env)


async def stop(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        process.terminate()
        try:
            await asyncio.wait_for(process.wait(), 10)
        except TimeoutError:
            process.kill()
            await process.wait()


async def idle(live: Psa, integration: Integration, within: float) -> bool:
    """Wait until nothing is left to do: no edit to deliver, no run, no notice to process
    (seen twice in a row, a poll apart). False on timeout."""
    calm = 0
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while loop.time() < deadline:
        busy = (
            await OutboxEntry.filter(integration_id=integration.id).exists()
            or await SyncRun.filter(
                integration_id=integration.id, status__in=[RunStatus.QUEUED, RunStatus.RUNNING]
            ).exists()
            or await WebhookDelivery.filter(
                integration_id=integration.id, status=DeliveryStatus.PENDING
            ).exists()
            or live.simulator.callbacks.outstanding > 0
        )
        calm = 0 if busy else calm + 1
        if calm >= 2:
            return True
        await asyncio.sleep(1.0)
    return False


@pytest.mark.skipif(BACKEND != "postgres", reason="several worker processes need PostgreSQL")
async def test_two_worker_processes_deliver_every_last_edit_and_each_create_once(
    account: Account,
    live: Psa,
    vault: Vault,
    service: Service,
    worker: Worker,
    applied: list[tuple[str, str, Any]],
    db: str,
    secret_key: str,
) -> None:
    integration = await connected(account, live, vault, worker, push_rate=None)
    records = await synced_configurations(integration, 20)
    org, _org_psa_id = await a_synced_organization(live, integration)
    names = [f"Made By Two Workers {n}" for n in range(6)]
    creates = []
    live.simulator.faults.configure(RATE_LIMITED)
    processes: list[asyncio.subprocess.Process] = []
    try:
        for _ in range(2):
            processes.append(await start_worker(db, secret_key, service.base_url))
        for round_, name in enumerate(names):
            for local_id, psa_id in records:
                serial = f"SN-{psa_id}-{round_}"
                await local_edits.update(CONFIG, account.id, local_id, {"serial_number": serial})
                await asyncio.sleep(0.05)
            values = await new_configuration(integration, org.id, name)
            creates.append(await local_edits.create(CONFIG, account.id, values))
            await jobs.manual_sync(integration)  # queued behind the running one, if any
        assert await idle(live, integration, within=180), "the workers did not finish"
        assert [p.returncode for p in processes] == [None, None]  # both alive throughout
    finally:
        for process in processes:
            await stop(process)

    for local_id, psa_id in records:
        last = f"SN-{psa_id}-{len(names) - 1}"
        assert psa_field(live, "configurations", psa_id, "serialNumber") == last
        assert (await Configuration.get(id=local_id)).serial_number == last
    for config in creates:
        [made] = live.store.find("configurations", f'name = "{config.name}"')
        link = await RecordLink.get(integration_id=integration.id, local_id=config.id)
        assert (link.state, link.psa_id) == (LinkState.SYNCED, made["id"])
        assert await Configuration.filter(name=config.name).count() == 1
    assert created_names(applied, names) == names  # each sent once
    for psa_id, bodies in patches_by_record(applied, "configurations").items():
        repeats = [a for a, b in itertools.pairwise(bodies) if a == b]
        assert repeats == [], f"configuration {psa_id}: the same PATCH applied twice in a row"
    assert await SyncConflict.filter(integration_id=integration.id).count() == 0
