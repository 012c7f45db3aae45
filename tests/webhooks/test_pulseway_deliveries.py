"""The Pulseway simulator posting signed webhooks to psasync's receiver over real HTTP: API
writes and UI edits arrive as stored deliveries; the admin UI's settings (secret, enabled,
events) decide what is sent; failed deliveries are retried and counted; the write that caused
a delivery never waits for it; and, end to end, one inbox cycle of the worker makes a UI edit
visible locally."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
import uvicorn
from harness import FAST_RETRY
from pulseway_contract import Recorder
from pulseway_helpers import WEBHOOK_SECRET, mounted, pulseway_integration
from starlette.types import Receive, Scope, Send

from models import (
    Account,
    AssetKind,
    DeliveryStatus,
    Integration,
    LinkState,
    Organization,
    RecordLink,
    WebhookDelivery,
)
from models.vault import Vault
from simulators.connectwise.server import bind
from simulators.pulseway import (
    API_USER_ID,
    UI_USER_ID,
    DatasetSpec,
    PulsewaySimulator,
    generate_dataset,
    serve_in_thread,
)
from sync.connections import provider_factory
from sync.integrations import add_pulseway
from sync.providers.pulseway.credentials import PulsewayCredentials
from sync.runner import Worker
from webhooks.app import create_app


@dataclass
class Pulseway:
    simulator: PulsewaySimulator
    base_url: str

    async def api(self, method: str, path: str, body: object) -> httpx.Response:
        token = self.simulator.issue_token()
        async with httpx.AsyncClient(base_url=self.base_url, timeout=10) as http:
            return await http.request(
                method, path, json=body, headers={"Authorization": f"Bearer {token}"}
            )


@pytest.fixture
async def pulseway(pulseway_contract: Recorder) -> AsyncIterator[Pulseway]:
    simulator = PulsewaySimulator(generate_dataset(DatasetSpec(accounts=6, seed=8)))
    simulator.webhooks.retry_scale = 0.0
    try:
        async with serve_in_thread(pulseway_contract.wrap(simulator.app)) as base_url:
            yield Pulseway(simulator, base_url)
    finally:
        simulator.webhooks.close()


@pytest.fixture
async def receiver_url(db: str, vault: Vault) -> AsyncIterator[str]:
    """psasync's webhook receiver on a loopback port, in this loop (it shares the test's
    database connections)."""
    receiver = create_app(vault=vault)
    sock = bind("127.0.0.1", 0)
    host, port = sock.getsockname()[:2]
    server = uvicorn.Server(
        uvicorn.Config(mounted(receiver), lifespan="off", log_config=None, access_log=False)
    )
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        await asyncio.sleep(0.01)
        assert not task.done(), "the receiver did not start"
    yield f"http://{host}:{port}"
    server.should_exit = True
    await task
    await receiver.aclose()
    sock.close()


async def _configured(
    pulseway: Pulseway, account: Account, vault: Vault, receiver_url: str
) -> Integration:
    """A Pulseway integration in psasync, and its webhook in Pulseway's admin UI."""
    integration = await pulseway_integration(account, vault, site_url=pulseway.base_url)
    pulseway.simulator.webhooks.add(
        f"{receiver_url}/webhooks/pulseway/{integration.id}", WEBHOOK_SECRET
    )
    return integration


async def test_an_api_write_arrives_as_a_stored_delivery(
    pulseway: Pulseway, account: Account, vault: Vault, receiver_url: str
) -> None:
    integration = await _configured(pulseway, account, vault, receiver_url)
    account_id = next(iter(pulseway.simulator.store.accounts))

    answer = await pulseway.api(
        "PATCH",
        f"/v2/crm/accounts/{account_id}",
        [{"op": "replace", "path": "/accountName", "value": "Renamed Through The API"}],
    )
    assert answer.json()["success"], answer.text
    await pulseway.simulator.webhooks.drain()

    rows = await WebhookDelivery.filter(integration_id=integration.id)
    assert [(r.kind, r.psa_id, r.action, r.member, r.status) for r in rows] == [
        (AssetKind.ORGANIZATION, account_id, "updated", str(API_USER_ID), DeliveryStatus.PENDING)
    ]
    state = pulseway.simulator.webhooks.as_dict()
    assert (state["sent"], state["succeeded"], state["failed"]) == (1, 1, 0)


