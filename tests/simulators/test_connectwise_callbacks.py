"""ConnectWise callbacks (webhooks): registration over the API, and payloads, signatures and
retries as a receiver sees them over real loopback HTTP."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import re
import threading
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from simulator_access import AUTHORIZATION, CREDENTIALS
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from simulators.connectwise import ConnectWiseSimulator, ConnectWiseStore, serve_in_thread
from simulators.connectwise.server import bind

PAYLOAD_KEYS = {
    "MessageId",
    "FromUrl",
    "CompanyId",
    "MemberId",
    "Action",
    "Type",
    "ID",
    "CallbackObjectRecId",
    "PartnerId",
    "ProductInstanceId",
    "Entity",
    "Metadata",
}


def expected_signature(signing_key: str, raw_body: bytes) -> str:
    """psa-apis.md §2.3, written out independently of the simulator."""
    key = hashlib.sha256(signing_key.encode("utf-8")).digest()
    return base64.b64encode(hmac.new(key, raw_body, hashlib.sha256).digest()).decode("ascii")


def entry(kind: str = "company", **fields: Any) -> dict[str, Any]:
    return {
        "url": "https://hooks.example.com/cw?recordId=",
        "objectId": 1,
        "type": kind,
        "level": "owner",
        **fields,
    }


# --------------------------------------------------------------------------- a receiver


@dataclass
class Received:
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    @property
    def payload(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """A webhook endpoint answering each POST with the next scripted status (then 200)."""

    statuses: list[int] = field(default_factory=list)
    requests: list[Received] = field(default_factory=list)
    gate: threading.Event | None = None  # when set up, each request waits for it

    def __post_init__(self) -> None:
        self.app = Starlette(routes=[Route("/hook", self._hook, methods=["POST"])])

    async def _hook(self, request: Request) -> Response:
        body = await request.body()
        if self.gate is not None:
            await asyncio.to_thread(self.gate.wait, 10)
        self.requests.append(
            Received(request.url.path, dict(request.query_params), dict(request.headers), body)
        )
        return Response(status_code=self.statuses.pop(0) if self.statuses else 200)

    @property
    def payloads(self) -> list[Any]:
        return [r.payload for r in self.requests]

    def reset(self) -> None:
        self.statuses, self.requests, self.gate = [], [], None


@dataclass
class Site:
    simulator: ConnectWiseSimulator
    store: ConnectWiseStore
    receiver: Receiver
    api: httpx.AsyncClient
    base_url: str
    hook_url: str

    async def register(self, kind: str = "company", **fields: Any) -> dict[str, Any]:
        response = await self.api.post(
            "system/callbacks", json=entry(kind, **{"url": self.hook_url, **fields})
        )
        assert response.status_code == 201, response.text
        body: dict[str, Any] = response.json()
        return body

    async def get(self, path: str) -> Any:
        response = await self.api.get(path)
        assert response.status_code == 200, response.text
        return response.json()

    async def drained(self) -> list[Any]:
        """Payloads received once every callback message has been delivered."""
        await self.simulator.callbacks.drain(10)
        return self.receiver.payloads


@pytest.fixture(scope="module")
async def receiver_at() -> AsyncIterator[tuple[Receiver, str]]:
    """One receiver for the module (each server costs ~0.2 s to stop); `site` resets it."""
    receiver = Receiver()
    async with serve_in_thread(receiver.app) as base_url:
        yield receiver, base_url


@pytest.fixture
async def site(store: ConnectWiseStore, receiver_at: tuple[Receiver, str]) -> AsyncIterator[Site]:
    receiver, hook_base = receiver_at
    receiver.reset()
    simulator = ConnectWiseSimulator(store, credentials=CREDENTIALS)
    simulator.callbacks.retry_scale = 0.001
    headers = {"Authorization": AUTHORIZATION, "clientId": "callback-tests"}
    async with (
        serve_in_thread(simulator) as base_url,
        httpx.AsyncClient(base_url=f"{base_url}/v4_6_release/apis/3.0/", headers=headers) as api,
    ):
        yield Site(simulator, store, receiver, api, base_url, f"{hook_base}/hook?recordId=")


def first_id(store: ConnectWiseStore, collection: str) -> int:
    return int(store.find(collection)[0]["id"])


# ------------------------------------------------------------------ registering callbacks


async def test_callbacks_are_created_listed_counted_changed_and_deleted(
    api: httpx.AsyncClient, simulator: ConnectWiseSimulator
) -> None:
    created = await api.post("system/callbacks", json=entry(description="psasync companies"))
    assert created.status_code == 201
    callback = created.json()
    api_member = simulator.store.find("members", 'identifier = "psasync-api"')[0]
    assert callback == {
        "id": callback["id"],
        "description": "psasync companies",
        "url": "https://hooks.example.com/cw?recordId=",
        "objectId": 1,
        "type": "company",
        "level": "owner",
        "memberId": api_member["id"],
        "payloadVersion": "3.0.0",
        "inactiveFlag": False,
        "isSoapCallbackFlag": False,
        "isSelfSuppressedFlag": False,
        "connectWiseID": str(uuid.UUID(callback["connectWiseID"])),
        "_info": {"lastUpdated": callback["_info"]["lastUpdated"], "updatedBy": "psasync-api"},
    }
    path = f"system/callbacks/{callback['id']}"
    assert (await api.get(path)).json() == callback
    assert (await api.get("system/callbacks")).json() == [callback]
    assert (await api.get("system/callbacks/count")).json() == {"count": 1}
    assert simulator.store.get("callbacks", callback["id"]) is not None

    patched = await api.patch(path, json=[{"op": "replace", "path": "inactiveFlag", "value": True}])
    assert patched.status_code == 200
    assert patched.json()["inactiveFlag"] is True
    assert patched.json()["connectWiseID"] == callback["connectWiseID"]
    assert patched.json()["memberId"] == callback["memberId"]

    replaced = await api.put(path, json=entry("contact", level="Contact", objectId=2001))
    assert replaced.status_code == 200
    assert replaced.json()["type"] == "contact"
    assert replaced.json()["inactiveFlag"] is False  # PUT resets what it leaves out
    assert "description" not in replaced.json()

    assert (await api.delete(path)).status_code == 204
    gone = await api.get(path)
    assert gone.status_code == 404
    assert gone.json()["code"] == "NotFound"


async def test_callbacks_need_the_api_key_pair_like_every_api_route(
    api: httpx.AsyncClient,
) -> None:
    del api.headers["Authorization"]
    response = await api.post("system/callbacks", json=entry())
    assert response.status_code == 401
    assert (await api.get("system/callbacks")).status_code == 401


async def test_callback_lists_are_paged_like_other_lists(api: httpx.AsyncClient) -> None:
    for kind in ("company", "contact", "configuration"):
        assert (await api.post("system/callbacks", json=entry(kind))).status_code == 201
    page = await api.get("system/callbacks", params={"pageSize": 2, "page": 2})
    assert [c["type"] for c in page.json()] == ["configuration"]
    assert 'rel="first"' in page.headers["link"]


async def test_types_and_levels_are_case_insensitive_and_stored_as_given(
    api: httpx.AsyncClient,
) -> None:
    response = await api.post("system/callbacks", json=entry("Configuration", level="Status"))
    assert response.status_code == 201
    assert (response.json()["type"], response.json()["level"]) == ("Configuration", "Status")


@pytest.mark.parametrize(
    ("changes", "field_name", "message"),
    [
        ({"level": "ticket"}, "level", "Unrecognized level for type"),
        ({"type": "contact", "level": "status"}, "level", "Unrecognized level for type"),
        ({"type": "site"}, "type", "Unrecognized type"),
        ({"url": "not a url"}, "url", "Invalid URL"),
        ({"url": None}, "url", "The url field is required."),
        ({"objectId": "one"}, "objectId", "The objectId field is not a valid integer."),
        ({"description": "x" * 101}, "description", "The description field must be 100"),
    ],
)
async def test_invalid_callback_entries_are_400_invalid_object(
    api: httpx.AsyncClient, changes: dict[str, Any], field_name: str, message: str
) -> None:
    response = await api.post("system/callbacks", json={**entry(), **changes})
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "InvalidObject"
    errors = [e for e in body["errors"] if e["field"] == field_name]
    assert errors, body
    assert errors[0]["message"].startswith(message)
    assert errors[0]["resource"] == "callbackEntry"
    assert (await api.get("system/callbacks/count")).json() == {"count": 0}


async def test_callbacks_added_or_removed_in_python_show_through_the_api(
    api: httpx.AsyncClient, simulator: ConnectWiseSimulator
) -> None:
    added = simulator.callbacks.add("https://hooks.example.com/cw?recordId=", "contact")
    assert (await api.get(f"system/callbacks/{added['id']}")).json()["type"] == "contact"
    assert [c["id"] for c in simulator.callbacks.entries()] == [added["id"]]
    simulator.callbacks.remove(added["id"])
    assert (await api.get(f"system/callbacks/{added['id']}")).status_code == 404


async def test_the_signing_key_is_served_only_for_known_companies_and_callbacks(
    simulator: ConnectWiseSimulator,
) -> None:
    connectwise_id = simulator.callbacks.add("https://hooks.example.com/?recordId=")[
        "connectWiseID"
    ]
    transport = httpx.ASGITransport(app=simulator.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://cw.test") as client:

        async def key(company: str, key_id: str, codebase: str = "v2025_1/") -> httpx.Response:
            path = f"/{codebase}/system/callbackkey/index.rails"
            return await client.get(path, params={"companyName": company, "id": key_id})

        known = await key("ACME", connectwise_id)
        assert known.json() == {"signing_key": simulator.callbacks.signing_key}
        assert (await key("other", connectwise_id)).status_code == 404
        assert (await key("acme", str(uuid.uuid4()))).status_code == 404
        assert (await key("acme", connectwise_id, "nonsense")).status_code == 404


def test_store_listeners_hear_every_write_but_not_purges(store: ConnectWiseStore) -> None:
    heard: list[tuple[str, str, int, str]] = []
    store.listeners.append(lambda *event: heard.append(event))
    contact = store.create("contacts", {"firstName": "Ada"}, updated_by="mlopez")
    store.update("contacts", contact["id"], {"title": "CTO"})
    store.delete("contacts", contact["id"])
    store.purge("configurations", first_id(store, "configurations"))
    assert heard == [
        ("contacts", "added", contact["id"], "mlopez"),
        ("contacts", "updated", contact["id"], "jsmith"),
        ("contacts", "deleted", contact["id"], "jsmith"),
    ]


# --------------------------------------------------------------------------- deliveries


async def test_payloads_carry_the_sites_partner_and_product_instance_ids(site: Site) -> None:
    await site.register("company")
    company_id = first_id(site.store, "companies")
    for name in ("First", "Second"):
        patch = [{"op": "replace", "path": "name", "value": name}]
        assert (await site.api.patch(f"company/companies/{company_id}", json=patch)).is_success

    first, second = await site.drained()
    for key in ("PartnerId", "ProductInstanceId"):
        # Recorded payloads: 24 hex digits, the same on every message from one site.
        assert re.fullmatch(r"[0-9a-f]{24}", first[key])
        assert first[key] == second[key]
    assert first["PartnerId"] != first["ProductInstanceId"]


async def test_an_api_patch_posts_a_signed_updated_callback(site: Site) -> None:
    callback = await site.register("company")
    company_id = first_id(site.store, "companies")
    patch = [{"op": "replace", "path": "name", "value": "Renamed by API"}]
    assert (await site.api.patch(f"company/companies/{company_id}", json=patch)).is_success

    await site.drained()
    [received] = site.receiver.requests
    assert received.path == "/hook"
    assert received.query == {"recordId": str(company_id)}
    assert received.headers["content-type"] == "application/json"
    payload = received.payload
    assert set(payload) == PAYLOAD_KEYS
    assert str(uuid.UUID(payload["MessageId"])) == payload["MessageId"]
    assert payload["FromUrl"] == httpx.URL(site.base_url).netloc.decode()
    assert payload["CompanyId"] == "acme"
    assert payload["MemberId"] == "psasync-api"
    assert (payload["Action"], payload["Type"], payload["ID"]) == ("updated", "company", company_id)
    assert payload["CallbackObjectRecId"] == callback["id"]
    assert isinstance(payload["Entity"], str)
    assert json.loads(payload["Entity"]) == await site.get(f"company/companies/{company_id}")

    key_url = payload["Metadata"]["key_url"]
    assert key_url.startswith(f"{site.base_url}/v4_6_release//system/callbackkey/index.rails?")
    assert httpx.URL(key_url).params["id"] == callback["connectWiseID"]
    async with httpx.AsyncClient() as plain:  # no credentials: the key URL needs none
        signing_key = (await plain.get(key_url)).json()["signing_key"]
    signature = received.headers["x-content-signature"]
    assert hmac.compare_digest(signature, expected_signature(signing_key, received.body))

    [delivery] = site.simulator.callbacks.deliveries
    assert (delivery.attempts, delivery.status, delivery.succeeded) == (1, 200, True)
    assert delivery.message_id == payload["MessageId"]


async def test_a_ui_edit_through_the_store_is_posted_with_the_ui_member(site: Site) -> None:
    await site.register("contact")
    contact_id = first_id(site.store, "contacts")
    await asyncio.to_thread(site.store.update, "contacts", contact_id, {"title": "Head of IT"})

    [payload] = await site.drained()
    assert (payload["Action"], payload["Type"], payload["ID"]) == ("updated", "contact", contact_id)
    assert payload["MemberId"] == "jsmith"
    entity = json.loads(payload["Entity"])
    assert entity["title"] == "Head of IT"
    assert entity == await site.get(f"company/contacts/{contact_id}")


async def test_creates_and_deletes_post_added_and_deleted(site: Site) -> None:
    await site.register("contact")
    await site.register("configuration")
    company_id = first_id(site.store, "companies")
    created = await site.api.post(
        "company/contacts", json={"firstName": "Ada", "company": {"id": company_id}}
    )
    contact_id = created.json()["id"]
    assert (await site.api.delete(f"company/contacts/{contact_id}")).status_code == 204
    configuration = site.store.create(
        "configurations",
        {"name": "FW-01", "type": {"id": 4}, "company": {"id": company_id}},
    )

    # Messages travel concurrently, so they may arrive in any order.
    by_event = {(p["Type"], p["Action"]): p for p in await site.drained()}
    added, deleted = by_event["contact", "added"], by_event["contact", "deleted"]
    ui_added = by_event["configuration", "added"]
    assert (added["Action"], added["ID"]) == ("added", contact_id)
    assert json.loads(added["Entity"]) == created.json()
    assert (deleted["Action"], deleted["ID"], deleted["Entity"]) == ("deleted", contact_id, None)
    assert deleted["MemberId"] == "psasync-api"
    assert (ui_added["Type"], ui_added["ID"]) == ("configuration", configuration["id"])
    assert ui_added["MemberId"] == "jsmith"


async def test_deleting_a_company_posts_deleted_although_it_is_only_flagged(site: Site) -> None:
    await site.register("company")
    company_id = first_id(site.store, "companies")
    site.store.delete("companies", company_id)
    [payload] = await site.drained()
    assert (payload["Action"], payload["ID"], payload["Entity"]) == ("deleted", company_id, None)


async def test_only_callbacks_of_the_records_type_are_called(site: Site) -> None:
    await site.register("company")
    contact_callback = await site.register("contact")
    site.store.update("contacts", first_id(site.store, "contacts"), {"title": "Owner"})
    [payload] = await site.drained()
    assert payload["CallbackObjectRecId"] == contact_callback["id"]


async def test_429_is_retried_twice_then_the_last_answer_stands(site: Site) -> None:
    await site.register("company")
    site.receiver.statuses = [429, 429, 200]
    site.store.update("companies", first_id(site.store, "companies"), {"phoneNumber": "555-0100"})
    await site.drained()

    assert len(site.receiver.requests) == 3
    assert len({r.body for r in site.receiver.requests}) == 1  # the same message each time
    [delivery] = site.simulator.callbacks.deliveries
    assert (delivery.attempts, delivery.status, delivery.succeeded) == (3, 200, True)
    callbacks = site.simulator.callbacks
    assert (callbacks.sent, callbacks.succeeded, callbacks.retried) == (1, 1, 2)


@pytest.mark.parametrize(("statuses", "attempts"), [([500], 1), ([404, 409, 419], 3), ([400], 1)])
async def test_failures_are_retried_only_for_404_409_419_and_429(
    site: Site, statuses: list[int], attempts: int
) -> None:
    await site.register("company")
    site.receiver.statuses = list(statuses)
    site.store.update("companies", first_id(site.store, "companies"), {"phoneNumber": "555-0101"})
    await site.drained()
    [delivery] = site.simulator.callbacks.deliveries
    assert (delivery.attempts, delivery.status) == (attempts, statuses[-1])
    assert (site.simulator.callbacks.failed, site.simulator.callbacks.succeeded) == (1, 0)


async def test_an_unreachable_receiver_is_retried_like_a_retriable_status(site: Site) -> None:
    closed = bind("127.0.0.1", 0)
    port = closed.getsockname()[1]
    closed.close()  # nothing listens there any more
    await site.register("company", url=f"http://127.0.0.1:{port}/hook?recordId=")
    site.store.update("companies", first_id(site.store, "companies"), {"phoneNumber": "555-0102"})
    await site.drained()
    [delivery] = site.simulator.callbacks.deliveries
    assert (delivery.attempts, delivery.status) == (3, None)
    assert delivery.error


async def test_self_suppressed_callbacks_skip_their_creators_changes(site: Site) -> None:
    quiet = await site.register("company", isSelfSuppressedFlag=True)
    echoing = await site.register("company")
    company_id = first_id(site.store, "companies")
    patch = [{"op": "replace", "path": "name", "value": "Our own change"}]
    await site.api.patch(f"company/companies/{company_id}", json=patch)
    site.store.update("companies", company_id, {"name": "Someone else's change"})

    received = {(p["CallbackObjectRecId"], p["MemberId"]) for p in await site.drained()}
    assert received == {
        (echoing["id"], "psasync-api"),  # echoes are the receiver's to ignore
        (echoing["id"], "jsmith"),
        (quiet["id"], "jsmith"),
    }
    assert site.simulator.callbacks.suppressed == 1


async def test_inactive_callbacks_are_not_called(site: Site) -> None:
    callback = await site.register("contact", inactiveFlag=True)
    contact_id = first_id(site.store, "contacts")
    site.store.update("contacts", contact_id, {"title": "Not announced"})
    activate = [{"op": "replace", "path": "inactiveFlag", "value": False}]
    await site.api.patch(f"system/callbacks/{callback['id']}", json=activate)
    site.store.update("contacts", contact_id, {"title": "Announced"})

    [payload] = await site.drained()
    assert json.loads(payload["Entity"])["title"] == "Announced"


async def test_disabled_delivery_drops_events_and_is_controlled_over_http(site: Site) -> None:
    await site.register("company")
    company_id = first_id(site.store, "companies")
    async with httpx.AsyncClient(base_url=site.base_url) as control:
        off = await control.post("/__simulator/callbacks", json={"enabled": False})
        assert off.json()["enabled"] is False
        site.store.update("companies", company_id, {"name": "Missed"})
        await control.post("/__simulator/callbacks", json={"enabled": True, "retry_scale": 0.001})
        site.store.update("companies", company_id, {"name": "Heard"})
        [payload] = await site.drained()
        state = (await control.get("/__simulator/callbacks")).json()
        bad = await control.post("/__simulator/callbacks", json={"enabled": "yes"})

    assert json.loads(payload["Entity"])["name"] == "Heard"
    assert (state["dropped"], state["sent"], state["succeeded"]) == (1, 1, 1)
    assert state["retry_scale"] == 0.001
    [delivery] = state["deliveries"]
    assert delivery["message_id"] == payload["MessageId"]
    assert (delivery["action"], delivery["record_id"], delivery["status"]) == (
        "updated",
        company_id,
        200,
    )
    assert bad.status_code == 400


async def test_purging_a_record_sends_nothing(site: Site) -> None:
    await site.register("contact")
    purged, kept = (c["id"] for c in site.store.find("contacts")[:2])
    site.store.purge("contacts", purged)
    site.store.update("contacts", kept, {"title": "Still here"})

    [payload] = await site.drained()
    assert payload["ID"] == kept
    assert (await site.api.get(f"company/contacts/{purged}")).status_code == 404
    with pytest.raises(Exception, match="not found"):
        site.store.purge("contacts", purged)


async def test_api_writes_are_answered_before_their_callbacks_are_delivered(site: Site) -> None:
    await site.register("company")
    site.receiver.gate = threading.Event()
    company_id = first_id(site.store, "companies")
    patch = [{"op": "replace", "path": "name", "value": "Answered first"}]
    response = await site.api.patch(f"company/companies/{company_id}", json=patch)
    assert response.status_code == 200
    assert site.simulator.callbacks.outstanding == 1  # the receiver is still holding it
    site.receiver.gate.set()
    assert len(await site.drained()) == 1


async def test_events_before_the_server_starts_are_delivered_once_it_runs(
    store: ConnectWiseStore, receiver_at: tuple[Receiver, str]
) -> None:
    receiver, hook_base = receiver_at
    receiver.reset()
    simulator = ConnectWiseSimulator(store, credentials=CREDENTIALS)
    simulator.callbacks.add(f"{hook_base}/hook?recordId=", "company")
    simulator.store.update("companies", first_id(store, "companies"), {"name": "Early"})
    assert simulator.callbacks.queued == 1
    async with serve_in_thread(simulator):
        await simulator.callbacks.drain(10)
    [payload] = receiver.payloads
    assert json.loads(payload["Entity"])["name"] == "Early"


async def test_drain_times_out_while_nothing_delivers(simulator: ConnectWiseSimulator) -> None:
    simulator.callbacks.add("https://hooks.example.com/?recordId=", "company")
    simulator.store.update("companies", first_id(simulator.store, "companies"), {"name": "Stuck"})
    with pytest.raises(TimeoutError):
        await simulator.callbacks.drain(0.01)
