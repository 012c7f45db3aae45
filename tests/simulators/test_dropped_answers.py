"""Dropped answers and before-write hooks in both PSA simulators, over a socket and in process.

A dropped answer (``faults.drop_after_write_every``) is a write the simulator applied and then
never answered: the client must see a transport error, the same one over uvicorn and through
`InProcessTransport`, while the store holds the write. Every test taking `connect` runs both
ways.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from simulator_access import AUTHORIZATION, CREDENTIALS
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp

from simulators.connectwise import ConnectWiseSimulator, ConnectWiseStore, serve_in_thread
from simulators.pulseway import (
    API_USER_ID,
    ApiCredentials,
    Clock,
    DatasetSpec,
    PulsewaySimulator,
    PulsewayStore,
    generate_dataset,
)
from simulators.transport import InProcessTransport

CW_ROOT = "/v4_6_release/apis/3.0/"
CW_HEADERS = {"Authorization": AUTHORIZATION}
ADDRESS = {"addressLine1": "1 Main St", "city": "Tampa", "state": "FL", "zip": "33602"}
PULSEWAY = ApiCredentials(tenant="acme", username="api.user", password="s3cret")
START = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)

Connect = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]


@asynccontextmanager
async def over_socket(
    app: ASGIApp, root: str = "/", headers: dict[str, str] | None = None
) -> AsyncIterator[httpx.AsyncClient]:
    async with (
        serve_in_thread(app) as base_url,
        httpx.AsyncClient(base_url=base_url + root, headers=headers) as client,
    ):
        yield client


@asynccontextmanager
async def in_process(
    app: ASGIApp, root: str = "/", headers: dict[str, str] | None = None
) -> AsyncIterator[httpx.AsyncClient]:
    transport = InProcessTransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://psa.test" + root, headers=headers
    ) as client:
        yield client


@pytest.fixture(params=[over_socket, in_process], ids=["socket", "in-process"])
def connect(request: pytest.FixtureRequest) -> Connect:
    """A client for an app (``connect(app, root, headers)``), over uvicorn or in process."""
    chosen: Connect = request.param
    return chosen


@pytest.fixture
async def cw(simulator: ConnectWiseSimulator, connect: Connect) -> AsyncIterator[httpx.AsyncClient]:
    """A ConnectWise client rooted at the API."""
    async with connect(simulator.app, CW_ROOT, CW_HEADERS) as client:
        yield client


@pytest.fixture
def pulseway() -> PulsewaySimulator:
    store = PulsewayStore(Clock(START), tenant="acme")
    return PulsewaySimulator(
        generate_dataset(DatasetSpec(accounts=5, seed=3), store), credentials=PULSEWAY
    )


@pytest.fixture
async def pw(pulseway: PulsewaySimulator, connect: Connect) -> AsyncIterator[httpx.AsyncClient]:
    """A Pulseway client with a bearer token (issued without a request: no traffic)."""
    headers = {"Authorization": f"Bearer {pulseway.issue_token()}"}
    async with connect(pulseway.app, "/", headers) as client:
        yield client


async def login(client: httpx.AsyncClient) -> httpx.Response:
    form = {"grantType": "password", "userName": "api.user", "password": "s3cret", "tenant": "acme"}
    return await client.post("/v2/security/authenticate", data=form)


def new_account(name: str) -> dict[str, Any]:
    return {
        "accountName": name,
        "accountTypeId": 1,
        "businessTypeId": 1,
        "accountManagerId": 3,
        "locations": [{"locationName": "HQ", "isMain": True, "addresses": []}],
    }


def first_id(store: ConnectWiseStore, collection: str) -> int:
    return int(store.find(collection)[0]["id"])


# ------------------------------------------------------------------------------ ConnectWise


async def test_a_dropped_answer_leaves_the_connectwise_create_applied(
    cw: httpx.AsyncClient, simulator: ConnectWiseSimulator, store: ConnectWiseStore
) -> None:
    simulator.faults.drop_after_write_every = 1
    body = {"identifier": "DroppedCo", "name": "Dropped Co", **ADDRESS}
    with pytest.raises(httpx.RemoteProtocolError):
        await cw.post("company/companies", json=body)
    [company] = store.find("companies", 'identifier = "DroppedCo"')
    assert company["name"] == "Dropped Co"
    assert company["_info"]["updatedBy"] == CREDENTIALS.member
    traffic = simulator.traffic
    assert (traffic.writes, traffic.dropped_answers, traffic.faults_injected) == (1, 1, 1)
    assert traffic.served == 0


async def test_a_dropped_answer_leaves_the_connectwise_update_applied(
    cw: httpx.AsyncClient, simulator: ConnectWiseSimulator, store: ConnectWiseStore
) -> None:
    contact_id = first_id(store, "contacts")
    before = store.get("contacts", contact_id)
    assert before is not None
    simulator.faults.drop_after_write_every = 1
    patch = [{"op": "replace", "path": "title", "value": "Applied, unanswered"}]
    with pytest.raises(httpx.RemoteProtocolError):
        await cw.patch(f"company/contacts/{contact_id}", json=patch)
    after = store.get("contacts", contact_id)
    assert after is not None
    assert after["title"] == "Applied, unanswered"
    assert after["_info"]["updatedBy"] == CREDENTIALS.member
    assert after["_info"]["lastUpdated"] >= before["_info"]["lastUpdated"]
    assert simulator.traffic.dropped_answers == 1


async def test_connectwise_reads_and_refused_writes_keep_their_answers(
    cw: httpx.AsyncClient, simulator: ConnectWiseSimulator, store: ConnectWiseStore
) -> None:
    simulator.faults.drop_after_write_every = 1
    contact_id = first_id(store, "contacts")
    assert (await cw.get(f"company/contacts/{contact_id}")).status_code == 200
    refused = await cw.post("company/contacts", json={"lastName": "Nobody"})
    assert refused.status_code == 400  # nothing applied, nothing to drop
    assert (await cw.get("company/companies/count")).status_code == 200
    traffic = simulator.traffic
    assert (traffic.requests, traffic.served, traffic.writes, traffic.dropped_answers) == (
        3,
        3,
        0,
        0,
    )


async def test_only_every_nth_connectwise_write_loses_its_answer(
    cw: httpx.AsyncClient, simulator: ConnectWiseSimulator, store: ConnectWiseStore
) -> None:
    simulator.faults.drop_after_write_every = 2
    contact_id = first_id(store, "contacts")
    path = f"company/contacts/{contact_id}"
    outcomes: list[int | str] = []
    for n in range(1, 5):
        await cw.get(path)  # reads do not count towards the N
        try:
            answer = await cw.patch(
                path, json=[{"op": "replace", "path": "title", "value": f"T{n}"}]
            )
            outcomes.append(answer.status_code)
        except httpx.TransportError:
            outcomes.append("dropped")
    assert outcomes == [200, "dropped", 200, "dropped"]
    assert (await cw.get(path)).json()["title"] == "T4"
    traffic = simulator.traffic
    assert (traffic.writes, traffic.dropped_answers, traffic.served) == (4, 2, 7)


async def test_a_dropped_connectwise_write_still_sends_its_callback(
    simulator: ConnectWiseSimulator, store: ConnectWiseStore
) -> None:
    received: list[str] = []

    async def hook(request: Request) -> Response:
        received.append(request.query_params["recordId"])
        return Response()

    receiver = Starlette(routes=[Route("/hook", hook, methods=["POST"])])
    company_id = first_id(store, "companies")
    async with (
        serve_in_thread(receiver) as hooks,
        over_socket(simulator.app, CW_ROOT, CW_HEADERS) as api,
    ):
        callback = {"url": f"{hooks}/hook?recordId=", "objectId": 1, "type": "company"}
        registered = await api.post("system/callbacks", json={**callback, "level": "owner"})
        assert registered.status_code == 201
        simulator.faults.drop_after_write_every = 1
        patch = [{"op": "replace", "path": "name", "value": "Renamed, unanswered"}]
        with pytest.raises(httpx.RemoteProtocolError):
            await api.patch(f"company/companies/{company_id}", json=patch)
        await simulator.callbacks.drain(10)
    assert received == [str(company_id)]


async def test_a_connectwise_before_write_hook_runs_before_the_write_is_applied(
    cw: httpx.AsyncClient, simulator: ConnectWiseSimulator, store: ConnectWiseStore
) -> None:
    contact_id = first_id(store, "contacts")
    seen: list[tuple[str, str, Any]] = []

    def edit_in_the_ui(request: Request) -> None:
        current = store.get("contacts", contact_id)
        assert current is not None
        seen.append((request.method, request.url.path, current["firstName"]))
        store.update("contacts", contact_id, {"title": "Set in the UI"})

    simulator.before_write.append(edit_in_the_ui)
    original = (await cw.get(f"company/contacts/{contact_id}")).json()["firstName"]
    patch = [{"op": "replace", "path": "firstName", "value": "Set by the client"}]
    answer = await cw.patch(f"company/contacts/{contact_id}", json=patch)
    assert answer.status_code == 200
    # The write was applied to the record as the hook left it, and landed last.
    assert answer.json()["title"] == "Set in the UI"
    assert answer.json()["firstName"] == "Set by the client"
    assert answer.json()["_info"]["updatedBy"] == CREDENTIALS.member
    assert seen == [("PATCH", f"{CW_ROOT}company/contacts/{contact_id}", original)]


async def test_dropping_connectwise_answers_is_set_and_cleared_over_http(
    simulator: ConnectWiseSimulator, connect: Connect
) -> None:
    async with connect(simulator.app) as client:
        changed = await client.post("/__simulator/faults", json={"drop_after_write_every": 3})
        refused = [
            await client.post("/__simulator/faults", json={"drop_after_write_every": value})
            for value in (-1, "3", True, 1.5)
        ]
        shown = (await client.get("/__simulator/faults")).json()
        cleared = await client.delete("/__simulator/faults")
    assert changed.status_code == 200
    assert [r.status_code for r in refused] == [400] * 4
    assert "drop_after_write_every" in refused[0].json()["message"]
    assert shown["faults"]["drop_after_write_every"] == 3
    assert shown["traffic"]["dropped_answers"] == 0
    assert cleared.json()["faults"]["drop_after_write_every"] == 0
    assert simulator.faults.drop_after_write_every == 0


# --------------------------------------------------------------------------------- Pulseway


async def test_a_dropped_answer_leaves_the_pulseway_create_applied(
    pw: httpx.AsyncClient, pulseway: PulsewaySimulator
) -> None:
    pulseway.faults.drop_after_write_every = 1
    with pytest.raises(httpx.RemoteProtocolError):
        await pw.post("/v2/crm/accounts", json=new_account("Dropped Dental"))
    [account] = [
        a for a in pulseway.store.accounts.values() if a["accountName"] == "Dropped Dental"
    ]
    assert account["modifiedBy"] == API_USER_ID
    traffic = pulseway.traffic
    assert (traffic.writes, traffic.dropped_answers, traffic.faults_injected) == (1, 1, 1)
    assert traffic.served == 0


async def test_a_dropped_answer_leaves_the_pulseway_update_applied(
    pw: httpx.AsyncClient, pulseway: PulsewaySimulator
) -> None:
    contact_id = min(pulseway.store.contacts)
    pulseway.store.clock.advance(minutes=5)
    pulseway.faults.drop_after_write_every = 1
    patch = [{"op": "replace", "path": "/jobTitle", "value": "Applied, unanswered"}]
    with pytest.raises(httpx.RemoteProtocolError):
        await pw.patch(f"/v2/crm/contacts/{contact_id}", json=patch)
    contact = pulseway.store.get("contacts", contact_id)
    assert contact["jobTitle"] == "Applied, unanswered"
    assert contact["modifiedBy"] == API_USER_ID
    assert contact["modifiedOn"] == pulseway.store.clock.now()
    assert pulseway.traffic.dropped_answers == 1


async def test_pulseway_authentication_and_reads_keep_their_answers(
    pulseway: PulsewaySimulator, connect: Connect
) -> None:
    pulseway.faults.drop_after_write_every = 1
    async with connect(pulseway.app) as client:
        token = (await login(client)).json()["result"]["accessToken"]  # a POST, not a write
        client.headers["Authorization"] = f"Bearer {token}"
        listed = await client.get("/v2/crm/accounts/summary")
        with pytest.raises(httpx.RemoteProtocolError):
            await client.post("/v2/crm/accounts", json=new_account("Dropped Dental"))
        after = await client.get("/v2/crm/accounts/summary", params={"PageSize": 100})
    assert listed.json()["success"] is True
    assert "Dropped Dental" in [a["accountName"] for a in after.json()["result"]]
    traffic = pulseway.traffic
    assert (traffic.requests, traffic.served, traffic.writes, traffic.dropped_answers) == (
        4,
        3,
        1,
        1,
    )


async def test_a_pulseway_before_write_hook_runs_before_the_write_is_applied(
    pulseway: PulsewaySimulator, connect: Connect
) -> None:
    store = pulseway.store
    contact_id = min(store.contacts)
    seen: list[tuple[str, str, Any]] = []

    async def edit_in_the_ui(request: Request) -> None:
        seen.append(
            (request.method, request.url.path, store.get("contacts", contact_id)["firstName"])
        )
        await asyncio.sleep(0)
        store.update("contacts", contact_id, jobTitle="Set in the UI")

    pulseway.before_write.append(edit_in_the_ui)
    original = store.get("contacts", contact_id)["firstName"]
    async with connect(pulseway.app) as client:
        token = (await login(client)).json()["result"]["accessToken"]  # no hook: not a write
        client.headers["Authorization"] = f"Bearer {token}"
        await client.get(f"/v2/crm/contacts/summary/{contact_id}")
        patch = [{"op": "replace", "path": "/firstName", "value": "Set by the client"}]
        answer = (await client.patch(f"/v2/crm/contacts/{contact_id}", json=patch)).json()
    # The write was applied to the record as the hook left it, and landed last.
    assert answer["result"]["jobTitle"] == "Set in the UI"
    assert answer["result"]["firstName"] == "Set by the client"
    assert store.get("contacts", contact_id)["modifiedBy"] == API_USER_ID
    assert seen == [("PATCH", f"/v2/crm/contacts/{contact_id}", original)]


async def test_dropping_pulseway_answers_is_set_and_cleared_over_http(
    pulseway: PulsewaySimulator, connect: Connect
) -> None:
    async with connect(pulseway.app) as client:
        changed = await client.post("/__simulator/faults", json={"drop_after_write_every": 2})
        refused = [
            await client.post("/__simulator/faults", json={"drop_after_write_every": value})
            for value in (-1, "2", False, None)
        ]
        shown = (await client.get("/__simulator/faults")).json()
        cleared = await client.delete("/__simulator/faults")
    assert changed.status_code == 200
    assert [r.status_code for r in refused] == [400] * 4
    assert "drop_after_write_every" in refused[0].json()["error"]["message"]
    assert shown["faults"]["drop_after_write_every"] == 2
    assert shown["traffic"]["dropped_answers"] == 0
    assert cleared.json()["faults"]["drop_after_write_every"] == 0
    assert pulseway.faults.drop_after_write_every == 0


# ---------------------------------------------------------------------------------- logging


async def test_uvicorn_does_not_log_a_dropped_answer_as_a_crash(
    simulator: ConnectWiseSimulator, store: ConnectWiseStore, caplog: pytest.LogCaptureFixture
) -> None:
    simulator.faults.drop_after_write_every = 1
    patch = [{"op": "replace", "path": "title", "value": "Applied, unanswered"}]
    with caplog.at_level("DEBUG", logger="uvicorn.error"):
        async with over_socket(simulator.app, CW_ROOT, CW_HEADERS) as api:
            with pytest.raises(httpx.RemoteProtocolError):
                await api.patch(f"company/contacts/{first_id(store, 'contacts')}", json=patch)
    assert simulator.traffic.dropped_answers == 1
    assert [r.getMessage() for r in caplog.records if r.levelname == "ERROR"] == []