async def test_ui_edits_arrive_with_the_right_kind_id_and_action(
    pulseway: Pulseway, account: Account, vault: Vault, receiver_url: str
) -> None:
    integration = await _configured(pulseway, account, vault, receiver_url)
    store = pulseway.simulator.store
    contact_id, asset_id = next(iter(store.contacts)), next(iter(store.assets))
    location = next(iter(store.locations.values()))

    store.update("contacts", contact_id, firstName="Renamed In The UI")
    store.delete("assets", asset_id)
    store.update("locations", location["id"], locationName="New Name")
    await pulseway.simulator.webhooks.drain()

    rows = await WebhookDelivery.filter(integration_id=integration.id).order_by("id")
    assert [(r.kind, r.psa_id, r.action, r.member) for r in rows] == [
        (AssetKind.CONTACT, contact_id, "updated", str(UI_USER_ID)),
        (AssetKind.CONFIGURATION, asset_id, "deleted", str(UI_USER_ID)),
        # A location's edit stamps its account: the account is what Pulseway reports.
        (AssetKind.ORGANIZATION, location["accountId"], "updated", str(UI_USER_ID)),
    ]
    stamp = store.contacts[contact_id]["modifiedOn"]
    assert rows[0].stamp == int(stamp.timestamp())


async def test_a_webhook_with_another_secret_is_refused_and_counted_as_failed(
    pulseway: Pulseway, account: Account, vault: Vault, receiver_url: str
) -> None:
    integration = await pulseway_integration(account, vault, site_url=pulseway.base_url)
    url = f"{receiver_url}/webhooks/pulseway/{integration.id}"
    pulseway.simulator.webhooks.add(url, "a-different-secret")
    pulseway.simulator.webhooks.add(url, None, name="unsigned")

    pulseway.simulator.store.update("accounts", next(iter(pulseway.simulator.store.accounts)))
    await pulseway.simulator.webhooks.drain()

    assert await WebhookDelivery.all().count() == 0
    state = pulseway.simulator.webhooks.as_dict()
    assert (state["sent"], state["succeeded"], state["failed"], state["retried"]) == (2, 0, 2, 0)
    assert [d["status"] for d in state["deliveries"]] == [401, 401]
    assert (await Integration.get(id=integration.id)).webhook_rejected == 2


async def test_disabled_webhooks_and_unsubscribed_events_send_nothing(
    pulseway: Pulseway, account: Account, vault: Vault, receiver_url: str
) -> None:
    integration = await pulseway_integration(account, vault, site_url=pulseway.base_url)
    url = f"{receiver_url}/webhooks/pulseway/{integration.id}"
    webhooks = pulseway.simulator.webhooks
    webhooks.add(url, WEBHOOK_SECRET, enabled=False)
    webhooks.add(url, WEBHOOK_SECRET, events=["ContactUpdated"])
    store = pulseway.simulator.store

    store.update("accounts", next(iter(store.accounts)))  # nobody wants AccountUpdated
    store.update("contacts", next(iter(store.contacts)))
    await webhooks.drain()

    rows = await WebhookDelivery.filter(integration_id=integration.id)
    assert [r.kind for r in rows] == [AssetKind.CONTACT]
    assert webhooks.as_dict()["sent"] == 1


async def test_the_control_endpoint_manages_webhooks_without_showing_secrets(
    pulseway: Pulseway,
) -> None:
    async with httpx.AsyncClient(base_url=pulseway.base_url) as http:
        added = await http.post(
            "/__simulator/webhooks",
            json={"name": "psasync", "url": "http://127.0.0.1:9/hook", "secret": "s3cret"},
        )
        assert added.status_code == 200, added.text
        (webhook,) = added.json()["webhooks"]
        assert webhook["hasSecret"] is True
        assert "s3cret" not in added.text

        changed = await http.post(
            "/__simulator/webhooks", json={"id": webhook["id"], "enabled": False}
        )
        assert changed.json()["webhooks"][0]["enabled"] is False
        refused = await http.post("/__simulator/webhooks", json={"url": "ftp://x"})
        assert refused.status_code == 400
        unknown = await http.post("/__simulator/webhooks", json={"payloadUrl": "http://x"})
        assert unknown.status_code == 400

        cleared = await http.delete("/__simulator/webhooks")
        assert cleared.json()["webhooks"] == []
        assert (await http.get("/__simulator/webhooks")).json()["sent"] == 0


class _Flaky:
    """A receiver answering ``statuses`` in turn (then 200), or holding each request until
    ``release`` is set; it records the bodies it got."""

    def __init__(self, *statuses: int, hold: bool = False) -> None:
        self.statuses = list(statuses)
        self.bodies: list[bytes] = []
        self.arrived = threading.Event()
        self.release = threading.Event()
        if not hold:
            self.release.set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        self.bodies.append(body)
        self.arrived.set()
        await asyncio.to_thread(self.release.wait, 10)
        status = self.statuses.pop(0) if self.statuses else 200
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b""})


