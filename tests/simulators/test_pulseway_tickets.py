"""Pulseway PSA tickets, queues, employees and the admin webhooks API in the simulator: every 200
answer checked against the OpenAPI subset (as in ``test_pulseway_contract.py``), filters and
paging agree with the store, a ticket change reaches a webhook registered through the API, and
a denied area answers 403 while the others keep working."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from openapi_core.testing import MockRequest, MockResponse
from pulseway_contract import BASE, contract_spec
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from simulators.pulseway import (
    ApiCredentials,
    Clock,
    DatasetSpec,
    PulsewaySimulator,
    PulsewayStore,
    generate_dataset,
    serve_in_thread,
)
from simulators.pulseway.wire import stamp

CREDENTIALS = ApiCredentials(tenant="acme", username="api.user", password="s3cret")
START = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)


class Recorder:
    """Every 200 answer of the API, validated against the contract at teardown."""

    def __init__(self) -> None:
        self.exchanges: list[httpx.Response] = []

    async def record(self, response: httpx.Response) -> None:
        await response.aread()
        self.exchanges.append(response)

    def problems(self) -> Iterator[str]:
        spec = contract_spec(True)
        for response in self.exchanges:
            request = response.request
            if response.status_code != 200 or not request.url.path.startswith("/v2/"):
                continue
            mock_request = MockRequest(
                BASE, request.method.lower(), request.url.path, args=dict(request.url.params)
            )
            mock_response = MockResponse(response.content, 200, content_type="application/json")
            for error in spec.iter_response_errors(mock_request, mock_response):
                cause = getattr(error, "__cause__", None)
                for detail in getattr(cause, "schema_errors", None) or [cause or error]:
                    yield f"{request.method} {request.url.path}: {detail}"


@pytest.fixture
def store() -> PulsewayStore:
    """20 accounts and 20 tickets (one per account by default); clock fixed at START."""
    return generate_dataset(DatasetSpec(accounts=20, seed=7), PulsewayStore(Clock(START), "acme"))


@pytest.fixture
def simulator(store: PulsewayStore) -> PulsewaySimulator:
    return PulsewaySimulator(store, credentials=CREDENTIALS)


@pytest.fixture
async def api(simulator: PulsewaySimulator) -> AsyncIterator[httpx.AsyncClient]:
    recorder = Recorder()
    transport = httpx.ASGITransport(app=simulator.app)
    async with httpx.AsyncClient(
        transport=transport, base_url=BASE, event_hooks={"response": [recorder.record]}
    ) as client:
        client.headers["Authorization"] = f"Bearer {simulator.issue_token()}"
        yield client
    problems = list(recorder.problems())
    assert not problems, "responses outside the OpenAPI contract:\n" + "\n".join(problems[:20])


def ok(response: httpx.Response) -> Any:
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["success"] is True, body
    return body["result"]


# ------------------------------------------------------------------- employees and queues


async def test_employees_searchselect_lists_people_with_active_filter(
    api: httpx.AsyncClient,
) -> None:
    response = await api.get("/v2/hr/employees/searchselect", params={"PageSize": 100})
    everyone = ok(response)
    assert response.json()["totalRecords"] == len(everyone)
    assert {"firstName", "lastName", "emailAddress", "username", "isActive"} <= set(everyone[0])
    active = ok(await api.get("/v2/hr/employees/searchselect", params={"Filter.IsActive": "true"}))
    assert 0 < len(active) < len(everyone)
    assert all(e["isActive"] for e in active)
    found = ok(
        await api.get("/v2/hr/employees/searchselect", params={"Filter.Filter_Text": "jane"})
    )
    assert [e["username"] for e in found] == ["jane.tech"]
    page = ok(
        await api.get("/v2/hr/employees/searchselect", params={"PageSize": 2, "PageNumber": 2})
    )
    assert [e["id"] for e in page] == [e["id"] for e in everyone[2:4]]


async def test_queues_lookup(api: httpx.AsyncClient) -> None:
    queues = ok(await api.get("/v2/system/queues/lookup"))
    assert {"Service Desk", "Alerts"} <= {q["name"] for q in queues}
    assert any(not q["isActive"] for q in queues)


# ------------------------------------------------------------------------------- tickets


async def test_ticket_list_filters_by_activity_queue_and_completion(
    api: httpx.AsyncClient, store: PulsewayStore
) -> None:
    since = datetime(2025, 1, 1, tzinfo=UTC)
    params = {
        "Filter.LastActivityUpdateFrom": "2025-01-01T00:00:00",
        "Filter.QueueNames": "Service Desk,Network Operations",
        "Filter.ExcludeCompleted": 1,
        "PageSize": 100,
    }
    response = await api.get("/v2/servicedesk/tickets", params=params)
    rows = ok(response)
    expected = [
        t["id"]
        for t in store.tickets.values()
        if t["lastActivityUpdate"] >= since and t["queueId"] in (1, 2) and t["statusId"] < 4
    ]
    assert [r["id"] for r in rows] == expected
    assert response.json()["totalRecords"] == len(expected)
    everything = await api.get("/v2/servicedesk/tickets", params={"PageSize": 100})
    assert everything.json()["totalRecords"] == len(store.tickets) == 20
    statuses = {r["statusName"] for r in ok(everything)}
    assert {"Completed", "Closed"} & statuses
    assert {"New", "In Progress"} & statuses


async def test_ticket_search_takes_the_filter_in_the_body_and_pages(
    api: httpx.AsyncClient, store: PulsewayStore
) -> None:
    first = await api.post("/v2/servicedesk/tickets/search", json={"PageSize": 5, "PageNumber": 1})
    second = await api.post("/v2/servicedesk/tickets/search", json={"PageSize": 5, "PageNumber": 2})
    ids = [t["id"] for t in ok(first) + ok(second)]
    assert ids == sorted(store.tickets)[:10]
    account_id = store.tickets[ids[0]]["accountId"]
    body = {"Filter": {"AccountIds": str(account_id), "CreatedOnFrom": "2020-01-01T00:00:00Z"}}
    mine = ok(await api.post("/v2/servicedesk/tickets/search", json=body))
    assert mine
    assert all(t["accountId"] == account_id for t in mine)
    assert len(mine) == sum(t["accountId"] == account_id for t in store.tickets.values())


async def test_ticket_by_id_and_unknown_ticket(
    api: httpx.AsyncClient, store: PulsewayStore
) -> None:
    ticket_id = next(iter(store.tickets))
    ticket = ok(await api.get(f"/v2/servicedesk/tickets/{ticket_id}"))
    assert ticket["ticketNumber"] == store.tickets[ticket_id]["ticketNumber"]
    assert (
        ticket["accountName"]
        == store.accounts[store.tickets[ticket_id]["accountId"]]["accountName"]
    )
    missing = await api.get("/v2/servicedesk/tickets/999999")
    assert missing.status_code == 200
    assert missing.json()["error"]["code"] == 404


async def test_ticket_changes_stamp_activity_and_completion(store: PulsewayStore) -> None:
    ticket = store.create_ticket({"title": "Printer jam", "accountId": 1})
    assert ticket["statusId"] == 1
    assert ticket["completedDate"] is None
    store.clock.advance(minutes=5)
    store.update("tickets", ticket["id"], statusId=4)
    assert ticket["completedDate"] == ticket["lastActivityUpdate"] == START + timedelta(minutes=5)
    store.clock.advance(minutes=5)
    store.update("tickets", ticket["id"], statusId=2)
    assert ticket["completedDate"] is None
    assert ticket["lastStatusUpdate"] == START + timedelta(minutes=10)


def test_dataset_tickets_do_not_change_the_other_records() -> None:
    spec = DatasetSpec(accounts=15, seed=5)
    with_tickets = generate_dataset(spec)
    without = generate_dataset(DatasetSpec(accounts=15, seed=5, tickets=0))
    assert with_tickets.accounts == without.accounts
    assert with_tickets.contacts == without.contacts
    assert with_tickets.assets == without.assets
    assert len(with_tickets.tickets) == 15
    assert not without.tickets
    old_open = [
        t
        for t in with_tickets.tickets.values()
        if t["completedDate"] is None
        and t["lastActivityUpdate"] < spec.updated_until - timedelta(90)
    ]
    assert old_open  # open tickets untouched for months


# ------------------------------------------------------------------------ admin webhooks


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[list[tuple[dict[str, str], Any]], str]]:
    received: list[tuple[dict[str, str], Any]] = []

    async def hook(request: Request) -> Response:
        received.append((dict(request.headers), json.loads(await request.body())))
        return Response(status_code=204)

    app = Starlette(routes=[Route("/hook", hook, methods=["POST"])])
    async with serve_in_thread(app) as base_url:
        yield received, f"{base_url}/hook"


async def test_webhooks_api_registers_and_ticket_changes_are_delivered(
    api: httpx.AsyncClient,
    simulator: PulsewaySimulator,
    store: PulsewayStore,
    receiver: tuple[list[tuple[dict[str, str], Any]], str],
) -> None:
    received, url = receiver
    events = ok(await api.get("/v2/admin/webhooks/events/lookup"))
    by_name = {e["name"]: e["id"] for e in events}
    body = {
        "Name": "psasync tickets",
        "PayloadURL": url,
        "IsEnabled": True,
        "Secret": "hush",
        "ContentType": 1,
        "SendAllEvents": False,
        "Events": [by_name["TicketCreated"], by_name["TicketUpdated"]],
    }
    created = ok(await api.post("/v2/admin/webhooks", json=body))
    assert created["hasSecret"] is True
    assert "secret" not in created
    assert created["events"] == body["Events"]
    assert created["sendAllEvents"] is False
    assert ok(await api.get(f"/v2/admin/webhooks/{created['id']}")) == created

    ticket = store.create_ticket({"title": "Server down", "accountId": 2})
    store.update("tickets", ticket["id"], statusId=4)
    store.update("accounts", 2, website="https://changed.example")  # not subscribed
    await simulator.webhooks.drain()
    assert [(p["eventType"], p["entityId"]) for _, p in received] == [
        ("TicketCreated", ticket["id"]),
        ("TicketUpdated", ticket["id"]),
    ]
    assert all(h["x-signature"].startswith("sha256=") for h, _ in received)
    assert received[1][1]["timestamp"] == stamp(ticket["modifiedOn"])

    changed = ok(
        await api.put(f"/v2/admin/webhooks/{created['id']}", json={**body, "IsEnabled": False})
    )
    assert changed["isEnabled"] is False
    ok(await api.delete(f"/v2/admin/webhooks/{created['id']}"))
    gone = await api.get(f"/v2/admin/webhooks/{created['id']}")
    assert gone.json()["error"]["code"] == 404
    bad = await api.post("/v2/admin/webhooks", json={**body, "Events": [99]})
    assert bad.json()["success"] is False


# -------------------------------------------------------------------------- denied areas


async def test_denied_area_answers_403_and_others_still_work(
    api: httpx.AsyncClient, simulator: PulsewaySimulator
) -> None:
    control = httpx.AsyncClient(transport=httpx.ASGITransport(app=simulator.app), base_url=BASE)
    async with control:
        state = await control.post("/__simulator/faults", json={"deny": {"tickets": "read"}})
        assert state.json()["denied"] == {"tickets": ["read"]}
        refused = await api.get("/v2/servicedesk/tickets")
        assert refused.status_code == 403
        assert refused.json()["success"] is False
        assert refused.json()["error"]["code"] == 403
        assert "tickets" in refused.json()["error"]["message"]
        search = await api.post("/v2/servicedesk/tickets/search", json={})
        assert search.status_code == 403  # a search is a read
        ok(await api.get("/v2/crm/accounts/summary"))
        ok(await api.get("/v2/system/queues/lookup"))
        assert simulator.traffic.writes == 0

        await control.post("/__simulator/faults", json={"deny": {"contacts": "write"}})
        ok(await api.get("/v2/servicedesk/tickets"))  # the new denials replace the old
        ok(await api.get("/v2/crm/contacts/summary"))
        contact_id = next(iter(simulator.store.contacts))
        deleted = await api.delete(f"/v2/crm/contacts/{contact_id}")
        assert deleted.status_code == 403
        assert contact_id in simulator.store.contacts

        bad = await control.post("/__simulator/faults", json={"deny": {"invoices": "read"}})
        assert bad.status_code == 400
        await control.delete("/__simulator/faults")
        assert simulator.denials.denied == {}
