"""Webhooks end to end over real HTTP: the ConnectWise simulator posts signed callbacks to the
service (uvicorn on loopback, in this test's event loop), the runner processes them, and
GraphQL shows the result. Registration, echo, bursts, a killed process, missed notices.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from harness import (
    ALL_SCOPE,
    FAST_RETRY,
    GraphQLClient,
    Psa,
    live_connectwise,
    served_here,
)
from starlette.applications import Starlette

from api import access
from api.graphql.ids import to_global
from models import (
    Account,
    AssetKind,
    DeliveryStatus,
    Integration,
    LinkState,
    Organization,
    RecordLink,
    Role,
    RunKind,
    SubscriptionState,
    WebhookDelivery,
    WebhookSubscription,
)
from models.vault import Vault
from simulators.connectwise import DatasetSpec
from simulators.connectwise.server import bind
from sync import integrations, jobs, local_edits
from sync.connections import provider_factory
from sync.integrations import DeleteMode, add_connectwise
from sync.runner import Worker
from sync.sync_settings import SettingsChange, update

PSASYNC = str(Path(sys.executable).with_name("psasync"))


@dataclass
class Service:
    app: Starlette
    base_url: str
    graphql: GraphQLClient


@pytest.fixture
async def live() -> AsyncIterator[Psa]:
    """The simulator served on its own (its callbacks need its own lifespan)."""
    async with live_connectwise(DatasetSpec(companies=8, seed=5)) as psa:
        yield psa


@pytest.fixture
async def service(db: str, secret_key: str, account: Account) -> AsyncIterator[Service]:
    """The service on a loopback port, served in this loop, reachable by the simulator."""
    user = await access.create_user(account, "manager@msp.test", Role.MANAGER)
    _row, key = await access.issue_key(user)
    async with (
        served_here(db, secret_key) as (app, base_url),
        httpx.AsyncClient(base_url=base_url, timeout=10) as http,
    ):
        yield Service(app, base_url, GraphQLClient(http, key))


@pytest.fixture
def runner(vault: Vault, service: Service) -> Worker:
    return Worker(
        provider_factory(vault, retry=FAST_RETRY), schedule=False, public_url=service.base_url
    )


async def _connected(account: Account, live: Psa, vault: Vault, runner: Worker) -> Integration:
    integration, _run = await add_connectwise(
        account, live.credentials(), vault, sandbox=True, enable=ALL_SCOPE
    )
    await runner.run_until_idle()  # the first full sync
    await runner.maintain_webhooks()  # registers the callbacks
    return await Integration.get(id=integration.id)


async def _cycle(live: Psa, runner: Worker) -> None:
    """Let the simulator finish posting, then one runner cycle."""
    await live.simulator.callbacks.drain(timeout=30)
    await runner.run_until_idle()


def _ours(live: Psa, service: Service) -> list[dict[str, Any]]:
    return [e for e in live.simulator.callbacks.entries() if service.base_url in e["url"]]


async def _a_synced_company(live: Psa) -> RecordLink:
    link = await RecordLink.filter(kind=AssetKind.ORGANIZATION, state=LinkState.SYNCED).first()
    assert link is not None
    return link


async def test_callbacks_are_registered_kept_and_removed_with_the_integration(
    account: Account, live: Psa, vault: Vault, service: Service, runner: Worker
) -> None:
    integration = await _connected(account, live, vault, runner)
    registered = _ours(live, service)
    assert sorted(e["type"] for e in registered) == ["company", "configuration", "contact"]
    assert all(e["level"].lower() == "owner" for e in registered)
    assert all(
        e["url"].endswith(f"/webhooks/connectwise/{integration.id}?recordId=") for e in registered
    )
    rows = await WebhookSubscription.filter(integration_id=integration.id)
    assert {r.state for r in rows} == {SubscriptionState.REGISTERED}

    # Someone removes one in ConnectWise: the next check registers it again, once.
    live.simulator.callbacks.remove(registered[0]["id"])
    await Integration.filter(id=integration.id).update(webhooks_checked_at=None)
    await runner.maintain_webhooks()
    assert len(_ours(live, service)) == 3

    # Paused: removed; resumed: back.
    await integrations.pause(integration)
    await runner.maintain_webhooks()
    assert _ours(live, service) == []
    await integrations.resume(await Integration.get(id=integration.id))
    await runner.maintain_webhooks()
    assert len(_ours(live, service)) == 3

    # Near-real-time off (and two-way off): removed.
    await update(await Integration.get(id=integration.id), SettingsChange(near_real_time=False))
    await runner.maintain_webhooks()
    assert _ours(live, service) == []
    await update(await Integration.get(id=integration.id), SettingsChange(near_real_time=True))
    await runner.maintain_webhooks()
    assert len(_ours(live, service)) == 3

    await integrations.delete(
        await Integration.get(id=integration.id),
        DeleteMode.DISCONNECT,
        open_provider=runner.open_provider,
    )
    assert _ours(live, service) == []


async def test_a_change_in_the_psa_reaches_graphql_through_a_signed_callback(
    account: Account, live: Psa, vault: Vault, service: Service, runner: Worker
) -> None:
    integration = await _connected(account, live, vault, runner)
    link = await _a_synced_company(live)
    live.store.update("companies", link.psa_id, {"name": "Renamed In ConnectWise"})

    await _cycle(live, runner)

    delivery = await WebhookDelivery.get(integration_id=integration.id, psa_id=link.psa_id)
    assert delivery.status == DeliveryStatus.PROCESSED
    assert delivery.kind == AssetKind.ORGANIZATION
    data = await service.graphql.data(
        "query($id: ID!) { node(id: $id) { ... on Organization { name } } }",
        {"id": _global_id("Organization", link.local_id)},
    )
    assert data["node"]["name"] == "Renamed In ConnectWise"
    webhooks = await service.graphql.data(
        "query($id: ID!) { integration(id: $id) {"
        " webhooks { registered last24h { processed } } } }",
        {"id": _global_id("Integration", integration.id)},
    )
    assert webhooks["integration"]["webhooks"] == {"registered": True, "last24h": {"processed": 1}}


async def test_the_echo_of_our_own_push_changes_nothing(
    account: Account, live: Psa, vault: Vault, service: Service, runner: Worker
) -> None:
    integration = await _connected(account, live, vault, runner)
    await update(integration, SettingsChange(two_way_enabled=True))
    await runner.run_until_idle()
    await _cycle(live, runner)  # notices of the sync itself, if any
    link = await _a_synced_company(live)
    await local_edits.update(
        AssetKind.ORGANIZATION, account.id, link.local_id, {"name": "Edited In psasync"}
    )
    await runner.run_until_idle()  # pushed: ConnectWise now posts our own change back
    assert live.store.get("companies", link.psa_id)["name"] == "Edited In psasync"  # type: ignore[index]
    version = (await Organization.get(id=link.local_id)).version
    requests = live.simulator.traffic.requests

    await _cycle(live, runner)

    echo = await WebhookDelivery.get(integration_id=integration.id, psa_id=link.psa_id)
    assert echo.status == DeliveryStatus.IGNORED
    assert echo.reason is not None
    assert "echo" in echo.reason
    assert live.simulator.traffic.requests == requests  # not even re-fetched
    organization = await Organization.get(id=link.local_id)
    assert organization.version == version
    assert organization.name == "Edited In psasync"


async def test_a_burst_of_updates_costs_at_most_one_fetch_per_record_per_cycle(
    account: Account, live: Psa, vault: Vault, service: Service, runner: Worker
) -> None:
    integration = await _connected(account, live, vault, runner)
    configurations = (
        await RecordLink.filter(kind=AssetKind.CONFIGURATION, state=LinkState.SYNCED)
        .order_by("psa_id")
        .limit(10)
    )
    assert len(configurations) == 10
    for round_ in range(100):
        for link in configurations:
            live.store.update("configurations", link.psa_id, {"notes": f"round {round_}"})
    await live.simulator.callbacks.drain(timeout=120)
    stored = await WebhookDelivery.filter(integration_id=integration.id).count()
    assert stored == 1000
    requests = live.simulator.traffic.requests
    fetches = runner.inbox.fetches

    await runner.run_until_idle()

    assert runner.inbox.fetches - fetches == 1  # the ten records, one batched fetch
    assert live.simulator.traffic.requests - requests == 1
    statuses = await WebhookDelivery.filter(integration_id=integration.id).values_list(
        "status", flat=True
    )
    assert DeliveryStatus.PENDING not in statuses
    assert DeliveryStatus.FAILED not in statuses


async def test_a_delivery_stored_by_a_process_killed_before_processing_it_is_processed_later(
    account: Account, live: Psa, vault: Vault, db: str, secret_key: str, runner: Worker
) -> None:
    integration = await _connected(account, live, vault, runner)
    # A second service process, receiving only (its worker never gets to the delivery).
    sock = bind("127.0.0.1", 0)
    port = sock.getsockname()[1]
    sock.close()
    env = {
        **os.environ,
        "PSASYNC_DATABASE_URL": db,
        "PSASYNC_SECRET_KEY": secret_key,
        "PSASYNC_PORT": str(port),
        "PSASYNC_WORKER": "false",
        "PSASYNC_DEMO": "off",
        "PSASYNC_ALLOW_SANDBOX": "true",
        "PSASYNC_LOG_LEVEL": "warning",
    }
    process = await asyncio.create_subprocess_exec(PSASYNC, "serve", env=env)
    try:
        url = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient(base_url=url, timeout=5) as http:
            for _ in range(200):
                try:
                    if (await http.get("/healthz")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.05)
        # Point ConnectWise at that process, make a change, wait for its 200.
        for entry in live.simulator.callbacks.entries():
            live.simulator.callbacks.remove(entry["id"])
        live.simulator.callbacks.add(
            f"{url}/webhooks/connectwise/{integration.id}?recordId=", "company"
        )
        link = await _a_synced_company(live)
        live.store.update("companies", link.psa_id, {"name": "Stored Before The Crash"})
        await live.simulator.callbacks.drain(timeout=30)
        assert [d.status for d in live.simulator.callbacks.deliveries][-1] == 200
    finally:
        process.send_signal(signal.SIGKILL)
        await asyncio.wait_for(process.wait(), 10)

    delivery = await WebhookDelivery.get(integration_id=integration.id, psa_id=link.psa_id)
    assert delivery.status == DeliveryStatus.PENDING
    await runner.run_until_idle()  # "after restart": any worker picks it up
    assert (await WebhookDelivery.get(id=delivery.id)).status == DeliveryStatus.PROCESSED
    assert (await Organization.get(id=link.local_id)).name == "Stored Before The Crash"


async def test_a_missed_callback_is_caught_by_the_next_poll_and_a_hard_delete_by_reconciliation(
    account: Account, live: Psa, vault: Vault, service: Service, runner: Worker
) -> None:
    integration = await _connected(account, live, vault, runner)
    link = await _a_synced_company(live)
    contact = await RecordLink.filter(kind=AssetKind.CONTACT, state=LinkState.SYNCED).first()
    assert contact is not None
    live.simulator.callbacks.enabled = False  # ConnectWise never tells us
    live.store.update("companies", link.psa_id, {"name": "Missed By Webhooks"})
    live.store.purge("contacts", contact.psa_id)
    await _cycle(live, runner)
    assert (await Organization.get(id=link.local_id)).name != "Missed By Webhooks"

    await jobs.enqueue(integration, kind=RunKind.INCREMENTAL)
    await runner.run_until_idle()
    assert (await Organization.get(id=link.local_id)).name == "Missed By Webhooks"
    assert (await RecordLink.get(id=contact.id)).state == LinkState.SYNCED

    await jobs.enqueue(integration, kind=RunKind.RECONCILE)
    await runner.run_until_idle()
    assert (await RecordLink.get(id=contact.id)).state == LinkState.ORPHANED


def _global_id(type_name: str, value: Any) -> str:
    return to_global(type_name, value)
