"""Read-merge-write pushes, the fenced deliverer and echo marks, against the ConnectWise
simulator over HTTP: what a user sees when the PSA changed too, when a write's answer is
lost, when two deliverers meet, and when a notice overtakes the answer to our own write."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import httpx
import pytest
from harness import FAST_RETRY, Psa, sync_now
from starlette.requests import Request
from two_way_helpers import (
    a_synced_configuration,
    a_synced_organization,
    link_of,
    new_configuration,
    psa_field,
    two_way_integration,
)

from models import (
    Account,
    AssetKind,
    ChangeSource,
    Configuration,
    ConflictOutcome,
    FieldChange,
    Integration,
    Organization,
    OutboxEntry,
    RecordLink,
    SyncConflict,
    WebhookDelivery,
)
from models.vault import Vault
from sync import apply as apply_module
from sync import leases, local_edits
from sync.connections import provider_factory
from sync.context import utcnow
from sync.errors import LeaseLost
from sync.providers.base import PsaChange, PsaProvider, PsaRecord
from sync.runner import Worker

Connect = Callable[..., Awaitable[Integration]]
ORG = AssetKind.ORGANIZATION
LEASE = timedelta(seconds=120)
CONFIG = AssetKind.CONFIGURATION


@dataclass
class Counted(httpx.AsyncBaseTransport):
    """The real network, and a list of the requests sent through it."""

    sent: list[tuple[str, str]] = field(default_factory=list)
    inner: httpx.AsyncBaseTransport = field(default_factory=httpx.AsyncHTTPTransport)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.sent.append((request.method, str(request.url)))
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()

    def count(self, method: str, part: str) -> int:
        return sum(1 for m, url in self.sent if m == method and part in url)


@pytest.fixture
def counted() -> Counted:
    return Counted()


@pytest.fixture
def counting_worker(vault: Vault, counted: Counted) -> Worker:
    factory = provider_factory(vault, retry=FAST_RETRY, transport=counted)
    return Worker(factory, schedule=False, retry_delay=timedelta(0))


@pytest.fixture
def applied(psa: Psa) -> Iterator[list[tuple[str, str]]]:
    """Writes ConnectWise applied: (path, body), in order."""
    seen: list[tuple[str, str]] = []

    async def record(request: Request) -> None:
        seen.append((request.url.path, (await request.body()).decode()))

    psa.simulator.before_write.append(record)
    yield seen
    psa.simulator.before_write.remove(record)


async def _policy(connect: Connect, worker: Worker, policy: str) -> Integration:
    fields = {"organization.name": {"direction": "TWO_WAY", "policy": policy}}
    return await two_way_integration(connect, worker, fields=fields)


# ------------------------------------------------------------------ the PSA changed too


@pytest.mark.parametrize(
    ("policy", "outcome", "name_after"),
    [
        ("PSA_WINS", ConflictOutcome.PSA, "Theirs Ltd"),
        ("LOCAL_WINS", ConflictOutcome.LOCAL, "Ours Ltd"),
        ("MANUAL", ConflictOutcome.OPEN, None),
    ],
)
async def test_a_psa_edit_of_a_field_we_push_is_settled_by_its_policy_and_recorded(
    psa: Psa,
    connect: Connect,
    worker: Worker,
    account: Account,
    policy: str,
    outcome: ConflictOutcome,
    name_after: str | None,
) -> None:
    integration = await _policy(connect, worker, policy)
    org, psa_id = await a_synced_organization(psa, integration)
    await local_edits.update(ORG, account.id, org.id, {"name": "Ours Ltd"})
    psa.store.update("companies", psa_id, {"name": "Theirs Ltd"})  # before we deliver
    writes = psa.simulator.traffic.writes

    await worker.deliverer.run_due()

    [conflict] = await SyncConflict.filter(local_id=org.id, field="name")
    assert conflict.outcome == outcome
    assert (conflict.local_value, conflict.psa_value) == ('"Ours Ltd"', '"Theirs Ltd"')
    local = (await Organization.get(id=org.id)).name
    if name_after is None:  # MANUAL: both sides keep theirs, nothing is written
        assert (local, psa_field(psa, "companies", psa_id, "name")) == ("Ours Ltd", "Theirs Ltd")
        assert psa.simulator.traffic.writes == writes
    else:
        assert local == psa_field(psa, "companies", psa_id, "name") == name_after
    assert not await OutboxEntry.filter(integration_id=integration.id).exists()


async def test_a_psa_change_to_another_field_made_while_we_write_lands_locally(
    psa: Psa, connect: Connect, worker: Worker, account: Account
) -> None:
    integration = await two_way_integration(connect, worker)
    config, psa_id = await a_synced_configuration(integration)
    await local_edits.update(CONFIG, account.id, config.id, {"serial_number": "SN-OURS"})

    def a_psa_user_edits_the_notes(request: Request) -> None:
        if request.method == "PATCH":
            psa.store.update("configurations", psa_id, {"notes": "edited in ConnectWise"})

    psa.simulator.before_write.append(a_psa_user_edits_the_notes)
    await worker.deliverer.run_due()
    psa.simulator.before_write.remove(a_psa_user_edits_the_notes)
    await worker.run_until_idle()

    local = await Configuration.get(id=config.id)
    assert (local.serial_number, local.notes) == ("SN-OURS", "edited in ConnectWise")
    assert psa_field(psa, "configurations", psa_id, "notes") == "edited in ConnectWise"
    assert psa_field(psa, "configurations", psa_id, "serialNumber") == "SN-OURS"
    assert not await SyncConflict.exists()
    history = await FieldChange.filter(local_id=config.id, field="notes").values_list(
        "source", "new_value"
    )
    assert (ChangeSource.PSA, '"edited in ConnectWise"') in history


async def test_a_local_edit_made_while_its_push_is_on_the_way_is_pushed_next(
    psa: Psa,
    connect: Connect,
    worker: Worker,
    account: Account,
    applied: list[tuple[str, str]],
) -> None:
    integration = await two_way_integration(connect, worker)
    org, psa_id = await a_synced_organization(psa, integration)
    await local_edits.update(ORG, account.id, org.id, {"name": "First Edit"})
    on_the_tests_loop = _caller(asyncio.get_running_loop())

    async def the_user_edits_again(_request: Request) -> None:
        edit = local_edits.update(ORG, account.id, org.id, {"name": "Second Edit"})
        await on_the_tests_loop(edit)

    psa.simulator.before_write.append(the_user_edits_again)
    await worker.deliverer.run_due()  # the first write, then the edit made meanwhile
    psa.simulator.before_write.remove(the_user_edits_again)

    assert [_name(body) for _path, body in applied] == ["First Edit", "Second Edit"]
    assert psa_field(psa, "companies", psa_id, "name") == "Second Edit"
    assert (await Organization.get(id=org.id)).name == "Second Edit"
    assert not await SyncConflict.exists()
    assert not await OutboxEntry.exists()


# ------------------------------------------------------------------------- echoes


class NoticeBeforeAnswer:
    """A provider whose writes, once the PSA applied them, wait while the PSA's notice of
    the write is received and processed (the notice overtakes the answer)."""

    def __init__(self, provider: PsaProvider, notice: Callable[[int], Awaitable[None]]) -> None:
        self._provider = provider
        self._notice = notice

    def __getattr__(self, name: str) -> Any:
        return getattr(self._provider, name)

    async def update_record(
        self, kind: AssetKind, psa_id: int, parent_psa_id: int | None, change: PsaChange
    ) -> PsaRecord:
        answer = await self._provider.update_record(kind, psa_id, parent_psa_id, change)
        await self._notice(psa_id)
        return answer


async def test_a_notice_of_our_own_write_processed_before_its_answer_changes_nothing(
    psa: Psa, connect: Connect, worker: Worker, account: Account, vault: Vault
) -> None:
    integration = await two_way_integration(connect, worker)
    org, psa_id = await a_synced_organization(psa, integration)
    other = Worker(provider_factory(vault, retry=FAST_RETRY), schedule=False)

    async def notice(record_id: int) -> None:
        if await WebhookDelivery.exists():
            return  # once: for the write of Edit Nine
        # The user edits again while the answer is on its way; the notice of our write
        # arrives and another worker processes it before the answer is recorded.
        await local_edits.update(ORG, account.id, org.id, {"name": "Edit Ten"})
        await WebhookDelivery.create(
            integration_id=integration.id, dedupe_key=f"echo-{record_id}", received_at=utcnow(),
            kind=ORG, psa_id=record_id, action="updated", member="somebody-else",
            stamp=None, payload="{}",
        )  # fmt: skip
        await other.inbox.run_due()

    real = worker.open_provider

    async def open_provider(integration: Integration) -> PsaProvider:
        return NoticeBeforeAnswer(await real(integration), notice)  # type: ignore[return-value]

    worker.deliverer.open_provider = open_provider
    await local_edits.update(ORG, account.id, org.id, {"name": "Edit Nine"})
    await worker.deliverer.run_due()
    worker.deliverer.open_provider = real
    delivery = await WebhookDelivery.get(integration_id=integration.id)
    assert (delivery.status, delivery.reason) == ("PROCESSED", "unchanged")  # the echo: ours
    await worker.run_until_idle()

    assert psa_field(psa, "companies", psa_id, "name") == "Edit Ten"
    assert (await Organization.get(id=org.id)).name == "Edit Ten"
    assert not await SyncConflict.exists()  # no phantom "local Edit Ten vs PSA Edit Nine"


# ------------------------------------------------------------------- lost answers


async def test_an_update_whose_answer_was_lost_is_not_sent_again(
    psa: Psa,
    connect: Connect,
    worker: Worker,
    account: Account,
    applied: list[tuple[str, str]],
) -> None:
    integration = await two_way_integration(connect, worker)
    org, psa_id = await a_synced_organization(psa, integration)
    await local_edits.update(ORG, account.id, org.id, {"name": "Landed Ltd"})

    psa.simulator.faults.drop_after_write_every = 1
    await worker.deliverer.run_due()
    psa.simulator.faults.clear()
    assert psa.simulator.traffic.dropped_answers == 1
    assert await OutboxEntry.filter(local_id=org.id).exists()  # waiting: outcome unknown
    assert (await link_of(integration, org.id)).sending == {"name": ["Landed Ltd"]}

    await OutboxEntry.filter(local_id=org.id).update(next_attempt_at=None)
    await Integration.filter(id=integration.id).update(push_not_before=None)
    await worker.deliverer.run_due()

    assert [path.rsplit("/", 2)[-2:] for path, _body in applied] == [["companies", str(psa_id)]]
    assert not await OutboxEntry.filter(local_id=org.id).exists()
    link = await link_of(integration, org.id)
    assert (link.snapshot["name"], link.sending) == ("Landed Ltd", None)
    assert not await SyncConflict.exists()


async def test_a_create_whose_answer_was_lost_is_linked_not_created_again(
    psa: Psa, connect: Connect, worker: Worker, account: Account
) -> None:
    integration = await two_way_integration(connect, worker)
    org, psa_id = await a_synced_organization(psa, integration)
    created = await local_edits.create(
        CONFIG, account.id, await new_configuration(integration, org.id, "Lost Answer 1")
    )

    psa.simulator.faults.drop_after_write_every = 1
    await worker.deliverer.run_due()
    psa.simulator.faults.clear()
    assert len(psa.store.find("configurations", 'name = "Lost Answer 1"')) == 1
    await OutboxEntry.filter(local_id=created.id).update(next_attempt_at=None)
    await Integration.filter(id=integration.id).update(push_not_before=None)
    await worker.run_until_idle()

    [record] = psa.store.find("configurations", 'name = "Lost Answer 1"')
    link = await link_of(integration, created.id)
    assert (link.psa_id, link.state) == (record["id"], "SYNCED")
    assert await Configuration.filter(name="Lost Answer 1").count() == 1
    assert record["company"]["id"] == psa_id


# ------------------------------------------------------------------------ fencing


async def test_two_deliverers_at_once_send_each_change_once(
    psa: Psa,
    connect: Connect,
    worker: Worker,
    account: Account,
    vault: Vault,
    applied: list[tuple[str, str]],
) -> None:
    integration = await two_way_integration(connect, worker)
    links = await RecordLink.filter(integration_id=integration.id, kind=CONFIG).limit(6)
    org, _psa_id = await a_synced_organization(psa, integration)
    for n, link in enumerate(links):
        await local_edits.update(CONFIG, account.id, link.local_id, {"serial_number": f"SN-{n}"})
    for n in range(3):
        await local_edits.create(
            CONFIG, account.id, await new_configuration(integration, org.id, f"Twice {n}")
        )
    second = Worker(provider_factory(vault, retry=FAST_RETRY), schedule=False)

    await asyncio.gather(worker.deliverer.run_due(), second.deliverer.run_due())
    await worker.run_until_idle()

    assert len(applied) == len(links) + 3
    assert len({body for _path, body in applied}) == len(applied)
    for n in range(3):
        assert len(psa.store.find("configurations", f'name = "Twice {n}"')) == 1


async def test_a_holder_that_outlived_its_lease_sends_and_writes_nothing_more(
    connect: Connect, worker: Worker
) -> None:
    integration = await two_way_integration(connect, worker)
    now = utcnow()
    late = now + timedelta(seconds=121)
    first = await leases.claim(integration.id, "push_lease", "a", lambda: now, LEASE)
    assert first is not None
    assert await leases.claim(integration.id, "push_lease", "b", lambda: now, LEASE) is None
    second = await leases.claim(integration.id, "push_lease", "a", lambda: late, LEASE)
    assert second is not None  # expired: taken over, under a new token

    first.clock = lambda: late
    with pytest.raises(LeaseLost):
        await first.guard()  # before its next request
    with pytest.raises(LeaseLost):
        await first.hold()  # before writing results
    await first.release()  # a no-op: the lease is the second holder's
    await second.guard()
    row = await Integration.get(id=integration.id)
    assert row.push_lease_owner == second.token != first.token


async def test_a_run_catching_up_leaves_pushes_to_the_deliverer_that_holds_them(
    psa: Psa, connect: Connect, worker: Worker, account: Account
) -> None:
    integration = await two_way_integration(connect, worker)
    org, psa_id = await a_synced_organization(psa, integration)
    await local_edits.update(ORG, account.id, org.id, {"name": "Held Elsewhere"})
    holder = await leases.claim(integration.id, "push_lease", worker.worker_id, utcnow,
                                timedelta(seconds=120))  # fmt: skip
    assert holder is not None

    assert await worker.deliverer.deliver(integration) == 0  # same worker, new claim: refused
    assert psa_field(psa, "companies", psa_id, "name") != "Held Elsewhere"

    await holder.release()
    assert await worker.deliverer.deliver(integration) == 1
    assert psa_field(psa, "companies", psa_id, "name") == "Held Elsewhere"


# ------------------------------------------------------------------ reads per push


async def test_a_batch_of_edits_reads_its_records_in_one_request_then_writes_each_once(
    psa: Psa, connect: Connect, counting_worker: Worker, account: Account, counted: Counted
) -> None:
    integration = await two_way_integration(connect, counting_worker)
    links = await RecordLink.filter(integration_id=integration.id, kind=CONFIG).limit(8)
    for n, link in enumerate(links):
        await local_edits.update(CONFIG, account.id, link.local_id, {"serial_number": f"B-{n}"})
    counted.sent.clear()

    await counting_worker.deliverer.run_due()

    assert counted.count("GET", "company/configurations?") == 1  # id in (…), all eight
    assert counted.count("PATCH", "company/configurations/") == len(links)
    for n, link in enumerate(links):
        assert psa_field(psa, "configurations", link.psa_id, "serialNumber") == f"B-{n}"


async def test_site_edits_are_read_through_their_company(
    psa: Psa, connect: Connect, counting_worker: Worker, account: Account, counted: Counted
) -> None:
    integration = await two_way_integration(connect, counting_worker)
    _org, psa_id = await a_synced_organization(psa, integration)
    sites = await RecordLink.filter(integration_id=integration.id, kind=AssetKind.LOCATION,
                                    psa_parent_id=psa_id)  # fmt: skip
    assert sites
    for n, link in enumerate(sites):
        await local_edits.update(AssetKind.LOCATION, account.id, link.local_id, {"city": f"C{n}"})
    counted.sent.clear()

    await counting_worker.deliverer.run_due()

    assert counted.count("GET", f"company/companies/{psa_id}/sites") == 1
    for n, link in enumerate(sites):
        assert psa.store.get("sites", link.psa_id)["city"] == f"C{n}"  # type: ignore[index]


# ---------------------------------------------------------------------- one-way too


async def test_a_pulled_change_under_one_way_sync_is_in_the_field_history(
    psa: Psa, connect: Connect, worker: Worker
) -> None:
    integration = await connect()
    await worker.run_until_idle()
    org, psa_id = await a_synced_organization(psa, integration)
    psa.store.update("companies", psa_id, {"name": "Renamed In ConnectWise"})

    await sync_now(worker, integration)

    [change] = await FieldChange.filter(local_id=org.id, field="name")
    assert (change.source, change.actor, change.old_value, change.new_value) == (
        ChangeSource.PSA,
        integration.name,
        f'"{org.name}"',
        '"Renamed In ConnectWise"',
    )


# ---------------------------------------------------------------------------- helpers


def _name(body: str) -> str:
    [operation] = json.loads(body)
    return str(operation["value"])


def _caller(loop: asyncio.AbstractEventLoop) -> Callable[[Awaitable[Any]], Awaitable[Any]]:
    """Await a coroutine on the test's loop from the simulator's thread (where its hooks run:
    the database connections live on the test's loop)."""

    async def call(awaitable: Awaitable[Any]) -> Any:
        async def run() -> Any:
            return await awaitable

        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(run(), loop))

    return call


