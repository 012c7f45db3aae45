"""Pulseway PSA webhooks registered through its admin API (``/v2/admin/webhooks``) by the
worker, over real HTTP to the Pulseway simulator, and the simulator's signed deliveries reaching
the service's receiver. Pulseway lists ticket events only in its events lookup: then nothing is
registered and polling covers accounts, contacts and assets; where the lookup lists their events
(patched into the simulator here), one webhook per kind is registered with our URL and secret.
A role without the admin right (403) is reported on the subscription rows; syncing goes on."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from harness import FAST_RETRY, served_here
from pulseway_contract import Recorder
from pulseway_helpers import WEBHOOK_SECRET

from models import (
    Account,
    AssetKind,
    DeliveryStatus,
    Integration,
    LinkState,
    RecordLink,
    SubscriptionState,
    WebhookDelivery,
    WebhookSubscription,
)
from models.vault import Vault
from simulators.pulseway import DatasetSpec, PulsewaySimulator, generate_dataset, serve_in_thread
from simulators.pulseway import webhooks as simulated
from simulators.pulseway.webhooks import WebhookConfig
from sync import integrations
from sync.connections import provider_factory
from sync.integrations import DeleteMode, add_pulseway
from sync.providers.pulseway.credentials import PulsewayCredentials
from sync.runner import Worker
from sync.sync_settings import SettingsChange, update

# What a tenant whose lookup lists account, contact and asset events would offer (assumed ids).
ASSET_EVENTS = {
    "AccountCreated": 11,
    "AccountUpdated": 12,
    "AccountDeleted": 13,
    "ContactCreated": 21,
    "ContactUpdated": 22,
    "ContactDeleted": 23,
    "HardwareAssetCreated": 31,
    "HardwareAssetUpdated": 32,
    "HardwareAssetDeleted": 33,
}


@pytest.fixture
async def simulator(pulseway_contract: Recorder) -> AsyncIterator[tuple[PulsewaySimulator, str]]:
    sim = PulsewaySimulator(generate_dataset(DatasetSpec(accounts=5, seed=4)))
    sim.webhooks.retry_scale = 0.0
    try:
        async with serve_in_thread(pulseway_contract.wrap(sim.app)) as base_url:
            yield sim, base_url
    finally:
        sim.webhooks.close()


@pytest.fixture
async def service_url(db: str, secret_key: str) -> AsyncIterator[str]:
    async with served_here(db, secret_key) as (_app, base_url):
        yield base_url


@pytest.fixture
def asset_events(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, event_id in ASSET_EVENTS.items():
        monkeypatch.setitem(simulated.EVENT_IDS, name, event_id)


async def _connected(
    account: Account,
    sim: PulsewaySimulator,
    base_url: str,
    vault: Vault,
    runner: Worker,
    secret: str | None = WEBHOOK_SECRET,
) -> Integration:
    credentials = PulsewayCredentials(
        tenant=sim.credentials.tenant,
        user_name=sim.credentials.username,
        password=sim.credentials.password,
        host=base_url,
        webhook_secret=secret,
    )
    integration, _run = await add_pulseway(account, credentials, vault, sandbox=True)
    await runner.run_until_idle()  # the first full sync
    await runner.maintain_webhooks()
    return await Integration.get(id=integration.id)


def _ours(sim: PulsewaySimulator, integration: Integration) -> list[WebhookConfig]:
    path = f"/webhooks/pulseway/{integration.id}"
    return [c for c in sim.webhooks.configs.values() if path in c.url]


def _runner(vault: Vault, service_url: str) -> Worker:
    return Worker(provider_factory(vault, retry=FAST_RETRY), schedule=False, public_url=service_url)


async def test_only_ticket_events_listed_registers_nothing_and_polling_covers_the_rest(
    account: Account,
    simulator: tuple[PulsewaySimulator, str],
    vault: Vault,
    service_url: str,
) -> None:
    sim, base_url = simulator
    runner = _runner(vault, service_url)
    integration = await _connected(account, sim, base_url, vault, runner)

    assert _ours(sim, integration) == []
    assert await WebhookSubscription.filter(integration_id=integration.id).count() == 0
    assert await RecordLink.filter(integration_id=integration.id, state=LinkState.SYNCED).exists()


@pytest.mark.usefixtures("asset_events")
async def test_webhooks_are_registered_kept_and_removed_with_the_integration(
    account: Account,
    simulator: tuple[PulsewaySimulator, str],
    vault: Vault,
    service_url: str,
) -> None:
    sim, base_url = simulator
    runner = _runner(vault, service_url)
    integration = await _connected(account, sim, base_url, vault, runner)

    registered = _ours(sim, integration)
    assert sorted(c.name for c in registered) == [
        "psasync configuration",
        "psasync contact",
        "psasync organization",
    ]
    assert all(c.url.startswith(service_url) for c in registered)
    assert all(c.secret == WEBHOOK_SECRET and c.enabled for c in registered)
    assert sorted(sorted(c.events) for c in registered) == [
        ["AccountCreated", "AccountDeleted", "AccountUpdated"],
        ["ContactCreated", "ContactDeleted", "ContactUpdated"],
        ["HardwareAssetCreated", "HardwareAssetDeleted", "HardwareAssetUpdated"],
    ]
    rows = await WebhookSubscription.filter(integration_id=integration.id)
    assert {(r.state, r.psa_id) for r in rows} == {
        (SubscriptionState.REGISTERED, c.id) for c in registered
    }

    # A second check does not duplicate them.
    await Integration.filter(id=integration.id).update(webhooks_checked_at=None)
    await runner.maintain_webhooks()
    assert _ours(sim, integration) == registered

    # Removed in Pulseway's UI: the next check registers it again, once.
    sim.webhooks.remove(registered[0].id)
    await Integration.filter(id=integration.id).update(webhooks_checked_at=None)
    await runner.maintain_webhooks()
    assert len(_ours(sim, integration)) == 3

    # An account edit in Pulseway is delivered, signed, and accepted by the receiver.
    link = await RecordLink.filter(
        integration_id=integration.id, kind=AssetKind.ORGANIZATION, state=LinkState.SYNCED
    ).first()
    assert link is not None
    sim.store.update("accounts", link.psa_id, accountName="Renamed In Pulseway")
    await sim.webhooks.drain()
    assert sim.webhooks.as_dict()["failed"] == 0
    delivery = await WebhookDelivery.get(integration_id=integration.id, psa_id=link.psa_id)
    assert delivery.kind == AssetKind.ORGANIZATION
    await runner.run_until_idle()
    delivery = await WebhookDelivery.get(id=delivery.id)
    assert delivery.status == DeliveryStatus.PROCESSED, delivery.reason

    # Paused: removed; resumed: back.
    await integrations.pause(integration)
    await runner.maintain_webhooks()
    assert _ours(sim, integration) == []
    await integrations.resume(await Integration.get(id=integration.id))
    await runner.maintain_webhooks()
    assert len(_ours(sim, integration)) == 3

    # Near-real-time and two-way off (either wants the webhooks): removed; on again: back.
    await update(
        await Integration.get(id=integration.id),
        SettingsChange(near_real_time=False, two_way_enabled=False),
    )
    await runner.maintain_webhooks()
    assert _ours(sim, integration) == []
    await update(await Integration.get(id=integration.id), SettingsChange(near_real_time=True))
    await runner.maintain_webhooks()
    assert len(_ours(sim, integration)) == 3

    await integrations.delete(
        await Integration.get(id=integration.id),
        DeleteMode.DISCONNECT,
        open_provider=runner.open_provider,
    )
    assert _ours(sim, integration) == []


@pytest.mark.usefixtures("asset_events")
async def test_a_role_without_the_admin_right_is_reported_and_polling_goes_on(
    account: Account,
    simulator: tuple[PulsewaySimulator, str],
    vault: Vault,
    service_url: str,
) -> None:
    sim, base_url = simulator
    sim.denials.configure({"webhooks": "all"})
    runner = _runner(vault, service_url)
    integration = await _connected(account, sim, base_url, vault, runner)

    assert sim.webhooks.configs == {}
    rows = await WebhookSubscription.filter(integration_id=integration.id)
    assert {r.kind for r in rows} == {
        AssetKind.ORGANIZATION,
        AssetKind.CONTACT,
        AssetKind.CONFIGURATION,
    }
    assert {r.state for r in rows} == {SubscriptionState.FAILED}
    assert all("403" in (r.last_error or "") or "denied" in (r.last_error or "") for r in rows)
    assert await RecordLink.filter(integration_id=integration.id, state=LinkState.SYNCED).exists()
    assert (await Integration.get(id=integration.id)).status.value != "ERROR"


@pytest.mark.usefixtures("asset_events")
async def test_without_a_webhook_secret_nothing_is_registered_and_the_rows_say_why(
    account: Account,
    simulator: tuple[PulsewaySimulator, str],
    vault: Vault,
    service_url: str,
) -> None:
    sim, base_url = simulator
    runner = _runner(vault, service_url)
    integration = await _connected(account, sim, base_url, vault, runner, secret=None)

    assert sim.webhooks.configs == {}
    rows = await WebhookSubscription.filter(integration_id=integration.id)
    assert len(rows) == 3
    assert {r.state for r in rows} == {SubscriptionState.FAILED}
    assert all("no webhook secret" in (r.last_error or "") for r in rows)