async def test_server_errors_and_429_are_retried_until_delivered(pulseway: Pulseway) -> None:
    flaky = _Flaky(503, 429)
    async with serve_in_thread(flaky) as url:
        webhooks = pulseway.simulator.webhooks
        webhooks.add(url + "/hook", WEBHOOK_SECRET)
        pulseway.simulator.store.update("contacts", next(iter(pulseway.simulator.store.contacts)))
        await webhooks.drain()

    state = webhooks.as_dict()
    assert (state["sent"], state["succeeded"], state["failed"], state["retried"]) == (1, 1, 0, 2)
    assert state["deliveries"][0]["attempts"] == 3
    assert len(set(flaky.bodies)) == 1  # the same message each time
    assert json.loads(flaky.bodies[0])["eventType"] == "ContactUpdated"


async def test_an_unreachable_receiver_fails_after_the_retries(pulseway: Pulseway) -> None:
    closed = bind("127.0.0.1", 0)  # bound, never listening: connections are refused
    host, port = closed.getsockname()[:2]
    try:
        webhooks = pulseway.simulator.webhooks
        webhooks.add(f"http://{host}:{port}/hook", WEBHOOK_SECRET)
        pulseway.simulator.store.update("accounts", next(iter(pulseway.simulator.store.accounts)))
        await webhooks.drain()
    finally:
        closed.close()

    state = webhooks.as_dict()
    assert (state["sent"], state["succeeded"], state["failed"], state["retried"]) == (1, 0, 1, 3)
    assert state["deliveries"][0]["error"].startswith("ConnectError")


async def test_the_write_is_answered_while_its_delivery_is_still_in_flight(
    pulseway: Pulseway,
) -> None:
    held = _Flaky(hold=True)
    async with serve_in_thread(held) as url:
        webhooks = pulseway.simulator.webhooks
        webhooks.add(url + "/hook", WEBHOOK_SECRET)
        asset = next(iter(pulseway.simulator.store.assets.values()))
        try:
            answer = await pulseway.api(
                "PUT",
                f"/v2/servicedesk/hardwareasset/{asset['id']}",
                {
                    "name": "Renamed Through The API",
                    "accountId": asset["accountId"],
                    "accountLocationId": asset["accountLocationId"],
                    "categoryId": asset["categoryId"],
                },
            )
            assert answer.json()["success"], answer.text
            # Answered, yet the receiver still holds the delivery it caused.
            assert await asyncio.to_thread(held.arrived.wait, 10)
            assert webhooks.outstanding == 1
        finally:
            held.release.set()
        await webhooks.drain()

    assert webhooks.as_dict()["succeeded"] == 1
    assert json.loads(held.bodies[0])["eventType"] == "HardwareAssetUpdated"


async def test_an_edit_in_the_pulseway_ui_is_local_after_one_inbox_cycle(
    pulseway: Pulseway, account: Account, vault: Vault, receiver_url: str
) -> None:
    simulator = pulseway.simulator
    credentials = PulsewayCredentials(
        tenant=simulator.credentials.tenant,
        user_name=simulator.credentials.username,
        password=simulator.credentials.password,
        host=pulseway.base_url,
        webhook_secret=WEBHOOK_SECRET,
    )
    integration, _run = await add_pulseway(account, credentials, vault, sandbox=True)
    runner = Worker(provider_factory(vault, retry=FAST_RETRY), schedule=False)
    await runner.run_until_idle()  # the first full sync
    link = await RecordLink.filter(
        integration_id=integration.id, kind=AssetKind.ORGANIZATION, state=LinkState.SYNCED
    ).first()
    assert link is not None
    # What the admin sets up in Pulseway: Admin → Integrations → Webhooks.
    simulator.webhooks.add(
        f"{receiver_url}/webhooks/pulseway/{integration.id}", WEBHOOK_SECRET, name="psasync"
    )

    simulator.store.update("accounts", link.psa_id, accountName="Renamed In Pulseway")
    await simulator.webhooks.drain()
    await runner.run_until_idle()  # one inbox cycle

    delivery = await WebhookDelivery.get(integration_id=integration.id, psa_id=link.psa_id)
    assert delivery.kind == AssetKind.ORGANIZATION
    assert delivery.status == DeliveryStatus.PROCESSED, delivery.reason
    organization = await Organization.get(id=link.local_id)
    assert organization.name == "Renamed In Pulseway"


def test_configure_sets_the_named_webhook_instead_of_adding_another() -> None:
    webhooks = PulsewaySimulator().webhooks
    first = webhooks.configure("http://127.0.0.1:1/webhooks/pulseway/a", "one")
    again = webhooks.configure("http://127.0.0.1:2/webhooks/pulseway/a", None)

    assert again.id == first.id
    assert [(c["url"], c["hasSecret"]) for c in webhooks.as_dict()["webhooks"]] == [
        ("http://127.0.0.1:2/webhooks/pulseway/a", False)
    ]