async def test_a_pull_that_meets_a_link_made_meanwhile_by_a_push_keeps_it_and_goes_on(
    psa: Psa,
    connect: Connect,
    worker: Worker,
    account: Account,
    vault: Vault,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    integration = await two_way_integration(connect, worker)
    org, _psa_id = await a_synced_organization(psa, integration)
    created = await local_edits.create(
        CONFIG, account.id, await new_configuration(integration, org.id, "Met Meanwhile")
    )
    psa.simulator.faults.drop_after_write_every = 1  # created in ConnectWise, answer lost
    await worker.deliverer.run_due()
    psa.simulator.faults.clear()
    later = utcnow() + timedelta(hours=1)  # the retry waits: the run's catch-up skips it
    await OutboxEntry.filter(local_id=created.id).update(next_attempt_at=later)
    await Integration.filter(id=integration.id).update(push_not_before=later)
    other = Worker(provider_factory(vault, retry=FAST_RETRY), schedule=False)
    real = apply_module._candidates

    async def and_meanwhile_the_other_worker_delivers(*args: Any) -> Any:
        found = await real(*args)  # the pull has planned to link the new record…
        if found:
            await OutboxEntry.filter(local_id=created.id).update(next_attempt_at=None)
            await Integration.filter(id=integration.id).update(push_not_before=None)
            await other.deliverer.run_due()  # …and the retried create links it first
        return found

    monkeypatch.setattr(apply_module, "_candidates", and_meanwhile_the_other_worker_delivers)
    run = await sync_now(worker, integration)

    assert run.status == "SUCCEEDED", run.error
    [record] = psa.store.find("configurations", 'name = "Met Meanwhile"')
    link = await link_of(integration, created.id)
    assert link.psa_id == record["id"]
    assert await Configuration.filter(name="Met Meanwhile").count() == 1


class NoticeDuringMatch:
    """A provider whose create-matching lookups wait while a notice is processed (it links
    the record an earlier attempt created, between the deliverer's look at the links and
    its lookup)."""

    def __init__(self, provider: PsaProvider, notice: Callable[[], Awaitable[None]]) -> None:
        self._provider = provider
        self._notice = notice

    def __getattr__(self, name: str) -> Any:
        return getattr(self._provider, name)

    async def find_matches(self, kind: AssetKind, probes: list[Any]) -> list[PsaRecord]:
        await self._notice()
        return await self._provider.find_matches(kind, probes)


async def test_a_create_retried_while_a_notice_links_its_record_is_not_created_twice(
    psa: Psa, connect: Connect, worker: Worker, account: Account, vault: Vault
) -> None:
    integration = await two_way_integration(connect, worker)
    org, _psa_id = await a_synced_organization(psa, integration)
    created = await local_edits.create(
        CONFIG, account.id, await new_configuration(integration, org.id, "Raced Create")
    )
    psa.simulator.faults.drop_after_write_every = 1  # created in ConnectWise, answer lost
    await worker.deliverer.run_due()
    psa.simulator.faults.clear()
    [record] = psa.store.find("configurations", 'name = "Raced Create"')
    await OutboxEntry.filter(local_id=created.id).update(next_attempt_at=None)
    await Integration.filter(id=integration.id).update(push_not_before=None)
    other = Worker(provider_factory(vault, retry=FAST_RETRY), schedule=False)

    async def notice() -> None:
        await WebhookDelivery.get_or_create(
            integration_id=integration.id, dedupe_key=f"added-{record['id']}",
            defaults={"received_at": utcnow(), "kind": CONFIG, "psa_id": record["id"],
                      "action": "added", "member": "psasync", "stamp": None, "payload": "{}"},
        )  # fmt: skip
        await other.inbox.run_due()  # links the new record to ours, as a pull would

    real = worker.open_provider

    async def open_provider(integration: Integration) -> PsaProvider:
        return NoticeDuringMatch(await real(integration), notice)  # type: ignore[return-value]

    worker.deliverer.open_provider = open_provider
    await worker.deliverer.run_due()
    worker.deliverer.open_provider = real
    await worker.run_until_idle()

    assert len(psa.store.find("configurations", 'name = "Raced Create"')) == 1
    link = await link_of(integration, created.id)
    assert (link.psa_id, link.state) == (record["id"], "SYNCED")
    assert await Configuration.filter(name="Raced Create").count() == 1
    assert not await OutboxEntry.filter(integration_id=integration.id).exists()
